"""ONNX Runtime dynamic INT8, static INT8 (QDQ; MinMax, Entropy, Percentile) and FP16 on the
trained tabular "mlp", each exported in its own process with parity against the PyTorch
source; the calibration-set check; the INT8/FP16 warnings."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from exporters import onnx_quantize as oq
from exporters.base import ArtifactRequest, ExportContext, export
from tests.support.model_files import tiny_onnx
from workbench.errors import UserError


@pytest.fixture(scope="module")
def fp32(module_workspace):
    manifest = export(ArtifactRequest("tabular", "mlp", "torch", "onnx", "fp32"))
    assert manifest["status"] == "ok", manifest.get("error")
    return manifest


def _export(precision: str, **params) -> dict:
    manifest = export(ArtifactRequest("tabular", "mlp", "torch", "onnx", precision, params))
    assert manifest["status"] == "ok", manifest.get("error")
    assert Path(manifest["path"]).exists()
    assert manifest["parity_metric_name"] == "argmax_agreement"
    assert manifest["parity_metric_value"] >= 0.95
    assert manifest["parity_max_abs_error"] is not None
    assert 0 < manifest["quantized_nodes"] <= manifest["total_nodes"]
    assert set(manifest["cpu_int8_support"]) == {"avx512_vnni", "avx_vnni", "amx_int8"}
    assert manifest["exporter"].startswith("onnxruntime.")
    assert manifest["exporter_version"]
    assert manifest["opset"] >= 13
    return manifest


def test_dynamic_int8(fp32):
    manifest = _export("int8-dynamic")
    assert manifest["pass"] == "onnx_int8_dynamic"
    assert manifest["parity_pass"] is True, manifest
    assert manifest["quantized_nodes"] == 4  # the four Linear layers (MatMulInteger)
    assert manifest["cpu_integer_nodes"] == 4  # DynamicQuantizeMatMul once ORT fuses them
    assert manifest["size_bytes"] < 0.35 * fp32["size_bytes"]
    assert manifest["params"] == {
        "per_channel": False,
        "weight_type": "qint8",
        "op_types_to_quantize": "",
        "op_types_to_exclude": "",
        "nodes_to_exclude": "",
        "accuracy_aware": True,
        "max_accuracy_drop": 1.0,
        "search_items": 128,
        "search_steps": 5,
        "max_excluded_fraction": 0.5,
    }
    # the tabular MLP's INT8 keeps its accuracy: the search measured it and stopped
    assert manifest["int8_search"] == "not needed", manifest["int8_search_reason"]
    assert manifest["int8_excluded_count"] == 0
    assert manifest["int8_op_types"] == ["MatMulInteger"]
    assert not any("Conv" in w for w in manifest["warnings"])


def test_static_int8_minmax(fp32):
    manifest = _export("int8-static")
    assert manifest["pass"] == "onnx_int8_static"
    assert manifest["parity_pass"] is True, manifest
    assert manifest["parity_metric_value"] >= 0.99
    assert manifest["accuracy_artifact"] == pytest.approx(manifest["accuracy_source"], abs=0.02)
    assert manifest["quantized_nodes"] == 4  # Gemms fed by DequantizeLinear
    assert manifest["size_bytes"] < 0.35 * fp32["size_bytes"]
    assert manifest["float_outputs"] == ["output"]
    # ORT's CPU provider runs every quantized Gemm as an integer kernel (QGemm).
    assert manifest["cpu_integer_nodes"] >= 4
    assert manifest["cpu_unfused_quantized_nodes"] == 0
    assert manifest["params"]["activation_type"] == "quint8"
    assert manifest["calibration_items"] == 256
    model = onnx.load(manifest["path"])
    ops = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # Pre-processing renames symbolic dims; the artifact keeps the FP32 model's names.
    fp32_dim = onnx.load(fp32["path"]).graph.input[0].type.tensor_type.shape.dim[0].dim_param
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == fp32_dim


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_static_int8_other_calibration_methods(fp32, method):
    minmax = _export("int8-static")  # cached by the test above
    manifest = _export("int8-static", calibration_method=method)
    assert manifest["params"]["calibration_method"] == method
    assert manifest["size_bytes"] < 0.35 * fp32["size_bytes"]
    # The method really changes the calibrated ranges (ORT's default Entropy settings
    # silently reproduce MinMax).
    assert manifest["sha256"] != minmax["sha256"]
    if method == "percentile":
        assert manifest["parity_pass"] is True, manifest
    # Entropy (KL) clips the ReLU tails on this model: the argmax agrees but the max error
    # may exceed the INT8 tolerance; the verdict is recorded either way.
    assert isinstance(manifest["parity_pass"], bool)


def test_fp16_keeps_float32_io(fp32):
    manifest = _export("fp16")
    assert manifest["pass"] == "onnx_fp16"
    assert manifest["parity_pass"] is True, manifest
    assert manifest["parity_max_abs_error"] < 0.05
    assert manifest["quantized_nodes"] == manifest["total_nodes"] == 7
    assert 0.4 < manifest["size_bytes"] / fp32["size_bytes"] < 0.6
    assert any("slower than FP32 on CPU" in w for w in manifest["warnings"])
    model = onnx.load(manifest["path"])
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT


# --------------------------------------------------------------------------- calibration set

EXPECTED = [
    oq.OnnxInput("input_ids", np.dtype("int64"), (None, 16)),
    oq.OnnxInput("pixels", np.dtype("float32"), (None, 3, 8, 8)),
]


def _feed(n: int = 4) -> dict[str, np.ndarray]:
    return {
        "input_ids": np.zeros((n, 16), dtype=np.int64),
        "pixels": np.zeros((n, 3, 8, 8), dtype=np.float32),
    }


def test_calibration_set_that_fits_is_accepted():
    assert oq.validate_calibration_inputs(_feed(5), EXPECTED) == 5


def test_calibration_set_of_the_wrong_shape_is_rejected():
    feed = {**_feed(), "pixels": np.zeros((4, 3, 9, 8), dtype=np.float32)}
    with pytest.raises(ValueError, match=r"'pixels'.*\(4, 3, 9, 8\).*\(\?, 3, 8, 8\)"):
        oq.validate_calibration_inputs(feed, EXPECTED)
    feed = {**_feed(), "input_ids": np.zeros((4, 16, 1), dtype=np.int64)}
    with pytest.raises(ValueError, match=r"'input_ids'.*\(4, 16, 1\).*\(\?, 16\)"):
        oq.validate_calibration_inputs(feed, EXPECTED)


def test_calibration_set_missing_an_input_is_rejected():
    with pytest.raises(ValueError, match="no input 'pixels'.*input_ids, pixels"):
        oq.validate_calibration_inputs({"input_ids": _feed()["input_ids"]}, EXPECTED)
    with pytest.raises(ValueError, match="'mask' that the model does not take"):
        oq.validate_calibration_inputs({**_feed(), "mask": np.zeros(4)}, EXPECTED)


def test_calibration_set_of_the_wrong_dtype_is_rejected():
    feed = {**_feed(), "input_ids": np.zeros((4, 16), dtype=np.int32)}
    with pytest.raises(ValueError, match="'input_ids' has dtype int32.*expects int64"):
        oq.validate_calibration_inputs(feed, EXPECTED)


def test_calibration_inputs_must_agree_on_the_item_count():
    feed = {**_feed(4), "pixels": np.zeros((3, 3, 8, 8), dtype=np.float32)}
    with pytest.raises(ValueError, match="number of items"):
        oq.validate_calibration_inputs(feed, EXPECTED)


def test_wrong_shape_is_rejected_before_calibration_starts(tmp_path, monkeypatch):
    source = tiny_onnx(tmp_path / "fp32.onnx")
    task = SimpleNamespace(
        calibration_inputs=lambda model, n, **kw: {"x": np.zeros((n, 9), dtype=np.float32)}
    )
    ctx = ExportContext(task, "m", "torch", "int8-static", {}, None, source)
    ctx.params = oq.OnnxInt8Static().check_params({"calibration_size": 8})

    def never(*args, **kwargs):
        raise AssertionError("calibration started")

    monkeypatch.setattr(oq, "calibrate", never)
    monkeypatch.setattr(oq, "preprocess_model", never)
    with pytest.raises(ValueError, match=r"'x'.*\(8, 9\).*\(\?, 8\)"):
        oq.OnnxInt8Static().export(ctx, tmp_path / "out.onnx")


def test_dynamic_int8_warns_on_conv_and_without_vnni(tmp_path, monkeypatch):
    source = tiny_onnx(tmp_path / "conv.onnx", conv=True)
    ctx = ExportContext(None, "m", "torch", "int8-dynamic", {}, None, source)
    ctx.params = oq.OnnxInt8Dynamic().check_params({})
    monkeypatch.setattr(oq, "int8_support", lambda: dict.fromkeys(oq.INT8_FLAGS, False))
    extras = oq.OnnxInt8Dynamic().export(ctx, tmp_path / "out.onnx")
    assert extras["warnings"] == [oq.CONV_DYNAMIC_WARNING, oq.NO_VNNI_WARNING]
    assert extras["quantized_nodes"] >= 1  # ConvInteger


def test_int8_warnings():
    no_vnni = dict.fromkeys(oq.INT8_FLAGS, False)
    vnni = {**no_vnni, "avx512_vnni": True}
    assert oq.int8_warnings(vnni, {"cpu_unfused_quantized_nodes": 0}) == []
    assert oq.int8_warnings(no_vnni, {}) == [oq.NO_VNNI_WARNING]
    (unfused,) = oq.int8_warnings(vnni, {"cpu_unfused_quantized_nodes": 11})
    assert "leaves 11 quantized Conv/MatMul/Gemm" in unfused


def test_bad_parameters_list_the_valid_ones():
    with pytest.raises(UserError, match="minmax, entropy, percentile"):
        oq.StaticConfig(calibration_method="kl")
    with pytest.raises(UserError, match="qint8, quint8"):
        oq.DynamicConfig(weight_type="int4")
    with pytest.raises(UserError, match="positive integer"):
        oq.StaticConfig(calibration_size=0)


def test_reduce_range_follows_the_exporting_cpu(monkeypatch):
    """7-bit weights exactly where x86 integer kernels would saturate (no VNNI, no AMX)."""
    monkeypatch.setattr(oq, "int8_support", lambda: dict.fromkeys(oq.INT8_FLAGS, False))
    assert oq.StaticConfig().reduce_range is True
    assert oq.StaticConfig.parse({"reduce_range": False}).reduce_range is False
    monkeypatch.setattr(
        oq, "int8_support", lambda: {**dict.fromkeys(oq.INT8_FLAGS, False), oq.INT8_FLAGS[0]: True}
    )
    assert oq.OnnxInt8Static().check_params({}).to_dict()["reduce_range"] is False


# --------------------------------------------------------------------------- node selection


def _embedding_model(path: Path) -> Path:
    """ids [batch, 6] -> Gather from a [50, 16] table -> MatMul [16, 4]: the shape of an
    embedding-heavy model (a CTR model's feature embeddings)."""
    rng = np.random.default_rng(0)
    table = rng.standard_normal((50, 16)).astype(np.float32)
    weight = rng.standard_normal((16, 4)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "ids"], ["emb"], name="embedding"),
            helper.make_node("MatMul", ["emb", "w"], ["y"], name="head"),
        ],
        "embed",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 6, 4])],
        [
            helper.make_tensor("table", TensorProto.FLOAT, table.shape, table.ravel()),
            helper.make_tensor("w", TensorProto.FLOAT, weight.shape, weight.ravel()),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.save(model, path)
    return path


def _dynamic(tmp_path: Path, name: str, **params) -> tuple[dict, set[str]]:
    source = _embedding_model(tmp_path / "embed.onnx")
    ctx = ExportContext(None, "m", "torch", "int8-dynamic", {}, None, source)
    ctx.params = oq.OnnxInt8Dynamic().check_params(params)
    out = tmp_path / name
    extras = oq.OnnxInt8Dynamic().export(ctx, out)
    return extras, {node.op_type for node in onnx.load(str(out)).graph.node}


def test_dynamic_int8_gather_follows_op_types_to_quantize(tmp_path):
    # ORT 1.31's quantize_dynamic quantizes Gather on an initializer table by default (its
    # IntegerOpsRegistry lists Gather); op_types_to_quantize narrows or names it explicitly.
    extras, ops = _dynamic(tmp_path, "default.onnx")
    assert extras["int8_op_types"] == ["Gather", "MatMulInteger"]
    extras, ops = _dynamic(tmp_path, "matmul.onnx", op_types_to_quantize="MatMul")
    assert extras["int8_op_types"] == ["MatMulInteger"]
    table = next(i for i in onnx.load(str(tmp_path / "matmul.onnx")).graph.initializer
                 if i.name == "table")  # fmt: skip
    assert table.data_type == TensorProto.FLOAT
    extras, ops = _dynamic(tmp_path, "gather.onnx", op_types_to_quantize="Gather, MatMul")
    assert extras["int8_op_types"] == ["Gather", "MatMulInteger"]
    assert extras["params"]["op_types_to_quantize"] == "Gather, MatMul"
    # the table is stored in 8 bits and dequantized after the lookup
    model = onnx.load(str(tmp_path / "gather.onnx"))
    eight_bit = (TensorProto.INT8, TensorProto.UINT8)
    tables = [i for i in model.graph.initializer if i.data_type in eight_bit]
    assert sorted(tuple(i.dims) for i in tables if i.dims) == [(16, 4), (50, 16)]


def test_dynamic_int8_excludes_nodes_by_name_and_op_type(tmp_path):
    extras, ops = _dynamic(tmp_path, "byname.onnx", nodes_to_exclude="head")
    assert extras["excluded_nodes"] == 1
    assert "MatMulInteger" not in ops and "MatMul" in ops
    extras, ops = _dynamic(tmp_path, "bytype.onnx", op_types_to_exclude="MatMul,Softmax")
    assert "MatMul" in ops and extras["quantized_nodes"] == 0
    assert any("Softmax" in w for w in extras["warnings"])  # named, but not in the graph
    with pytest.raises(UserError, match="nodes_to_exclude names 'nope'"):
        _dynamic(tmp_path, "bad.onnx", nodes_to_exclude="nope")


def test_static_int8_op_type_exclusions_keep_nodes_in_float(tmp_path):
    source = _embedding_model(tmp_path / "embed.onnx")
    rng = np.random.default_rng(1)
    task = SimpleNamespace(
        calibration_inputs=lambda model, n, **kw: {"ids": rng.integers(0, 50, (n, 6))}
    )

    def export_static(name: str, **params) -> tuple[bool, dict]:
        """(whether the MatMul's weight is quantized, the manifest extras)"""
        ctx = ExportContext(task, "m", "torch", "int8-static", {}, None, source)
        ctx.params = oq.OnnxInt8Static().check_params({"calibration_size": 16, **params})
        extras = oq.OnnxInt8Static().export(ctx, tmp_path / name)
        model = onnx.load(str(tmp_path / name))
        dq_out = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
        matmul = next(n for n in model.graph.node if n.op_type == "MatMul")
        return matmul.input[1] in dq_out, extras

    quantized, extras = export_static("all.onnx")
    assert quantized and extras["excluded_nodes"] == 0
    quantized, extras = export_static("excluded.onnx", op_types_to_exclude="MatMul")
    assert not quantized and extras["excluded_nodes"] == 1
