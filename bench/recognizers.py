"""The comparison table of docs/models.md: every recogniser on every dev set, in one run.

Each model is measured with ``distill.evaluate`` (ONNX Runtime, one intra-op thread, one line
at a time, the serving path's own preprocessing and greedy decoding). On each dev set the models
run one after another, so they all see about the same machine load; then the script prints
one JSON object per (model, dev set) and a markdown table with each model's speed ratio
against the first model named (the baseline, measured in the same process).

    .venv/bin/python -m distill generate --out data/dev_clean --count 500 --split dev --strength 0   --seed 101
    .venv/bin/python -m distill generate --out data/dev_scan  --count 500 --split dev --strength 0.8 --seed 202
    .venv/bin/python -m bench.recognizers --data data/dev_clean --data data/dev_scan \\
        --model "PP-OCRv4-mobile=models/reference/ppocrv4_mobile_rec.onnx" \\
        --model "student=models/student.onnx" [--model LABEL=PATH ...] [--out runs/bench.jsonl]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from distill.evaluate import evaluate


def parse_model(value: str) -> tuple[str, str]:
    label, sep, path = value.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError("expected LABEL=PATH")
    if not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"no model file at {path}")
    return label, path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", action="append", required=True, help="a labels.tsv folder (repeatable)")
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        type=parse_model,
        metavar="LABEL=PATH",
        help="an ONNX recogniser; the first one is the speed baseline",
    )
    parser.add_argument("--out", default=None, help="also append the JSON lines here")
    parser.add_argument("--limit", type=int, default=None, help="lines per dev set (default all)")
    args = parser.parse_args(argv)

    results: dict[tuple[str, str], dict] = {}
    for data in args.data:
        for label, path in args.model:
            result = evaluate(data, path, threads=1, limit=args.limit)
            result["label"] = label
            results[(label, data)] = result
            line = json.dumps(result, ensure_ascii=False)
            print(line, flush=True)
            if args.out:
                with open(args.out, "a", encoding="utf-8") as f:
                    f.write(line + "\n")

    base = args.model[0][0]
    base_ms = sum(results[(base, d)]["ms_per_line_p50"] for d in args.data) / len(args.data)
    head = ["model", "params (M)", "ms/line (p50, mean over sets)", "× baseline"]
    for data in args.data:
        name = Path(data).name
        head += [f"char acc {name}", f"line acc {name}"]
    print("\n| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for label, _ in args.model:
        rows = [results[(label, d)] for d in args.data]
        ms = sum(r["ms_per_line_p50"] for r in rows) / len(rows)
        cells = [label, f"{rows[0]['params'] / 1e6:.2f}", f"{ms:.2f}", f"{ms / base_ms:.2f}"]
        for r in rows:
            cells += [f"{100 * r['char_accuracy']:.2f} %", f"{100 * r['line_accuracy']:.1f} %"]
        print("| " + " | ".join(cells) + " |")
    print_exact(results, args.model, args.data)
    print_by_font(results, args.model, args.data)
    return 0


def print_exact(results, models, datas) -> None:
    """Char accuracy on the exact code points (no NFKC: "：" and ":" differ), as API clients get them."""
    print("\nchar accuracy on exact code points (no NFKC)\n")
    print("| model | " + " | ".join(Path(d).name for d in datas) + " |")
    print("|" + " --- |" * (len(datas) + 1))
    for label, _ in models:
        cells = [f"{100 * results[(label, d)]['char_accuracy_exact']:.2f} %" for d in datas]
        print(f"| {label} | " + " | ".join(cells) + " |")


def print_by_font(results, models, datas) -> None:
    """Char accuracy per face (from each set's fonts.tsv): one table per dev set."""
    for data in datas:
        faces = sorted({f for label, _ in models for f in results[(label, data)].get("by_font", {})})
        if not faces:
            continue
        print(f"\nchar accuracy by face, {Path(data).name}\n")
        print("| model | " + " | ".join(faces) + " |")
        print("|" + " --- |" * (len(faces) + 1))
        for label, _ in models:
            by_font = results[(label, data)].get("by_font", {})
            cells = [f"{100 * by_font[f]['char_accuracy']:.2f} %" if f in by_font else "" for f in faces]
            print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
