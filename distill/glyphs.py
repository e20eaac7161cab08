"""New lines made of a dataset's own glyphs, for adapting to a customer's print (``adapt --mix``).

The idea is StackMix (Shonenkov et al., 2021, "StackMix and Blot Augmentations for Handwritten
Text Recognition"): each dataset line is cut between its characters where a CTC model's
distribution aligns the line's label (forced alignment, ``forced_path``), each cut moved to the
column with the least ink nearby; then pieces of a few characters from several lines are set side
by side into a line whose label no dataset line has. 300 corrected lines give the customer's
characters in new neighbours and at new places, as many lines as a run draws.

The alignment is the teacher's (its cached top-k distribution over the character axis, index 0
the blank): it reads a customer's lines better than the model being adapted.
"""

from __future__ import annotations

import numpy as np

FLOOR = 1e-4  # the probability given to a character outside the cached top-k


def emissions(top_idx: np.ndarray, top_p: np.ndarray, ext: list[int]) -> np.ndarray:
    """log p(ext[s] at frame t) [T, S] from a top-k distribution ([T, k] indices and
    probabilities); a character outside the top-k gets ``FLOOR``."""
    hit = top_idx[:, None, :] == np.asarray(ext)[None, :, None]
    values = np.where(hit, top_p[:, None, :].astype(np.float32), 0.0).max(-1)
    return np.log(np.maximum(values, FLOOR))


