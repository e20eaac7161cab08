"""The adaptation loop measured on customer domains no training pool holds (distill/domains.py):
for each domain, 300 "corrected" lines adapt the served recogniser (``python -m distill adapt``,
the command the platform's adaptation job runs), and the starting and the adapted package are
read on the domain's 300 test lines (which the adaptation never sees) and on every subset of the
frozen out-of-distribution suite, through the serving path at one thread.

    .venv/bin/python -m bench.adaptation [--domain dot-matrix --domain brush] [--threads 1] \\
        [--root runs/adapt] [--student models/ppocrv6_tiny_warm.onnx] [--adapt-args "--lr 2e-4"]

Runs resume (``adapt`` checkpoints); a finished run is only scored again. Prints one JSON record
per domain and a table: domain test lines before/after, each frozen subset before/after, the
lines left out of the dataset, the best step and the job's wall-clock time.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from distill.domains import DOMAINS
from distill.warmstart import score

SUITE = ["data/ood/clean", "data/ood/scan", "data/ood/photo", "data/ood/kai"]


def scores(model: Path, folders: list[str]) -> dict[str, float]:
    """Char accuracy (%) on each folder, through the serving path at one thread."""
    return {name: round(100 * value, 2) for name, value in score(model, folders).items()}


def run_domain(domain: str, args) -> dict:
    root = Path(args.root)
    data = root / "data" / domain
    if not (data / "test" / "labels.tsv").exists():
        cmd = [sys.executable, "-m", "distill", "domain", "--domain", domain, "--out", str(data)]
        subprocess.run(cmd, check=True)
    out = root / domain
    t0 = time.time()
    cmd = [
        *(sys.executable, "-m", "distill", "adapt", "--quiet"),
        *("--dataset", str(data / "adapt"), "--out", str(out), "--student", args.student),
        *("--replay-cache", str(root / "replay"), "--threads", str(args.threads)),
        *shlex.split(args.adapt_args),
    ]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    wall = round(time.time() - t0, 1)
    adapted = out / "adapted.onnx"
    folders = [str(data / "test"), *SUITE]
    before, after = scores(Path(args.student), folders), scores(adapted, folders)
    return {
        "domain": domain,
        "before": before,
        "after": after,
        "gain": {k: round(after[k] - before[k], 2) for k in before},
        "left_out": summary["left_out_counts"],
        "best_step": summary["best_step"],
        "steps_run": summary["steps_run"],
        "held_back": [summary["held_back_before"], summary["held_back_after"]],
        "adapt_seconds": summary["seconds"],
        "wall_seconds_this_call": wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domain", action="append", choices=DOMAINS)
    parser.add_argument("--root", default="runs/adapt")
    parser.add_argument("--student", default="models/ppocrv6_tiny_warm.onnx")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--adapt-args", default="", help='more options for `distill adapt`, e.g. "--lr 2e-4"')
    args = parser.parse_args()
    rows = []
    for domain in args.domain or DOMAINS:
        rows.append(run_domain(domain, args))
        print(json.dumps(rows[-1]), flush=True)
    print("| domain | set | before | after | gain |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        for name in row["before"]:
            print(
                f"| {row['domain']} | {name} | {row['before'][name]} | {row['after'][name]} | {row['gain'][name]:+.2f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
