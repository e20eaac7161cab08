"""Greedy CTC decoding with a per-line confidence."""

from __future__ import annotations

import numpy as np


def to_probs(output: np.ndarray, kind: str) -> np.ndarray:
    """Turn a model's [.., C] output into probabilities, whatever it emits."""
    if kind == "probs":
        return output
    if kind == "log_probs":
        return np.exp(output)
    if kind == "logits":
        shifted = output - output.max(axis=-1, keepdims=True)
        e = np.exp(shifted)
        return e / e.sum(axis=-1, keepdims=True)
    raise ValueError(f"unknown output kind {kind!r}")


def greedy_decode(probs: np.ndarray, classes: tuple[str, ...] | list[str], blank: int) -> tuple[str, float]:
    """Best path: argmax per step, merge repeats, drop blanks.

    The confidence is the mean of the winning probability over the steps that emitted
    a character (1.0 for an empty line, which is "confidently nothing" only when every
    step chose blank; it then reports the mean blank probability instead).
    """
    if probs.ndim != 2:
        raise ValueError("greedy_decode takes a [T, C] array")
    if probs.shape[0] == 0:
        return "", 0.0
    best = probs.argmax(axis=1)
    best_p = probs[np.arange(len(best)), best]
    keep = best != blank
    keep[1:] &= best[1:] != best[:-1]
    chars = [classes[i] for i in best[keep]]
    if not chars:
        return "", float(best_p.mean())
    return "".join(chars), float(best_p[keep].mean())
