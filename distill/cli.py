"""``python -m distill <command>``: generate, train-teacher, train-student, distill,
evaluate, export, quantize, import-reference."""

from __future__ import annotations

import argparse
import json
import sys


def _cmd_import_reference(args) -> int:
    from .export import ExportError, import_reference

    try:
        spec = import_reference(args.out, args.source)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"out": args.out, "name": spec.name, "classes": spec.num_classes}, ensure_ascii=False))
    return 0


def _cmd_evaluate(args) -> int:
    from .evaluate import evaluate

    result = evaluate(args.data, args.model, args.predictions, threads=args.threads, limit=args.limit)
    print(json.dumps(result, ensure_ascii=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m distill", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("import-reference", help="package the PP-OCRv4-mobile recogniser with our metadata")
    p.add_argument("--out", default="models/reference/ppocrv4_mobile_rec.onnx")
    p.add_argument("--source", default=None, help="a rec ONNX file (default: the one in the rapidocr_onnxruntime wheel)")
    p.set_defaults(func=_cmd_import_reference)

    p = sub.add_parser("evaluate", help="accuracy and speed of an ONNX model on a labels.tsv folder")
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--predictions", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit", type=int, default=None)
    p.set_defaults(func=_cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
