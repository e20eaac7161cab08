"""Build the decoder's character n-gram language model: interpolated modified Kneser-Ney, pruned.

``python -m distill lm --out models/lm/zh_char5.arpa.gz`` counts character n-grams over the
project's own text sources, the ones the training-line generator draws on and nothing else:

- the technical prose of ``train_prose.txt`` (the zh_CN catalogues of bucket 0; the
  out-of-distribution suite's texts come from bucket 1),
- lines drawn from ``distill.text.TextSource`` on the training split: jieba words by their
  frequency, invoice fields (Faker zh_CN), English (Faker en_US), digits and mixed lines.
  Its uniformly random characters are left out: they would teach the model noise.

A line that is also one of the suite's frozen texts is dropped, so the suite stays unseen.

Estimation (Chen and Goodman's interpolated modified Kneser-Ney): the highest order and
n-grams starting with ``<s>`` keep their counts, lower orders count distinct left contexts;
three discounts per order from the counts of counts. Pruning drops n-grams of order 2 and
above seen fewer than ``min_count`` times (``default_min_count``), and the backoff weight of each context is then
recomputed so that its distribution still sums to one. The output is an ARPA file, gzipped,
in the character tokens ``engine.lm`` reads.
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from engine.lm import BOS, EOS, CharLM, lm_text, write_arpa

GENERATOR_KINDS = ("words", "invoice", "english", "digits", "mixed")
GENERATOR_WEIGHTS = (0.45, 0.3, 0.1, 0.08, 0.07)


def corpus_lines(generated: int, seed: int = 0) -> list[str]:
    """The model's text: every prose line and ``generated`` generator lines, in ``lm_text`` form,
    without any of the out-of-distribution suite's texts."""
    from engine.charset import load_charset, normalize

    from .ood import read_texts
    from .text import TextSource, _prose_lines

    held_out = {normalize(text).replace(" ", "") for _, text in read_texts()}
    # jieba's words by their real frequency (freq_power 1), not flattened as for training lines
    source = TextSource(
        load_charset(),
        "train",
        min_len=4,
        max_len=24,
        seed=seed,
        freq_power=1.0,
        weights=_weights_for(TextSource.KINDS),
    )
    rng = np.random.default_rng(seed)
    lines = list(_prose_lines()) + [source.sample(rng) for _ in range(generated)]
    out = [lm_text(line) for line in lines]
    return [line for line in out if line and line.replace(" ", "") not in held_out]


def _weights_for(kinds: tuple[str, ...]) -> tuple[float, ...]:
    table = dict(zip(GENERATOR_KINDS, GENERATOR_WEIGHTS))
    return tuple(table.get(k, 0.0) for k in kinds)


def count_ngrams(lines: Iterable[str], order: int) -> list[Counter]:
    """Raw counts per order (index n-1), over ``<s> line </s>``; ``<s>`` alone is not counted."""
    counts = [Counter() for _ in range(order)]
    for line in lines:
        s = BOS + line + EOS
        for n in range(1, order + 1):
            counts[n - 1].update(s[i : i + n] for i in range(len(s) - n + 1))
    counts[0].pop(BOS, None)
    return counts


def adjusted_counts(raw: list[Counter]) -> list[dict[str, int]]:
    """Kneser-Ney counts: the raw count at the highest order and for n-grams that start a line,
    else the number of distinct characters seen before the n-gram."""
    order = len(raw)
    adjusted: list[dict[str, int]] = [dict() for _ in range(order)]
    adjusted[-1] = dict(raw[-1])
    for n in range(order - 1, 0, -1):  # orders n (index n-1) from their extensions at order n+1
        left: dict[str, int] = defaultdict(int)
        for gram in raw[n]:
            left[gram[1:]] += 1
        adjusted[n - 1] = {g: (c if g[0] == BOS else left[g]) for g, c in raw[n - 1].items()}
    return adjusted


def discounts(adjusted: dict[str, int]) -> tuple[float, float, float]:
    """Modified Kneser-Ney's D1, D2, D3+ from the counts of counts."""
    n = Counter(min(c, 4) for c in adjusted.values())
    n1, n2, n3, n4 = (max(n[k], 1) for k in (1, 2, 3, 4))
    y = n1 / (n1 + 2 * n2)
    d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    return tuple(min(max(v, 0.05), k + 0.95) for k, v in zip((0, 1, 2), d))  # type: ignore[return-value]


