"""Safe decoding of untrusted image bytes into an 8-bit RGB array (PDFs: ``pdf.py``; the error and
limit types both use: ``limits.py``).

Limits are checked before pixels are decoded (the header gives the size), so a
small file that claims a huge canvas never gets allocated.
"""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .limits import ImageError, ImageInfo, ImageLimits

__all__ = ["ImageError", "ImageInfo", "ImageLimits", "decode_image", "inspect_image"]

SUPPORTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")


# What Pillow raises on corrupt data besides OSError (found by tests/workers/test_decode_fuzz.py):
# ValueError for a PNG whose header chunk is cut short, TypeError for a TIFF without its size tags;
# broken tables and short headers can also raise KeyError, IndexError or struct.error.
CORRUPT_DATA_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    TypeError,
    LookupError,
    struct.error,
    EOFError,
    ArithmeticError,
)


def _open(data: bytes, limits: ImageLimits) -> Image.Image:
    if not data:
        raise ImageError("missing_image", "The image is empty.")
    if len(data) > limits.max_bytes:
        raise ImageError(
            "too_large", f"The image is {len(data)} bytes; the limit is {limits.max_bytes} bytes.", status=413
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError("not_an_image", "The data is not an image in a known format.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("image_too_large", "The image has too many pixels.", status=413) from None
    except CORRUPT_DATA_ERRORS as exc:
        raise ImageError("not_an_image", f"The image could not be read: {exc}.") from None
    if img.format not in SUPPORTED_FORMATS:
        raise ImageError(
            "unsupported_format",
            f"Images in {img.format} format are not supported; send one of {', '.join(SUPPORTED_FORMATS)}.",
        )
    width, height = img.size
    if width * height > limits.max_pixels:
        raise ImageError(
            "image_too_large",
            f"The image is {width}x{height} pixels; the limit is {limits.max_pixels} pixels.",
            status=413,
        )
    if min(width, height) < limits.min_side:
        raise ImageError(
            "image_too_small", f"The image is {width}x{height} pixels; each side must be at least {limits.min_side}."
        )
    return img


# EXIF orientations that turn the image a quarter: its width and height swap once applied.
_QUARTER_TURNS = (5, 6, 7, 8)


def inspect_image(data: bytes, limits: ImageLimits) -> ImageInfo:
    """Check limits and completeness; return format and oriented size. Only the OCR worker decodes
    the pixels (``decode_image``): a PNG is checked by walking its chunks to IEND, a JPEG by
    its end-of-image marker, without decompressing either; any other format, or a JPEG that does
    not end in its marker (a trailer after it), is decoded here once to find truncation. A PDF is
    checked page by page (count, size) without rendering (``pdf.inspect_pdf``)."""
    from .pdf import inspect_pdf, is_pdf

    if is_pdf(data):
        return inspect_pdf(data, limits)
    img = _open(data, limits)
    if not _complete_without_decoding(img, data):
        rgb = _to_rgb(img)
        return ImageInfo(format=img.format, width=rgb.shape[1], height=rgb.shape[0])
    width, height = img.size
    try:
        turned = img.format == "JPEG" and img.getexif().get(0x0112) in _QUARTER_TURNS
    except CORRUPT_DATA_ERRORS:
        turned = False  # exif_transpose ignores unreadable EXIF too
    return ImageInfo(format=img.format, width=height if turned else width, height=width if turned else height)


def _complete_without_decoding(img: Image.Image, data: bytes) -> bool:
    """True when the file is known whole from its structure alone; raises ImageError when the
    structure shows it cut short; False when only decoding can tell."""
    if img.format == "JPEG":
        # 0xFF 0xD9 cannot occur inside entropy-coded data (0xFF is stuffed there), so a file that
        # ends in it was not cut short (padding zeros aside)
        return data.rstrip(b"\x00").endswith(b"\xff\xd9")
    if img.format != "PNG" or getattr(img, "n_frames", 1) > 1:
        return False
    kinds = _png_chunk_kinds(data)
    if b"IEND" not in kinds:
        raise ImageError("truncated_image", "The image data is truncated: its chunks stop before IEND.")
    return b"eXIf" not in kinds  # Pillow reads a PNG's EXIF (its orientation) only by decoding it


def _png_chunk_kinds(data: bytes) -> set[bytes]:
    """The kinds of a PNG's chunks, walked by their lengths from the signature, up to IEND if it
    lies whole inside the file (nothing is decompressed; a corrupt stream inside whole chunks is
    the worker's to find)."""
    kinds, pos = set(), 8
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        pos += 12 + length
        if pos > len(data):
            break
        kinds.add(kind)
        if kind == b"IEND":
            break
    return kinds


def decode_image(data: bytes, limits: ImageLimits) -> np.ndarray:
    """Decode to an HxWx3 uint8 RGB array, EXIF orientation applied."""
    return _to_rgb(_open(data, limits))


def _to_rgb(img: Image.Image) -> np.ndarray:
    try:
        img.load()
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)
        img = ImageOps.exif_transpose(img)
        return _mode_to_rgb(img)
    except ImageError:
        raise
    except CORRUPT_DATA_ERRORS as exc:
        raise ImageError("truncated_image", f"The image data is truncated or corrupt: {exc}.") from None


def _mode_to_rgb(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        if hi <= lo:
            gray = np.zeros(arr.shape, dtype=np.uint8)
        elif mode.startswith("I;16") and lo >= 0 and hi <= 65535 and hi > 255:
            gray = np.clip(arr / 257.0, 0, 255).astype(np.uint8)
        else:
            gray = ((arr - lo) * (255.0 / (hi - lo))).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    rgb = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
