"""The platform on the frozen out-of-distribution page suite (distill/ood_pages.py: layouts our
training pages never have, laid out by Pango, degraded by augraphy).

Each page is read as a worker reads it (``pipeline.recognize_array`` with the detector, the
direction classifier, the served recogniser, the worker's decoder with its language model, and the
cascade when ``--cascade`` names a model), one page at a time, one ONNX Runtime thread. Page char
accuracy in reading order (lines joined, NFKC, whitespace dropped, 1 - edits/chars) and order-free
(the lines read put in the order of the true lines they match), per layout and capture, and seconds per page.

    make ood-pages      # python -m distill ood-pages --out data/ood_pages
    .venv/bin/python -m bench.ood_pages [--data data/ood_pages] [--cascade models/reference/ppocrv6_small_rec.onnx]
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

from distill.evaluate import char_accuracy, clean_for_scoring, edit_distance  # noqa: E402
from distill.ood_pages import read_pages  # noqa: E402
from engine.batcher import LineBatcher  # noqa: E402
from engine.beam import BeamSettings  # noqa: E402
from engine.decoder import DecoderConfig, LineDecoder  # noqa: E402
from engine.detect import DirectionClassifier, PageReader, TextDetector  # noqa: E402
from engine.inference import Recognizer  # noqa: E402
from engine.lm import CharLM  # noqa: E402
from engine.modelpkg import REFERENCE_FILES  # noqa: E402
from engine.pipeline import recognize_array  # noqa: E402

MODELS = ROOT / "models"


def in_truth_order(truth: list[str], read: list[str]) -> list[str]:
    """The lines read, put in the order of the true lines they match best (rapidfuzz's partial
    ratio: a line read may hold a part of a true line, or two true lines run together); lines that
    match the same true line keep their order."""
    from rapidfuzz import fuzz

    keys = [clean_for_scoring(t) for t in truth]

    def place(k_line):
        k, line = k_line
        text = clean_for_scoring(line)
        scores = [fuzz.partial_ratio(text, key) if text and key else 0.0 for key in keys]
        return (max(range(len(keys)), key=scores.__getitem__) if keys else 0, k)

    return [line for _, line in sorted(enumerate(read), key=place)]


def page_scores(truth: list[str], read: list[str]) -> tuple[int, int, int]:
    """(edits in reading order, edits order-free, characters) of one page. Order-free, the lines read
    are first put in the order of the true lines they match (``in_truth_order``), so what is left
    is what recognition and line finding cost; the gap between the two is what the order costs."""
    gt = clean_for_scoring("".join(truth))
    ordered = edit_distance(gt, clean_for_scoring("".join(read)))
    free = edit_distance(gt, clean_for_scoring("".join(in_truth_order(truth, read))))
    return ordered, min(free, ordered), len(gt)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(ROOT / "data" / "ood_pages"))
    parser.add_argument("--model", default=str(MODELS / REFERENCE_FILES["ppocrv6-tiny"]))
    parser.add_argument("--cascade", default=None, help="a stronger recogniser re-reading lines below --below")
    parser.add_argument("--below", type=float, default=0.7)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    rec = Recognizer(args.model, threads=1)
    strong = Recognizer(args.cascade, threads=1) if args.cascade else None
    decoder = LineDecoder(
        DecoderConfig("beam", BeamSettings(alpha=0.3, beta=2.5), 0.2),
        CharLM.load(str(MODELS / "lm" / "zh_char5.arpa.gz")),
    )
    batcher = LineBatcher(
        lambda: rec,
        decoder=decoder,
        cascade=(lambda: strong) if strong else None,
        cascade_below=args.below if strong else 0.0,
    )
    reader = PageReader(
        TextDetector(MODELS / REFERENCE_FILES["ppocrv6-tiny-det"], threads=1),
        DirectionClassifier(MODELS / REFERENCE_FILES["ppocr-mobile-cls"], threads=1),
    )
    pages = read_pages(Path(args.data))[: args.limit]
    rows = []
    for page in pages:
        rgb = cv2.imread(str(Path(args.data) / page["image"]), cv2.IMREAD_COLOR)[:, :, ::-1].copy()
        t0 = time.perf_counter()
        out = recognize_array(rgb, batcher, uuid.uuid4().hex, reader=reader)
        seconds = time.perf_counter() - t0
        ordered, free, chars = page_scores(page["lines"], out.text)
        row = {
            "image": page["image"],
            "layout": page["layout"],
            "kind": page["kind"],
            "seconds": round(seconds, 3),
            "in_order": round(char_accuracy(ordered, chars), 4),
            "order_free": round(char_accuracy(free, chars), 4),
            "errors": ordered,
            "errors_free": free,
            "chars": chars,
        }
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)

    print(f"\nmodel {rec.label}; cascade {strong.label + ' below ' + str(args.below) if strong else 'off'}\n")
    print_table(rows)
    return 0


def print_table(rows: list[dict]) -> None:
    """Accuracy in reading order and order-free, per layout, per kind and in all."""

    def acc(group, key):
        return 100 * char_accuracy(sum(r[key] for r in group), sum(r["chars"] for r in group))

    print("| pages | count | in reading order | order-free | gap | s/page p50 |")
    print("| --- | --- | --- | --- | --- | --- |")
    groups = [
        (f"{layout}", [r for r in rows if r["layout"] == layout]) for layout in dict.fromkeys(r["layout"] for r in rows)
    ]
    groups += [(f"all {kind}", [r for r in rows if r["kind"] == kind]) for kind in ("scan", "photo")]
    groups.append(("all", rows))
    for name, group in groups:
        if group:
            a, b = acc(group, "errors"), acc(group, "errors_free")
            print(
                f"| {name} | {len(group)} | {a:.2f} % | {b:.2f} % | {b - a:.2f} | "
                f"{statistics.median(r['seconds'] for r in group):.2f} |"
            )


if __name__ == "__main__":
    raise SystemExit(main())