def _by_context(table: dict[str, int]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for gram in table:
        groups[gram[:-1]].append(gram)
    return groups


def estimate(raw: list[Counter], min_count: tuple[int, ...]) -> list[dict[str, tuple[float, float | None]]]:
    """Per order, n-gram -> (ln p, ln backoff or None), interpolated and then pruned order by order.
    ``min_count[n-1]`` is the smallest raw count an n-gram of order n keeps."""
    order = len(raw)
    adjusted = adjusted_counts(raw)
    grams: list[dict[str, tuple[float, float | None]]] = []
    vocab = len(adjusted[0]) + 1  # with <unk>
    for n in range(1, order + 1):
        table, (d1, d2, d3) = adjusted[n - 1], discounts(adjusted[n - 1])
        lower = CharLM(*_tables(grams), order=max(n - 1, 1), unk=math.log(1.0 / vocab)) if n > 1 else None
        probs: dict[str, float] = {}
        for context, members in _by_context(table).items():
            counts = [table[g] for g in members]
            total = float(sum(counts))
            gamma = (
                d1 * sum(c == 1 for c in counts) + d2 * sum(c == 2 for c in counts) + d3 * sum(c >= 3 for c in counts)
            ) / total
            for gram, c in zip(members, counts):
                below = lower.logp(context[1:], gram[-1]) if lower else -math.log(vocab)
                d = d1 if c == 1 else d2 if c == 2 else d3
                probs[gram] = math.log(max(c - d, 0.0) / total + gamma * math.exp(below))
            if n == 1:
                probs["<unk>"] = math.log(gamma / vocab)
        kept = {g: p for g, p in probs.items() if g == "<unk>" or raw[n - 1][g] >= min_count[n - 1]}
        grams.append({g: (p, None) for g, p in kept.items()})
        if n > 1:
            _set_backoffs(grams, lower, n)
    if order > 1:  # <s> is a context, never predicted
        bos_bow = grams[0].get(BOS, (0.0, 0.0))[1]
        grams[0][BOS] = (-99.0 * math.log(10), bos_bow if bos_bow is not None else 0.0)
    return grams


def _tables(grams: list[dict[str, tuple[float, float | None]]]) -> tuple[dict, dict]:
    logp = {g: p for table in grams for g, (p, _) in table.items() if g != "<unk>"}
    backoff = {g: b for table in grams for g, (_, b) in table.items() if b is not None}
    return logp, backoff


def _set_backoffs(grams: list[dict], lower: CharLM, n: int) -> None:
    """The backoff weight of every context of order n-1, from what order n kept of its words:
    (1 - their probabilities here) / (1 - their probabilities one order down)."""
    here: dict[str, float] = defaultdict(float)
    down: dict[str, float] = defaultdict(float)
    for gram, (p, _) in grams[n - 1].items():
        context = gram[:-1]
        here[context] += math.exp(p)
        down[context] += math.exp(lower.logp(context[1:], gram[-1]))
    contexts = grams[n - 2]
    for context in here:
        left, right = max(1.0 - here[context], 1e-9), max(1.0 - down[context], 1e-9)
        p = contexts[context][0] if context in contexts else -99.0 * math.log(10)
        contexts[context] = (p, math.log(left / right))


def default_min_count(order: int) -> tuple[int, ...]:
    """Unigrams all kept; bigrams and trigrams seen twice; longer n-grams seen three times."""
    return tuple(1 if n == 1 else 2 if n <= 3 else 3 for n in range(1, order + 1))


def build(
    out: Path, order: int = 5, generated: int = 300_000, min_count: tuple[int, ...] | None = None, seed: int = 0
) -> dict:
    """Count, estimate, prune and write the model; returns what it did, for the command to print."""
    started = time.monotonic()
    lines = corpus_lines(generated, seed)
    chars = sum(len(line) for line in lines)
    raw = count_ngrams(lines, order)
    grams = estimate(raw, min_count or default_min_count(order))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_arpa(out, grams)
    return {
        "lines": len(lines),
        "chars": chars,
        "order": order,
        "ngrams": [len(g) for g in grams],
        "bytes": out.stat().st_size,
        "seconds": round(time.monotonic() - started, 1),
    }
