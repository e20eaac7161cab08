"""Synthetic pages carry each line's ink box where it lies in the final image (``Page.quads``):
the ground truth a detector learns from; the boxes change nothing else about a page."""

import itertools

import cv2
import numpy as np
import pytest

from distill.pages import layout_page, make_page, photographed, scanned


@pytest.mark.parametrize("capture", ["clean", "scan", "photo"])
def test_every_line_of_a_page_comes_with_a_box_around_its_ink(capture, faces, sentences):
    page = make_page(itertools.cycle(sentences), faces, seed=11, capture=capture, layout="columns")
    assert len(page.quads) == len(page.lines) > 10
    gray = cv2.cvtColor(page.image, cv2.COLOR_RGB2GRAY)
    ink = cv2.adaptiveThreshold(gray, 1, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 31, 25)
    boxes, text_area = np.zeros_like(ink), np.zeros_like(ink)
    for q in page.quads:
        assert q.shape == (4, 2) and (q >= 0).all() and (q < [gray.shape[1], gray.shape[0]]).all()
        one = cv2.fillPoly(np.zeros_like(ink), [np.round(q).astype(np.int32)], 1)
        assert ink[one > 0].mean() > 0.05  # each box holds ink
        boxes |= one
    hull = cv2.convexHull(np.concatenate(page.quads).astype(np.float32)).astype(np.int32)
    cv2.fillPoly(text_area, [hull], 1)
    near = cv2.dilate(boxes, np.ones((7, 7), np.uint8))
    # the page's ink lies in its boxes (a few pixels of blur and noise aside)
    assert (ink & text_area & (1 - near)).sum() < 0.01 * (ink & text_area).sum()


def test_a_photographed_pages_boxes_are_the_clean_ones_seen_in_perspective(faces, sentences):
    clean = make_page(itertools.cycle(sentences), faces, seed=5, capture="clean")
    photo = make_page(itertools.cycle(sentences), faces, seed=5, capture="photo")
    assert clean.lines == photo.lines
    src, dst = np.concatenate(clean.quads), np.concatenate(photo.quads)
    warp, _ = cv2.findHomography(src, dst, 0)
    assert np.abs(cv2.perspectiveTransform(src[None].astype(np.float64), warp)[0] - dst).max() < 0.05
    assert np.abs(src - dst).max() > 10  # and they did move


@pytest.mark.parametrize("capture,degrade", [("scan", scanned), ("photo", photographed)])
def test_the_boxes_leave_the_page_images_as_they_were(capture, degrade, faces, sentences):
    """A page's image is still what drawing and ``scanned`` / ``photographed`` give."""
    page = make_page(itertools.cycle(sentences), faces, seed=8, capture=capture, layout="form")
    rng = np.random.default_rng(8)
    drawn, lines, _ = layout_page(itertools.cycle(sentences), faces, rng, "form")
    assert np.array_equal(page.image, degrade(np.asarray(drawn), rng))
    assert page.lines == [t for t in lines if t.strip()]
