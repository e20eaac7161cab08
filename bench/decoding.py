"""Greedy vs beam vs beam + LM vs beam + LM + hotwords, on the out-of-distribution suite and dev_scan2.

Every model reads every line once (ONNX Runtime, one thread); the decoders then read the same
outputs, so the timings below are the decoders' own, per line, on one thread. The LM's weight
``alpha`` and insertion bonus ``beta`` are tuned on the even lines of the suite's degraded
subsets (scan, photo) for the first model named (the serving default) and reported on the
odd lines, which the tuning never saw, as well as on every subset whole. The hotword bonus is
tuned on the scanned half of the hotword set; its photographed half is never tuned on.

The hotword set: invoice lines naming companies, rendered like the suite's scan and photo
lines (Pango, held-out faces). A name is two or three common characters drawn at random (GB2312
level 1), a trade and a legal form, so no language model can guess it, as with a customer's own
suppliers; the hotwords are the set's names plus as many other names as distractors.

    .venv/bin/python -m bench.decoding --lm models/lm/zh_char5.arpa.gz \\
        --model "PP-OCRv6-tiny=models/reference/ppocrv6_tiny_rec.onnx" --model "student=models/student.onnx"
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import cv2
import numpy as np

from distill.data import read_labels
from distill.evaluate import clean_for_scoring, edit_distance, load_recognizer, prepare_bgr
from engine.beam import BeamSettings, Hotwords
from engine.decoder import DecoderConfig, LineDecoder
from engine.lm import CharLM

SUBSETS = ("clean", "scan", "photo", "kai")
DEGRADED = ("scan", "photo")
COMPANY_SEED = 7_3_2026
LABELS = ("销售方名称", "购买方名称", "名称", "收款单位", "付款单位", "开户名")


TRADES = ("科技", "贸易", "实业", "电子", "物流", "建材", "食品", "机械", "传媒", "化工", "医药", "环保")
FORMS = ("有限公司", "股份有限公司", "有限责任公司")


def company_names(count: int, rng: np.random.Generator) -> list[str]:
    common = [
        bytes([hi, lo]).decode("gb2312")
        for hi in range(0xB0, 0xD8)
        for lo in range(0xA1, 0xFF)
        if not (hi == 0xD7 and lo > 0xF9)
    ]
    names: dict[str, None] = {}
    while len(names) < count:
        core = "".join(rng.choice(common, size=int(rng.integers(2, 4))))
        names[core + TRADES[int(rng.integers(len(TRADES)))] + FORMS[int(rng.integers(len(FORMS)))]] = None
    return list(names)


def company_set(out: Path, font_dir: Path, lines: int = 200) -> list[str]:
    """Render the hotword set (once; it is kept in ``out``) and return its hotword list."""
    rng = np.random.default_rng(COMPANY_SEED)
    names = company_names(lines, rng)
    used, distractors = names[: lines // 2], names[lines // 2 :]
    if not (out / "scan" / "labels.tsv").exists():
        from distill.ood import render_suite

        texts = [("company", f"{LABELS[int(rng.integers(len(LABELS)))]}：{name}") for name in used * 2]
        render_suite(out, font_dir, texts=texts, sizes={"scan": lines // 2, "photo": lines // 2}, seed=COMPANY_SEED)
    return used + distractors


def read_outputs(rec, folder: Path) -> list[tuple[np.ndarray, str]]:
    out = []
    for rel, text in read_labels(folder):
        img = cv2.imread(str(folder / rel), cv2.IMREAD_COLOR)
        out.append((rec.outputs(prepare_bgr(img, rec.spec)[None])[0], text))
    return out


def score(rec, decoder: LineDecoder, items, hotwords: Hotwords | None = None) -> dict:
    errors = chars = exact = searched = 0
    times, searched_times = [], []
    for scores, text in items:
        t0 = time.perf_counter()
        read = decoder.decode(scores, rec.spec, hotwords=hotwords)
        ms = (time.perf_counter() - t0) * 1000.0
        times.append(ms)
        if read.searched:
            searched += 1
            searched_times.append(ms)
        gt, pr = clean_for_scoring(text), clean_for_scoring(read.text)
        errors += edit_distance(gt, pr)
        chars += len(gt)
        exact += gt == pr
    return {
        "lines": len(items),
        "cer": round(100.0 * errors / max(chars, 1), 3),
        "char_accuracy": round(100.0 - 100.0 * errors / max(chars, 1), 3),
        "line_accuracy": round(100.0 * exact / max(len(items), 1), 2),
        "searched": round(searched / max(len(items), 1), 3),
        "ms_p50": round(float(np.median(times)), 3),
        "ms_mean": round(float(np.mean(times)), 3),
        "ms_p50_searched": round(float(np.median(searched_times)), 3) if searched_times else 0.0,
    }


def tune(rec, lm: CharLM, items, alphas, betas, width: int, doubt: float) -> tuple[float, float, list]:
    """The (alpha, beta) with the lowest CER on ``items``, and the whole grid."""
    grid = []
    for alpha, beta in itertools.product(alphas, betas):
        decoder = LineDecoder(DecoderConfig("beam", BeamSettings(width=width, alpha=alpha, beta=beta), doubt), lm)
        grid.append((score(rec, decoder, items)["cer"], alpha, beta))
        print(json.dumps({"tune": {"alpha": alpha, "beta": beta, "cer": grid[-1][0]}}), flush=True)
    best = min(grid)
    return best[1], best[2], grid


def tune_bonus(
    rec,
    lm: CharLM,
    items,
    hotwords: Hotwords,
    alpha: float,
    beta: float,
    width: int,
    doubt: float,
    bonuses=(1.0, 2.0, 3.0, 4.0),
) -> float:
    """The hotword bonus with the lowest CER on ``items`` (the scanned half of the hotword set)."""
    grid = []
    for bonus in bonuses:
        decoder = LineDecoder(
            DecoderConfig("beam", BeamSettings(width=width, alpha=alpha, beta=beta, bonus=bonus), doubt), lm
        )
        grid.append((score(rec, decoder, items, hotwords)["cer"], bonus))
        print(json.dumps({"tune": {"bonus": bonus, "cer": grid[-1][0]}}), flush=True)
    return min(grid)[1]


def decoders(lm: CharLM, alpha: float, beta: float, bonus: float, width: int, doubt: float) -> dict[str, LineDecoder]:
    return {
        "greedy": LineDecoder(),
        "beam": LineDecoder(DecoderConfig("beam", BeamSettings(width=width, bonus=bonus), doubt)),
        "beam+LM": LineDecoder(
            DecoderConfig("beam", BeamSettings(width=width, alpha=alpha, beta=beta, bonus=bonus), doubt), lm
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", required=True, metavar="LABEL=PATH")
    parser.add_argument("--lm", required=True)
    parser.add_argument("--ood", default="data/ood")
    parser.add_argument("--dev", default="data/dev_scan2", help="a training-like degraded set ('' to skip)")
    parser.add_argument("--companies", default="data/hotwords", help="where the hotword set is (or is rendered)")
    parser.add_argument("--fonts", default="var/fonts/ood")
    parser.add_argument("--alphas", default="0.2,0.3,0.4,0.5")
    parser.add_argument("--betas", default="1.0,1.5,2.0,2.5,3.0")
    parser.add_argument("--doubt", default="0.05,0.2,0.4", help="gates to report; the first is used to tune")
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--out", default=None, help="append the JSON lines here too")
    args = parser.parse_args(argv)

    lm = CharLM.load(args.lm)
    hot_list = company_set(Path(args.companies), Path(args.fonts))
    doubts = [float(d) for d in args.doubt.split(",")]
    sets = {name: Path(args.ood) / name for name in SUBSETS}
    if args.dev:
        sets["dev_scan2"] = Path(args.dev)
    sets.update({f"companies-{n}": Path(args.companies) / n for n in DEGRADED})
    tuned = None
    for spec in args.model:
        label, _, path = spec.partition("=")
        rec = load_recognizer(path, threads=1)
        outputs = {name: read_outputs(rec, folder) for name, folder in sets.items()}
        even = [item for n in DEGRADED for item in outputs[n][0::2]]
        odd = [item for n in DEGRADED for item in outputs[n][1::2]]
        if tuned is None:
            alpha, beta, _ = tune(
                rec,
                lm,
                even,
                [float(a) for a in args.alphas.split(",")],
                [float(b) for b in args.betas.split(",")],
                args.width,
                doubts[0],
            )
            bonus = tune_bonus(
                rec, lm, outputs["companies-scan"], Hotwords(hot_list), alpha, beta, args.width, doubts[0]
            )
            tuned = (alpha, beta, bonus)
        alpha, beta, bonus = tuned
        for doubt in doubts:
            for name, decoder in decoders(lm, alpha, beta, bonus, args.width, doubt).items():
                if name == "greedy" and doubt != doubts[0]:
                    continue
                report(label, name, doubt, alpha, beta, rec, decoder, outputs, even, odd, Hotwords(hot_list), args.out)
    return 0


def report(label, name, doubt, alpha, beta, rec, decoder, outputs, even, odd, hotwords, out) -> None:
    rows = {set_name: score(rec, decoder, items) for set_name, items in outputs.items()}
    rows["degraded-tuning-half"] = score(rec, decoder, even)
    rows["degraded-held-out-half"] = score(rec, decoder, odd)
    if name != "greedy":
        for n in DEGRADED:
            rows[f"companies-{n}+hotwords"] = score(rec, decoder, outputs[f"companies-{n}"], hotwords)
    line = {
        "model": label,
        "decoder": name,
        "doubt": doubt if name != "greedy" else None,
        "alpha": alpha if name == "beam+LM" else 0.0,
        "beta": beta if name == "beam+LM" else 0.0,
        "bonus": decoder.config.beam.bonus if name != "greedy" else None,
        "lm": decoder.lm.sha256[:12] if decoder.lm else None,
        "sets": rows,
    }
    text = json.dumps(line, ensure_ascii=False)
    print(text, flush=True)
    if out:
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
