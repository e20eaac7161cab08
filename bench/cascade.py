"""The teacher cascade: what re-reading the doubtful lines with a stronger recogniser buys and costs.

Every line of the given labels.tsv folders (the out-of-distribution suite: `make ood-suite`) is read
as a worker reads a one-line image (``pipeline.recognize_array``: the line whole, the worker's
beam decoder with its language model), once by the served recogniser and once by the cascade's
(PP-OCRv6 small by default), one intra-op thread (``--threads``: as many as the OCR worker's
``OCR_ORT_THREADS``), one line at a time. For each threshold the
cascade's answer replaces the default's on the lines whose confidence is below it; time per line
is the default's plus the cascade's on the lines re-read. Then the chosen threshold is run for
real through a LineBatcher with the cascade on, to check the simulation.

    .venv/bin/python -m bench.cascade --data data/ood/clean --data data/ood/scan --data data/ood/photo \\
        --data data/ood/kai [--limit 200] [--threshold 0.9 ...] [--check 0.9]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent

from distill.data import read_labels  # noqa: E402
from distill.evaluate import char_accuracy, clean_for_scoring, edit_distance  # noqa: E402
from engine import pipeline  # noqa: E402
from engine.batcher import LineBatcher  # noqa: E402
from engine.beam import BeamSettings  # noqa: E402
from engine.decoder import DecoderConfig, LineDecoder  # noqa: E402
from engine.inference import Recognizer  # noqa: E402
from engine.lm import CharLM  # noqa: E402
from engine.modelpkg import REFERENCE_FILES  # noqa: E402

MODELS = ROOT / "models"
THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 1.01)


def served_decoder() -> LineDecoder:
    """The worker's default decoder (OCR_DECODER=beam with the LM, OCR_LM_ALPHA/BETA, OCR_BEAM_DOUBT)."""
    return LineDecoder(
        DecoderConfig("beam", BeamSettings(alpha=0.3, beta=2.5), 0.2),
        CharLM.load(str(MODELS / "lm" / "zh_char5.arpa.gz")),
    )


def reads(batcher: LineBatcher, cases) -> list[dict]:
    out = []
    for rgb, text in cases:
        t0 = time.perf_counter()
        res = pipeline.recognize_array(rgb, batcher, uuid.uuid4().hex)
        ms = (time.perf_counter() - t0) * 1000
        pred = "".join(res.text)
        gt = clean_for_scoring(text)
        conf = min((line["confidence"] for line in res.lines), default=0.0)
        out.append(
            {
                "ms": ms,
                "errors": edit_distance(gt, clean_for_scoring(pred)),
                "chars": len(gt),
                "conf": conf,
                "models": [line["model"] for line in res.lines],
            }
        )
    return out


def accuracy(rows) -> float:
    return char_accuracy(sum(r["errors"] for r in rows), sum(r["chars"] for r in rows))


def print_table(names: list[str], base: dict, alone: dict, rows: list[dict]) -> None:
    base_ms = statistics.mean(r["ms"] for v in base.values() for r in v)
    strong_ms = statistics.mean(r["ms"] for v in alone.values() for r in v)
    print(
        json.dumps(
            {
                "default_alone": {n: round(100 * accuracy(v), 2) for n, v in base.items()},
                "default_ms_mean": round(base_ms, 2),
                "cascade_alone": {n: round(100 * accuracy(v), 2) for n, v in alone.items()},
                "cascade_ms_mean": round(strong_ms, 2),
            }
        )
    )
    print("\n| threshold | " + " | ".join(names) + " | lines re-read | ms/line (mean) | × default |")
    print("| --- |" + " --- |" * (len(names) + 3))
    print("| off | " + " | ".join(f"{100 * accuracy(base[n]):.2f}" for n in names) + f" | 0 | {base_ms:.1f} | 1.00 |")
    for r in rows:
        print(
            f"| {r['threshold']} | "
            + " | ".join(f"{r[n]:.2f}" for n in names)
            + f" | {100 * r['reread_share']:.1f} % | {r['ms_mean']:.1f} | {r['ms_mean'] / base_ms:.2f} |"
        )
    print(
        "| cascade model alone | "
        + " | ".join(f"{100 * accuracy(alone[n]):.2f}" for n in names)
        + f" | 100 % | {strong_ms:.1f} | {strong_ms / base_ms:.2f} |"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", action="append", required=True)
    parser.add_argument("--model", default=str(MODELS / REFERENCE_FILES["ppocrv6-tiny"]))
    parser.add_argument("--cascade", default=str(MODELS / REFERENCE_FILES["ppocrv6-small"]))
    parser.add_argument("--limit", type=int, default=None, help="lines per folder, spread evenly")
    parser.add_argument("--threshold", type=float, action="append", default=None)
    parser.add_argument("--check", type=float, default=None, help="run this threshold for real")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="ONNX Runtime threads per session (the OCR worker runs OCR_ORT_THREADS=2)",
    )
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    decoder = served_decoder()
    default, strong = Recognizer(args.model, threads=args.threads), Recognizer(args.cascade, threads=args.threads)
    sets = {}
    for folder in args.data:
        items = read_labels(folder)
        if args.limit:
            items = [items[k * len(items) // args.limit] for k in range(min(args.limit, len(items)))]
        sets[Path(folder).name] = [
            (cv2.imread(str(Path(folder) / rel), cv2.IMREAD_COLOR)[:, :, ::-1].copy(), text) for rel, text in items
        ]
    base = {name: reads(LineBatcher(lambda: default, decoder=decoder), cases) for name, cases in sets.items()}
    alone = {name: reads(LineBatcher(lambda: strong, decoder=decoder), cases) for name, cases in sets.items()}
    rows = []
    for th in args.threshold or THRESHOLDS:
        row = {"threshold": th}
        times, reread = [], 0
        for name in sets:
            mixed, own = [], []
            for b, s in zip(base[name], alone[name]):
                again = b["conf"] < th
                reread += again
                mixed.append(s if again else b)
                own.append(b["ms"] + (s["ms"] if again else 0.0))
            times += own
            row[name] = round(100 * accuracy(mixed), 2)
            row[f"{name}_x_default"] = round(statistics.mean(own) / statistics.mean(r["ms"] for r in base[name]), 2)
        row["reread_share"] = round(reread / len(times), 3)
        row["ms_mean"] = round(statistics.mean(times), 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print_table(list(sets), base, alone, rows)
    if args.check is not None:
        batcher = LineBatcher(lambda: default, decoder=decoder, cascade=lambda: strong, cascade_below=args.check)
        real = {name: reads(batcher, cases) for name, cases in sets.items()}
        print(
            json.dumps(
                {
                    "check_threshold": args.check,
                    **{n: round(100 * accuracy(v), 2) for n, v in real.items()},
                    "ms_mean": round(statistics.mean(r["ms"] for v in real.values() for r in v), 2),
                    "reread_share": round(
                        statistics.mean(
                            any(m.startswith(strong.spec.name) for m in r["models"]) for v in real.values() for r in v
                        ),
                        3,
                    ),
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
