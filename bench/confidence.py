"""How well a line's confidence tells the lines a model reads right from those it misreads.

Each model reads the lines of the given folders through the serving path's own recogniser
(``engine.inference.Recognizer``: preprocessing, decoding and confidence as a worker computes
them, one line at a time). A line is right when it equals its label after NFKC without
whitespace (as ``distill evaluate`` scores). Prints, per model, the AUC of the confidence
for right against wrong lines, and for each threshold the share of wrong and of right lines
under it (what the portal's ``LOW_CONFIDENCE`` flag would catch and what it would flag for
nothing). Use training-split folders (``data/val_clean``, ``data/val_scan``) to choose a
threshold, never the dev sets.

    .venv/bin/python -m bench.confidence --data data/val_clean --data data/val_scan \\
        --model "student=models/student.onnx" --model "PP-OCRv4-mobile=models/reference/ppocrv4_mobile_rec.onnx"

With ``--chars`` it judges the per-character confidences (the answer's ``chars``) instead,
decoded as the workers decode (beam + LM for doubtful lines, ``--lm``): a character the
recogniser emitted is wrong when the edit script from the label replaces it or inserts it
(a dropped character has nothing to flag). It prints the AUC over characters and, for each
threshold, the share of wrong and of right characters under it (the portal's
``LOW_CHAR_CONFIDENCE`` mark).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from bench.recognizers import parse_model
from distill.data import read_labels
from distill.evaluate import clean_for_scoring
from engine.inference import Recognizer
from engine.preprocess import prepare_line

THRESHOLDS = (0.8, 0.85, 0.9, 0.92, 0.94)
CHAR_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def auc(right: np.ndarray, wrong: np.ndarray) -> float:
    """Probability that a right line has a higher confidence than a wrong one (ties count half)."""
    if not len(right) or not len(wrong):
        return float("nan")
    greater = (right[:, None] > wrong[None, :]).mean()
    ties = (right[:, None] == wrong[None, :]).mean()
    return float(greater + ties / 2)


def confidences(model: str, datas: list[str]) -> tuple[np.ndarray, np.ndarray]:
    rec = Recognizer(model, threads=1)
    right, wrong = [], []
    for data in datas:
        for rel, text in read_labels(Path(data)):
            bgr = cv2.imread(str(Path(data) / rel), cv2.IMREAD_COLOR)
            line = rec.recognize([prepare_line(np.ascontiguousarray(bgr[:, :, ::-1]), rec.spec)])[0]
            (right if clean_for_scoring(line.text) == clean_for_scoring(text) else wrong).append(line.confidence)
    return np.asarray(right), np.asarray(wrong)


def char_confidences(model: str, datas: list[str], lm_path: str) -> tuple[np.ndarray, np.ndarray]:
    """Per emitted character: the confidences of the right ones and of the wrong ones."""
    from rapidfuzz.distance import Levenshtein

    from engine.beam import BeamSettings
    from engine.decoder import DecoderConfig, LineDecoder
    from engine.lm import CharLM

    rec = Recognizer(model, threads=1)
    decoder = LineDecoder(DecoderConfig("beam", BeamSettings(alpha=0.3, beta=2.5), 0.2), CharLM.load(lm_path))
    right, wrong = [], []
    for data in datas:
        for rel, text in read_labels(Path(data)):
            bgr = cv2.imread(str(Path(data) / rel), cv2.IMREAD_COLOR)
            line = rec.recognize([prepare_line(np.ascontiguousarray(bgr[:, :, ::-1]), rec.spec)], decoder)[0]
            chars = [(c, p) for c, p in line.chars if not c.isspace()]
            pred = clean_for_scoring("".join(c for c, _ in chars))
            if len(pred) != len(chars):  # NFKC changed the count (rare): judge the line's characters as is
                pred = "".join(c for c, _ in chars)
            bad = {
                op.dest_pos
                for op in Levenshtein.editops(clean_for_scoring(text), pred)
                if op.tag in ("replace", "insert")
            }
            for i, (_, p) in enumerate(chars):
                (wrong if i in bad else right).append(p)
    return np.asarray(right), np.asarray(wrong)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", action="append", required=True, help="a labels.tsv folder (repeatable)")
    parser.add_argument("--model", action="append", required=True, type=parse_model, metavar="LABEL=PATH")
    parser.add_argument("--threshold", type=float, action="append", default=None)
    parser.add_argument("--chars", action="store_true", help="judge the per-character confidences")
    parser.add_argument("--lm", default="models/lm/zh_char5.arpa.gz")
    args = parser.parse_args(argv)
    thresholds = args.threshold or (CHAR_THRESHOLDS if args.chars else THRESHOLDS)
    unit = "characters" if args.chars else "lines"
    for label, path in args.model:
        right, wrong = char_confidences(path, args.data, args.lm) if args.chars else confidences(path, args.data)
        result = {
            "label": label,
            "right": len(right),
            "wrong": len(wrong),
            "auc": round(auc(right, wrong), 3),
            "flagged": {
                str(t): {"wrong": round(float((wrong < t).mean()), 3), "right": round(float((right < t).mean()), 3)}
                for t in thresholds
            },
        }
        print(json.dumps(result))
        print(f"{label}: {len(right)} right, {len(wrong)} wrong {unit}, AUC {result['auc']:.3f}")
        for t in thresholds:
            f = result["flagged"][str(t)]
            print(f"  below {t}: {100 * f['wrong']:.1f} % of wrong {unit}, {100 * f['right']:.1f} % of right {unit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
