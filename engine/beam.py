"""CTC prefix beam search with a character language model and per-request hotwords.

The search (Hannun et al., 2014) keeps, for every prefix in the beam, the probability of the
paths that end in a blank and of those that end in its last character, and scores a prefix by

    log P_ctc(prefix) + alpha * log P_lm(prefix) + beta * len(prefix) + hotword bonus

Cost on a CPU is held down three ways: only the classes whose probability at a step reaches
``floor`` are tried there (the blank and a repeat of the last character always are); a step
where the blank alone reaches the floor only moves the beam along, without new prefixes; and
``LineDecoder`` runs the search only on lines where some step was in doubt, reading every
other line greedily (the beam would answer the same).

Hotwords are matched with an Aho-Corasick automaton over their characters. Every character
that continues a hotword earns ``bonus``; a prefix that leaves a hotword half way gives back
what the unfinished part earned, so only whole hotwords keep their bonus. Their characters
are tried at every step where the model gives them at least ``hotword_floor``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .lm import BOS, EOS, CharLM, lm_text

NEG = -1e30


def _logadd(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    if b <= NEG:
        return a
    return a + math.log1p(math.exp(b - a))


class Hotwords:
    """An Aho-Corasick automaton over words (in ``lm_text`` form): ``step(node, char)`` is the
    node of the longest hotword prefix that ends the text read so far."""

    def __init__(self, words: list[str] | tuple[str, ...]) -> None:
        self.words = tuple(w for w in dict.fromkeys(lm_text(w) for w in words) if w)
        self._goto: list[dict[str, int]] = [{}]
        self.depth = [0]
        self.final = [False]
        for word in self.words:
            node = 0
            for c in word:
                nxt = self._goto[node].get(c)
                if nxt is None:
                    nxt = len(self._goto)
                    self._goto[node][c] = nxt
                    self._goto.append({})
                    self.depth.append(self.depth[node] + 1)
                    self.final.append(False)
                node = nxt
            self.final[node] = True
        self._fail = self._failure_links()
        self.chars = frozenset(c for w in self.words for c in w)

    def _failure_links(self) -> list[int]:
        fail = [0] * len(self._goto)
        queue = list(self._goto[0].values())
        while queue:
            node = queue.pop(0)
            for c, child in self._goto[node].items():
                f = fail[node]
                while f and c not in self._goto[f]:
                    f = fail[f]
                fail[child] = self._goto[f].get(c, 0) if self._goto[f].get(c, 0) != child else 0
                queue.append(child)
        return fail

    def step(self, node: int, char: str) -> int:
        while node and char not in self._goto[node]:
            node = self._fail[node]
        return self._goto[node].get(char, 0)

    def __bool__(self) -> bool:
        return bool(self.words)


@dataclass(frozen=True)
class BeamSettings:
    """``alpha``: the language model's weight; ``beta``: the bonus per character (against the LM's
    pull towards short lines); ``width``: prefixes kept per step; ``floor``: the smallest
    probability of a class tried at a step; ``bonus``: per hotword character."""

    width: int = 8
    alpha: float = 0.0
    beta: float = 0.0
    floor: float = 1e-3
    bonus: float = 2.0
    hotword_floor: float = 1e-5


@dataclass
class _Search:
    """One line's search. Beam entries hold only a prefix's CTC scores, [ending in a blank, ending
    in its last class]; what else a prefix scores (LM, length, hotwords) depends on the prefix
    alone and is computed once per line in ``info``: (extra score, LM context, hotword node)."""

    logp: np.ndarray  # [T, C] log probabilities
    blank: int
    tokens: tuple[str, ...]  # each class's text in lm_text form
    lm: CharLM | None
    settings: BeamSettings
    hotwords: Hotwords | None
    hot_classes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    info: dict = field(default_factory=lambda: {(): (0.0, BOS, 0)})

    def candidates(self) -> list[list[int]]:
        """The classes tried at each step (the blank left out; it is always tried)."""
        mask = self.logp >= math.log(self.settings.floor)
        if len(self.hot_classes):
            mask[:, self.hot_classes] |= self.logp[:, self.hot_classes] >= math.log(self.settings.hotword_floor)
        mask[:, self.blank] = False
        steps, classes = np.nonzero(mask)
        out: list[list[int]] = [[] for _ in range(self.logp.shape[0])]
        for t, c in zip(steps.tolist(), classes.tolist()):
            out[t].append(c)
        return out

    def state(self, key: tuple[int, ...]) -> tuple[float, str, int]:
        """``info`` of a prefix, computed (with those of its prefixes that lack it) on first use."""
        found = self.info.get(key)
        if found is None:
            known = len(key) - 1
            while key[:known] not in self.info:
                known -= 1
            for n in range(known + 1, len(key) + 1):
                found = self.info[key[:n]] = self._extend(self.info[key[: n - 1]], key[n - 1])
        return found

    def extra(self, key: tuple[int, ...]) -> float:
        return self.state(key)[0]

    def _extend(self, parent: tuple[float, str, int], cls: int) -> tuple[float, str, int]:
        """A prefix one class longer: its LM, length and hotword scores."""
        s = self.settings
        extra, context, node = parent
        extra += s.beta
        for c in self.tokens[cls]:
            if self.lm is not None and s.alpha:
                extra += s.alpha * self.lm.logp(context, c)
                context = (context + c)[-(self.lm.order - 1) :]
            if self.hotwords:
                hw = self.hotwords
                new = hw.step(node, c)
                # into a hotword: earn the bonus per character; out of one: give back the lost part
                extra += s.bonus * (hw.depth[new] - hw.depth[node])
                node = 0 if hw.final[new] else new  # a whole hotword keeps its bonus
        return extra, context, node

    def final(self, key: tuple[int, ...], ctc: list[float]) -> float:
        """The whole line's score: an unfinished hotword gives its bonus back; the LM sees the end."""
        extra, context, node = self.state(key)
        score = _logadd(*ctc) + extra
        if self.hotwords:
            score -= self.settings.bonus * self.hotwords.depth[node]
        if self.lm is not None and self.settings.alpha:
            score += self.settings.alpha * self.lm.logp(context, EOS)
        return score