def forced_path(top_idx: np.ndarray, top_p: np.ndarray, labels: list[int]) -> np.ndarray | None:
    """For each frame, the position in ``labels`` that the most likely CTC path reading exactly
    ``labels`` emits there (-1: blank); None when the frames are too few to read it."""
    ext = [0]
    for c in labels:
        ext += [int(c), 0]
    emit = emissions(top_idx, top_p, ext)
    frames, states = emit.shape
    neg = -1e30
    skip = np.array([s >= 2 and ext[s] != 0 and ext[s] != ext[s - 2] for s in range(states)])
    score = np.full(states, neg)
    score[: min(2, states)] = emit[0, : min(2, states)]
    back = np.zeros((frames, states), np.int8)
    for t in range(1, frames):
        one = np.concatenate([[neg], score[:-1]])
        two = np.where(skip, np.concatenate([[neg, neg], score[:-2]]), neg)
        options = np.stack([score, one, two])
        back[t] = options.argmax(0)
        score = options[back[t], np.arange(states)] + emit[t]
    ends = [states - 1] + ([states - 2] if states > 1 else [])
    s = max(ends, key=lambda e: score[e])
    if score[s] < neg / 2:
        return None
    path = np.empty(frames, np.int64)
    for t in range(frames - 1, -1, -1):
        path[t] = s
        s -= back[t, s]
    return np.where(path % 2 == 1, path // 2, -1)


def content_width(gray: np.ndarray, pad: int = 255) -> int:
    """The line's width without the padding the model's input adds on the right (``pad`` columns)."""
    padded = np.all(gray == pad, axis=0)
    k = len(padded)
    while k > 1 and padded[k - 1]:
        k -= 1
    return k


def char_cuts(
    gray: np.ndarray, top_idx: np.ndarray, top_p: np.ndarray, labels: list[int], pad: int = 255
) -> np.ndarray | None:
    """x positions [len(labels) + 1] that cut a line image ([H, W] uint8) between its characters:
    midway between the centres of the frames where the aligned path emits each character, moved to
    the column with the least ink within a quarter of a character's pitch; the ends just outside
    the first and last character's ink (``_ends``), never in the model's padding (``pad``
    columns on the right). None when the label does not align."""
    path = forced_path(top_idx, top_p, labels)
    if path is None:
        return None
    stride = gray.shape[1] / len(path)
    centres = np.array([np.flatnonzero(path == i).mean() + 0.5 for i in range(len(labels))]) * stride
    pitch = float(np.median(np.diff(centres))) if len(centres) > 1 else float(gray.shape[0])
    ink = np.clip(float(np.median(gray)) - gray.astype(np.float32), 0, None).sum(0)
    cuts = [0.0]
    for a, b in zip(centres[:-1], centres[1:], strict=True):
        reach = max(1, round(min(pitch, b - a) / 4))
        mid = round((a + b) / 2)
        lo, hi = max(0, mid - reach), min(len(ink), mid + reach + 1)
        cuts.append(float(lo + int(np.argmin(ink[lo:hi]))) if hi > lo else float(mid))
    cuts.append(float(content_width(gray, pad)))
    cuts[0], cuts[-1] = _ends(ink, cuts, pitch)
    cuts = np.round(np.maximum.accumulate(np.asarray(cuts))).astype(np.int64)
    return cuts


def _ends(ink: np.ndarray, cuts: list[float], pitch: float) -> tuple[float, float]:
    """Where the first character starts and the last one ends: a tenth of a pitch out from the
    first inked column before ``cuts[1]`` and the last one from ``cuts[-2]`` (inked: above a tenth
    of the line's most inked column). ``cuts[-1]`` is the line's width."""
    width = cuts[-1]
    inked = np.flatnonzero(ink[: int(width)] > 0.1 * max(float(ink.max()), 1e-6))
    head, tail = inked[inked < cuts[1]], inked[inked >= cuts[-2]]
    left = float(head[0]) - pitch / 10 if head.size else 0.0
    right = float(tail[-1]) + 1 + pitch / 10 if tail.size else width
    return max(0.0, left), min(width, right)


class GlyphBank:
    """A dataset's lines cut between their characters (``char_cuts``), and new lines set from their
    pieces (``line``). ``lines``: (gray [H, W] uint8, label indices, top-k indices, top-k
    probabilities) per line; ``space``: the axis index of a space (pieces neither start nor end
    with one), or None; ``pad``: the model's pad pixel. A line whose label does not align, or is
    only spaces, is left out."""

    def __init__(self, lines, space: int | None = None, max_piece: int = 4, pad: int = 255):
        self.lines, self.space, self.max_piece = [], space, max_piece
        for gray, labels, top_idx, top_p in lines:
            labels = [int(c) for c in labels]
            cuts = char_cuts(gray, top_idx, top_p, labels, pad)
            if cuts is not None and np.all(np.diff(cuts) > 0) and any(c != space for c in labels):
                self.lines.append((gray, labels, cuts, float(np.median(gray[:, : cuts[-1]]))))

    def __len__(self) -> int:
        return len(self.lines)

    def piece(self, rng: np.random.Generator) -> tuple[np.ndarray, list[int], float]:
        """One to ``max_piece`` consecutive characters of a random line: (image, labels, its paper)."""
        gray, labels, cuts, paper = self.lines[int(rng.integers(len(self.lines)))]
        n = int(rng.integers(1, min(self.max_piece, len(labels)) + 1))
        a = int(rng.integers(0, len(labels) - n + 1))
        b = a + n
        while b - a > 1 and labels[a] == self.space:
            a += 1
        while b - a > 1 and labels[b - 1] == self.space:
            b -= 1
        return gray[:, cuts[a] : cuts[b]], labels[a:b], paper

    def line(self, rng: np.random.Generator, length: int) -> tuple[np.ndarray, list[int]]:
        """A new line of at least ``length`` characters (image [H, W] uint8, label indices): pieces
        side by side, each brought to the first piece's paper shade."""
        images, labels, first = [], [], None
        while len(labels) < max(1, length):
            image, piece, paper = self.piece(rng)
            if piece == [self.space]:
                continue
            first = paper if first is None else first
            images.append(np.clip(image.astype(np.float32) + (first - paper), 0, 255).astype(np.uint8))
            labels += piece
        return np.hstack(images), labels
