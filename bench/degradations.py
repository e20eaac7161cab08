"""Char accuracy per degradation: which of the scan and photo effects costs each model most.

The same lines (training-split texts and fonts, a seed no training run uses, so nothing here is
a dev set) are rendered once clean and once per step of ``distill.augment.PIPELINE``, that step
alone at full probability, then read by every model (``distill.evaluate.read_bgr``, the
serving path's preprocessing, greedy decoding). Prints one JSON object per model and a table
of char accuracy per degradation, with each model's loss against its clean-line accuracy.

    .venv/bin/python -m bench.degradations --model "PP-OCRv4-mobile=models/reference/ppocrv4_mobile_rec.onnx" \\
        --model "student=models/student.onnx" [--count 200] [--seed 505]
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

from bench.recognizers import parse_model
from distill.augment import PIPELINE
from distill.evaluate import char_accuracy, clean_for_scoring, edit_distance, load_recognizer, read_bgr
from distill.fonts import faces_for
from distill.render import draw_text_and_face, render_line
from distill.text import TextSource
from engine.charset import load_charset
from engine.inference import Recognizer


def lines(count: int, seed: int) -> list[tuple[str, object, int]]:
    """(text, face, render seed) for ``count`` training-split lines."""
    source, faces = TextSource(load_charset(), "train", 2, 12, seed=seed), faces_for("train")
    rng = np.random.default_rng([seed, 7])
    out = []
    for _ in range(count):
        text, face = draw_text_and_face(source, faces, rng)
        out.append((text, face, int(rng.integers(0, 2**31))))
    return out


def render_sets(count: int, seed: int) -> dict[str, list[tuple[np.ndarray, str]]]:
    """Condition name -> [(BGR image, text)]; every condition draws the same layout per line."""
    # "clean" has the degraded lines' background range, with no step applied
    conditions = {"clean": (), **{fn.__name__: ((fn, 1.0),) for fn, _ in PIPELINE}}
    base = lines(count, seed)
    sets = {}
    for name, pipeline in conditions.items():
        rows = []
        for text, face, s in base:
            rng = np.random.default_rng(s)
            gray = render_line(text, face, rng, strength=1.0, pipeline=pipeline)
            rows.append((cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), text))
        sets[name] = rows
    return sets


def read_accuracy(rec: Recognizer, rows) -> float:
    errors = total = 0
    for bgr, text in rows:
        truth = clean_for_scoring(text)
        errors += edit_distance(truth, clean_for_scoring(read_bgr(rec, bgr)))
        total += len(truth)
    return char_accuracy(errors, total)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", required=True, type=parse_model, metavar="LABEL=PATH")
    parser.add_argument("--count", type=int, default=200, help="lines per condition")
    parser.add_argument("--seed", type=int, default=505)
    args = parser.parse_args(argv)

    sets = render_sets(args.count, args.seed)
    results = {}
    for label, path in args.model:
        rec = load_recognizer(path, threads=1)
        results[label] = {name: round(read_accuracy(rec, rows), 5) for name, rows in sets.items()}
        print(json.dumps({"label": label, "lines": args.count, "char_accuracy": results[label]}), flush=True)

    labels = [label for label, _ in args.model]
    print("\n| degradation | " + " | ".join(labels) + " |")
    print("|" + " --- |" * (len(labels) + 1))
    for name in sets:
        cells = []
        for label in labels:
            acc, clean = results[label][name], results[label]["clean"]
            cells.append(f"{100 * acc:.2f} %" + ("" if name == "clean" else f" ({100 * (acc - clean):+.2f})"))
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
