import numpy as np
import pytest

from distill.augment import PIPELINE, degrade, shadow


def text_like(seed: int, h: int = 40, w: int = 240) -> np.ndarray:
    """Dark strokes on a light page: sharp edges in both directions."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 230, np.uint8)
    for _ in range(30):
        y, x = int(rng.integers(4, h - 8)), int(rng.integers(2, w - 10))
        if rng.random() < 0.5:
            img[y:y + 2, x:x + 8] = 20
        else:
            img[y - 3:y + 5, x:x + 2] = 20
    return img


@pytest.mark.parametrize("step", [fn for fn, _ in PIPELINE], ids=lambda fn: fn.__name__)
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
