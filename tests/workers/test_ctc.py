import numpy as np
import pytest

from workers.ctc import greedy_decode, to_probs

CLASSES = ("", "a", "b", "c")


def one_hot(path: list[int], conf: float = 0.9) -> np.ndarray:
    probs = np.full((len(path), len(CLASSES)), (1 - conf) / (len(CLASSES) - 1), np.float32)
    probs[np.arange(len(path)), path] = conf
    return probs


def test_it_merges_repeats_and_drops_blanks():
    assert greedy_decode(one_hot([1, 1, 0, 1, 2, 2, 0, 0, 3]), CLASSES, 0)[0] == "aabc"


def test_a_repeat_without_blank_between_is_one_character():
    assert greedy_decode(one_hot([2, 2, 2]), CLASSES, 0)[0] == "b"


def test_it_honours_the_blank_index_from_metadata():
    classes = ("a", "b", "")
    assert greedy_decode(one_hot([0, 2, 0, 1]), classes, 2)[0] == "aab"


def test_confidence_is_the_mean_probability_of_emitted_steps():
    probs = one_hot([1, 0, 2])
    probs[2] = [0.1, 0.1, 0.6, 0.2]
    text, conf = greedy_decode(probs, CLASSES, 0)
    assert text == "ab" and conf == pytest.approx((0.9 + 0.6) / 2)


def test_all_blank_gives_empty_text():
    assert greedy_decode(one_hot([0, 0, 0]), CLASSES, 0)[0] == ""


@pytest.mark.parametrize("kind", ["logits", "log_probs", "probs"])
def test_to_probs_normalises_each_output_kind(kind):
    p = np.array([[0.7, 0.2, 0.1]], np.float32)
    raw = {"probs": p, "log_probs": np.log(p), "logits": np.log(p) + 3.0}[kind]
    assert np.allclose(to_probs(raw, kind), p, atol=1e-6)
