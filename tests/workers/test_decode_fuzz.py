"""Property-based checks of the one place untrusted image bytes are decoded (engine/images.py):
whatever the bytes, the answer is a valid 8-bit RGB image or an ImageError with a 4xx status, never
another exception. Seeded images of every supported format and many modes are mutated in their
headers and bodies, truncated, and given huge claimed sizes.

Deterministic (``derandomize``) and bounded, so the suite is stable and fast."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from engine.images import ImageError, ImageLimits, decode_image, inspect_image

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on the corrupt files
LIMITS = ImageLimits(max_bytes=2 * 1024 * 1024, max_pixels=4_000_000, min_side=8, max_pages=3)
CODES = {
    "missing_image",
    "too_large",
    "not_an_image",
    "unsupported_format",
    "image_too_large",
    "image_too_small",
    "truncated_image",
    "bad_pdf",
    "too_many_pages",
}
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _seed(fmt: str, mode: str, size=(23, 17), **save) -> bytes:
    rng = np.random.default_rng(len(fmt) * 31 + len(mode))
    if mode in ("I;16", "I"):
        img = Image.fromarray(rng.integers(0, 60000, size[::-1]).astype(np.uint16 if mode == "I;16" else np.int32))
    else:
        img = Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


SEEDS = {
    **{f"PNG-{m}": _seed("PNG", m) for m in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16")},
    **{f"JPEG-{m}": _seed("JPEG", m) for m in ("L", "RGB", "CMYK")},
    "JPEG-progressive": _seed("JPEG", "RGB", progressive=True),
    **{f"TIFF-{m}": _seed("TIFF", m) for m in ("1", "L", "RGB", "RGBA", "CMYK", "I;16")},
    "TIFF-lzw": _seed("TIFF", "RGB", compression="tiff_lzw"),
    **{f"WEBP-{m}": _seed("WEBP", m) for m in ("RGB", "RGBA")},
    "WEBP-lossless": _seed("WEBP", "RGB", lossless=True),
    **{f"GIF-{m}": _seed("GIF", m) for m in ("L", "P")},
    **{f"BMP-{m}": _seed("BMP", m) for m in ("1", "L", "P", "RGB")},
}


def check(data: bytes) -> None:
    """The property: a clean 4xx ImageError, or an image that meets the limits."""
    for read in (inspect_image, decode_image):
        try:
            out = read(data, LIMITS)
        except ImageError as exc:
            assert 400 <= exc.status < 500 and exc.code in CODES and exc.message, (exc.code, exc.status)
            continue
        if read is decode_image:
            assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
            height, width = out.shape[:2]
        else:
            width, height = out.width, out.height
        assert min(width, height) >= LIMITS.min_side and width * height <= LIMITS.max_pixels


def test_every_seed_image_decodes():
    for name, data in SEEDS.items():
        rgb = decode_image(data, LIMITS)
        assert rgb.shape == (17, 23, 3), name


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_are_refused_cleanly(data):
    check(data)


@FUZZ
@given(
    st.sampled_from(
        [
            b"\x89PNG\r\n\x1a\n",
            b"\xff\xd8\xff",
            b"II*\x00",
            b"MM\x00*",
            b"RIFF\x00\x00\x00\x00WEBP",
            b"GIF89a",
            b"GIF87a",
            b"BM",
            b"%PDF-1.4\n",
        ]
    ),
    st.binary(max_size=1024),
)
def test_a_known_magic_number_before_random_bytes_is_refused_cleanly(magic, rest):
    check(magic + rest)


def _mutate(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for kind, where, value in edits:
        if not out:
            break
        i = where % len(out)
        if kind == "set":
            out[i] = value
        elif kind == "insert":
            out[i:i] = bytes([value]) * (1 + value % 8)
        elif kind == "delete":
            del out[i : i + 1 + value % 16]
        else:  # truncate
            del out[i:]
    return bytes(out)


EDITS = st.lists(
    st.tuples(
        st.sampled_from(["set", "set", "insert", "delete", "truncate"]), st.integers(0, 10_000), st.integers(0, 255)
    ),
    min_size=1,
    max_size=6,
)


@FUZZ
@given(st.sampled_from(sorted(SEEDS)), EDITS, st.booleans())
@example("PNG-1", [("set", 11, 0)], False)  # IHDR of length 0: Pillow raised ValueError on open
@example("TIFF-I;16", [("delete", 21, 3), ("delete", 23, 7)], False)  # no size tags: TypeError on load
def test_mutated_images_decode_or_are_refused_cleanly(name, edits, header_only):
    data = SEEDS[name]
    if header_only:  # edits land in the first 64 bytes, where the header and the sizes are
        edits = [(kind, where % 64, value) for kind, where, value in edits]
    check(_mutate(data, edits))


def _png_with_size(width: int, height: int) -> bytes:
    data = bytearray(SEEDS["PNG-RGB"])
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes of fields
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def _bmp_with_size(width: int, height: int) -> bytes:
    data = bytearray(SEEDS["BMP-RGB"])
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def _gif_with_size(width: int, height: int) -> bytes:
    data = bytearray(SEEDS["GIF-P"])
    data[6:10] = struct.pack("<HH", width % 2**16, height % 2**16)  # GIF sides are 16-bit
    return bytes(data)


SIDES = st.one_of(st.integers(0, 70_000), st.sampled_from([1, 7, 8, 2**16 - 1, 2**31 - 1, 2**32 - 1]))


@FUZZ
@given(st.sampled_from([_png_with_size, _bmp_with_size, _gif_with_size]), SIDES, SIDES)
def test_huge_or_odd_claimed_sizes_are_refused_before_decoding(make, width, height):
    if make is _bmp_with_size:
        width, height = width % 2**31, height % 2**31 - (2**30 if height % 3 == 0 else 0)  # BMP: signed, top-down
    data = make(width, height)
    check(data)
    if make is _png_with_size and width * height > LIMITS.max_pixels:
        with pytest.raises(ImageError) as refused:
            inspect_image(data, LIMITS)
        assert refused.value.code == "image_too_large" and refused.value.status == 413


def test_a_claimed_30000_square_png_is_a_413_without_decoding():
    with pytest.raises(ImageError) as refused:
        decode_image(_png_with_size(30_000, 30_000), ImageLimits())
    assert (refused.value.code, refused.value.status) == ("image_too_large", 413)
