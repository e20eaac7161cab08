"""The out-of-distribution page suite's layouts (Pango breaks the lines; the page records them in
reading order) and its scoring."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from distill import ood_pages


@dataclass(frozen=True)
class AnyFace:
    family: str = "Noto Sans CJK SC"
    style: str = "Regular"

    def covers(self, text: str) -> bool:
        return True


def canvas(seed: int = 0) -> ood_pages.Canvas:
    return ood_pages.Canvas(AnyFace(), np.random.default_rng(seed))


def test_pango_breaks_a_paragraph_into_lines_that_join_back_to_it():
    c = canvas()
    text = "由于一些工具会假定最新版本总是在最顶端因此需要这样做。" * 4
    layout = c.layout(text, 24, width=300)
    lines = ood_pages.line_texts(layout, text)
    assert len(lines) > 2 and "".join(lines) == text


@pytest.mark.parametrize("layout", ood_pages.LAYOUTS)
def test_every_layout_records_its_lines_in_reading_order_and_draws_them(layout):
    c = canvas(7)
    ood_pages.DRAW[layout](c, ood_pages.Texts(c.face, c.rng))
    gray = c.gray()
    assert gray.shape == (ood_pages.PAGE_H, ood_pages.PAGE_W) and (gray < 128).mean() > 0.002
    assert len(c.lines) >= 5 and all(line.strip() for line in c.lines)
    if layout == "letter":  # the right-aligned date first, the signature's date last
        assert c.lines[0].endswith("日") and c.lines[-1].endswith("日") and "此致" in c.lines
    if layout == "receipt":  # each item, then its price
        prices = [k for k, line in enumerate(c.lines) if line.replace(".", "").isdigit()]
        assert prices and all(not c.lines[k - 1].replace(".", "").isdigit() for k in prices)


def test_the_same_seed_lays_out_the_same_page():
    first, second = canvas(3), canvas(3)
    for c in (first, second):
        ood_pages.article(c, ood_pages.Texts(c.face, c.rng))
    assert first.lines == second.lines


def test_pages_are_scored_in_reading_order_and_order_free():
    from distill import page_eval

    truth = ["第一行文字", "第二行内容"]
    assert page_eval.page_scores(truth, truth) == (0, 0, 10)
    ordered, free, chars = page_eval.page_scores(truth, truth[::-1])
    assert ordered > 0 and free == 0 and chars == 10
    ordered, free, _ = page_eval.page_scores(truth, ["第一行文学", "第二行内容"])
    assert ordered == free == 1
    # a line read in two pieces, the pieces out of place: order-free puts them back
    ordered, free, _ = page_eval.page_scores(truth, ["第二行内容", "第一行", "文字"])
    assert ordered > 0 and free == 0
