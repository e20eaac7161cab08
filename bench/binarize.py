"""Does adaptive binarisation before recognition help? Char accuracy with it off and on.

Runs the serving path's own preprocessing (engine.preprocess.prepare_line) and recogniser on
each line of one or more labels.tsv folders, once without and once with OCR_BINARIZE.

    .venv/bin/python -m distill generate --out var/bench/clean --count 300 --split dev --strength 0
    .venv/bin/python -m distill generate --out var/bench/rough --count 300 --split dev --strength 0.8
    .venv/bin/python -m bench.binarize var/bench/clean var/bench/rough [--model MODEL.onnx]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from distill.evaluate import char_accuracy, clean_for_scoring, edit_distance
from engine.inference import Recognizer
from engine.modelpkg import REFERENCE_FILES
from engine.preprocess import prepare_line


def read_accuracy(model: Recognizer, folder: Path, binarize: bool) -> float:
    errors = total = 0
    for raw in (folder / "labels.tsv").read_text(encoding="utf-8").splitlines():
        rel, _, truth = raw.partition("\t")
        rgb = np.asarray(Image.open(folder / rel).convert("RGB"))
        (pred,) = model.recognize([prepare_line(rgb, model.spec, binarize)])
        gt = clean_for_scoring(truth)
        errors += edit_distance(clean_for_scoring(pred.text), gt)
        total += len(gt)
    return char_accuracy(errors, total)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--model", default=f"models/{REFERENCE_FILES['ppocrv4-mobile']}")
    args = parser.parse_args()
    model = Recognizer(args.model, threads=1)
    print(f"model {model.label}")
    for folder in map(Path, args.folders):
        off = read_accuracy(model, folder, False)
        on = read_accuracy(model, folder, True)
        print(f"{folder}: char accuracy binarize off {off:.4f}, on {on:.4f}")


if __name__ == "__main__":
    main()
