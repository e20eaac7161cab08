"""A guarded adaptation: the adapted recogniser reads beside the model it was adapted from, in one
ONNX graph, and each line takes the adapted model's reading only where that model is surer of it
by ``margin`` (docs/lifecycle.md, "Adapting the served model to a customer's documents").

A model adapted to a customer's lines reads them better and everything else a little worse; the
two are sure of different lines. Both branches read every line (the package costs about twice a
line's time); per line, the graph computes each branch's confidence as the serving decoder does
for the greedy path (the geometric mean of the top probability over the steps whose best class
is not the blank) and returns the adapted branch's output where its confidence exceeds the
start's by more than ``margin``, the start's elsewhere. The package is an ordinary recogniser
package: the engine, the evaluation report and the gate read it like any other.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.modelfile import file_sha256
from engine.modelpkg import ModelSpec


def _opset(model) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


class _Nodes:
    """Appends nodes to a graph under a name prefix, the reduce and unsqueeze forms of its opset."""

    def __init__(self, graph, opset: int, prefix: str = "guard/"):
        self.graph, self.opset, self.prefix, self.count = graph, opset, prefix, 0

    def __call__(self, op: str, inputs: list[str], **attrs) -> str:
        from onnx import helper

        self.count += 1
        out = f"{self.prefix}{op.lower()}_{self.count}"
        self.graph.node.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def const(self, name: str, value: np.ndarray) -> str:
        """A constant initialiser, under a name of its own."""
        from onnx import numpy_helper

        self.count += 1
        unique = f"{self.prefix}{name}_{self.count}"
        self.graph.initializer.append(numpy_helper.from_array(value, unique))
        return unique

    def reduce(self, op: str, x: str, axis: int) -> str:
        """ReduceMax/ReduceSum over ``axis``, dropped (the axes became an input at opset 13 for
        ReduceSum and 18 for ReduceMax)."""
        if self.opset >= (13 if op == "ReduceSum" else 18):
            return self(op, [x, self.const("axes", np.array([axis], np.int64))], keepdims=0)
        return self(op, [x], axes=[axis], keepdims=0)

    def unsqueeze(self, x: str, axes: list[int]) -> str:
        if self.opset >= 13:
            return self("Unsqueeze", [x, self.const("axes", np.array(axes, np.int64))])
        return self("Unsqueeze", [x], axes=axes)


def _confidence(nodes: _Nodes, output: str, kind: str, blank: int) -> str:
    """[N] the geometric mean of the top probability over each line's non-blank steps (0 for a line
    with none), from a branch's [N, T, C] output of ``kind``."""
    probs = output
    if kind == "log_probs":
        probs = nodes("Exp", [output])
    elif kind == "logits":
        probs = nodes("Softmax", [output], axis=2)
    top = nodes.reduce("ReduceMax", probs, 2)
    best = nodes("ArgMax", [probs], axis=2, keepdims=0)
    written = nodes(
        "Cast", [nodes("Not", [nodes("Equal", [best, nodes.const("blank", np.array(blank, np.int64))])])], to=1
    )
    logs = nodes("Log", [nodes("Max", [top, nodes.const("eps", np.array(1e-12, np.float32))])])
    total = nodes.reduce("ReduceSum", nodes("Mul", [logs, written]), 1)
    count = nodes.reduce("ReduceSum", written, 1)
    mean = nodes("Div", [total, nodes("Max", [count, nodes.const("one", np.array(1.0, np.float32))])])
    zero = nodes.const("zero", np.array(0.0, np.float32))
    return nodes("Where", [nodes("Greater", [count, zero]), nodes("Exp", [mean]), zero])


def guarded_pair(start: str | Path, adapted: str | Path, out: str | Path, margin: float) -> Path:
    """Write ``out``: ``adapted`` and ``start`` in one graph, each line taking the adapted branch's
    output where its confidence exceeds the start's by more than ``margin``. Both must be packages
    with the same input, classes and output kind (an adaptation of ``start`` is)."""
    import onnx
    from onnx import compose

    s_spec, a_spec = ModelSpec.from_file(start), ModelSpec.from_file(adapted)
    for key in ("classes", "blank_index", "output_kind", "input_height", "input_channels", "norm_mean", "norm_std"):
        if getattr(s_spec, key) != getattr(a_spec, key):
            raise ValueError(f"{adapted} is not an adaptation of {start}: its {key} differs")
    base, other = onnx.load(str(start)), onnx.load(str(adapted))
    meta = {p.key: p.value for p in other.metadata_props}  # the package's contract: the adapted one's
    if _opset(base) != _opset(other):
        raise ValueError("the two graphs have different opsets")
    other = compose.add_prefix(other, "adapted/")
    x_name, out_name = base.graph.input[0].name, base.graph.output[0].name
    start_out, adapted_out = "start/" + out_name, other.graph.output[0].name
    graph = base.graph
    for node in graph.node:  # the start's output becomes internal; the graph's output is the choice
        node.output[:] = [start_out if o == out_name else o for o in node.output]
    for node in other.graph.node:
        node.input[:] = [x_name if i == other.graph.input[0].name else i for i in node.input]
    graph.node.extend(other.graph.node)
    graph.initializer.extend(other.graph.initializer)
    graph.value_info.extend(other.graph.value_info)
    nodes = _Nodes(graph, _opset(base))
    conf_start = _confidence(nodes, start_out, s_spec.output_kind, s_spec.blank_index)
    conf_adapted = _confidence(nodes, adapted_out, a_spec.output_kind, a_spec.blank_index)
    bar = nodes("Add", [conf_start, nodes.const("margin", np.array(margin, np.float32))])
    choose = nodes.unsqueeze(nodes("Greater", [conf_adapted, bar]), [1, 2])
    nodes.prefix = ""
    graph.node.append(onnx.helper.make_node("Where", [choose, adapted_out, start_out], [out_name], name="guard/choice"))
    meta["ocr.name"] = f"{a_spec.name}-guarded"
    meta["params"] = str(int(meta.get("params", 0) or 0) * 2)
    meta["guard"] = json.dumps({"start": str(start), "start_sha256": file_sha256(start), "margin": margin})
    del base.metadata_props[:]
    for key, value in meta.items():
        base.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(base)
    out = Path(out)
    onnx.save(base, str(out))
    return out
