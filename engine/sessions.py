"""The one place an ONNX Runtime session is opened: CPU provider, ``threads`` intra-op threads
(0: ONNX Runtime's default), one inter-op thread, every graph optimisation. Serving, training,
evaluation and the parity checks all open their sessions here, so a model measured anywhere runs
as it is served."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort


def ort_session(model: str | Path | bytes, threads: int = 0):
    """An ``onnxruntime.InferenceSession`` over a file or a serialised model."""
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
