import numpy as np
import pytest

from engine.modelpkg import ModelSpec
from engine.preprocess import SHARPEN_BELOW, binarize, pad_batch, prepare_line, sharpen_blurred, sharpness, target_width


def spec(**kw) -> ModelSpec:
    base = dict(
        name="t",
        classes=("", "a", "b"),
        blank_index=0,
        input_height=32,
        input_channels=1,
        color_order="GRAY",
        norm_mean=(0.5,),
        norm_std=(0.5,),
        min_width=16,
        width_multiple=4,
        max_width=400,
        pad_pixel=255.0,
    )
    base.update(kw)
    return ModelSpec(**base)


def test_it_scales_to_the_model_height_keeping_the_aspect_ratio():
    line = np.full((64, 300, 3), 255, np.uint8)
    out = prepare_line(line, spec())
    assert out.shape == (1, 32, 152)  # 150 rounded up to the stride of 4


@pytest.mark.parametrize("width,expected", [(2, 16), (100, 52), (5000, 400)])
def test_it_clamps_widths_and_rounds_to_the_stride(width, expected):
    assert target_width(width, 64, spec()) == expected


def test_it_normalises_pixels_as_the_metadata_says():
    line = np.zeros((32, 32, 3), np.uint8)
    line[:, :16] = 255
    out = prepare_line(line, spec())
    assert out[0, 0, 0] == pytest.approx(1.0)
    assert out[0, 0, 20] == pytest.approx(-1.0)


def test_it_feeds_three_channel_models_in_their_colour_order():
    line = np.zeros((32, 32, 3), np.uint8)
    line[..., 0] = 255  # red in RGB
    out = prepare_line(line, spec(input_channels=3, color_order="BGR", norm_mean=(0, 0, 0), norm_std=(1, 1, 1)))
    assert out.shape[0] == 3
    assert out[2].mean() == pytest.approx(1.0) and out[0].mean() == pytest.approx(0.0)


def test_pad_batch_pads_with_the_models_pad_pixel():
    s = spec()
    a = np.zeros((1, 32, 16), np.float32)
    b = np.zeros((1, 32, 24), np.float32)
    batch = pad_batch([a, b], s)
    assert batch.shape == (2, 1, 32, 24)
    assert batch[0, 0, 0, 20] == pytest.approx(1.0)  # white, normalised


def test_binarize_gives_black_and_white_only():
    gray = (np.random.default_rng(0).random((40, 80)) * 255).astype(np.uint8)
    assert set(np.unique(binarize(gray))) <= {0, 255}


def printed_line(blur: float = 0.0) -> np.ndarray:
    """Dark text on light paper at a recogniser's height (48 px), optionally out of focus."""
    import cv2

    line = np.full((48, 320, 3), 235, np.uint8)
    cv2.putText(line, "Invoice 2026-12", (8, 36), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (30, 30, 30), 2, cv2.LINE_AA)
    return cv2.GaussianBlur(line, (0, 0), blur) if blur else line


def test_sharpness_tells_a_crisp_line_from_one_out_of_focus():
    import cv2

    def score(line):
        return sharpness(cv2.cvtColor(line, cv2.COLOR_RGB2GRAY))

    assert score(printed_line()) > SHARPEN_BELOW + 0.5
    assert score(printed_line(blur=1.0)) > SHARPEN_BELOW + 0.5  # a touch of blur is left alone
    assert score(printed_line(blur=4.0)) < SHARPEN_BELOW - 0.3
    assert sharpness(np.full((48, 100), 200, np.uint8)) == float("inf")  # no contrast: nothing to judge


def test_only_a_blurred_line_is_sharpened_and_it_comes_out_steeper():
    import cv2

    crisp, blurred = printed_line(), printed_line(blur=4.0)
    assert np.array_equal(sharpen_blurred(crisp), crisp)
    out = sharpen_blurred(blurred)
    assert out.shape == blurred.shape and out.dtype == np.uint8
    gray = cv2.cvtColor(blurred, cv2.COLOR_RGB2GRAY)
    assert sharpness(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)) > sharpness(gray) + 0.2
    # the unsharp mask darkens the strokes and lightens the paper beside them, never the reverse
    dark = gray < 120
    assert out[dark].mean() < blurred[dark].mean() and out[~dark].mean() >= blurred[~dark].mean() - 1


def test_prepare_line_sharpens_only_when_asked_and_never_a_binarised_line():
    blurred = printed_line(blur=4.0)
    s = spec(input_height=48)
    assert not np.allclose(prepare_line(blurred, s, sharpen=True), prepare_line(blurred, s))
    assert np.array_equal(prepare_line(printed_line(), s, sharpen=True), prepare_line(printed_line(), s))
    assert np.array_equal(prepare_line(blurred, s, True, sharpen=True), prepare_line(blurred, s, True))


def test_the_percentiles_are_numpys():
    from engine.preprocess import _percentile

    rng = np.random.default_rng(3)
    for values in (rng.integers(0, 256, (48, 301)).astype(np.uint8), rng.random((7, 13), np.float32), np.array([5.0])):
        for q in (5, 95, 99):
            assert _percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-6, abs=1e-6)


def test_a_colour_model_gets_the_same_sharpening_in_its_own_channel_order():
    blurred = printed_line(blur=4.0)
    blurred[..., 0] = np.clip(blurred[..., 0].astype(int) + 12, 0, 255)  # a tinted page: channels differ
    s = spec(input_height=48, input_channels=3, color_order="BGR", norm_mean=(0, 0, 0), norm_std=(1, 1, 1))
    out = prepare_line(blurred, s, sharpen=True)
    expected = sharpen_blurred(blurred)[:, :, ::-1]  # sharpened as RGB, then in the model's order
    assert np.abs(out[:, :, :320].transpose(1, 2, 0) * 255 - expected).max() <= 1
