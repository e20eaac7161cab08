"""Held-out lines and pages sent through a running platform's REST API, as a client sends them:
char accuracy and time per request.

Every line of each out-of-distribution subset (``make ood-suite``) and every page of the page suite
(``make ood-pages``) goes as one ``POST /ocr/v1/recognize`` with ``image_base64``, one request at
a time, waiting for each answer; times are the client's (HTTP, the queue, the worker, the answer).
Empty the result cache first (or restart the platform) so nothing is answered from it, and turn
the throttle off (``OCR_THROTTLE_PER_MINUTE=0 make run``).

    .venv/bin/python -m bench.api_accuracy --token TOKEN [--url http://127.0.0.1:8000] clean scan photo kai pages
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import time
import urllib.request
from pathlib import Path

from distill.data import read_labels
from distill.evaluate import char_accuracy, clean_for_scoring, edit_distance
from distill.ood_pages import read_pages

ROOT = Path(__file__).resolve().parent.parent


def post(url: str, token: str, data: bytes) -> tuple[dict, float]:
    body = json.dumps({"image_base64": base64.b64encode(data).decode()}).encode()
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    request = urllib.request.Request(url.rstrip("/") + "/ocr/v1/recognize", body, headers)
    began = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        answer = json.loads(response.read())
    return answer, time.perf_counter() - began


def items_of(name: str) -> list[tuple[Path, str, str]]:
    """(image, its whole text, its kind) of one subset, or of the page suite for ``pages``."""
    if name == "pages":
        folder = ROOT / "data" / "ood_pages"
        return [(folder / p["image"], "".join(p["lines"]), p["kind"]) for p in read_pages(folder)]
    folder = ROOT / "data" / "ood" / name
    return [(folder / rel, text, name) for rel, text in read_labels(folder)]


def measure(url: str, token: str, name: str) -> dict:
    errors, kinds, times, models = 0, {}, [], {}
    items = items_of(name)
    for path, text, kind in items:
        answer, seconds = post(url, token, path.read_bytes())
        if not answer.get("success"):
            raise SystemExit(f"{path}: {answer}")
        times.append(seconds)
        truth = clean_for_scoring(text)
        e = edit_distance(truth, clean_for_scoring("".join(answer["text"])))
        errors += e
        kinds.setdefault(kind, [0, 0])
        kinds[kind][0] += e
        kinds[kind][1] += len(truth)
        for line in answer.get("lines", []):
            label = line.get("model", "?").split("@")[0]
            models[label] = models.get(label, 0) + 1
    return {
        "set": name,
        "requests": len(items),
        "char_accuracy": round(100 * char_accuracy(errors, sum(c for _, c in kinds.values())), 2),
        "by_kind": {k: round(100 * char_accuracy(e, c), 2) for k, (e, c) in kinds.items()},
        "p50_ms": round(1000 * statistics.median(times), 1),
        "mean_ms": round(1000 * statistics.mean(times), 1),
        "lines_by_model": models,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", required=True)
    parser.add_argument("sets", nargs="+", help="clean, scan, photo, kai (data/ood/<name>) or pages")
    args = parser.parse_args(argv)
    for name in args.sets:
        print(json.dumps(measure(args.url, args.token, name), ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
