"""Blank calibration: how much to lower the CTC blank before greedy decoding.

A student trained with CTC-KD can be less sure of its characters than its teacher:
on a dropped character its best-path frame is often the blank at 0.7-0.9 with the
right character second at 0.1-0.4. Lowering the blank's log-probability by a
constant before the argmax (a "blank penalty", as in speech CTC decoders) turns
those frames back into characters. The offset is chosen on lines rendered from
the *training* fonts and texts (``generate --split train`` with a seed no run
used), never on the dev sets, and then baked into the exported model's
classifier bias (``export --blank-offset``) and recorded as ``ocr.blank_penalty``, which
tells decoders to keep doubled characters apart where the blank would have won without it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engine.ctc import path_text, separate_doubles, to_probs

from .data import read_labels
from .evaluate import char_accuracy, clean_for_scoring, edit_distance, load_recognizer, prepare_bgr, read_fonts

DEFAULT_OFFSETS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)


class CalibrationError(ValueError):
    pass


def log_probs(out: np.ndarray, kind: str) -> np.ndarray:
    """A model's [T, C] output as log-probabilities, through the serving path's own
    conversion (``engine.ctc.to_probs``, which also refuses an unknown kind)."""
    return np.log(np.maximum(to_probs(out.astype(np.float64), kind), 1e-300))


def best_paths(out: np.ndarray, blank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per step: the blank's log-probability, the best other class, and its log-probability.
    These three decide the argmax for every blank offset, without keeping [T, C]."""
    others = out.copy()
    others[:, blank] = -np.inf
    best = others.argmax(-1)
    return out[:, blank], best, others[np.arange(len(best)), best]


def decode_with_offset(paths, offset: float, classes, blank: int, penalty: float = 0.0) -> str:
    """Greedy decoding with the blank lowered by ``offset`` more, as the exported model with
    ``ocr.blank_penalty = penalty + offset`` is decoded (``engine.ctc.best_path``: doubled
    characters stay apart where the blank would have won without the penalty)."""
    blank_lp, best, best_lp = paths
    path = np.where(blank_lp - offset >= best_lp, blank, best)
    if offset + penalty > 0:
        separate_doubles(path, blank, blank_lp + penalty >= best_lp)
    return path_text(path, classes, blank)


def dev_font_labels() -> set[str]:
    from .fonts import discover

    return {f.label for f in discover() if f.split == "dev"}


def check_not_dev(data_dir: Path) -> None:
    """Refuse a folder rendered with held-out fonts: those are for measuring only."""
    held_out = set(read_fonts(data_dir).values()) & dev_font_labels()
    if held_out:
        raise CalibrationError(
            f"{data_dir} was rendered with held-out dev fonts ({', '.join(sorted(held_out))}); "
            "calibrate on lines from the training split: python -m distill generate --split train ..."
        )


def sweep(model_path: str | Path, data_dirs, offsets=DEFAULT_OFFSETS, threads: int = 1) -> dict:
    """Char and line accuracy of greedy decoding for each blank offset, per folder, and the
    offset with the best mean char accuracy over the folders (the smaller one on a tie)."""
    rec = load_recognizer(model_path, threads=threads)
    spec = rec.spec
    offsets = sorted({float(o) for o in offsets})
    result = {"model": str(model_path), "offsets": offsets, "data": {}}
    for data_dir in map(Path, data_dirs):
        check_not_dev(data_dir)
        items = read_labels(data_dir)
        if not items:
            raise CalibrationError(f"{data_dir}/labels.tsv has no lines")
        errors = np.zeros(len(offsets))
        exact = np.zeros(len(offsets))
        total = 0
        for rel, text in items:
            img = cv2.imread(str(data_dir / rel), cv2.IMREAD_COLOR)
            if img is None:
                raise CalibrationError(f"cannot read image {data_dir / rel}")
            paths = best_paths(
                log_probs(rec.outputs(prepare_bgr(img, spec)[None])[0], spec.output_kind), spec.blank_index
            )
            gt = clean_for_scoring(text)
            total += len(gt)
            for k, offset in enumerate(offsets):
                pred = clean_for_scoring(
                    decode_with_offset(paths, offset, spec.classes, spec.blank_index, spec.blank_penalty)
                )
                errors[k] += edit_distance(gt, pred)
                exact[k] += gt == pred
        result["data"][str(data_dir)] = {
            "lines": len(items),
            "char_accuracy": [round(char_accuracy(e, total), 5) for e in errors],
            "line_accuracy": [round(x / len(items), 5) for x in exact],
        }
    mean = np.mean([d["char_accuracy"] for d in result["data"].values()], axis=0)
    best = int(np.flatnonzero(mean == mean.max())[0])
    result["mean_char_accuracy"] = [round(float(m), 5) for m in mean]
    result["best_offset"] = offsets[best]
    return result


def apply_blank_offset(model, offset: float, blank: int = 0):
    """Lower the blank's logit by ``offset`` in the model's classifier bias (in place)."""
    import torch

    if offset:
        with torch.no_grad():
            model.classifier.bias[blank] -= offset
    return model
