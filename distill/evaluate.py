"""Evaluate any ONNX recogniser that follows the model package contract on a
line dataset. Preprocessing is driven by the model's metadata only."""

from __future__ import annotations

import time
import unicodedata
from pathlib import Path

import cv2
import numpy as np
import onnx
from rapidfuzz.distance import Levenshtein

from engine.inference import Recognizer
from engine.modelpkg import ModelSpec
from engine.preprocess import prepare_line

from .data import held_back, read_labels
from .export import count_params


def clean_for_scoring(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split())


def clean_exact(text: str) -> str:
    """Whitespace removed, code points kept: "：" and ":" differ."""
    return "".join(text.split())


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance over code points (rapidfuzz, in C)."""
    return Levenshtein.distance(a, b)


def char_accuracy(errors: int, total: int) -> float:
    """1 - edits per reference character (0 characters: 1.0 less the edits), the one accuracy
    every report, benchmark and training curve gives."""
    return 1.0 - errors / max(total, 1)


def load_recognizer(path: str | Path, threads: int = 1) -> Recognizer:
    """The serving path's ONNX Runtime session (``engine.inference.Recognizer``), one
    intra-op thread by default so timings compare across models."""
    return Recognizer(path, threads=threads)


def prepare_bgr(bgr: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """A BGR uint8 image (H, W, 3), as OpenCV reads it, to the [C, H', W'] float32 line an OCR
    worker prepares (``engine.preprocess.prepare_line``), so what is measured is what is served."""
    return prepare_line(np.ascontiguousarray(bgr[:, :, ::-1]), spec)


def read_bgr(rec: Recognizer, bgr: np.ndarray) -> str:
    """The line as an OCR worker answers it (full-width punctuation restored for NFKC models)."""
    return rec.read_line(prepare_bgr(bgr, rec.spec)).text


def _read_lines(rec: Recognizer, data_dir: Path, items) -> tuple[list[tuple[str, str]], list[float]]:
    """The (image, prediction) pairs of ``items`` and the milliseconds each read took."""
    times, preds = [], []
    for rel, _text in items:
        img = cv2.imread(str(data_dir / rel), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"cannot read image {data_dir / rel}")
        t0 = time.perf_counter()
        pred = read_bgr(rec, img)
        times.append((time.perf_counter() - t0) * 1000.0)
        preds.append((rel, pred))
    return preds, times


def _score_lines(items, preds, fonts: dict[str, str]) -> tuple[dict, dict]:
    """(char, line and exact char accuracy; per-font lines and char accuracy) of the predictions."""
    by_font: dict[str, list[int]] = {}  # face -> [lines, errors, characters]
    errors = total = exact = 0
    exact_errors = exact_total = 0  # on code points, without NFKC
    for (rel, text), (_rel, pred) in zip(items, preds):
        gt, pr = clean_for_scoring(text), clean_for_scoring(pred)
        dist = edit_distance(gt, pr)
        errors += dist
        total += len(gt)
        exact += gt == pr
        gt_exact = clean_exact(text)
        exact_errors += edit_distance(gt_exact, clean_exact(pred))
        exact_total += len(gt_exact)
        if rel in fonts:
            row = by_font.setdefault(fonts[rel], [0, 0, 0])
            row[0], row[1], row[2] = row[0] + 1, row[1] + dist, row[2] + len(gt)
    scores = {
        "char_accuracy": round(char_accuracy(errors, total), 5),
        "line_accuracy": round(exact / len(items), 5),
        "char_accuracy_exact": round(char_accuracy(exact_errors, exact_total), 5),
    }
    per_font = {
        face: {"lines": n, "char_accuracy": round(char_accuracy(e, c), 5)}
        for face, (n, e, c) in sorted(by_font.items())
    }
    return scores, per_font


def _write_predictions(predictions: str | Path, preds) -> None:
    """One ``image<TAB>prediction`` line per read, in the dataset's order."""
    Path(predictions).parent.mkdir(parents=True, exist_ok=True)
    with open(predictions, "w", encoding="utf-8") as f:
        for rel, pred in preds:
            f.write(f"{rel}\t{pred}\n")


def evaluate(
    data_dir: str | Path,
    model_path: str | Path,
    predictions: str | Path | None = None,
    threads: int = 1,
    limit: int | None = None,
    held_back_only: bool = False,
) -> dict:
    """Read every line of ``data_dir`` (the first ``limit``; with ``held_back_only`` only the lines
    training leaves out, ``data.held_back``) with the package at ``model_path`` and score it; the
    predictions go to ``predictions`` when given."""
    data_dir = Path(data_dir)
    rec = load_recognizer(model_path, threads=threads)
    items = read_labels(data_dir)
    if held_back_only:
        items = [(rel, text) for rel, text in items if held_back(rel)]
    if limit:
        items = items[:limit]
    if not items:
        raise ValueError(f"{data_dir}/labels.tsv has no lines")
    # warm-up so the first line does not pay for lazy initialisation
    read_bgr(rec, cv2.imread(str(data_dir / items[0][0]), cv2.IMREAD_COLOR))
    fonts = read_fonts(data_dir)
    preds, times = _read_lines(rec, data_dir, items)
    scores, by_font = _score_lines(items, preds, fonts)
    if predictions:
        _write_predictions(predictions, preds)
    result = {
        "model": str(model_path),
        "name": rec.spec.name,
        "data": str(data_dir),
        "lines": len(items),
        **scores,
        "ms_per_line_p50": round(float(np.percentile(times, 50)), 3),
        "ms_per_line_mean": round(float(np.mean(times)), 3),
        "params": count_params(onnx.load(str(model_path))),
    }
    if by_font:
        result["by_font"] = by_font
    return result


def read_fonts(data_dir: Path) -> dict[str, str]:
    """``fonts.tsv`` (image path -> face) when ``generate`` wrote one, else empty."""
    path = Path(data_dir) / "fonts.tsv"
    if not path.is_file():
        return {}
    rows = (line.split("\t", 1) for line in path.read_text(encoding="utf-8").splitlines() if "\t" in line)
    return {rel: face for rel, face in rows}
