import numpy as np
import pytest

from distill.augment import PHOTO_PIPELINE, PIPELINE, camera_resolution, defocus, degrade, shadow


def text_like(seed: int, h: int = 40, w: int = 240) -> np.ndarray:
    """Dark strokes on a light page: sharp edges in both directions."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 230, np.uint8)
    for _ in range(30):
        y, x = int(rng.integers(4, h - 8)), int(rng.integers(2, w - 10))
        if rng.random() < 0.5:
            img[y : y + 2, x : x + 8] = 20
        else:
            img[y - 3 : y + 5, x : x + 2] = 20
    return img


@pytest.mark.parametrize(
    "step", list(dict.fromkeys(fn for fn, _ in PIPELINE + PHOTO_PIPELINE)), ids=lambda fn: fn.__name__
)
def test_every_step_returns_a_grayscale_line_of_the_same_size(step):
    for seed in range(5):
        img = text_like(seed)
        out = step(img.copy(), np.random.default_rng(seed))
        assert out.dtype == np.uint8 and out.shape == img.shape


def test_strength_zero_or_an_empty_pipeline_leaves_the_line_alone():
    img = text_like(1)
    assert (degrade(img.copy(), np.random.default_rng(0), strength=0.0) == img).all()
    assert (degrade(img.copy(), np.random.default_rng(0), strength=1.0, pipeline=()) == img).all()


def test_a_shadow_changes_the_light_not_the_sharpness_of_the_text():
    shaded = 0
    for seed in range(20):
        img = text_like(seed)
        out = shadow(img.copy(), np.random.default_rng(seed))
        gain = out.astype(np.float32) / img.astype(np.float32)
        # one gain per column: every pixel of a column (ink or paper) is scaled alike, so no
        # stroke is smeared into its neighbours
        assert (gain.max(axis=0) - gain.min(axis=0)).max() < 0.06
        assert gain.min() >= 0.44 and gain.max() <= 1.0 + 1e-6
        shaded += gain.min() < 0.85
    assert shaded >= 10  # and it does shade a band of most lines


def test_the_camera_sees_a_line_12_to_16_px_high_and_defocus_scales_with_the_height():
    img = text_like(3, h=64, w=400)
    for seed in range(6):
        out = camera_resolution(img.copy(), np.random.default_rng(seed))
        # the fine strokes are gone: 2 px strokes at 64 px survive a 12-16 px line only as grey
        assert out.shape == img.shape and out.min() > img.min()
    sharp = np.abs(np.diff(img.astype(np.int32), axis=1)).max()
    blurred = defocus(img.copy(), np.random.default_rng(0))
    assert np.abs(np.diff(blurred.astype(np.int32), axis=1)).max() < sharp / 3
