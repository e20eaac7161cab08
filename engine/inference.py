"""The ONNX Runtime recogniser: one session, configured from the model's own metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .beam import Hotwords
from .ctc import to_probs
from .decoder import GREEDY, LineDecoder, LineText
from .modelfile import file_sha256
from .modelpkg import ModelSpec
from .preprocess import pad_batch
from .sessions import ort_session

__all__ = ["LineText", "Recognizer", "decode_line"]


def decode_line(
    scores: np.ndarray,
    spec: ModelSpec,
    kind: str | None = None,
    decoder: LineDecoder | None = None,
    hotwords: Hotwords | None = None,
) -> LineText:
    """One line's [T, C] output (of ``kind``, by default the model's ``ocr.output_kind``) as an
    answer carries it: decoded by ``decoder`` (greedy with the model's blank penalty unless it says
    otherwise), the confidences, and the text in the forms the model's ``ocr.text_forms`` asks for.
    ``distill evaluate`` calls this too, so what it measures is what workers answer."""
    return (decoder or GREEDY).decode(scores, spec, kind, hotwords)


class Recognizer:
    """Loads an ONNX CTC recogniser once and decodes batches of prepared lines."""

    def __init__(self, path: str | Path, threads: int = 0, label: str | None = None) -> None:
        self.path = Path(path)
        self.spec = ModelSpec.from_file(self.path)
        self.session = ort_session(self.path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.sha256 = file_sha256(self.path)
        self.label = label or f"{self.spec.name}@{self.sha256[:12]}"

    def outputs(self, batch: np.ndarray) -> np.ndarray:
        """NxCxHxW float32 in, the model's own NxTxC output out (of ``ocr.output_kind``)."""
        (output,) = self.session.run(None, {self.input_name: batch})[:1]
        return np.asarray(output, dtype=np.float32)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """NxCxHxW float32 in, NxTxC probabilities out."""
        return to_probs(self.outputs(batch), self.spec.output_kind)

    def read_line(
        self, line: np.ndarray, decoder: LineDecoder | None = None, hotwords: Hotwords | None = None
    ) -> LineText:
        """One prepared line (an output of preprocess.prepare_line) run alone, its output decoded
        in the model's own kind (no padding, every step is the line's). ``distill evaluate``,
        calibration and the benchmarks read lines this way."""
        return decode_line(self.outputs(line[None])[0], self.spec, decoder=decoder, hotwords=hotwords)

    def recognize(
        self, lines: list[np.ndarray], decoder: LineDecoder | None = None, hotwords: list[Hotwords | None] | None = None
    ) -> list[LineText]:
        """Recognise prepared lines (outputs of preprocess.prepare_line) in one session run;
        ``hotwords`` gives each line its request's hotwords."""
        if not lines:
            return []
        probs = self.run(pad_batch(lines, self.spec))
        steps_total = probs.shape[1]
        width_total = max(a.shape[2] for a in lines)
        results = []
        for i, arr in enumerate(lines):
            # Only the steps that cover this line's own pixels, not the padding.
            valid = max(1, min(steps_total, round(steps_total * arr.shape[2] / width_total)))
            results.append(
                decode_line(probs[i, :valid], self.spec, "probs", decoder, hotwords[i] if hotwords else None)
            )
        return results
