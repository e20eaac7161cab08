"""The pages of an answer, and the words of its lines as the exports write them.

An answer's lines carry a ``box`` (and a ``polygon`` where the detector found them), their
characters with a ``box`` each, and for a PDF a ``page``. A *word* is what the exports place as
one piece: a run of characters between spaces, except that every Chinese, Japanese or Korean
character (and full-width punctuation) is a word of its own, since those scripts put no space
between words and search tools expect each character to be findable where it stands.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, field, replace

import numpy as np

from ..ctc import line_confidence


@dataclass(frozen=True)
class Page:
    number: int  # 1-based
    width: int  # pixels: the image's, or a PDF page's at the resolution it was read at
    height: int
    lines: list[dict] = field(default_factory=list)
    source: str = "ocr"  # "text_layer": a PDF page whose own text was taken


@dataclass(frozen=True)
class Word:
    text: str
    box: tuple[int, int, int, int]
    confidence: float | None
    chars: tuple[dict, ...] = ()  # the answer's characters (text, confidence, box)
    space_after: bool = False  # whether the line's text has a space after it


def pages_of(lines: list[dict], sizes: dict[int, tuple[int, int]], sources: dict[int, str] | None = None) -> list[Page]:
    """The answer's lines sorted onto their pages (a line without ``page`` is on page 1), one
    ``Page`` per size given (pages without lines included), in page order."""
    sources = sources or {}
    by_page: dict[int, list[dict]] = {n: [] for n in sizes}
    for line in lines:
        by_page.setdefault(int(line.get("page", 1)), []).append(line)
    out = []
    for number in sorted(by_page):
        width, height = sizes.get(number) or _extent(by_page[number])
        out.append(Page(number, width, height, by_page[number], sources.get(number, "ocr")))
    return out


def _extent(lines: list[dict]) -> tuple[int, int]:
    """A page size that holds every line (for a page whose size is not known)."""
    return max([1] + [line["box"][2] for line in lines]), max([1] + [line["box"][3] for line in lines])


def is_wide(char: str) -> bool:
    """A character of the scripts that write words without spaces (wide or full-width)."""
    return unicodedata.east_asian_width(char) in ("W", "F")


def _union(boxes) -> tuple[int, int, int, int]:
    boxes = list(boxes)
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def words_of(line: dict) -> list[Word]:
    """The line's words (see the module's docstring). A line whose characters carry no boxes (a
    line its owner corrected, a PDF's own text) is one word over the line's box."""
    chars = line.get("chars") or []
    text = line.get("text", "")
    if not chars or "".join(c["text"] for c in chars) != text or any("box" not in c for c in chars):
        stripped = text.strip()
        return [Word(stripped, tuple(line["box"]), line.get("confidence"))] if stripped else []
    words, run = [], []

    def flush():
        if run:  # a word's confidence as a line's: the geometric mean of its characters'
            conf = line_confidence(np.array([c["confidence"] for c in run], dtype=np.float64))
            words.append(Word("".join(c["text"] for c in run), _union(c["box"] for c in run), conf, tuple(run)))
            run.clear()

    for char in chars:
        if char["text"].isspace():
            flush()
            if words and not words[-1].space_after:
                words[-1] = replace(words[-1], space_after=True)
        elif is_wide(char["text"]):
            flush()
            run.append(char)
            flush()
        else:
            run.append(char)
    flush()
    return words


def line_angle(line: dict) -> float:
    """The line's angle in degrees, counter-clockwise as hOCR's ``textangle`` counts, from its
    polygon's top edge (0 without one); a vertical line reads down its column: 270."""
    if line.get("vertical"):
        return 270.0
    poly = line.get("polygon")
    if not poly:
        return 0.0
    (x0, y0), (x1, y1) = poly[0], poly[1]
    return -math.degrees(math.atan2(y1 - y0, x1 - x0)) % 360.0


def plain_text(pages: list[Page]) -> str:
    """The lines in reading order, one per line of text, pages parted by a form feed."""
    return "\f".join("".join(line["text"] + "\n" for line in page.lines) for page in pages)
