"""What makes two answers the same: same bytes + same model + same pipeline = same text."""

from __future__ import annotations

import hashlib

# Bump when line finding, preprocessing or decoding changes what a worker returns for the same
# bytes (3: confidence per character, doubled characters kept apart, full-width restoration;
# 4: pages read by the learned detector, lines with polygons, upside-down pages turned;
# 5: per-character confidences, the beam search with the language model for doubtful lines;
# 6: one-line images read whole, reading order by gutters; 7: every character's box; 8: ruled
# tables as cells; 9: regions of lines run together split into lines; 10: a line touching the
# line above by a thin bridge of the detector's map found apart instead of lost; 11: blurred lines
# sharpened).
PIPELINE_VERSION = "11"


def preprocessing_signature(binarize: bool, page_models: str = "", sharpen: bool = True) -> str:
    """The pipeline's version, its settings (binarisation, sharpening) and ``page_models`` (what identifies the detector and
    direction classifier that read pages: ``workers.config.pipeline_signature``)."""
    base = f"p{PIPELINE_VERSION}-bin{int(binarize)}" + ("" if sharpen else "-sharp0")
    return f"{base}-{page_models}" if page_models else base


def cache_key(image_sha256: str, model_label: str, signature: str, hotwords: list[str] | tuple[str, ...] = ()) -> str:
    """``hotwords`` change what the decoder answers, so a request with them has its own entry (their
    order does not matter)."""
    key = f"ocr:result:{image_sha256}:{model_label}:{signature}"
    if hotwords:
        digest = hashlib.sha256("\n".join(sorted(hotwords)).encode("utf-8")).hexdigest()[:16]
        key += f":hw{digest}"
    return key
