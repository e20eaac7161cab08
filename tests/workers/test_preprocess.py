import numpy as np
import pytest

from engine.modelpkg import ModelSpec
from engine.preprocess import binarize, pad_batch, prepare_line, target_width


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
