"""The Keras TFLite quantizers, Keras -> ONNX (tf2onnx), PyTorch -> TFLite (litert-torch) and
PyTorch dynamic INT8, each exported from the tabular "mlp" on the real converters in its own
process, with parity against the source asserted; and the representative-dataset check."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from exporters.base import ArtifactRequest, ExportContext, export
from exporters.tflite_quantize import KerasTFLiteInt8Static, check_calibration_shapes
from workbench.registry import get_task
from workbench.tasks.tabular import HIDDEN, N_CLASSES, N_FEATURES

SIZES = (N_FEATURES, *HIDDEN["mlp"], N_CLASSES)
FP32_BYTES = 4 * sum(a * b + b for a, b in zip(SIZES[:-1], SIZES[1:], strict=True))

# (framework, format, precision, params, largest size as a fraction of the FP32 weights)
CASES = [
    ("keras", "tflite", "fp16", {}, 0.55),
    ("keras", "tflite", "int8-dynamic", {}, 0.35),
    ("keras", "tflite", "int8-static", {}, 0.35),
    ("keras", "tflite", "int8-static", {"int8_io": True}, 0.35),
    ("keras", "onnx", "fp32", {}, 1.05),
    ("torch", "torchscript", "int8-dynamic", {}, 0.35),
    ("torch", "tflite", "fp32", {}, 1.05),
]


@pytest.mark.parametrize(
    ("framework", "fmt", "precision", "params", "max_size_ratio"),
    CASES,
    ids=[f"{c[0]}-{c[1]}-{c[2]}{'-int8io' if c[3] else ''}" for c in CASES],
)
def test_mlp_export_matches_its_source(
    module_workspace, framework, fmt, precision, params, max_size_ratio
):
    manifest = export(ArtifactRequest("tabular", "mlp", framework, fmt, precision, params))
    assert manifest["status"] == "ok", manifest.get("error")
    assert Path(manifest["path"]).exists()
    assert manifest["parity_pass"] is True, manifest
    assert manifest["parity_metric_value"] >= 0.99
    assert manifest["accuracy_artifact"] == pytest.approx(manifest["accuracy_source"], abs=0.02)
    assert manifest["size_bytes"] <= max_size_ratio * FP32_BYTES
    if precision == "fp32":
        assert manifest["parity_max_abs_error"] < 1e-4
    if fmt == "tflite" and framework == "keras":
        assert 0 < manifest["quantized_tensors"] <= manifest["total_tensors"]
    if fmt == "torchscript":
        assert manifest["quantized_modules"] == manifest["quantizable_modules"] == 4
        assert Path(manifest["path"] + ".signature.json").exists()
    if fmt == "onnx":
        import onnx

        graph = onnx.load(manifest["path"]).graph
        assert [i.name for i in graph.input] == ["input"]
        assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
        assert manifest["opset"] == 17
    if framework == "torch" and fmt == "tflite":
        # litert-torch 0.10 rejects the dynamic batch; the static fallback is recorded.
        assert manifest["dynamic_batch"] is False
        assert "AssertionError" in manifest["fallback_reason"]
    if precision == "int8-static":
        # the weight-free tail after the last Dense stays float; the manifest says which
        assert manifest["float_tail"] is True
        assert isinstance(manifest["float_nodes"], list)
    if params.get("int8_io"):
        (quant,) = manifest["input_quantization"]
        assert quant["dtype"] == "int8" and quant["scale"] > 0
        assert manifest["output_quantization"][0]["dtype"] == "int8"


def test_calibration_shape_check_names_the_input_and_both_shapes():
    good = {"input": np.zeros((8, 10), np.float32)}
    assert check_calibration_shapes(good, [("input", (None, 10))]) == 8
    with pytest.raises(ValueError, match=r"'input' has shape \(8, 9\).*\(None, 10\)"):
        check_calibration_shapes({"input": np.zeros((8, 9))}, [("input", (None, 10))])
    with pytest.raises(ValueError, match="no input"):
        check_calibration_shapes({"x": np.zeros((8, 10))}, [("input", (None, 10))])


def test_wrong_calibration_shape_is_rejected_before_calibration(module_workspace):
    task = get_task("tabular")
    bad = SimpleNamespace(
        input_specs=task.input_specs,
        calibration_inputs=lambda model, n, framework="torch": {
            "input": np.zeros((n, 9), np.float32)
        },
    )
    params = KerasTFLiteInt8Static().check_params({"calibration_size": 4, "int8_io": False})
    ctx = ExportContext(bad, "mlp", "keras", "int8-static", params, None)
    converter = SimpleNamespace()
    # tf=None: the check must fail before anything touches TensorFlow or the converter.
    with pytest.raises(ValueError, match="representative dataset input 'input'"):
        KerasTFLiteInt8Static().configure(converter, None, ctx)
    assert not hasattr(converter, "representative_dataset")
