"""An ONNX recogniser as a trainable torch module, and its trained weights written back.

``OnnxModule`` runs the ONNX graph node by node with torch operators: every float initialiser
with more than one element becomes an ``nn.Parameter`` (convolution weights, the biases the
exporter folded into ``Add`` nodes, the linear layers, BatchNorm's scale and shift), scalars and
integer tensors stay constants. BatchNormalization always uses its stored statistics (the
graph's inference form), so small batches cannot disturb them. The module returns the tensors
named in ``outputs``: by default the graph's input to its final Softmax (the logits) and any
intermediate tensor asked for (a feature point for distillation).

``write_back`` copies the trained parameters into the same ONNX graph, initialiser for
initialiser: the exported package is the original graph (same operators, same speed, same
metadata) with new weights, so no exporter round trip can change what serving runs.

Only the operators the PP-OCR recognisers use are implemented; an unknown one is refused by
name when the module is built, not at the first forward pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _conv(
    x, w, b=None, *, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1, auto_pad=b"NOTSET", kernel_shape=None
):
    if auto_pad not in (b"NOTSET", "NOTSET"):
        raise ValueError(f"Conv auto_pad={auto_pad!r} is not supported")
    top, left, bottom, right = pads
    if top != bottom or left != right:
        x = F.pad(x, (left, right, top, bottom))
        top = left = 0
    return F.conv2d(x, w, b, stride=tuple(strides), padding=(top, left), dilation=tuple(dilations), groups=group)


def _batchnorm(x, scale, bias, mean, var, *, epsilon=1e-5, momentum=0.9, **_):
    shape = [1, -1] + [1] * (x.dim() - 2)
    return (x - mean.view(shape)) / torch.sqrt(var.view(shape) + epsilon) * scale.view(shape) + bias.view(shape)


def _avgpool(x, *, kernel_shape, strides=None, pads=(0, 0, 0, 0), ceil_mode=0, count_include_pad=0, **_):
    top, left, bottom, right = pads
    if top != bottom or left != right:
        raise ValueError("AveragePool with asymmetric pads is not supported")
    return F.avg_pool2d(
        x, tuple(kernel_shape), tuple(strides or kernel_shape), (top, left), bool(ceil_mode), bool(count_include_pad)
    )


def _maxpool(x, *, kernel_shape, strides=None, pads=(0, 0, 0, 0), ceil_mode=0, auto_pad=b"NOTSET", **_):
    if auto_pad not in (b"NOTSET", "NOTSET"):
        raise ValueError(f"MaxPool auto_pad={auto_pad!r} is not supported")
    top, left, bottom, right = pads
    if top != bottom or left != right:
        x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        top = left = 0
    return F.max_pool2d(x, tuple(kernel_shape), tuple(strides or kernel_shape), (top, left), ceil_mode=bool(ceil_mode))


def _softmax(x, *, axis=-1):
    return torch.softmax(x, dim=axis)


def _squeeze(x, *, axes=None):
    if axes is None:
        return x.squeeze()
    for a in sorted((a % x.dim() for a in axes), reverse=True):
        x = x.squeeze(a)
    return x


def _unsqueeze(x, *, axes):
    for a in sorted(axes):
        x = x.unsqueeze(a)
    return x


OPS = {
    "Identity": lambda x: x,
    "Add": torch.add,
    "Sub": torch.sub,
    "Mul": torch.mul,
    "Div": torch.div,
    "Pow": torch.pow,
    "Sqrt": torch.sqrt,
    "Erf": torch.erf,
    "Relu": F.relu,
    "Sigmoid": torch.sigmoid,
    "HardSigmoid": lambda x, alpha=0.2, beta=0.5: torch.clamp(alpha * x + beta, 0.0, 1.0),
    "MatMul": torch.matmul,
    "Conv": _conv,
    "BatchNormalization": _batchnorm,
    "AveragePool": _avgpool,
    "MaxPool": _maxpool,
    "ReduceMean": lambda x, axes, keepdims=1: x.mean(dim=tuple(axes), keepdim=bool(keepdims)),
    "Softmax": _softmax,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Transpose": lambda x, perm: x.permute(*perm),
}


def _param_name(name: str) -> str:
    return "p_" + "".join(c if c.isalnum() else "_" for c in name)


class OnnxModule(torch.nn.Module):
    """The graph of an ONNX recogniser, trainable. ``forward`` returns a dict of the tensors named
    in ``outputs`` (default: ``"logits"``, the final Softmax's input)."""

    def __init__(self, path: str | Path, features: tuple[str, ...] = ()):
        super().__init__()
        model = onnx.load(str(path))
        graph = model.graph
        self.input_name = graph.input[0].name
        self.params = torch.nn.ParameterDict()
        self.param_of: dict[str, str] = {}  # ONNX initialiser name -> key in self.params
        self.constants: dict[str, torch.Tensor] = {}
        for init in graph.initializer:
            array = numpy_helper.to_array(init)
            tensor = torch.from_numpy(np.array(array))
            if array.dtype == np.float32 and array.size > 1:
                key = _param_name(init.name)
                self.params[key] = torch.nn.Parameter(tensor)
                self.param_of[init.name] = key
            else:
                self.constants[init.name] = tensor
        self.nodes = []
        for node in graph.node:
            if node.op_type == "Constant":
                self.constants[node.output[0]] = torch.from_numpy(np.array(numpy_helper.to_array(node.attribute[0].t)))
                continue
            if node.op_type not in OPS:
                raise ValueError(f"{path}: operator {node.op_type} is not supported")
            self.nodes.append((node.op_type, list(node.input), list(node.output), _attrs(node)))
        final = [n for n in self.nodes if graph.output[0].name in n[2]]
        self.logits_name = final[0][1][0] if final and final[0][0] == "Softmax" else graph.output[0].name
        produced = {o for _, _, outs, _ in self.nodes for o in outs}
        missing = [f for f in features if f not in produced]
        if missing:
            raise ValueError(f"{path}: no tensor named {', '.join(missing)}")
        self.features = tuple(features)
        self._last = self._last_use()
        wanted = {self.logits_name, *self.features}
        # the last node any wanted tensor comes out of: the Softmax after the logits is skipped
        self._stop = max(k for k, (_, _, outs, _) in enumerate(self.nodes) if outs[0] in wanted)

    @property
    def logits_bias(self) -> str | None:
        """The key in ``params`` of the bias added last before the logits (the classifier's), or None."""
        producer = {outs[0]: (op, ins) for op, ins, outs, _ in self.nodes}
        name = self.logits_name
        while name in producer and producer[name][0] == "Identity":
            name = producer[name][1][0]
        op, ins = producer.get(name, (None, []))
        keys = [self.param_of[n] for n in ins if n in self.param_of]
        return keys[0] if op == "Add" and len(keys) == 1 else None

    def _last_use(self) -> dict[str, int]:
        wanted = {self.logits_name, *self.features}
        last = {}
        for k, (_, ins, _, _) in enumerate(self.nodes):
            for name in ins:
                last[name] = k
        return {name: k for name, k in last.items() if name not in wanted}

    def _value(self, name: str, values: dict):
        if name in values:
            return values[name]
        if name in self.param_of:
            return self.params[self.param_of[name]]
        return self.constants[name]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        values = {self.input_name: x}
        for k, (op, ins, outs, attrs) in enumerate(self.nodes[: self._stop + 1]):
            args = [self._value(n, values) for n in ins if n]
            values[outs[0]] = OPS[op](*args, **attrs)
            for name in ins:  # drop what no later node reads (autograd keeps what it needs)
                if self._last.get(name) == k:
                    values.pop(name, None)
        out = {"logits": values[self.logits_name]}
        out.update({name: values[name] for name in self.features})
        return out


def write_back(
    module: OnnxModule,
    source: str | Path,
    out: str | Path,
    metadata: dict[str, str] | None = None,
    values: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``source``'s graph to ``out`` with ``module``'s trained parameters (or ``values``, by
    the same keys: an average of them) in place of its initialisers, and ``metadata`` merged over
    its metadata_props."""
    model = onnx.load(str(source))
    values = values if values is not None else dict(module.params.items())
    for init in model.graph.initializer:
        key = module.param_of.get(init.name)
        if key is None:
            continue
        value = values[key].detach().cpu().numpy().astype(np.float32)
        init.CopyFrom(numpy_helper.from_array(value, init.name))
    if metadata:
        props = {p.key: p.value for p in model.metadata_props}
        props.update(metadata)
        del model.metadata_props[:]
        for key, value in props.items():
            model.metadata_props.add(key=key, value=str(value))
    onnx.checker.check_model(model)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out


def with_outputs(source: str | Path, names: tuple[str, ...]) -> bytes:
    """``source``'s graph with intermediate tensors ``names`` added as outputs (after the model's
    own), serialised: ONNX Runtime then returns a teacher's features with its answer."""
    model = onnx.load(str(source))
    have = {o.name for o in model.graph.output}
    for name in names:
        if name not in have:
            model.graph.output.append(helper.make_empty_tensor_value_info(name))
    return model.SerializeToString()
