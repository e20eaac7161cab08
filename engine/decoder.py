"""How a line's recogniser output becomes text: greedy, or the beam with the language model.

``LineDecoder`` reads every line greedily first. A line goes on to the prefix beam search
(``engine.beam``) only where the beam can change it: when the request brought
hotwords, or, with ``mode="beam"``, when some step's winner had less than ``1 - doubt`` of the
probability (a sure line reads the same either way and costs no more than greedy decoding).
The beam works on the classes that reach its floor somewhere in the line (plus the blank and
the hotwords' characters), not on the whole class axis.

Every answer carries per-character confidences: the peak probability of each character over
the steps of its greedy run, or over the steps that the best alignment of the beam's text
gives it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .beam import BeamSettings, Hotwords, prefix_beam_search
from .ctc import aligned_runs, char_spans, greedy_labels, line_confidence, to_log_probs
from .lm import CharLM, lm_text
from .modelpkg import ModelSpec

MODES = ("greedy", "beam")


@dataclass(frozen=True)
class LineText:
    text: str
    confidence: float
    chars: tuple[tuple[str, float], ...] = ()  # (character, confidence) in reading order
    searched: bool = False  # whether the beam search read it
    # each of ``chars``' horizontal extent [a, b] as fractions of the steps the line was read over
    spans: tuple[tuple[float, float], ...] = ()

    def chars_payload(self) -> list[dict]:
        return chars_payload(self.chars)


def chars_payload(chars: tuple[tuple[str, float], ...]) -> list[dict]:
    """Characters with their confidences as an answer's line carries them (``lines[i].chars``)."""
    return [{"text": c, "confidence": round(p, 4)} for c, p in chars]


@dataclass(frozen=True)
class DecoderConfig:
    mode: str = "greedy"
    beam: BeamSettings = field(default_factory=BeamSettings)
    doubt: float = 0.05

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"decoder mode must be one of {MODES}, not {self.mode!r}")


def decoder_signature(config: DecoderConfig, lm_sha256: str) -> str:
    """What the cache key needs to know of a decoder: its mode, the search's settings and the LM's
    file (its sha256), so that the web can name a worker's answers without loading the LM."""
    b = config.beam
    return (
        f"{config.mode}-w{b.width}-a{b.alpha:g}-b{b.beta:g}-f{b.floor:g}-d{config.doubt:g}-h{b.bonus:g}"
        f"-hf{b.hotword_floor:g}-lm{lm_sha256[:8] or 'none'}"
    )


class _ClassTables:
    """Per model: each class's text in the language model's form, and which classes spell which character."""

    def __init__(self, spec: ModelSpec) -> None:
        self.tokens = tuple(lm_text(c) for c in spec.classes)
        self.by_char: dict[str, list[int]] = {}
        for i, token in enumerate(self.tokens):
            if len(token) == 1 and i != spec.blank_index:
                self.by_char.setdefault(token, []).append(i)

    def classes_of(self, chars: frozenset[str]) -> np.ndarray:
        return np.asarray(sorted(i for c in chars for i in self.by_char.get(c, ())), dtype=np.int64)


class LineDecoder:
    def __init__(self, config: DecoderConfig | None = None, lm: CharLM | None = None) -> None:
        self.config = config or DecoderConfig()
        self.lm = lm
        self._tables: dict[int, tuple[tuple, _ClassTables]] = {}

    @property
    def signature(self) -> str:
        return decoder_signature(self.config, self.lm.sha256 if self.lm is not None else "")

    def tables(self, spec: ModelSpec) -> _ClassTables:
        known = self._tables.get(id(spec.classes))
        if known is None or known[0] is not spec.classes:
            known = self._tables[id(spec.classes)] = (spec.classes, _ClassTables(spec))
        return known[1]

    def decode(
        self, scores: np.ndarray, spec: ModelSpec, kind: str | None = None, hotwords: Hotwords | None = None
    ) -> LineText:
        """One line's [T, C] output of ``kind`` (by default the model's ``ocr.output_kind``)."""
        kind = kind or spec.output_kind
        read = greedy_labels(scores, spec.blank_index, spec.blank_penalty, kind)
        doubtful = self.config.mode == "beam" and read.least < 1.0 - self.config.doubt
        if not (hotwords or doubtful):
            return self._answer(spec, read.labels, read.peaks, read.empty, char_spans(read.runs, read.steps), False)
        labels, peaks, runs = self._search(scores, spec, kind, hotwords or None, read)
        return self._answer(spec, labels, peaks, read.empty, char_spans(runs, read.steps), True)

    def _search(self, scores: np.ndarray, spec: ModelSpec, kind: str, hotwords: Hotwords | None, read):
        tables, settings = self.tables(spec), self.config.beam
        floor = min(settings.floor, settings.hotword_floor) if hotwords else settings.floor
        if kind == "logits":
            scores, kind = to_log_probs(scores, kind), "log_probs"
        top = scores.max(axis=0)
        wanted = top >= (math.log(settings.floor) if kind == "log_probs" else settings.floor)
        hot = tables.classes_of(hotwords.chars) if hotwords else np.zeros(0, dtype=np.int64)
        if len(hot):
            wanted[hot] |= top[hot] >= (math.log(floor) if kind == "log_probs" else floor)
        wanted[spec.blank_index] = True
        columns = np.flatnonzero(wanted)
        logp = to_log_probs(scores[:, columns], kind)
        blank = int(np.searchsorted(columns, spec.blank_index))
        tokens = tuple(tables.tokens[i] for i in columns)
        hot_here = np.flatnonzero(np.isin(columns, hot)) if len(hot) else None
        found = prefix_beam_search(logp, blank, tokens, settings, self.lm, hotwords, hot_here)
        labels = columns[found] if found else np.zeros(0, dtype=np.int64)
        if np.array_equal(labels, read.labels):  # the greedy reading stood: its runs say which steps are whose
            return read.labels, read.peaks, read.runs
        return labels, *aligned_runs(logp, found, blank)

    def _answer(self, spec: ModelSpec, labels, peaks: np.ndarray, empty: float, spans, searched: bool) -> LineText:
        pieces = [(spec.classes[i], float(p)) for i, p in zip(labels, peaks)]
        raw = "".join(text for text, _ in pieces)
        text = spec.finish_text(raw)
        chars = [(c, p) for piece, p in pieces for c in piece]
        # a class of several characters shares its extent out evenly among them
        places = [
            (a + (b - a) * k / len(piece), a + (b - a) * (k + 1) / len(piece))
            for (piece, _), (a, b) in zip(pieces, spans)
            for k in range(len(piece))
        ]
        if len(text) == len(chars):  # finishing replaces characters one for one
            chars = [(c, p) for c, (_, p) in zip(text, chars)]
        return LineText(
            text=text,
            confidence=line_confidence(peaks, empty),
            chars=tuple(chars),
            searched=searched,
            spans=tuple(places) if len(places) == len(chars) else (),
        )


GREEDY = LineDecoder()
