"""What a KD teacher costs the training loop: the time of one batch's top-k targets per ONNX
teacher, on the same rendered training lines, in one process.

In training, an ONNX teacher runs inside the data workers (``Collate`` calls
``OnnxCtcTeacher.batch_targets``), one line at a time at its own width, beside the student's
step. This script renders ``--batches`` batches of wide-mix training lines once, then times
``batch_targets(top_k)`` for every teacher on them (one ONNX Runtime thread, ``--repeat``
passes, median per batch), and prints one JSON object per teacher with its ms per batch, its
ratio against the first teacher, its class coverage of our charset and the share of lines it
gives a KD target (lines holding a character it has no class for get CTC only).

    .venv/bin/python -m bench.teachers \\
        --teacher "PP-OCRv6-tiny=models/reference/ppocrv6_tiny_rec.onnx" \\
        --teacher "PP-OCRv6-small=models/reference/ppocrv6_small_rec.onnx" [--batches 4] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from bench.recognizers import parse_model
from distill.data import Collate, SyntheticLines
from distill.teachers import OnnxCtcTeacher
from engine.charset import load_charset


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--teacher",
        action="append",
        required=True,
        type=parse_model,
        metavar="LABEL=PATH",
        help="an ONNX CTC recogniser with our metadata; the first one is the baseline",
    )
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    charset = load_charset()
    lines = SyntheticLines(args.batches * args.batch_size, split="train", seed=args.seed, mix="wide", ramp=False)
    collate = Collate(charset)
    batches = [
        collate([lines[i] for i in range(b * args.batch_size, (b + 1) * args.batch_size)]) for b in range(args.batches)
    ]

    base = None
    for label, path in args.teacher:
        teacher = OnnxCtcTeacher(path, charset, threads=1)
        teacher.batch_targets(batches[0]["images"], batches[0]["input_lengths"], args.top_k)  # warm-up
        times = []
        for _ in range(args.repeat):
            for batch in batches:
                start = time.perf_counter()
                teacher.batch_targets(batch["images"], batch["input_lengths"], args.top_k)
                times.append(1000 * (time.perf_counter() - start))
        ms = statistics.median(times)
        base = base or ms
        kd_lines = sum(int((teacher.kd_lengths(b) > 0).sum()) for b in batches) / sum(len(b["texts"]) for b in batches)
        print(
            json.dumps(
                {
                    "teacher": label,
                    "ms_per_batch_p50": round(ms, 1),
                    "x_baseline": round(ms / base, 2),
                    "batch_size": args.batch_size,
                    "coverage": round(teacher.coverage, 4),
                    "kd_line_share": round(kd_lines, 4),
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
