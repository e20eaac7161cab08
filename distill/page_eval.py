"""Reading the frozen out-of-distribution page suite (distill/ood_pages.py) as a worker reads pages,
and scoring it: used by ``bench.ood_pages`` and by every model's evaluation report
(``python -m distill evaluate-pages``).

Each page goes through ``pipeline.recognize_array`` with the detector, the direction classifier,
the recogniser under test, the worker's decoder with its language model and, when ``cascade``
names a model, the cascade; one page at a time, one ONNX Runtime thread. Page char accuracy in
reading order (lines joined, NFKC, whitespace dropped, 1 - edits/chars) and order-free (the lines
read put in the order of the true lines they match).
"""

from __future__ import annotations

import statistics
import time
import uuid
from pathlib import Path

from .evaluate import char_accuracy, clean_for_scoring, edit_distance

MODELS = Path(__file__).resolve().parent.parent / "models"


def in_truth_order(truth: list[str], read: list[str]) -> list[str]:
    """The lines read, put in the order of the true lines they match best (rapidfuzz's partial
    ratio: a line read may hold a part of a true line, or two true lines run together); lines that
    match the same true line keep their order."""
    from rapidfuzz import fuzz

    keys = [clean_for_scoring(t) for t in truth]

    def place(k_line):
        k, line = k_line
        text = clean_for_scoring(line)
        scores = [fuzz.partial_ratio(text, key) if text and key else 0.0 for key in keys]
        return (max(range(len(keys)), key=scores.__getitem__) if keys else 0, k)

    return [line for _, line in sorted(enumerate(read), key=place)]


def page_scores(truth: list[str], read: list[str]) -> tuple[int, int, int]:
    """(edits in reading order, edits order-free, characters) of one page. Order-free, the lines read
    are first put in the order of the true lines they match (``in_truth_order``), so what is left
    is what recognition and line finding cost; the gap between the two is what the order costs."""
    gt = clean_for_scoring("".join(truth))
    ordered = edit_distance(gt, clean_for_scoring("".join(read)))
    free = edit_distance(gt, clean_for_scoring("".join(in_truth_order(truth, read))))
    return ordered, min(free, ordered), len(gt)


def page_pipeline(model: str | Path, cascade: str | Path | None = None, below: float | None = None, threads: int = 1):
    """(line batcher, page reader, recogniser) as a worker builds them, at ``threads`` ONNX Runtime
    threads per session (one by default; the OCR worker runs ``OCR_ORT_THREADS``, two)."""
    from engine.served import CASCADE_BELOW, served_pipeline

    return served_pipeline(MODELS, model, cascade, CASCADE_BELOW if below is None else below, threads)


def read_suite(
    data: str | Path,
    model,
    cascade=None,
    below: float | None = None,
    limit: int | None = None,
    on_row=None,
    threads: int = 1,
):
    """One row per page of the suite at ``data``: layout, capture, seconds, both accuracies."""
    import cv2

    from engine.pipeline import recognize_array

    from .ood_pages import read_pages

    batcher, reader, _ = page_pipeline(model, cascade, below, threads)
    rows = []
    for page in read_pages(Path(data))[:limit]:
        rgb = cv2.imread(str(Path(data) / page["image"]), cv2.IMREAD_COLOR)[:, :, ::-1].copy()
        t0 = time.perf_counter()
        out = recognize_array(rgb, batcher, uuid.uuid4().hex, reader=reader)
        seconds = time.perf_counter() - t0
        ordered, free, chars = page_scores(page["lines"], out.text)
        row = {
            "image": page["image"],
            "layout": page["layout"],
            "kind": page["kind"],
            "seconds": round(seconds, 3),
            "in_order": round(char_accuracy(ordered, chars), 4),
            "order_free": round(char_accuracy(free, chars), 4),
            "errors": ordered,
            "errors_free": free,
            "chars": chars,
        }
        rows.append(row)
        if on_row:
            on_row(row)
    return rows


def groups(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    """The rows per layout, per capture ("all scan", "all photo") and all together."""
    out = [(layout, [r for r in rows if r["layout"] == layout]) for layout in dict.fromkeys(r["layout"] for r in rows)]
    out += [(f"all {kind}", [r for r in rows if r["kind"] == kind]) for kind in ("scan", "photo")]
    out.append(("all", rows))
    return [(name, group) for name, group in out if group]


def accuracy(group: list[dict], key: str = "errors") -> float:
    """Char accuracy (%) of a group of pages: in reading order (``errors``) or order-free."""
    return 100 * char_accuracy(sum(r[key] for r in group), sum(r["chars"] for r in group))


def summary(rows: list[dict]) -> dict:
    """Accuracy in reading order per group (%), order-free overall, and seconds per page."""
    return {
        "pages": len(rows),
        "in_order": {name: round(accuracy(group), 2) for name, group in groups(rows)},
        "order_free": round(accuracy(rows, "errors_free"), 2) if rows else None,
        "s_per_page_p50": round(statistics.median(r["seconds"] for r in rows), 3) if rows else None,
    }
