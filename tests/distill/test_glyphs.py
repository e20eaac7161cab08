"""New lines from a dataset's own glyphs: the forced CTC alignment finds where each character of a
label is read, the cuts fall between the characters' ink, and a new line is pieces of the
dataset's lines whose label is the pieces' labels in order (distill/glyphs.py)."""

import numpy as np
import pytest

from distill.glyphs import GlyphBank, char_cuts, content_width, forced_path

PITCH, STRIDE, H = 32, 8, 24  # a character every 32 px (4 frames)


def synthetic_line(labels, peak_frame=1, paper=230, k=4, blank_p=0.9):
    """A line whose character ``c`` is a block of ink ``4 + c`` px wide in a cell of 32 px, and a
    top-k distribution that reads each character at frame ``peak_frame`` of its 4, blank elsewhere."""
    width = PITCH * len(labels)
    gray = np.full((H, width), paper, np.uint8)
    frames = width // STRIDE
    top_idx = np.zeros((frames, k), np.int32)
    top_p = np.zeros((frames, k), np.float32)
    top_idx[:, 1:] = [[90, 91, 92]]  # characters no line holds
    top_p[:] = [blank_p, 0.05, 0.03, 0.02]
    for i, c in enumerate(labels):
        gray[4:20, i * PITCH + 6 : i * PITCH + 10 + c] = 40
        t = i * (PITCH // STRIDE) + peak_frame
        top_idx[t] = [c, 0, 90, 91]
        top_p[t] = [0.9, 0.06, 0.02, 0.02]
    return gray, top_idx, top_p


def test_the_forced_path_emits_each_character_once_where_it_is_read_even_twice_in_a_row():
    labels = [3, 5, 5, 7]
    _, top_idx, top_p = synthetic_line(labels)
    path = forced_path(top_idx, top_p, labels)
    assert path.shape == (16,)
    for i in range(4):
        assert np.flatnonzero(path == i).tolist() == [4 * i + 1]
    assert (path[path < 0] == -1).all()
    # a label the distribution does not read still aligns (at the floor), in order
    other = forced_path(top_idx, top_p, [8, 9])
    first, second = np.flatnonzero(other == 0), np.flatnonzero(other == 1)
    assert first.size and second.size and first.max() < second.min()
    # "55" needs a blank between the two: 2 frames cannot read it, 3 can
    assert forced_path(top_idx[:2], top_p[:2], [5, 5]) is None
    assert forced_path(top_idx[:3], top_p[:3], [5, 5]) is not None


@pytest.mark.parametrize("peak_frame", [0, 1, 3])
def test_cuts_fall_between_the_characters_ink_wherever_in_the_glyph_the_model_reads_it(peak_frame):
    labels = [3, 5, 7, 9, 11]
    gray, top_idx, top_p = synthetic_line(labels, peak_frame=peak_frame)
    cuts = char_cuts(gray, top_idx, top_p, labels)
    assert len(cuts) == len(labels) + 1 and (np.diff(cuts) > 0).all()
    for i, c in enumerate(labels):  # the whole of this glyph and nothing of its neighbours
        assert cuts[i] <= i * PITCH + 6 and cuts[i + 1] >= i * PITCH + 10 + c
        assert i == 0 or cuts[i] >= (i - 1) * PITCH + 10 + labels[i - 1]
    assert cuts[-1] <= len(labels) * PITCH


def test_the_right_end_stops_at_the_models_padding():
    labels = [3, 5]
    gray, top_idx, top_p = synthetic_line(labels)
    padded = np.hstack([gray, np.full((H, 40), 255, np.uint8)])
    frames = padded.shape[1] // STRIDE
    idx = np.vstack([top_idx, np.tile(top_idx[:1], (frames - len(top_idx), 1))])
    p = np.vstack([top_p, np.tile(top_p[:1], (frames - len(top_p), 1))])
    assert content_width(padded) == gray.shape[1]
    assert char_cuts(padded, idx, p, labels)[-1] <= gray.shape[1]


def test_a_new_line_is_pieces_of_the_datasets_lines_with_their_labels_in_order_on_one_paper():
    rng = np.random.default_rng(0)
    lines, papers = [], [230, 200, 245]
    for paper in papers:
        labels = [int(c) for c in rng.integers(2, 20, size=6)]
        lines.append((*synthetic_line(labels, paper=paper), labels))
    bank = GlyphBank([(g, labels, idx, p) for g, idx, p, labels in lines], space=None, max_piece=3)
    assert len(bank) == 3
    seen_pieces = set()
    for k in range(20):
        image, labels = bank.line(np.random.default_rng(k), 8)
        assert len(labels) >= 8 and image.shape[0] == H
        # reading the new line's ink blocks left to right gives its label back
        cols = image.min(axis=0)
        paper = int(np.median(image))
        assert (image[:, cols > paper - 10] == paper).all()  # one shade of paper
        inked = np.concatenate([[0], (cols < paper - 10).astype(np.int8), [0]])
        starts, ends = np.flatnonzero(np.diff(inked) == 1), np.flatnonzero(np.diff(inked) == -1)
        assert (ends - starts - 4).tolist() == labels
        seen_pieces.add(tuple(labels[:3]))
    assert len(seen_pieces) > 10  # new lines, not the dataset's again


def test_pieces_neither_start_nor_end_with_a_space():
    space = 1
    labels = [3, space, 5, space, 7, space, 9]
    gray, idx, p = synthetic_line(labels)
    for i in (1, 3, 5):
        gray[:, PITCH * i : PITCH * (i + 1)] = 230  # spaces carry no ink
    bank = GlyphBank([(gray, labels, idx, p)], space=space, max_piece=3)
    assert len(bank) == 1
    for k in range(30):
        _, new = bank.line(np.random.default_rng(k), 6)
        assert new[0] != space and new[-1] != space
        assert all(not (a == b == space) for a, b in zip(new[:-1], new[1:], strict=True))
