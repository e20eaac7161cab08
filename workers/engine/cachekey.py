"""What makes two answers the same: same bytes + same model + same pipeline = same text."""

from __future__ import annotations

# Bump when line finding, preprocessing or decoding changes what a worker returns for the same
# bytes (3: confidence per character, doubled characters kept apart, full-width restoration;
# 4: pages read by the learned detector, lines with polygons, upside-down pages turned).
PIPELINE_VERSION = "4"


def preprocessing_signature(binarize: bool, page_models: str = "") -> str:
    """The pipeline's version, its settings and ``page_models`` (what identifies the detector and
    direction classifier that read pages: ``workers.runtime.pipeline_signature``)."""
    base = f"p{PIPELINE_VERSION}-bin{int(binarize)}"
    return f"{base}-{page_models}" if page_models else base


def cache_key(image_sha256: str, model_label: str, signature: str) -> str:
    return f"ocr:result:{image_sha256}:{model_label}:{signature}"