def prefix_beam_search(
    logp: np.ndarray,
    blank: int,
    tokens: tuple[str, ...],
    settings: BeamSettings,
    lm: CharLM | None = None,
    hotwords: Hotwords | None = None,
    hot_classes: np.ndarray | None = None,
) -> list[int]:
    """The best label sequence (class ids, blanks and repeats collapsed) of a [T, C] array of log
    probabilities."""
    search = _Search(
        logp,
        blank,
        tokens,
        lm,
        settings,
        hotwords if hotwords else None,
        hot_classes if hot_classes is not None and hotwords else np.zeros(0, dtype=np.int64),
    )
    beams: dict[tuple[int, ...], list[float]] = {(): [0.0, NEG]}
    rows = logp.tolist()
    for t, cands in enumerate(search.candidates()):
        beams = _step(search, beams, rows[t], cands)
    best = max(beams.items(), key=lambda item: search.final(*item))
    return list(best[0])


def _step(search: _Search, beams: dict, row: list[float], cands: list[int]) -> dict:
    blank_lp = row[search.blank]
    if not cands:  # only the blank is likely here: every prefix moves on, none is born
        return {key: [_logadd(b, nb) + blank_lp, nb + row[key[-1]] if key else NEG] for key, (b, nb) in beams.items()}
    nxt: dict[tuple[int, ...], list[float]] = {}
    for key, (b, nb) in beams.items():
        total = _logadd(b, nb)
        same = nxt.get(key)
        if same is None:
            nxt[key] = [total + blank_lp, nb + row[key[-1]] if key else NEG]
        else:
            same[0] = _logadd(same[0], total + blank_lp)
            if key:
                same[1] = _logadd(same[1], nb + row[key[-1]])
        last = key[-1] if key else -1
        for c in cands:
            # after the same class, only a path through a blank starts a new character
            v = (b if c == last else total) + row[c]
            new = key + (c,)
            found = nxt.get(new)
            if found is None:
                nxt[new] = [NEG, v]
            else:
                found[1] = _logadd(found[1], v)
    if len(nxt) <= search.settings.width:
        return nxt
    ranked = sorted(nxt.items(), key=lambda item: _logadd(*item[1]) + search.extra(item[0]), reverse=True)
    return dict(ranked[: search.settings.width])
