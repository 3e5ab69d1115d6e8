"""Every tabular export pass on the real converters, parity asserted; cache hits; a
converter that kills its process becomes a failed artifact and the others still export."""

from __future__ import annotations

import time
from pathlib import Path

import onnx
import pytest

from exporters.base import ArtifactRequest, export, find_pass
from workbench.errors import UserError
from workbench.registry import PASSES

PATHS = [
    ("torch", "onnx"),
    ("torch", "torchscript"),
    ("torch", "pt2"),
    ("keras", "savedmodel"),
    ("keras", "tflite"),
]


@pytest.mark.parametrize(("framework", "fmt"), PATHS)
def test_tabular_export_matches_its_source(workspace, framework, fmt):
    manifest = export(ArtifactRequest("tabular", "mlp", framework, fmt))
    assert manifest["status"] == "ok", manifest.get("error")
    assert Path(manifest["path"]).exists()
    assert manifest["size_bytes"] > 100_000  # the MLP has ~100k float32 weights
    assert manifest["parity_pass"] is True
    assert manifest["parity_max_abs_error"] < 1e-4
    assert manifest["parity_metric_name"] == "argmax_agreement"
    assert manifest["parity_metric_value"] == 1.0
    # The trained model is much better than chance on held-out labels, and so is the artifact.
    assert manifest["accuracy_source"] > 0.8
    assert manifest["accuracy_artifact"] == pytest.approx(manifest["accuracy_source"])
    assert len(manifest["sha256"]) == 64


def test_rerun_is_a_cache_hit(workspace):
    request = ArtifactRequest("tabular", "linear", "torch", "onnx")
    first = export(request)
    assert first["status"] == "ok" and first["cache_hit"] is False
    started = time.perf_counter()
    second = export(request)
    assert second["cache_hit"] is True
    assert second["sha256"] == first["sha256"]
    assert time.perf_counter() - started < 2.0


def test_a_changed_artifact_is_exported_again(workspace):
    request = ArtifactRequest("tabular", "linear", "torch", "onnx")
    first = export(request)
    Path(first["path"]).write_bytes(b"corrupted")
    again = export(request)
    assert again["cache_hit"] is False and again["status"] == "ok"


def test_crashing_converter_is_a_failed_artifact_and_others_go_on(workspace, load_plugin):
    load_plugin("tests.support.crashing_pass", PASSES)
    crashed = export(ArtifactRequest("tabular", "linear", "torch", "crashformat"))
    assert crashed["status"] == "failed"
    assert "signal 6" in crashed["error"]
    fine = export(ArtifactRequest("tabular", "linear", "torch", "torchscript"))
    assert fine["status"] == "ok"


def test_unknown_pass_parameters_and_formats_are_rejected():
    with pytest.raises(UserError, match="no parameter"):
        find_pass("torch", "onnx", "fp32").check_params({"opsett": 17})
    with pytest.raises(UserError, match="no exporter"):
        find_pass("torch", "coreml", "fp32")


def test_parallel_exports_of_one_artifact_export_it_once(workspace):
    from exporters.base import export_many

    request = ArtifactRequest("tabular", "linear", "torch", "torchscript")
    first, second = export_many([request, request], jobs=2)
    assert first["status"] == second["status"] == "ok"
    assert sorted([first["cache_hit"], second["cache_hit"]]) == [False, True]
    assert first["sha256"] == second["sha256"]


def test_the_dynamo_exports_dynamic_axes_carry_the_tasks_names(workspace):
    """torch.export names a dynamic dimension `s77`; the ONNX file says `batch`, in the
    input and in the outputs that share it, so rows and served metadata read as such."""
    manifest = export(
        ArtifactRequest("image_classification", "digits_cnn", "torch", "onnx", "fp32")
    )
    assert manifest["status"] == "ok" and "dynamo=True" in manifest["exporter"], manifest
    graph = onnx.load(manifest["path"]).graph
    dims = {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*graph.input, *graph.output]
    }
    (image,) = [v.name for v in graph.input]
    assert dims[image] == ["batch", 1, 8, 8]
    assert all(d[0] == "batch" for d in dims.values()), dims
