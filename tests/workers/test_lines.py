import numpy as np

from engine.lines import find_lines
from engine.preprocess import to_gray
from tests.conftest import render_lines


def gray_of(img):
    return to_gray(np.asarray(img))


def test_it_finds_each_line_in_reading_order():
    img = render_lines(["第一行文字", "second line 2", "第三行 333"])
    boxes = find_lines(gray_of(img))
    assert len(boxes) == 3
    tops = [b[1] for b in boxes]
    assert tops == sorted(tops)
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= img.width and 0 <= y0 < y1 <= img.height


def test_characters_with_gaps_stay_one_line():
    boxes = find_lines(gray_of(render_lines(["三二一 二三"])))
    assert len(boxes) == 1


def test_it_finds_light_text_on_dark_background():
    img = render_lines(["反色文字"])
    inverted = 255 - gray_of(img)
    assert len(find_lines(inverted)) == 1


def test_a_blank_image_has_no_lines():
    assert find_lines(np.full((100, 300), 255, np.uint8)) == []
    assert find_lines(np.full((100, 300), 30, np.uint8)) == []


def test_widely_separated_columns_become_separate_segments():
    img = render_lines(["名称" + " " * 40 + "金额"])
    boxes = find_lines(gray_of(img))
    assert len(boxes) == 2 and boxes[0][0] < boxes[1][0]


def test_it_measures_the_skew_that_levels_a_tilted_page():
    import pytest

    from engine.lines import estimate_skew, rotate_upright

    page = np.asarray(render_lines(["购买方名称：上海明远科技有限公司", "纳税人识别号：91310115MA1K4XYZ2Q"]))
    for tilt in (-6, -2.5, 0, 4):
        turned, _ = rotate_upright(page, tilt)
        assert estimate_skew(gray_of(turned)) == pytest.approx(-tilt, abs=0.3)


def test_boxes_found_upright_map_back_inside_the_original_image():
    from engine.lines import box_in_original, rotate_upright

    page = np.asarray(render_lines(["第一行", "第二行"]))
    h, w = page.shape[:2]
    turned, rotation = rotate_upright(page, 5)
    for box in find_lines(gray_of(turned)):
        x0, y0, x1, y1 = box_in_original(box, rotation, w, h)
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
