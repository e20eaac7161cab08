"""A finished warm-started run exported at several interpolations and blank offsets, each scored
line by line on the out-of-distribution suite, and the choice checked on held-out halves.

For every (interpolation, blank offset) the run's averaged weights are exported that share of the
way from the starting model (``warm-distill --interpolate``) and every line of each subset is read
through the serving path (one thread, greedy decoding). The script prints each point's char
accuracy per subset and then, twice: the points ranked by their worst margin over the starting
model on the even lines, with that margin on the odd lines (and the other way round). A point
chosen on one half that still beats the start on every subset of the other half is a choice, not
a lucky draw.

    .venv/bin/python -m bench.interpolation --run runs/ctc_long --alphas 0,0.3,0.5,0.7,1 --offsets 0,1,1.5 \\
        [--data data/ood/clean --data data/ood/scan --data data/ood/photo --data data/ood/kai] [--out runs/interp.jsonl]
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path

import cv2
import torch

from distill.data import read_labels
from distill.evaluate import char_accuracy, clean_for_scoring, edit_distance, load_recognizer, read_bgr
from distill.warmstart import CharAxis, WarmStudent, export, interpolate_weights
from engine.modelpkg import ModelSpec

SETS = ["data/ood/clean", "data/ood/scan", "data/ood/photo", "data/ood/kai"]


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def line_errors(model: Path, sets: dict[str, list]) -> dict[str, list[tuple[int, int]]]:
    """(edits, characters) of every line of every subset."""
    rec = load_recognizer(model)
    return {
        name: [(edit_distance(gt, clean_for_scoring(read_bgr(rec, bgr))), len(gt)) for bgr, gt in lines]
        for name, lines in sets.items()
    }


def accuracy(rows: list[tuple[int, int]], half: int | None = None) -> float:
    picked = [r for i, r in enumerate(rows) if half is None or i % 2 == half]
    return 100 * char_accuracy(sum(e for e, _ in picked), sum(n for _, n in picked))


def margin(point: dict, start: dict, half: int) -> float:
    """The worst subset's accuracy over the starting model's, on one half of the lines."""
    return min(accuracy(point["errors"][s], half) - accuracy(start["errors"][s], half) for s in start["errors"])


def held_out_check(points: list[dict], top: int = 5) -> None:
    start = next(p for p in points if p["alpha"] == 0 and p["offset"] == 0)
    for half in (0, 1):
        print(f"\nchosen on the {'even' if half == 0 else 'odd'} lines, checked on the others (margin over the start)")
        for p in sorted(points, key=lambda p: -margin(p, start, half))[:top]:
            per = " ".join(
                f"{s} {accuracy(p['errors'][s], 1 - half) - accuracy(start['errors'][s], 1 - half):+.2f}"
                for s in p["errors"]
            )
            print(
                f"  interpolate {p['alpha']:g}, offset {p['offset']:g}: chosen {margin(p, start, half):+.2f}, "
                f"held out {margin(p, start, 1 - half):+.2f} ({per})"
            )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="a warm-distill run folder (its last.pt)")
    parser.add_argument("--student", default="models/reference/ppocrv6_tiny_rec.onnx", help="the run's start")
    parser.add_argument("--teacher", default="models/reference/ppocrv6_small_rec.onnx")
    parser.add_argument("--alphas", type=floats, default=floats("0,0.5,1"))
    parser.add_argument("--offsets", type=floats, default=floats("0,1"))
    parser.add_argument("--data", action="append", help="a labels.tsv folder (repeatable; default the suite)")
    parser.add_argument("--out", default=None, help="also append each point's per-line errors here")
    args = parser.parse_args(argv)
    sets = {
        Path(f).name: [
            (cv2.imread(str(Path(f) / rel), cv2.IMREAD_COLOR), clean_for_scoring(t)) for rel, t in read_labels(f)
        ]
        for f in args.data or SETS
    }
    axis = CharAxis.build(ModelSpec.from_file(args.student), ModelSpec.from_file(args.teacher))
    student = WarmStudent(args.student, axis)
    start = {k: p.detach().clone() for k, p in student.graph.params.items()}
    ema = torch.load(Path(args.run) / "last.pt", weights_only=False)["ema"]
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        for a, b in itertools.product(args.alphas, args.offsets):
            values = interpolate_weights(start, ema, a)
            path = export(student, args.student, Path(tmp) / "m.onnx", {"interpolate": a}, values, b)
            point = {"alpha": a, "offset": b, "errors": line_errors(path, sets)}
            points.append(point)
            print(
                json.dumps(
                    {
                        "interpolate": a,
                        "blank_offset": b,
                        **{s: round(accuracy(r), 2) for s, r in point["errors"].items()},
                    }
                ),
                flush=True,
            )
            if args.out:
                with open(args.out, "a", encoding="utf-8") as f:
                    f.write(json.dumps(point) + "\n")
    if not any(p["alpha"] == 0 and p["offset"] == 0 for p in points):
        print("\n(no interpolation 0 with offset 0 among the points: the held-out check needs the start)")
        return 0
    held_out_check(points)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
