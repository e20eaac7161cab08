"""A character n-gram language model for the decoder: loaded from an ARPA file, queried per character.

The model is what ``python -m distill lm`` builds (interpolated modified Kneser-Ney over
characters, pruned): a standard ARPA file, gzipped, whose tokens are single characters of
NFKC-normalised text, with ``<s>``/``</s>`` for the line's ends and ``<unk>`` for the rest.
Any tool that reads ARPA can read it, and any ARPA character model of the same kind serves.

Why not KenLM: its Python module builds from source only (no wheels), and the decoder asks
for a few hundred scores per doubtful line, which a dictionary lookup per order answers in
about a microsecond each in pure Python (docs/serving.md gives the measured cost per line).
"""

from __future__ import annotations

import gzip
import math
import unicodedata
from pathlib import Path

LN10 = math.log(10.0)
BOS, EOS = "\x02", "\x03"  # how <s> and </s> are held inside context strings
# ARPA separates tokens by spaces, so the space character is written as <sp>
_TOKENS = {"<s>": BOS, "</s>": EOS, "<sp>": " "}


def lm_text(text: str) -> str:
    """Text as the model reads it: NFKC, runs of white space as one space."""
    text = unicodedata.normalize("NFKC", text)
    return " ".join(text.split()) if any(c.isspace() for c in text) else text


class CharLM:
    """``logp(context, char)``: the natural log probability of ``char`` after ``context`` (a string
    of at most ``order - 1`` characters, starting with ``BOS`` at the line's start)."""

    def __init__(
        self, logp: dict[str, float], backoff: dict[str, float], order: int, unk: float, sha256: str = ""
    ) -> None:
        self._logp = logp
        self._backoff = backoff
        self.order = order
        self.unk = unk
        self.sha256 = sha256

    @classmethod
    def load(cls, path: str | Path) -> CharLM:
        import hashlib

        raw = Path(path).read_bytes()
        text = gzip.decompress(raw).decode("utf-8") if raw[:2] == b"\x1f\x8b" else raw.decode("utf-8")
        logp, backoff, order = _parse_arpa(text)
        unk = logp.pop("<unk>", -100.0)
        return cls(logp, backoff, order, unk, sha256=hashlib.sha256(raw).hexdigest())

    def logp(self, context: str, char: str) -> float:
        context = context[len(context) - self.order + 1 :] if len(context) >= self.order else context
        penalty = 0.0
        while True:
            found = self._logp.get(context + char)
            if found is not None:
                return penalty + found
            if not context:
                return penalty + self.unk
            penalty += self._backoff.get(context, 0.0)
            context = context[1:]

    def score(self, text: str, bos: bool = True, eos: bool = True) -> float:
        """The log probability of a whole line (``lm_text`` form)."""
        context, total = BOS if bos else "", 0.0
        for c in text:
            total += self.logp(context, c)
            context = (context + c)[-(self.order - 1) :]
        return total + (self.logp(context, EOS) if eos else 0.0)


def _gram(tokens: list[str]) -> str:
    return "".join(_TOKENS.get(t, t) for t in tokens)


def _parse_arpa(text: str) -> tuple[dict[str, float], dict[str, float], int]:
    logp: dict[str, float] = {}
    backoff: dict[str, float] = {}
    order, n = 0, 0
    for line in text.splitlines():
        if not line or line.startswith("ngram ") or line in ("\\data\\", "\\end\\"):
            continue
        if line.startswith("\\") and line.endswith("-grams:"):
            n = int(line[1 : line.index("-")])
            order = max(order, n)
            continue
        parts = line.split()
        if n == 0 or len(parts) < n + 1:
            continue
        tokens = parts[1 : n + 1]
        key = "<unk>" if tokens == ["<unk>"] else _gram(tokens)
        logp[key] = float(parts[0]) * LN10
        if len(parts) > n + 1:
            backoff[key] = float(parts[n + 1]) * LN10
    if not order:
        raise ValueError("not an ARPA language model")
    return logp, backoff, order


def write_arpa(path: str | Path, grams: list[dict[str, tuple[float, float | None]]]) -> None:
    """Write ``grams`` (one dict per order, n-gram string -> (natural log prob, natural log backoff or
    None)) as a gzipped ARPA file (log10, tokens separated by spaces)."""
    names = {v: k for k, v in _TOKENS.items()}

    def tokens(gram: str) -> str:
        return gram if gram == "<unk>" else " ".join(names.get(c, c) for c in gram)

    out = ["\\data\\"] + [f"ngram {n + 1}={len(g)}" for n, g in enumerate(grams)] + [""]
    for n, table in enumerate(grams):
        out.append(f"\\{n + 1}-grams:")
        for gram in sorted(table):
            lp, bo = table[gram]
            row = f"{lp / LN10:.5f}\t{tokens(gram)}"
            out.append(row + (f"\t{bo / LN10:.5f}" if bo is not None else ""))
        out.append("")
    out.append("\\end\\")
    with gzip.GzipFile(path, "wb", mtime=0) as fh:
        fh.write(("\n".join(out) + "\n").encode("utf-8"))
