"""What an image may be (size, pixels, pages) and the error bad input raises: shared by the image
and PDF readers, light enough for the web process."""

from __future__ import annotations

from dataclasses import dataclass


class ImageError(ValueError):
    """Bad input: carries a stable error code and the HTTP status it maps to."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000  # per image, and per PDF page at the rendering resolution
    min_side: int = 8
    max_pages: int = 20  # of a PDF


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    pages: int = 1
