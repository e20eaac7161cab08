"""Greedy CTC decoding with per-character and per-line confidences; CTC alignment of a label sequence."""

from __future__ import annotations

from dataclasses import dataclass, field

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


def best_path(scores: np.ndarray, blank: int, blank_penalty: float = 0.0, log_domain: bool = False) -> np.ndarray:
    """The argmax class per step of a [T, C] output (probabilities, or log-probabilities or
    logits with ``log_domain``).

    ``blank_penalty`` is how much the model's blank logit was lowered (``ocr.blank_penalty``).
    The penalty turns steps where the blank narrowly beat a character into that character,
    which recovers dropped characters, but it also fills the one blank step that separates a
    doubled character ("nn", "66"), which the CTC collapse then merges. So inside a run of one
    class, a step goes back to the blank where the blank would have won without the penalty:
    the penalty can add characters, never merge two.
    """
    best = scores.argmax(axis=1)
    if blank_penalty > 0:
        b, k = scores[:, blank], scores[np.arange(len(best)), best]
        separate_doubles(best, blank, b + blank_penalty >= k if log_domain else b * np.exp(blank_penalty) >= k)
    return best


def _logsumexp(scores: np.ndarray) -> np.ndarray:
    top = scores.max(axis=1)
    return top + np.log(np.exp(scores - top[:, None]).sum(axis=1))


def separate_doubles(path: np.ndarray, blank: int, blank_won: np.ndarray) -> np.ndarray:
    """In place: a step that repeats the class before it goes back to the blank where
    ``blank_won`` says the blank would have won there without the penalty."""
    t = np.flatnonzero((path[1:] == path[:-1]) & (path[1:] != blank)) + 1
    path[t[blank_won[t]]] = blank
    return path


def emitting_steps(path: np.ndarray, blank: int) -> np.ndarray:
    """The CTC collapse of a best path, as a mask: the steps that start a character (not the
    blank, not a repeat of the step before)."""
    keep = path != blank
    keep[1:] &= path[1:] != path[:-1]
    return keep


def path_text(path, classes: tuple[str, ...] | list[str], blank: int = 0) -> str:
    """The text of a best path (class ids per step, any integer sequence): merge repeats, drop
    blanks. Training and calibration read their argmax paths through it (``greedy_labels`` collapses
    a model output's best path by the same ``emitting_steps``)."""
    path = np.asarray(path, dtype=np.int64).reshape(-1)
    return "".join(classes[i] for i in path[emitting_steps(path, blank)])


@dataclass(frozen=True)
class Greedy:
    """A greedy reading: class ids, each character's peak probability (the highest over the steps
    of its run), what an empty line reports as its confidence (the mean blank probability), the
    least probability any step's winner had (how much doubt there was anywhere), and each
    character's run of steps as [start, end) rows of ``runs`` (out of ``steps``)."""

    labels: np.ndarray
    peaks: np.ndarray
    empty: float = 0.0
    least: float = 1.0
    runs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    steps: int = 0


def path_runs(path: np.ndarray, blank: int) -> np.ndarray:
    """[start, end) of each character's run of steps on a best path (one row per character the
    CTC collapse keeps: a run of one class that is not the blank)."""
    path = np.asarray(path).reshape(-1)
    if not len(path):
        return np.zeros((0, 2), dtype=np.int64)
    starts = np.concatenate(([0], np.flatnonzero(path[1:] != path[:-1]) + 1))
    ends = np.concatenate((starts[1:], [len(path)]))
    keep = path[starts] != blank
    return np.stack([starts[keep], ends[keep]], axis=1).astype(np.int64)


def char_spans(runs: np.ndarray, steps: int) -> list[tuple[float, float]]:
    """Each character's horizontal extent as fractions [a, b] of the ``steps`` a line was read
    over, from its run of steps: a CTC output fires near a character's middle, so neighbours
    part halfway between their runs' centres, and the first and last characters reach half a
    typical spacing beyond theirs (a lone character gets the whole line)."""
    if not len(runs) or steps <= 0:
        return []
    centres = (np.asarray(runs, dtype=np.float64).sum(axis=1)) / 2.0
    if len(centres) == 1:
        return [(0.0, 1.0)]
    half = 0.5 * float(np.median(np.diff(centres)))
    cuts = np.concatenate(([centres[0] - half], (centres[1:] + centres[:-1]) / 2.0, [centres[-1] + half]))
    cuts = np.clip(cuts / steps, 0.0, 1.0)
    return [(float(a), float(b)) for a, b in zip(cuts[:-1], cuts[1:])]


