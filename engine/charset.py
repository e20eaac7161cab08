"""The recogniser's character set: loaded from ``charset.txt`` in one place.

Class 0 is the CTC blank (the empty string, as the model package contract
requires); class ``i`` for ``i >= 1`` is line ``i`` of the non-comment lines of
``charset.txt``. Labels are NFKC-normalised before they are encoded, so
full-width digits, letters and punctuation become their ASCII forms.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CHARSET_FILE = Path(__file__).with_name("charset.txt")
SPACE_TOKEN = "<space>"
BLANK = ""


def normalize(text: str) -> str:
    """The label normalisation used for training and evaluation (NFKC)."""
    return unicodedata.normalize("NFKC", text)


@dataclass(frozen=True)
class Charset:
    classes: tuple[str, ...]  # classes[0] is the blank

    @property
    def blank_index(self) -> int:
        return 0

    @property
    def chars(self) -> tuple[str, ...]:
        return self.classes[1:]

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def index(self) -> dict[str, int]:
        return _index(self.classes)

    def covers(self, text: str) -> bool:
        idx = self.index
        return all(c in idx for c in normalize(text))

    def encode(self, text: str) -> list[int]:
        """Class ids of a label; raises KeyError naming an unknown character."""
        idx = self.index
        out = []
        for c in normalize(text):
            if c not in idx:
                raise KeyError(f"character {c!r} (U+{ord(c):04X}) is not in the charset")
            out.append(idx[c])
        return out

    def decode(self, ids) -> str:
        return "".join(self.classes[i] for i in ids)


@lru_cache(maxsize=4)
def _index(classes: tuple[str, ...]) -> dict[str, int]:
    return {c: i for i, c in enumerate(classes) if i != 0}


def read_charset_file(path: Path) -> tuple[str, ...]:
    chars = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line == "" or (len(line) > 1 and line.startswith("#")):
            continue
        chars.append(" " if line == SPACE_TOKEN else line)
    if any(len(c) != 1 for c in chars):
        raise ValueError(f"{path}: every entry must be a single character")
    if len(set(chars)) != len(chars):
        raise ValueError(f"{path}: duplicate characters")
    return tuple(chars)


@lru_cache(maxsize=1)
def load_charset() -> Charset:
    return Charset(classes=(BLANK, *read_charset_file(CHARSET_FILE)))
