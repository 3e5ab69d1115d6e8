"""Small model files with the awkward properties real ones have, built in the tests:
a recurrent state batched on axis 1, a scalar integer input, token ids that index a
constant table, unnamed dynamic axes; and a tiny plain float model to quantize."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def stateful_onnx(path: Path, vocab: int = 50) -> Path:
    """Inputs x [batch, 16] float, state [2, batch, 8] float, sr int64 scalar, ids
    [batch, seq] int64 gathered from a vocab x 16 table."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = numpy_helper.from_array(
        np.arange(vocab * 16, dtype=np.float32).reshape(vocab, 16) / 100, "table"
    )
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0),
        helper.make_node("ReduceSum", ["emb", "axes"], ["pooled"], keepdims=0),
        helper.make_node("Add", ["pooled", "x"], ["y"]),
        helper.make_node("Cast", ["sr"], ["srf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["state", "srf"], ["new_state"]),
    ]
    graph = helper.make_graph(
        nodes,
        "stateful",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "batch", 8]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16]),
            helper.make_tensor_value_info("new_state", TensorProto.FLOAT, [2, "batch", 8]),
        ],
        initializer=[table, axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def unnamed_dims_onnx(path: Path) -> Path:
    """One input image [?, 3, ?, ?] with no dimension names at all."""
    import onnx
    from onnx import TensorProto, helper

    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 3, None, None])
    out = helper.make_tensor_value_info("mean", TensorProto.FLOAT, [None, 3, 1, 1])
    node = helper.make_node("GlobalAveragePool", ["image"], ["mean"])
    model = helper.make_model(
        helper.make_graph([node], "unnamed", [image], [out]),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def tiny_onnx(path: Path, conv: bool = False) -> Path:
    """A float32 ONNX model built with onnx.helper: MatMul (or Conv) + Relu, small enough
    to quantize in a second."""
    import onnx  # lazy: onnx, as in the builders above
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    if conv:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 8, 8])
        w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
        node = helper.make_node("Conv", ["x", "w"], ["h"], pads=[1, 1, 1, 1])
    else:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
        w = rng.standard_normal((8, 4)).astype(np.float32)
        node = helper.make_node("MatMul", ["x", "w"], ["h"])
    graph = helper.make_graph(
        [node, helper.make_node("Relu", ["h"], ["y"])],
        "tiny",
        [x],
        [y],
        [onnx.numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