def greedy_labels(scores: np.ndarray, blank: int, blank_penalty: float = 0.0, kind: str = "probs") -> Greedy:
    """The best path of a [T, C] output of ``kind``, collapsed. Only the winning steps' scores
    become probabilities."""
    if scores.ndim != 2:
        raise ValueError("greedy decoding takes a [T, C] array")
    if scores.shape[0] == 0:
        return Greedy(np.zeros(0, dtype=np.int64), np.zeros(0))
    best = best_path(scores, blank, blank_penalty, log_domain=kind != "probs")
    chosen = scores[np.arange(len(best)), best]
    if kind == "logits":  # the winners' log-probabilities
        chosen, kind = chosen - _logsumexp(scores), "log_probs"
    best_p = to_probs(chosen, kind)
    emitted = best != blank
    keep = emitting_steps(best, blank)
    least = float(best_p.min())
    if not keep.any():
        return Greedy(np.zeros(0, dtype=np.int64), np.zeros(0), float(best_p.mean()), least, steps=len(best))
    # the emitted steps, in order, fall into one run per character, each starting at a kept step
    peaks = np.maximum.reduceat(best_p[emitted].astype(np.float64), np.flatnonzero(keep[emitted]))
    return Greedy(best[keep], peaks, 0.0, least, path_runs(best, blank), len(best))


def line_confidence(peaks: np.ndarray, empty: float = 0.0) -> float:
    """The geometric mean of the characters' peak probabilities (``empty`` for no character)."""
    if not len(peaks):
        return empty
    return float(np.exp(np.log(np.maximum(peaks, 1e-12)).mean()))


def greedy_decode(
    scores: np.ndarray,
    classes: tuple[str, ...] | list[str],
    blank: int,
    blank_penalty: float = 0.0,
    kind: str = "probs",
) -> tuple[str, float]:
    """Best path (``best_path``) of a [T, C] output of ``kind`` (``ocr.output_kind``): argmax
    per step, merge repeats, drop blanks. The text and line confidence alone; workers read lines
    through ``engine.decoder``, which adds per-character confidences and the beam.

    The confidence is the geometric mean, over the characters read, of each character's
    peak probability (the highest over the steps of its run): one doubtful character pulls
    it down, where a mean over steps would drown it among the sure ones. On the training-split
    check lines it tells right lines from wrong ones with an AUC of 0.82-0.85 for our students
    (0.67 for the mean over steps) and 0.85-0.87 for the reference (docs/serving.md). An
    empty line reports the mean blank probability.
    """
    read = greedy_labels(scores, blank, blank_penalty, kind)
    return "".join(classes[i] for i in read.labels), line_confidence(read.peaks, read.empty)


def to_log_probs(output: np.ndarray, kind: str) -> np.ndarray:
    """A [T, C] output of ``kind`` as log probabilities (float64)."""
    output = np.asarray(output, dtype=np.float64)
    if kind == "log_probs":
        return output
    if kind == "probs":
        return np.log(np.maximum(output, 1e-30))
    return output - _logsumexp(output)[:, None]


def aligned_peaks(logp: np.ndarray, labels: list[int] | np.ndarray, blank: int) -> np.ndarray:
    """Each label's peak probability over the steps the most likely CTC alignment of ``labels``
    gives it (Viterbi over blank-separated states): per-character confidences for a line the beam
    search read, where the greedy runs no longer say which steps are whose."""
    return aligned_runs(logp, labels, blank)[0]


def aligned_runs(logp: np.ndarray, labels: list[int] | np.ndarray, blank: int) -> tuple[np.ndarray, np.ndarray]:
    """``aligned_peaks`` and each label's [start, end) of steps in that alignment."""
    labels = list(labels)
    runs = np.zeros((len(labels), 2), dtype=np.int64)
    if not labels or logp.shape[0] == 0:
        return np.zeros(len(labels)), runs
    states = np.full(2 * len(labels) + 1, blank, dtype=np.int64)
    states[1::2] = labels
    S, T = len(states), logp.shape[0]
    skip = np.zeros(S, dtype=bool)  # a label state may be entered from two states back
    skip[3::2] = states[3::2] != states[1:-2:2]
    score = np.full(S, -np.inf)
    score[:2] = logp[0, states[:2]]
    back = np.zeros((T, S), dtype=np.int8)
    for t in range(1, T):
        one = np.concatenate(([-np.inf], score[:-1]))
        two = np.where(skip, np.concatenate(([-np.inf, -np.inf], score[:-2])), -np.inf)
        stacked = np.stack([score, one, two])
        back[t] = stacked.argmax(axis=0)
        score = stacked.max(axis=0) + logp[t, states]
    s = S - 1 if S < 2 or score[S - 1] >= score[S - 2] else S - 2
    peaks = np.zeros(len(labels))
    runs[:, 0], runs[:, 1] = T, 0
    for t in range(T - 1, -1, -1):
        if s % 2:
            k = s // 2
            peaks[k] = max(peaks[k], float(np.exp(logp[t, states[s]])))
            runs[k] = min(runs[k, 0], t), max(runs[k, 1], t + 1)
        s -= int(back[t, s])
    return peaks, runs
