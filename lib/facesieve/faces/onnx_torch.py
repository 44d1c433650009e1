"""Run an ONNX graph with torch ops, so the GPU path uses the very weights the CPU path uses.

Why not ``onnx2torch``: it depends on torchvision (which drags a CUDA torch onto CPU machines) and
converts far more than we need. SCRFD and MobileFaceNet use a dozen operators; interpreting the
graph node by node costs a Python call per node, which is negligible next to the convolutions at
the batch sizes the GPU path uses. Shape arithmetic (Shape/Gather/Concat/...) stays on the CPU as
small int64 tensors, so it never forces a device synchronisation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

from facesieve.errors import ModelError

_Op = Callable[["_Node", list[Any]], list[Any]]


class _Node:
    """One ONNX node with its attributes decoded to Python values."""

    def __init__(self, node: onnx.NodeProto) -> None:
        self.op = node.op_type
        self.inputs = list(node.input)
        self.outputs = list(node.output)
        self.attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _ints(t: Any) -> list[int]:
    """Shape-like input (CPU int64 tensor or list) as Python ints."""
    if isinstance(t, torch.Tensor):
        return [int(v) for v in t.reshape(-1).tolist()]
    return [int(v) for v in t]


def _conv(n: _Node, a: list[Any]) -> list[Any]:
    pads = n.attrs.get("pads", [0, 0, 0, 0])
    if pads[0] != pads[2] or pads[1] != pads[3]:
        raise ModelError(f"asymmetric Conv padding {pads} is not supported")
    y = F.conv2d(
        a[0],
        a[1],
        a[2] if len(a) > 2 else None,
        stride=tuple(n.attrs.get("strides", [1, 1])),
        padding=(pads[0], pads[1]),
        dilation=tuple(n.attrs.get("dilations", [1, 1])),
        groups=n.attrs.get("group", 1),
    )
    return [y]


def _prelu(n: _Node, a: list[Any]) -> list[Any]:
    x, slope = a
    return [torch.where(x >= 0, x, x * slope)]


def _gemm(n: _Node, a: list[Any]) -> list[Any]:
    x, w = a[0], a[1]
    if n.attrs.get("transA", 0):
        x = x.t()
    if n.attrs.get("transB", 0):
        w = w.t()
    y = n.attrs.get("alpha", 1.0) * (x @ w)
    if len(a) > 2:
        y = y + n.attrs.get("beta", 1.0) * a[2]
    return [y]


def _batchnorm(n: _Node, a: list[Any]) -> list[Any]:
    x, scale, bias, mean, var = a
    y = F.batch_norm(x, mean, var, scale, bias, training=False, eps=n.attrs.get("epsilon", 1e-5))
    return [y]


def _reshape(n: _Node, a: list[Any]) -> list[Any]:
    shape = _ints(a[1])
    shape = [a[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return [a[0].reshape(shape)]


def _resize(n: _Node, a: list[Any]) -> list[Any]:
    if n.attrs.get("mode", b"nearest") != b"nearest":
        raise ModelError("only nearest-neighbour Resize is supported")
    x = a[0]
    sizes = a[3] if len(a) > 3 and a[3] is not None and a[3].numel() else None
    if sizes is not None:
        hw = _ints(sizes)[2:]
        return [F.interpolate(x, size=(hw[0], hw[1]), mode="nearest")]
    scales = _ints(a[2])[2:]
    return [F.interpolate(x, scale_factor=(scales[0], scales[1]), mode="nearest")]


def _gather(n: _Node, a: list[Any]) -> list[Any]:
    data, idx = a
    return [
        torch.index_select(data, n.attrs.get("axis", 0), idx.reshape(-1)).reshape(
            data.shape[: n.attrs.get("axis", 0)]
            + idx.shape
            + data.shape[n.attrs.get("axis", 0) + 1 :]
        )
    ]


def _unsqueeze(n: _Node, a: list[Any]) -> list[Any]:
    x = a[0]
    for ax in sorted(n.attrs["axes"]):
        x = x.unsqueeze(ax)
    return [x]


def _slice(n: _Node, a: list[Any]) -> list[Any]:
    x = a[0]
    starts, ends = _ints(a[1]), _ints(a[2])
    axes = _ints(a[3]) if len(a) > 3 else list(range(len(starts)))
    steps = _ints(a[4]) if len(a) > 4 else [1] * len(starts)
    index = [slice(None)] * x.dim()
    for s, e, ax, st in zip(starts, ends, axes, steps, strict=True):
        dim = x.shape[ax]
        e = min(e, dim) if e >= 0 else e
        index[ax] = slice(s, e, st)
    return [x[tuple(index)]]


_OPS: dict[str, _Op] = {
    "Conv": _conv,
    "Relu": lambda n, a: [torch.relu(a[0])],
    "PRelu": _prelu,
    "Sigmoid": lambda n, a: [torch.sigmoid(a[0])],
    "Add": lambda n, a: [a[0] + a[1]],
    "Flatten": lambda n, a: [torch.flatten(a[0], n.attrs.get("axis", 1))],
    "Gemm": _gemm,
    "BatchNormalization": _batchnorm,
    "Transpose": lambda n, a: [a[0].permute(*n.attrs["perm"])],
    "Reshape": _reshape,
    "Resize": _resize,
    "Shape": lambda n, a: [torch.tensor(a[0].shape, dtype=torch.int64)],
    "Gather": _gather,
    "Unsqueeze": _unsqueeze,
    "Concat": lambda n, a: [
        torch.cat([t.reshape(-1) if t.dim() == 0 else t for t in a], n.attrs["axis"])
    ],
    "Slice": _slice,
    "Cast": lambda n, a: [a[0]],  # only used on shape tensors, which stay int64 on the CPU
}


class OnnxTorchModule(torch.nn.Module):
    """An ONNX graph as a torch module: float weights are buffers (moved by ``.to()``)."""

    def __init__(self, model: onnx.ModelProto) -> None:
        super().__init__()
        graph = model.graph
        self._nodes: list[_Node] = []
        self._consts: dict[str, torch.Tensor] = {}
        self._weight_names: dict[str, str] = {}
        for init in graph.initializer:
            self._add_const(init.name, numpy_helper.to_array(init))
        for node in graph.node:
            if node.op_type == "Constant":
                self._add_const(node.output[0], numpy_helper.to_array(node.attribute[0].t))
                continue
            if node.op_type not in _OPS:
                raise ModelError(
                    f"ONNX operator {node.op_type!r} is not supported by the torch backend; "
                    "use --device cpu (onnxruntime) for this model"
                )
            self._nodes.append(_Node(node))
        init_names = {i.name for i in graph.initializer}
        self.input_name = next(i.name for i in graph.input if i.name not in init_names)
        self.output_names = [o.name for o in graph.output]

    def _add_const(self, name: str, value: np.ndarray) -> None:
        t = torch.from_numpy(np.array(value))
        if t.is_floating_point():
            buf = f"w{len(self._weight_names)}"
            self.register_buffer(buf, t.float())
            self._weight_names[name] = buf
        else:
            self._consts[name] = t.to(torch.int64)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        env: dict[str, Any] = {self.input_name: x}
        env.update(self._consts)
        for name, buf in self._weight_names.items():
            env[name] = getattr(self, buf)
        for node in self._nodes:
            args = [env[i] if i else None for i in node.inputs]
            for out, val in zip(node.outputs, _OPS[node.op](node, args), strict=False):
                env[out] = val
        return [env[o] for o in self.output_names]


def load_onnx_as_torch(path: str | Path) -> OnnxTorchModule:
    """Load an ONNX file into an :class:`OnnxTorchModule` in eval mode on the CPU."""
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises several unrelated types for a bad file
        raise ModelError(f"cannot read ONNX model {path}: {exc}") from exc
    return OnnxTorchModule(model).eval()
