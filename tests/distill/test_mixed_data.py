"""Real labelled lines mixed into the synthetic training stream (uploaded datasets, corrections)."""

import numpy as np
import pytest

from distill.data import LabelledLines, MixedLines, write_labels
from engine.charset import load_charset


class Synthetic:
    def __len__(self):
        return 10

    def __getitem__(self, i):
        return np.zeros((32, 40), np.uint8), f"synthetic {i}"


@pytest.fixture
def labelled(tmp_path):
    import cv2

    items = []
    for i, text in enumerate(["真实发票", "☃ not in the charset", "上海"]):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((20, 60), 255, np.uint8))
        items.append((f"{i}.png", text))
    write_labels(tmp_path, items)
    return LabelledLines(tmp_path)


def test_every_nth_item_is_a_real_line_cycling_through_the_covered_ones(labelled):
    mixed = MixedLines(Synthetic(), labelled, load_charset(), share=0.5)
    texts = [mixed[i][1] for i in range(8)]
    assert texts[0::2] == ["真实发票", "上海", "真实发票", "上海"]
    assert texts[1::2] == ["synthetic 1", "synthetic 3", "synthetic 5", "synthetic 7"]
    assert mixed.dropped == 1 and len(mixed) == 10


def test_a_dataset_with_nothing_the_charset_covers_is_refused(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), np.full((20, 60), 255, np.uint8))
    write_labels(tmp_path, [("a.png", "☃☃")])
    with pytest.raises(ValueError, match="no line"):
        MixedLines(Synthetic(), LabelledLines(tmp_path), load_charset())


def test_one_line_in_ten_is_held_back_from_training_for_the_report(tmp_path):
    import cv2

    from distill.data import held_back

    items = [(f"lines/{i:04d}.png", f"第{i}行") for i in range(400)]
    (tmp_path / "lines").mkdir()
    for rel, _ in items[:40]:
        cv2.imwrite(str(tmp_path / rel), np.full((20, 60), 255, np.uint8))
    write_labels(tmp_path, items)
    back = [rel for rel, _ in items if held_back(rel)]
    assert 20 <= len(back) <= 60  # about one in ten, by path
    train = LabelledLines(tmp_path, split="train").items
    kept = LabelledLines(tmp_path, split="held_back").items
    assert {r for r, _ in kept} == set(back) and not {r for r, _ in train} & set(back)
    assert len(train) + len(kept) == len(LabelledLines(tmp_path).items) == 400
