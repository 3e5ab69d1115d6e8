"""Count the multiply-accumulate FLOPs of an ONNX model at a given batch size.

The model's symbolic batch dimension is fixed (the first dimension of every graph input
that is not already a number), ONNX shape inference fills in every tensor's shape, and
the arithmetic of the ops that dominate CNNs and transformers is summed:

* Conv / ConvInteger / QLinearConv: ``2 * N * Cout * prod(out_spatial) * (Cin / groups)
  * prod(kernel)``, plus ``N * Cout * prod(out_spatial)`` additions for a bias.
* ConvTranspose: ``2 * N * Cin * prod(in_spatial) * (Cout / groups) * prod(kernel)``,
  plus the bias additions over the output.
* Gemm: ``2 * M * N * K``, plus ``M * N`` additions when it has a C (bias) input.
* MatMul / MatMulInteger / QLinearMatMul: ``2 * M * N * K`` times the product of the
  broadcast batch dimensions (NumPy matmul semantics, 1-D operands included).

One multiply-accumulate is two FLOPs, whatever the dtype: the integer ops of a quantized
model are counted the same way, so its total matches its FP32 source. Every other op
(activations, normalization, pooling, element-wise, ...) is ignored and listed in
`FlopCount.uncounted`: for a CNN they are a fraction of a percent of the arithmetic.
Subgraphs (If/Loop/Scan bodies) and model-local functions are not entered; such nodes are
listed as uncounted too.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any

# op type -> index of (data input, weight input, bias input or None)
_CONV_INPUTS = {
    "Conv": (0, 1, 2),
    "ConvInteger": (0, 1, None),
    "QLinearConv": (0, 3, 8),
    "ConvTranspose": (0, 1, 2),
}
# op type -> index of (A, B)
_MATMUL_INPUTS = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3)}
COUNTED_OP_TYPES = (*_CONV_INPUTS, "Gemm", *_MATMUL_INPUTS)


@dataclass
class FlopCount:
    """FLOPs of one forward pass at `batch_size` (1 multiply-accumulate = 2 FLOPs)."""

    total_flops: int
    batch_size: int
    per_op_type: dict[str, int] = field(default_factory=dict)  # op type -> FLOPs
    nodes_per_op_type: dict[str, int] = field(default_factory=dict)  # op type -> nodes counted
    uncounted: dict[str, int] = field(default_factory=dict)  # op type -> nodes not counted
    # Nodes of a counted type whose shapes shape inference could not resolve (left out).
    unresolved: list[str] = field(default_factory=list)
    input_shapes: dict[str, list[int | str | None]] = field(default_factory=dict)

    @property
    def gflops(self) -> float:
        return self.total_flops / 1e9

    @property
    def macs(self) -> int:
        return self.total_flops // 2

    @property
    def uncounted_op_types(self) -> list[str]:
        return sorted(self.uncounted)

    def to_json(self) -> dict[str, Any]:
        return {
            "total_flops": self.total_flops,
            "gflops": self.gflops,
            "batch_size": self.batch_size,
            "per_op_type": dict(self.per_op_type),
            "nodes_per_op_type": dict(self.nodes_per_op_type),
            "not_counted": dict(self.uncounted),
            "unresolved": list(self.unresolved),
            "input_shapes": dict(self.input_shapes),
        }


def _load(model: Any) -> Any:
    # lazy: onnx
    import onnx

    if isinstance(model, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return copy
    # Shapes only: large weights stored as external data are never read.
    return onnx.load(str(model), load_external_data=False)


def fix_input_dims(
    model: Any, batch_size: int, input_dims: Mapping[str, Sequence[int]] | None = None
) -> dict[str, list[int | str | None]]:
    """In place: give every graph input a concrete batch (its first dimension, when that
    is symbolic or unknown) or the full shape from `input_dims`; returns the input shapes.
    Graph outputs' symbolic dimensions and stale `value_info` are cleared so that shape
    inference recomputes them from the fixed inputs."""
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    shapes: dict[str, list[int | str | None]] = {}
    input_dims = dict(input_dims or {})
    unknown = set(input_dims) - {i.name for i in graph.input}
    if unknown:
        raise ValueError(f"input_dims names unknown inputs: {', '.join(sorted(unknown))}")
    for value in graph.input:
        if value.name in initializers or not value.type.HasField("tensor_type"):
            continue
        tensor_type = value.type.tensor_type
        if value.name in input_dims:
            tensor_type.ClearField("shape")
            for d in input_dims[value.name]:
                tensor_type.shape.dim.add().dim_value = int(d)
        elif tensor_type.HasField("shape") and tensor_type.shape.dim:
            first = tensor_type.shape.dim[0]
            if not first.HasField("dim_value"):
                first.Clear()
                first.dim_value = batch_size
        shapes[value.name] = [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in tensor_type.shape.dim
        ]
    for value in graph.output:
        if value.type.HasField("tensor_type") and value.type.tensor_type.HasField("shape"):
            for d in value.type.tensor_type.shape.dim:
                if not d.HasField("dim_value"):
                    d.Clear()
    del graph.value_info[:]
    return shapes


def _shape_table(graph: Any) -> dict[str, tuple[int | None, ...] | None]:
    """name -> shape (None per unknown dimension), for every tensor with a known rank."""
    table: dict[str, tuple[int | None, ...] | None] = {}
    for init in graph.initializer:
        table[init.name] = tuple(int(d) for d in init.dims)
    for value in [*graph.input, *graph.value_info, *graph.output]:
        if value.name in table or not value.type.HasField("tensor_type"):
            continue
        tensor_type = value.type.tensor_type
        if not tensor_type.HasField("shape"):
            continue
        table[value.name] = tuple(
            d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim
        )
    for node in graph.node:  # Constant nodes: shapes from the attribute itself
        if node.op_type == "Constant" and node.output and node.output[0] not in table:
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    table[node.output[0]] = tuple(int(d) for d in attr.t.dims)
    return table


def _known(shape: tuple[int | None, ...] | None) -> bool:
    return shape is not None and all(isinstance(d, int) and d >= 0 for d in shape)


def _input(node: Any, index: int | None) -> str:
    if index is None or index >= len(node.input):
        return ""
    return node.input[index]


def _attr_int(node: Any, name: str, default: int) -> int:
    for attr in node.attribute:
        if attr.name == name:
            return int(attr.i)
    return default


def _conv_flops(node: Any, shapes: Mapping[str, Any]) -> int | None:
    x_idx, w_idx, b_idx = _CONV_INPUTS[node.op_type]
    x = shapes.get(_input(node, x_idx))
    w = shapes.get(_input(node, w_idx))
    y = shapes.get(node.output[0]) if node.output else None
    if not (_known(x) and _known(w) and _known(y)) or len(x) < 3 or len(w) != len(x):
        return None
    bias = bool(_input(node, b_idx))
    batch = x[0]
    if node.op_type == "ConvTranspose":
        # W: [Cin, Cout / groups, k...]; every input pixel scatters Cout/groups x k MACs.
        macs = batch * prod(x[2:]) * prod(w)
        cout = y[1]
    else:
        # W: [Cout, Cin / groups, k...]; every output pixel gathers (Cin/groups) x k MACs.
        cout = w[0]
        macs = batch * prod(y[2:]) * prod(w)
    adds = batch * cout * prod(y[2:]) if bias else 0
    return 2 * macs + adds


def _gemm_flops(node: Any, shapes: Mapping[str, Any]) -> int | None:
    a, b = shapes.get(_input(node, 0)), shapes.get(_input(node, 1))
    if not (_known(a) and _known(b)) or len(a) != 2 or len(b) != 2:
        return None
    m, k = (a[1], a[0]) if _attr_int(node, "transA", 0) else (a[0], a[1])
    n = b[0] if _attr_int(node, "transB", 0) else b[1]
    adds = m * n if _input(node, 2) else 0
    return 2 * m * n * k + adds


def _broadcast(a: Sequence[int], b: Sequence[int]) -> list[int] | None:
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        da = a[-i] if i <= len(a) else 1
        db = b[-i] if i <= len(b) else 1
        if da != db and 1 not in (da, db):
            return None
        out.append(max(da, db) if 0 not in (da, db) else 0)
    return out[::-1]


def _matmul_flops(node: Any, shapes: Mapping[str, Any]) -> int | None:
    a_idx, b_idx = _MATMUL_INPUTS[node.op_type]
    a, b = shapes.get(_input(node, a_idx)), shapes.get(_input(node, b_idx))
    if not (_known(a) and _known(b)) or not a or not b:
        return None
    # NumPy matmul: a 1-D operand is a row (A) or column (B) vector, its dimension dropped.
    m, k = (1, a[0]) if len(a) == 1 else (a[-2], a[-1])
    n = 1 if len(b) == 1 else b[-1]
    batch = _broadcast(a[:-2], b[:-2])
    if batch is None:
        return None
    return 2 * prod(batch) * m * n * k


def _node_flops(node: Any, shapes: Mapping[str, Any]) -> int | None:
    if node.op_type in _CONV_INPUTS:
        return _conv_flops(node, shapes)
    if node.op_type == "Gemm":
        return _gemm_flops(node, shapes)
    return _matmul_flops(node, shapes)


def count_flops(
    model: Any,
    batch_size: int = 1,
    input_dims: Mapping[str, Sequence[int]] | None = None,
) -> FlopCount:
    """FLOPs of one forward pass of `model` (a path or an `onnx.ModelProto`, not modified)
    at `batch_size`. `input_dims` gives full shapes for inputs with other symbolic dims
    (e.g. a sequence length). Nodes whose shapes stay unknown are listed in `unresolved`
    and left out of the total rather than guessed."""
    # lazy: onnx
    import onnx

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    proto = _load(model)
    input_shapes = fix_input_dims(proto, batch_size, input_dims)
    inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=False, data_prop=True)
    shapes = _shape_table(inferred.graph)

    per_op: Counter[str] = Counter()
    nodes: Counter[str] = Counter()
    uncounted: Counter[str] = Counter()
    unresolved: list[str] = []
    for node in inferred.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in COUNTED_OP_TYPES:
            label = (
                node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
            )
            uncounted[label] += 1
            continue
        flops = _node_flops(node, shapes)
        if flops is None:
            unresolved.append(f"{node.op_type} {node.name or node.output[0]}")
            continue
        per_op[node.op_type] += flops
        nodes[node.op_type] += 1
    return FlopCount(
        total_flops=sum(per_op.values()),
        batch_size=batch_size,
        per_op_type=dict(per_op.most_common()),
        nodes_per_op_type=dict(nodes.most_common()),
        uncounted=dict(uncounted.most_common()),
        unresolved=unresolved,
        input_shapes=input_shapes,
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m workbench.flops MODEL.onnx [--batch N]`: print the count as JSON."""
    ap = argparse.ArgumentParser(description="FLOPs of an ONNX model")
    ap.add_argument("model", type=Path)
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args(argv)
    print(json.dumps(count_flops(args.model, args.batch).to_json(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
