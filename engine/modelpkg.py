"""The model package contract: what an ONNX recogniser carries in its metadata.

`distill` writes these keys when it exports a model; `workers` reads them and
never guesses them from code. Pure Python: no Django, no torch, no onnx.

Keys (all values are strings in the ONNX ``metadata_props``):

``ocr.format``        always ``"ocr-ctc/1"``
``ocr.name``          human readable model name, e.g. ``"crnn-student"``
``ocr.classes``       JSON list of the C output classes, in output order; the blank
                      class is the empty string ``""`` at ``ocr.blank_index``
``ocr.blank_index``   index of the CTC blank in the class axis
``ocr.input_height``  the fixed input height in pixels
``ocr.input_channels`` 1 (grayscale) or 3
``ocr.color_order``   ``"GRAY"``, ``"RGB"`` or ``"BGR"``
``ocr.norm_mean`` / ``ocr.norm_std``  JSON lists, one per channel, applied as
                      ``(pixel / 255 - mean) / std``
``ocr.min_width``     smallest input width the model accepts
``ocr.width_multiple`` widths are padded to a multiple of this (the horizontal stride)
``ocr.max_width``     widest input the model was meant for; longer lines are resized down
``ocr.pad_pixel``     raw pixel value (0-255, before normalisation) used to pad lines to a common width
``ocr.output_layout`` ``"NTC"``: output is ``[batch, time, classes]``
``ocr.output_kind``   ``"log_probs"``, ``"logits"`` or ``"probs"``
``ocr.blank_penalty`` optional, default 0: how much the blank's logit was lowered inside the
                      graph; decoders keep doubled characters apart where the blank would
                      have won without it (``engine.ctc.best_path``)
``ocr.text_forms``    optional: ``"as_is"`` (default) when the classes are the printed forms,
                      ``"nfkc"`` when the model was trained on NFKC labels and answers ``:``
                      for ``：``; workers then restore full-width punctuation in Chinese
                      context (``engine.textforms``)

Other keys are kept in ``ModelSpec.extra``: ``distill`` writes ``params`` (the
graph's weight count, recorded by the model registry) and ``distill.*`` lineage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .modelfile import read_metadata
from .textforms import TEXT_FORMS, TEXT_FORMS_AS_IS, finish_text

FORMAT = "ocr-ctc/1"
# Where `make models` puts the models imported from wheels (distill/export.py), relative to the
# models folder: the one place their files are named.
# the served default under the models folder: PP-OCRv6 tiny refined by our distillation (docs/models.md)
SERVED_DEFAULT = "ppocrv6_tiny_warm.onnx"
REFERENCE_FILES = {
    "ppocrv6-tiny": "reference/ppocrv6_tiny_rec.onnx",
    "ppocrv4-mobile": "reference/ppocrv4_mobile_rec.onnx",
    "ppocrv6-small": "reference/ppocrv6_small_rec.onnx",
    "ppocrv6-tiny-det": "reference/ppocrv6_tiny_det.onnx",
    "ppocrv6-small-det": "reference/ppocrv6_small_det.onnx",
    "ppocrv4-mobile-det": "reference/ppocrv4_mobile_det.onnx",
    "ppocr-mobile-cls": "reference/ppocr_mobile_cls.onnx",
}
OUTPUT_KINDS = ("log_probs", "logits", "probs")
COLOR_ORDERS = ("GRAY", "RGB", "BGR")


class ModelPackageError(ValueError):
    """The ONNX file does not carry a usable model package description."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    classes: tuple[str, ...]
    blank_index: int
    input_height: int
    input_channels: int
    color_order: str
    norm_mean: tuple[float, ...]
    norm_std: tuple[float, ...]
    min_width: int = 8
    width_multiple: int = 4
    max_width: int = 1600
    pad_pixel: float = 255.0
    output_layout: str = "NTC"
    output_kind: str = "log_probs"
    blank_penalty: float = 0.0
    text_forms: str = TEXT_FORMS_AS_IS
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        problems = []
        if not self.classes:
            problems.append("classes is empty")
        if not 0 <= self.blank_index < len(self.classes):
            problems.append(f"blank_index {self.blank_index} outside 0..{len(self.classes) - 1}")
        elif self.classes[self.blank_index] != "":
            problems.append("the class at blank_index must be the empty string")
        if self.input_channels not in (1, 3):
            problems.append(f"input_channels must be 1 or 3, not {self.input_channels}")
        if self.color_order not in COLOR_ORDERS:
            problems.append(f"color_order must be one of {COLOR_ORDERS}")
        if (self.input_channels == 1) != (self.color_order == "GRAY"):
            problems.append("color_order GRAY goes with exactly one channel")
        if len(self.norm_mean) != self.input_channels or len(self.norm_std) != self.input_channels:
            problems.append("norm_mean and norm_std need one value per channel")
        if any(s <= 0 for s in self.norm_std):
            problems.append("norm_std values must be positive")
        if self.input_height < 8:
            problems.append("input_height must be at least 8")
        if self.width_multiple < 1 or self.min_width < 1 or self.max_width < self.min_width:
            problems.append("bad width settings")
        if not 0 <= self.pad_pixel <= 255:
            problems.append("pad_pixel must lie in 0..255")
        if self.output_layout != "NTC":
            problems.append("only the NTC output layout is supported")
        if self.output_kind not in OUTPUT_KINDS:
            problems.append(f"output_kind must be one of {OUTPUT_KINDS}")
        if not 0 <= self.blank_penalty < 50:
            problems.append("blank_penalty must lie in 0..50")
        if self.text_forms not in TEXT_FORMS:
            problems.append(f"text_forms must be one of {TEXT_FORMS}")
        if problems:
            raise ModelPackageError("; ".join(problems))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def finish_text(self, text: str) -> str:
        """A decoded line as answers carry it (full-width punctuation restored for NFKC models)."""
        return finish_text(text, self.text_forms)

    def to_metadata(self) -> dict[str, str]:
        meta = {
            "ocr.format": FORMAT,
            "ocr.name": self.name,
            "ocr.classes": json.dumps(list(self.classes), ensure_ascii=False),
            "ocr.blank_index": str(self.blank_index),
            "ocr.input_height": str(self.input_height),
            "ocr.input_channels": str(self.input_channels),
            "ocr.color_order": self.color_order,
            "ocr.norm_mean": json.dumps(list(self.norm_mean)),
            "ocr.norm_std": json.dumps(list(self.norm_std)),
            "ocr.min_width": str(self.min_width),
            "ocr.width_multiple": str(self.width_multiple),
            "ocr.max_width": str(self.max_width),
            "ocr.pad_pixel": str(self.pad_pixel),
            "ocr.output_layout": self.output_layout,
            "ocr.output_kind": self.output_kind,
            "ocr.blank_penalty": str(self.blank_penalty),
            "ocr.text_forms": self.text_forms,
        }
        meta.update(self.extra)
        return meta

    @classmethod
    def from_file(cls, path) -> ModelSpec:
        """The package description of an ONNX file, read without opening a session."""
        return cls.from_metadata(read_metadata(path))

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> ModelSpec:
        if meta.get("ocr.format") != FORMAT:
            raise ModelPackageError(
                f"not an OCR model package: ocr.format is {meta.get('ocr.format')!r}, expected {FORMAT!r}"
            )
        try:
            return cls(
                name=meta["ocr.name"],
                classes=tuple(json.loads(meta["ocr.classes"])),
                blank_index=int(meta["ocr.blank_index"]),
                input_height=int(meta["ocr.input_height"]),
                input_channels=int(meta["ocr.input_channels"]),
                color_order=meta["ocr.color_order"],
                norm_mean=tuple(float(v) for v in json.loads(meta["ocr.norm_mean"])),
                norm_std=tuple(float(v) for v in json.loads(meta["ocr.norm_std"])),
                min_width=int(meta["ocr.min_width"]),
                width_multiple=int(meta["ocr.width_multiple"]),
                max_width=int(meta["ocr.max_width"]),
                pad_pixel=float(meta.get("ocr.pad_pixel", "255")),
                output_layout=meta["ocr.output_layout"],
                output_kind=meta["ocr.output_kind"],
                blank_penalty=float(meta.get("ocr.blank_penalty", "0")),
                text_forms=meta.get("ocr.text_forms", TEXT_FORMS_AS_IS),
                extra={k: v for k, v in meta.items() if not k.startswith("ocr.")},
            )
        except KeyError as exc:
            raise ModelPackageError(f"model metadata lacks {exc.args[0]}") from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ModelPackageError):
                raise
            raise ModelPackageError(f"model metadata is malformed: {exc}") from None
