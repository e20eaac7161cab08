import numpy as np
import pytest

from engine.ctc import best_path, greedy_decode, path_text, to_probs

CLASSES = ("", "a", "b", "c")


def one_hot(path: list[int], conf: float = 0.9) -> np.ndarray:
    probs = np.full((len(path), len(CLASSES)), (1 - conf) / (len(CLASSES) - 1), np.float32)
    probs[np.arange(len(path)), path] = conf
    return probs


def test_it_merges_repeats_and_drops_blanks():
    assert greedy_decode(one_hot([1, 1, 0, 1, 2, 2, 0, 0, 3]), CLASSES, 0)[0] == "aabc"


def test_a_best_path_reads_as_its_scores_do():
    path = [1, 1, 0, 1, 2, 2, 0, 0, 3]
    assert path_text(path, CLASSES, 0) == "aabc" == greedy_decode(one_hot(path), CLASSES, 0)[0]
    assert path_text(np.array([0, 2, 0, 1]), ("a", "b", ""), 2) == "aab"
    assert path_text([], CLASSES, 0) == "" and path_text([0, 0], CLASSES, 0) == ""


def test_a_repeat_without_blank_between_is_one_character():
    assert greedy_decode(one_hot([2, 2, 2]), CLASSES, 0)[0] == "b"


def test_it_honours_the_blank_index_from_metadata():
    classes = ("a", "b", "")
    assert greedy_decode(one_hot([0, 2, 0, 1]), classes, 2)[0] == "aab"


def test_confidence_is_the_geometric_mean_of_each_characters_peak():
    probs = one_hot([1, 1, 0, 2])
    probs[0] = [0.2, 0.5, 0.2, 0.1]  # "a" is weak on its first step, 0.9 on its second
    probs[3] = [0.1, 0.1, 0.6, 0.2]
    text, conf = greedy_decode(probs, CLASSES, 0)
    assert text == "ab" and conf == pytest.approx((0.9 * 0.6) ** 0.5)


def test_one_doubtful_character_pulls_the_confidence_down():
    sure = one_hot([1, 0, 2, 0, 3, 0, 1, 0, 2], conf=0.95)
    doubtful = sure.copy()
    doubtful[8] = [0.3, 0.1, 0.35, 0.25]
    _, high = greedy_decode(sure, CLASSES, 0)
    text, low = greedy_decode(doubtful, CLASSES, 0)
    # (0.95^4 x 0.35)^(1/5) = 0.78, where the mean over characters would say 0.83
    assert text == "abcab" and high == pytest.approx(0.95) and low == pytest.approx(0.778, abs=1e-3)


def test_all_blank_gives_empty_text():
    assert greedy_decode(one_hot([0, 0, 0]), CLASSES, 0)[0] == ""


@pytest.mark.parametrize("kind", ["logits", "log_probs", "probs"])
def test_to_probs_normalises_each_output_kind(kind):
    p = np.array([[0.7, 0.2, 0.1]], np.float32)
    raw = {"probs": p, "log_probs": np.log(p), "logits": np.log(p) + 3.0}[kind]
    assert np.allclose(to_probs(raw, kind), p, atol=1e-6)


def penalised(probs: np.ndarray, penalty: float) -> np.ndarray:
    """What the model emits once its blank logit is lowered by ``penalty`` (renormalised)."""
    logits = np.log(probs)
    logits[:, 0] -= penalty
    return to_probs(logits, "logits")


# "a", then a step where the blank narrowly beats "a" (0.55 against 0.45), then "a" again:
# a doubled "aa". The second "b" step is one where the blank narrowly beats "b": a dropped "b".
DOUBLE = (
    np.array(
        [
            [0.05, 0.90, 0.03, 0.02],
            [0.55, 0.45, 0.00, 0.00],
            [0.05, 0.90, 0.03, 0.02],
            [0.90, 0.04, 0.03, 0.03],
            [0.60, 0.00, 0.40, 0.00],
            [0.90, 0.04, 0.03, 0.03],
        ]
    )
    + 1e-6
)


def test_a_blank_penalty_recovers_a_dropped_character_but_keeps_a_double_apart():
    assert greedy_decode(DOUBLE, CLASSES, 0)[0] == "aa"  # the model as trained: "b" is dropped
    shifted = penalised(DOUBLE, 1.0)
    # decoded as if no penalty had been applied, the blank step fills and the double merges
    assert greedy_decode(shifted, CLASSES, 0)[0] == "ab"
    # told the penalty, the decoder keeps the blank that separated the double
    assert greedy_decode(shifted, CLASSES, 0, blank_penalty=1.0)[0] == "aab"


def test_a_penalty_never_splits_a_run_the_character_won_outright():
    probs = one_hot([1, 1, 1, 0, 2])
    assert greedy_decode(penalised(probs, 2.0), CLASSES, 0, blank_penalty=2.0)[0] == "ab"


@pytest.mark.parametrize("kind", ["logits", "log_probs"])
def test_best_path_agrees_in_the_log_domain(kind):
    shifted = penalised(DOUBLE, 1.0)
    raw = np.log(shifted) + (3.0 if kind == "logits" else 0.0)
    np.testing.assert_array_equal(best_path(raw, 0, 1.0, log_domain=True), best_path(shifted, 0, 1.0, log_domain=False))


@pytest.mark.parametrize("kind", ["logits", "log_probs"])
def test_greedy_decode_reads_every_output_kind_alike(kind):
    shifted = penalised(DOUBLE, 1.0)
    raw = np.log(shifted) + (3.0 if kind == "logits" else 0.0)
    text, conf = greedy_decode(raw, CLASSES, 0, 1.0, kind)
    expected_text, expected_conf = greedy_decode(shifted, CLASSES, 0, 1.0)
    assert text == expected_text == "aab" and conf == pytest.approx(expected_conf, rel=1e-5)
