"""The one place an ONNX Runtime session is opened: CPU provider, ``threads`` intra-op threads
(0: ONNX Runtime's default; more than one: threads that sleep, not spin, between runs), one inter-op
thread, every graph optimisation. Serving, training, evaluation and the parity checks all open
their sessions here, so a model measured anywhere runs as it is served."""

from __future__ import annotations

import os
from pathlib import Path

import onnxruntime as ort


def arena_enabled() -> bool:
    """Whether sessions keep ONNX Runtime's CPU memory arena (``OCR_ORT_ARENA``, default on). The
    arena keeps the largest buffers each input shape needed; with line widths and page sizes that
    vary from request to request it can grow for a long time (docs/running.md, "Memory")."""
    return os.environ.get("OCR_ORT_ARENA", "1").strip().lower() not in ("0", "false", "no", "off")


def ort_session(model: str | Path | bytes, threads: int = 0):
    """An ``onnxruntime.InferenceSession`` over a file or a serialised model."""
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if threads > 1:
        # the pool's threads sleep between runs instead of spinning: a worker's task threads run
        # sessions side by side, and a spinning pool takes the cores the other runs need
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not arena_enabled():
        options.enable_cpu_mem_arena = False
        options.enable_mem_pattern = False  # patterns are per input shape: they vary here
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
