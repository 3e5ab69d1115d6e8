"""workbench.flops: exact FLOP counts of tiny hand-built ONNX graphs, and ResNet-18's
published figure (1.814 GMACs at 224x224) on a real torch export."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from workbench.flops import count_flops
from workbench.procs import child_env


def _model(nodes, inputs, outputs, weights):
    inits = [
        numpy_helper.from_array(np.zeros(shape, dtype=np.float32), name)
        for name, shape in weights.items()
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs.items()],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_conv_with_stride_padding_and_bias():
    # x [N, 3, 8, 8] * W [4, 3, 3, 3], stride 2, pad 1 -> y [N, 4, 4, 4] (+ bias [4]).
    model = _model(
        [helper.make_node("Conv", ["x", "W", "B"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1])],
        {"x": ["batch", 3, 8, 8]},
        {"y": ["batch", 4, 4, 4]},
        {"W": (4, 3, 3, 3), "B": (4,)},
    )
    n = 2
    macs = n * 4 * 4 * 4 * 3 * 3 * 3  # N * Cout * Hout * Wout * Cin * kh * kw
    bias_adds = n * 4 * 4 * 4
    fc = count_flops(model, batch_size=n)
    assert fc.total_flops == 2 * macs + bias_adds == 7040
    assert fc.per_op_type == {"Conv": 7040}
    assert fc.input_shapes == {"x": [2, 3, 8, 8]}
    assert fc.unresolved == [] and fc.uncounted == {}
    # FLOPs scale linearly with the batch
    assert count_flops(model, batch_size=1).total_flops == 7040 // 2


def test_depthwise_and_grouped_conv():
    # Depthwise: 8 groups of 1 channel, 3x3 valid -> [N, 8, 8, 8]; then a grouped 1x1
    # (2 groups of 4 input channels) to 6 channels; a Relu in between is not counted.
    model = _model(
        [
            helper.make_node("Conv", ["x", "Wd"], ["d"], group=8),
            helper.make_node("Relu", ["d"], ["r"]),
            helper.make_node("Conv", ["r", "Wg"], ["y"], group=2),
        ],
        {"x": ["batch", 8, 10, 10]},
        {"y": ["batch", 6, 8, 8]},
        {"Wd": (8, 1, 3, 3), "Wg": (6, 4, 1, 1)},
    )
    n = 3
    depthwise = 2 * n * 8 * 8 * 8 * (8 // 8) * 3 * 3  # 27648
    grouped = 2 * n * 6 * 8 * 8 * (8 // 2) * 1 * 1  # 9216
    fc = count_flops(model, batch_size=n)
    assert fc.per_op_type == {"Conv": depthwise + grouped}
    assert fc.total_flops == 27648 + 9216
    assert fc.nodes_per_op_type == {"Conv": 2}
    assert fc.uncounted == {"Relu": 1} and fc.uncounted_op_types == ["Relu"]


def test_batched_matmul_broadcast_and_gemm():
    # A [N, 2, 5, 6] @ B [2, 6, 7] -> [N, 2, 5, 7]: batch dims broadcast to N x 2.
    # Then Gemm on a [N, 16] input with transB and a bias, and a 1-D MatMul.
    model = _model(
        [
            helper.make_node("MatMul", ["a", "B"], ["mm"]),
            helper.make_node("Gemm", ["g", "Wt", "C"], ["gy"], transB=1),
            helper.make_node("MatMul", ["v", "M"], ["vy"]),
        ],
        {"a": ["batch", 2, 5, 6], "g": ["batch", 16], "v": [9]},
        {"mm": ["batch", 2, 5, 7], "gy": ["batch", 10], "vy": [3]},
        {"B": (2, 6, 7), "Wt": (10, 16), "C": (10,), "M": (9, 3)},
    )
    n = 4
    matmul = 2 * (n * 2) * 5 * 7 * 6  # 2 * batch * M * N * K = 3360
    vector = 2 * 1 * 3 * 9  # [9] @ [9, 3]: M = 1
    gemm = 2 * n * 10 * 16 + n * 10  # 2 * M * N * K + bias
    fc = count_flops(model, batch_size=n)
    assert fc.per_op_type == {"MatMul": matmul + vector, "Gemm": gemm}
    assert fc.total_flops == 3360 + 54 + 1320
    # The 1-D input has no batch dimension to fix; a fixed first dim is left alone.
    assert fc.input_shapes["v"] == [9] and fc.input_shapes["a"] == [4, 2, 5, 6]


def test_conv_transpose_and_input_dims_override():
    # x [N, 4, 5, 5], W [4, 2, 3, 3], stride 2 -> y [N, 2, 11, 11]; each input pixel
    # scatters Cin x Cout x k MACs.
    model = _model(
        [helper.make_node("ConvTranspose", ["x", "W"], ["y"], strides=[2, 2])],
        {"x": ["batch", 4, "h", "w"]},
        {"y": ["batch", 2, "H", "W"]},
        {"W": (4, 2, 3, 3)},
    )
    # Spatial dims symbolic: left out (unresolved) unless given
    unresolved = count_flops(model, batch_size=1)
    assert unresolved.total_flops == 0 and unresolved.unresolved == ["ConvTranspose y"]
    fc = count_flops(model, batch_size=1, input_dims={"x": [1, 4, 5, 5]})
    assert fc.total_flops == 2 * 1 * 5 * 5 * 4 * 2 * 3 * 3 == 3600
    with pytest.raises(ValueError, match="unknown inputs"):
        count_flops(model, input_dims={"nope": [1]})


def test_model_on_disk_is_not_modified(tmp_path):
    model = _model(
        [helper.make_node("MatMul", ["a", "B"], ["y"])],
        {"a": ["batch", 6]},
        {"y": ["batch", 7]},
        {"B": (6, 7)},
    )
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert count_flops(path, batch_size=32).total_flops == 2 * 32 * 7 * 6
    assert count_flops(model, batch_size=8).total_flops == 2 * 8 * 7 * 6
    dim = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_param == "batch"
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


EXPORT_RESNET18 = textwrap.dedent(
    """
    import sys, warnings, torch, torchvision
    model = torchvision.models.resnet18(weights=None).eval()
    args = (torch.randn(2, 3, 224, 224),)
    kwargs = dict(input_names=["input"], output_names=["output"], opset_version=18)
    warnings.simplefilter("ignore")
    try:  # the TorchScript exporter: ~0.5 s against ~4 s for dynamo
        torch.onnx.export(model, args, sys.argv[1], dynamo=False, **kwargs,
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    except Exception:  # removed in this torch: the dynamo exporter, as the workbench's
        torch.onnx.export(model, args, sys.argv[1], dynamo=True, **kwargs,
                          dynamic_shapes=({0: torch.export.Dim.AUTO},), external_data=False)
    """
)


@pytest.mark.slow
def test_resnet18_matches_published_gmacs(tmp_path):
    """torchvision lists ResNet-18 at 1.814 GFLOPS, which are multiply-accumulates: 3.63
    GFLOPs at 224x224, batch 1. Exported in a child process (never torch and TensorFlow in
    one process); takes ~4 s on a quiet host, most of it importing torch."""
    pytest.importorskip("torchvision")
    path = tmp_path / "resnet18.onnx"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", EXPORT_RESNET18, str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            env=child_env(),
        )
    except subprocess.TimeoutExpired:
        pytest.skip("the resnet18 export took over 60 s (busy host?)")
    assert proc.returncode == 0, proc.stderr[-2000:]
    fc = count_flops(path, batch_size=1)
    assert fc.total_flops == pytest.approx(2 * 1.814e9, rel=0.03)
    assert fc.nodes_per_op_type == {"Conv": 20, "Gemm": 1}
    assert fc.unresolved == []
    assert count_flops(path, batch_size=32).total_flops == 32 * fc.total_flops  # linear in N
