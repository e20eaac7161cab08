"""How a one-line image should be read: the strategies side by side on the same line images.

For every image of the given labels.tsv folders (the out-of-distribution suite's line subsets:
`make ood-suite`), the engine's pipeline reads it the way a worker does (the served recogniser,
the worker's decoder with its language model, through a LineBatcher), with the line found by:

* ``projection``: the projection line finder (``lines.find_lines``, after deskewing);
* ``detector``: the learned text detector (``detect.PageReader``), as a page is read;
* ``whole``: the uncut image as one line;
* ``served``: what ``pipeline.recognize_array`` does today.

``--stack`` also builds two-line images (two lines of a folder one above the other, at the same
width), which a one-line reading must not read as one. Char accuracy (NFKC, whitespace dropped,
1 - edits/chars, lines joined in their order) per folder and strategy, and ms per image.

    .venv/bin/python -m bench.single_lines --data data/ood/clean --data data/ood/scan \\
        --data data/ood/photo --data data/ood/kai [--limit 100] [--stack 100]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from distill.data import read_labels  # noqa: E402
from distill.evaluate import char_accuracy, clean_for_scoring, edit_distance  # noqa: E402
from engine import pipeline  # noqa: E402
from engine.batcher import LineBatcher  # noqa: E402
from engine.beam import BeamSettings  # noqa: E402
from engine.decoder import DecoderConfig, LineDecoder  # noqa: E402
from engine.detect import DirectionClassifier, PageReader, TextDetector  # noqa: E402
from engine.inference import Recognizer  # noqa: E402
from engine.lm import CharLM  # noqa: E402
from engine.modelpkg import REFERENCE_FILES  # noqa: E402

MODELS = ROOT / "models"


def engine(recogniser: str, threads: int = 1):
    rec = Recognizer(recogniser, threads=threads)
    lm_path = MODELS / "lm" / "zh_char5.arpa.gz"
    # the worker's default decoder (OCR_DECODER=beam, OCR_LM_ALPHA/BETA, OCR_BEAM_DOUBT)
    decoder = LineDecoder(DecoderConfig("beam", BeamSettings(alpha=0.3, beta=2.5), 0.2), CharLM.load(str(lm_path)))
    batcher = LineBatcher(lambda: rec, decoder=decoder)
    reader = PageReader(
        TextDetector(MODELS / REFERENCE_FILES["ppocrv6-tiny-det"], threads=threads),
        DirectionClassifier(MODELS / REFERENCE_FILES["ppocr-mobile-cls"], threads=threads),
    )
    return batcher, reader


def read(strategy: str, rgb: np.ndarray, batcher: LineBatcher, reader: PageReader) -> str:
    rid = uuid.uuid4().hex
    if strategy == "served":
        out = pipeline.recognize_array(rgb, batcher, rid, reader=reader)
    elif strategy == "detector":
        out = pipeline._read_page(rgb, batcher, rid, None, reader, None)
    elif strategy == "projection":
        crops, boxes, _ = pipeline._projection_lines(rgb, None)
        out = pipeline._outcome(rgb, [{"box": list(b)} for b in boxes], batcher.recognize(crops, rid))
    elif strategy == "bands":
        regions = reader.regions(rgb)
        rows = pipeline.row_spans([r.box for r in regions], 0.2 * rgb.shape[0])
        if len(rows) >= 2:
            boxes = pipeline.row_bands(rgb, rows)
            crops = [rgb[y0:y1, x0:x1] for x0, y0, x1, y1 in boxes]
        else:
            boxes, crops = [(0, 0, rgb.shape[1], rgb.shape[0])], [rgb]
        out = pipeline._outcome(rgb, [{"box": list(b)} for b in boxes], batcher.recognize(crops, rid))
    elif strategy == "whole":
        h, w = rgb.shape[:2]
        out = pipeline._outcome(rgb, [{"box": [0, 0, w, h]}], batcher.recognize([rgb], rid))
    else:
        raise ValueError(strategy)
    return "".join(out.text)


def stacked(images: list[np.ndarray], texts: list[str], count: int, rng) -> list[tuple[np.ndarray, str]]:
    out = []
    for _ in range(count):
        a, b = rng.choice(len(images), 2, replace=False)
        top, bottom = images[a], images[b]
        width = max(top.shape[1], bottom.shape[1])
        top, bottom = (
            cv2.copyMakeBorder(im, 0, 0, 0, width - im.shape[1], cv2.BORDER_REPLICATE) for im in (top, bottom)
        )
        out.append((np.vstack([top, bottom]), texts[a] + texts[b]))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", action="append", required=True)
    parser.add_argument("--model", default=str(MODELS / REFERENCE_FILES["ppocrv6-tiny"]))
    parser.add_argument(
        "--strategy", action="append", default=None, help="projection, detector, whole, served (default all)"
    )
    parser.add_argument("--limit", type=int, default=None, help="lines per folder, spread evenly")
    parser.add_argument("--stack", type=int, default=0, help="two-line images per folder")
    args = parser.parse_args(argv)
    strategies = args.strategy or ["projection", "detector", "whole", "served"]
    batcher, reader = engine(args.model)
    rng = np.random.default_rng(0)
    rows = []
    for folder in args.data:
        items = read_labels(folder)
        if args.limit:
            items = [items[k * len(items) // args.limit] for k in range(min(args.limit, len(items)))]
        images = [cv2.imread(str(Path(folder) / rel), cv2.IMREAD_COLOR)[:, :, ::-1].copy() for rel, _ in items]
        texts = [t for _, t in items]
        sets = {Path(folder).name: list(zip(images, texts))}
        if args.stack:
            sets[Path(folder).name + "+2lines"] = stacked(images, texts, args.stack, rng)
        for name, cases in sets.items():
            for strategy in strategies:
                errors = total = 0
                times = []
                for rgb, text in cases:
                    t0 = time.perf_counter()
                    pred = read(strategy, rgb, batcher, reader)
                    times.append((time.perf_counter() - t0) * 1000)
                    gt = clean_for_scoring(text)
                    errors += edit_distance(gt, clean_for_scoring(pred))
                    total += len(gt)
                row = {
                    "set": name,
                    "strategy": strategy,
                    "images": len(cases),
                    "char_accuracy": round(char_accuracy(errors, total), 5),
                    "ms_p50": round(statistics.median(times), 2),
                    "ms_mean": round(statistics.mean(times), 2),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\n| set | " + " | ".join(strategies) + " |")
    print("| --- |" + " --- |" * len(strategies))
    for name in dict.fromkeys(r["set"] for r in rows):
        cells = {r["strategy"]: r for r in rows if r["set"] == name}
        print(
            f"| {name} | "
            + " | ".join(f"{100 * cells[s]['char_accuracy']:.2f} % ({cells[s]['ms_p50']:.0f} ms)" for s in strategies)
            + " |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
