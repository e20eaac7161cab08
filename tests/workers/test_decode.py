import io

import numpy as np
import pytest
from PIL import Image

from engine.images import ImageError, ImageLimits, decode_image, inspect_image
from tests.conftest import png_bytes

LIMITS = ImageLimits(max_bytes=2_000_000, max_pixels=4_000_000, min_side=8)


def decode_error(data: bytes, limits: ImageLimits = LIMITS) -> ImageError:
    with pytest.raises(ImageError) as info:
        decode_image(data, limits)
    return info.value


def test_it_decodes_a_png_to_rgb():
    img = Image.new("RGB", (40, 20), (10, 200, 30))
    arr = decode_image(png_bytes(img), LIMITS)
    assert arr.shape == (20, 40, 3) and arr.dtype == np.uint8
    assert tuple(arr[5, 5]) == (10, 200, 30)


def test_it_rejects_bytes_that_are_not_an_image():
    err = decode_error(b"%PDF-1.4 definitely not pixels")
    assert (err.code, err.status) == ("not_an_image", 400)


def test_it_rejects_empty_input():
    assert decode_error(b"").code == "missing_image"


def test_it_rejects_truncated_png():
    data = png_bytes(Image.effect_noise((200, 200), 64).convert("RGB"))
    err = decode_error(data[: len(data) // 2])
    assert (err.code, err.status) == ("truncated_image", 400)


def test_it_rejects_truncated_jpeg():
    data = png_bytes(Image.effect_noise((300, 300), 64).convert("RGB"), "JPEG")
    assert decode_error(data[: len(data) // 3]).code == "truncated_image"


def test_it_rejects_too_many_bytes_with_413():
    data = png_bytes(Image.effect_noise((100, 100), 64).convert("RGB"))
    err = decode_error(data, ImageLimits(max_bytes=len(data) - 1))
    assert (err.code, err.status) == ("too_large", 413)


def test_it_rejects_too_many_pixels_before_decoding_them():
    # A tiny file that claims a 5000x5000 canvas.
    data = png_bytes(Image.new("L", (5000, 5000), 255))
    assert len(data) < 200_000
    err = decode_error(data)
    assert (err.code, err.status) == ("image_too_large", 413)


def test_it_rejects_tiny_images():
    err = decode_error(png_bytes(Image.new("RGB", (4, 30), "white")))
    assert (err.code, err.status) == ("image_too_small", 400)


def test_it_rejects_formats_it_does_not_support():
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "white").save(buf, format="ICO")
    assert decode_error(buf.getvalue()).code == "unsupported_format"


def test_it_applies_exif_orientation():
    img = Image.new("RGB", (60, 20), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = png_bytes(img, "JPEG", exif=exif.tobytes())
    arr = decode_image(data, LIMITS)
    assert arr.shape[:2] == (60, 20)
    assert inspect_image(data, LIMITS).width == 20


def test_it_puts_transparent_images_on_white():
    img = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    arr = decode_image(png_bytes(img), LIMITS)
    assert arr.min() == 255


def test_it_scales_16_bit_grayscale_to_8_bit():
    raw = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).astype(np.uint16)
    img = Image.fromarray(raw)
    assert img.mode.startswith("I")
    arr = decode_image(png_bytes(img), LIMITS)
    assert arr.dtype == np.uint8 and arr.shape == (64, 64, 3)
    assert arr[0, 0, 0] < 10 and arr[-1, -1, 0] > 240


def test_it_converts_cmyk_jpeg():
    img = Image.new("CMYK", (30, 30), (0, 0, 0, 255))  # pure black ink
    arr = decode_image(png_bytes(img, "JPEG"), LIMITS)
    assert arr.shape == (30, 30, 3) and arr.mean() < 40


def test_it_reads_grayscale_and_palette_images():
    gray = decode_image(png_bytes(Image.new("L", (16, 16), 77)), LIMITS)
    assert gray.shape == (16, 16, 3) and int(gray[0, 0, 0]) == 77
    pal = decode_image(png_bytes(Image.new("RGB", (16, 16), (255, 0, 0)).convert("P")), LIMITS)
    assert tuple(pal[0, 0]) == (255, 0, 0)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_the_web_checks_a_png_or_jpeg_without_decoding_its_pixels(monkeypatch, fmt):
    """Only the worker decodes (issue: decode once); a whole file passes on its structure alone."""
    from engine import images as decode

    def no_decoding(img):
        raise AssertionError("pixels decoded")

    monkeypatch.setattr(decode, "_to_rgb", no_decoding)
    info = inspect_image(png_bytes(Image.effect_noise((300, 120), 64).convert("RGB"), fmt), LIMITS)
    assert (info.format, info.width, info.height) == (fmt, 300, 120)


@pytest.mark.parametrize("fmt, cut", [("PNG", 100), ("PNG", 5000), ("JPEG", 3), ("JPEG", 200)])
def test_the_web_refuses_truncated_files_as_before(fmt, cut):
    data = png_bytes(Image.effect_noise((300, 300), 64).convert("RGB"), fmt)
    with pytest.raises(ImageError) as info:
        inspect_image(data[:-cut], LIMITS)
    assert info.value.code == "truncated_image"


def test_a_jpeg_with_data_after_its_end_marker_is_decoded_to_be_judged():
    data = png_bytes(Image.effect_noise((200, 100), 64).convert("RGB"), "JPEG") + b"camera trailer"
    info = inspect_image(data, LIMITS)
    assert (info.width, info.height) == (200, 100)
    assert decode_image(data, LIMITS).shape == (100, 200, 3)


def test_a_png_with_an_orientation_is_measured_as_the_worker_turns_it():
    exif = Image.Exif()
    exif[0x0112] = 6
    data = png_bytes(Image.new("RGB", (60, 20), "white"), "PNG", exif=exif.tobytes())
    info = inspect_image(data, LIMITS)
    assert (info.width, info.height) == (20, 60) == decode_image(data, LIMITS).shape[1::-1]
