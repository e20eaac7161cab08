"""The platform on the frozen out-of-distribution page suite (distill/ood_pages.py: layouts our
training pages never have, laid out by Pango, degraded by augraphy).

Each page is read as a worker reads it (``pipeline.recognize_array`` with the detector, the
direction classifier, the served recogniser, the worker's decoder with its language model, and the
cascade when ``--cascade`` names a model), one page at a time, one ONNX Runtime thread per session
(``--threads``: as many as the OCR worker's ``OCR_ORT_THREADS``). Page char
accuracy in reading order (lines joined, NFKC, whitespace dropped, 1 - edits/chars) and order-free
(the lines read put in the order of the true lines they match), per layout and capture, and seconds per page.

    make ood-pages      # python -m distill ood-pages --out data/ood_pages
    .venv/bin/python -m bench.ood_pages [--data data/ood_pages] [--cascade models/reference/ppocrv6_small_rec.onnx]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from distill.page_eval import accuracy, groups, read_suite  # noqa: E402
from engine.modelpkg import SERVED_DEFAULT  # noqa: E402
from engine.served import CASCADE_BELOW  # noqa: E402

MODELS = ROOT / "models"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(ROOT / "data" / "ood_pages"))
    parser.add_argument(
        "--model", default=str(MODELS / SERVED_DEFAULT), help="the recogniser (default: the served one)"
    )
    parser.add_argument("--cascade", default=None, help="a stronger recogniser re-reading lines below --below")
    parser.add_argument("--below", type=float, default=CASCADE_BELOW, help="the cascade's threshold (the served one)")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="ONNX Runtime threads per session (the OCR worker runs OCR_ORT_THREADS=2)",
    )
    args = parser.parse_args(argv)
    rows = read_suite(
        args.data,
        args.model,
        args.cascade,
        args.below,
        args.limit,
        on_row=lambda row: print(json.dumps(row, ensure_ascii=False), flush=True),
        threads=args.threads,
    )
    cascade = f"{Path(args.cascade).name} below {args.below}" if args.cascade else "off"
    print(f"\nmodel {Path(args.model).name}; cascade {cascade}\n")
    print_table(rows)
    return 0


def print_table(rows: list[dict]) -> None:
    """Accuracy in reading order and order-free, per layout, per kind and in all."""
    print("| pages | count | in reading order | order-free | gap | s/page p50 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, group in groups(rows):
        a, b = accuracy(group), accuracy(group, "errors_free")
        print(
            f"| {name} | {len(group)} | {a:.2f} % | {b:.2f} % | {b - a:.2f} | "
            f"{statistics.median(r['seconds'] for r in group):.2f} |"
        )


if __name__ == "__main__":
    raise SystemExit(main())
