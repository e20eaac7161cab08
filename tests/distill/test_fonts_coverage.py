"""A face covers a text only where every glyph draws ink: a cmap may map a code point to an empty
glyph, which renders as nothing, and a label must not hold what the line does not show
(distill/fonts.py ``coverage``; the brush domain's face and one training face do so)."""

import numpy as np
import pytest
from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen
from PIL import Image, ImageDraw, ImageFont

from distill.fonts import Face, coverage


@pytest.fixture(scope="module")
def half_blank_font(tmp_path_factory):
    """A TrueType face whose cmap maps "A" to a drawn square and "B" to an empty glyph."""
    path = tmp_path_factory.mktemp("font") / "half.ttf"
    names = [".notdef", "A", "B"]
    fb = FontBuilder(1000, isTTF=True)
    fb.setupGlyphOrder(names)
    fb.setupCharacterMap({ord("A"): "A", ord("B"): "B"})
    pen = TTGlyphPen(None)
    pen.moveTo((100, 0))
    pen.lineTo((100, 700))
    pen.lineTo((600, 700))
    pen.lineTo((600, 0))
    pen.closePath()
    fb.setupGlyf({".notdef": TTGlyphPen(None).glyph(), "A": pen.glyph(), "B": TTGlyphPen(None).glyph()})
    fb.setupHorizontalMetrics({n: (700, 0) for n in names})
    fb.setupHorizontalHeader(ascent=800, descent=-200)
    fb.setupNameTable({"familyName": "Half", "styleName": "Regular"})
    fb.setupOS2()
    fb.setupPost()
    fb.save(str(path))
    return str(path)


def _ink(path: str, text: str) -> int:
    image = Image.new("L", (200, 80), 0)
    ImageDraw.Draw(image).text((10, 10), text, font=ImageFont.truetype(path, 40), fill=255)
    return int(np.asarray(image).sum())


def test_a_glyph_counts_only_where_it_draws_ink(half_blank_font):
    assert _ink(half_blank_font, "A") > 0 and _ink(half_blank_font, "B") == 0  # "B" renders as nothing
    assert coverage(half_blank_font, 0) == frozenset({ord("A")})  # the cmap maps both
    face = Face(half_blank_font, 0, "Half", "Regular", "train", "test")
    assert face.covers("A A") and face.covers("A") and not face.covers("AB") and not face.covers("C")
