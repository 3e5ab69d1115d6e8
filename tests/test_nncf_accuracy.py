"""Accuracy-aware NNCF INT8 (`openvino_int8_static`, exporters.nncf_accuracy) on a small
real model through real OpenVINO and NNCF: a three-layer MLP whose input feature 0 has zero
weight, so it never changes the FP32 function, but the calibration rows carry it at 1000.
NNCF's per-tensor activation range of the input then spans +-1000 and rounds every real
feature to zero: plain INT8 answers one class, until the first layer runs in float."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import openvino as ov
import pytest
from onnx import TensorProto, helper, numpy_helper

from exporters.base import ArtifactRequest, ExportContext, find_pass
from exporters.int8_search import search_params
from exporters.nncf_accuracy import quantized_operations
from exporters.openvino_passes import NncfInt8Static, NncfParams, OpenVinoIr
from workbench.errors import UserError
from workbench.registry import get_task
from workbench.sweep import TaskSweep, int8_search_labels, plan

WIDTH = 16
CLASSES = 4


def mlp_onnx(path: Path) -> Path:
    """x (n, WIDTH) -> 2 x (MatMul + Relu) -> MatMul -> logits (n, CLASSES); the weights
    of input feature 0 are zero."""
    rng = np.random.default_rng(0)
    nodes, inits, name = [], [], "x"
    for layer, width in enumerate((WIDTH, WIDTH, CLASSES)):
        weight = rng.normal(0, 1 / np.sqrt(WIDTH), (WIDTH, width)).astype(np.float32)
        if layer == 0:
            weight[0, :] = 0.0
        inits.append(numpy_helper.from_array(weight, f"w{layer}"))
        out = "logits" if layer == 2 else f"h{layer}"
        mm = out if layer == 2 else f"m{layer}"
        nodes.append(helper.make_node("MatMul", [name, f"w{layer}"], [mm], f"mm{layer}"))
        if layer < 2:
            nodes.append(helper.make_node("Relu", [mm], [out], f"relu{layer}"))
        name = out
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", WIDTH])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", CLASSES])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def rows(n: int, seed: int, outlier: float) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, WIDTH)).astype(np.float32)
    x[:, 0] = 0.0
    x[::4, 0] = outlier  # a quarter of the rows carry the outlier feature
    return x


class Task:
    """A task as the pass reads one: calibration inputs, a labelled held-out set (labels:
    the FP32 model's own top-1), top-1 accuracy and top-1 agreement."""

    name = "tiny_mlp"
    version = "1"

    def __init__(self, fp32_ir: Path, outlier: float, labels: bool = True) -> None:
        self.outlier, self.labelled = outlier, labels
        self.x = rows(64, 1, 0.0)
        self.y = (
            ov.Core()
            .compile_model(str(fp32_ir), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})({"x": self.x})[
                0
            ]
            .argmax(1)
        )

    def calibration_inputs(self, model, count, framework="torch"):
        return {"x": rows(count, 2, self.outlier)}

    def parity_count(self, model):
        return len(self.x)

    def held_out(self, model, n, framework="torch"):
        return {"x": self.x[:n]}, (self.y[:n] if self.labelled else None)

    def scored_output(self, outputs):
        return outputs[0]

    def accuracy(self, outputs, labels):
        return float(np.mean(np.asarray(outputs).argmax(1) == labels))

    def parity(self, reference, candidate, model=None):
        return {"metric_value": float(np.mean(reference[0].argmax(1) == candidate[0].argmax(1)))}


@pytest.fixture(scope="module")
def fp32_ir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mlp")
    ir = root / "fp32" / "model.xml"
    ir.parent.mkdir()
    ctx = ExportContext(None, "mlp", "torch", "fp32", None, None, mlp_onnx(root / "mlp.onnx"))
    OpenVinoIr().export(ctx, ir)
    return ir


def export(fp32_ir: Path, out: Path, task: Task, **params) -> dict:
    """The `openvino_int8_static` pass on `fp32_ir` into the folder `out`: its manifest."""
    pass_ = NncfInt8Static()
    ctx = ExportContext(
        task, "mlp", "torch", "int8-static", pass_.check_params(params), None, fp32_ir
    )
    out.mkdir(parents=True)
    return pass_.export(ctx, out / "model.xml")


def top1(ir: Path, x: np.ndarray) -> np.ndarray:
    compiled = ov.Core().compile_model(str(ir), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return compiled({"x": x})[0].argmax(1)


def accuracy(ir: Path, task: Task) -> float:
    return float(np.mean(top1(ir, task.x) == task.y))


def test_plain_int8_misses_the_budget_and_accuracy_control_restores_it(fp32_ir, tmp_path):
    task = Task(fp32_ir, outlier=1000.0)
    plain = export(fp32_ir, tmp_path / "off", task, accuracy_aware=False)
    assert plain["int8_search"] == "off" and plain["exporter"].startswith("nncf.quantize ")
    assert accuracy(tmp_path / "off" / "model.xml", task) < 0.9  # the premise: 10+ points lost

    found = export(fp32_ir, tmp_path / "aware", task, search_steps=3)
    assert found["exporter"].startswith("nncf.quantize_with_accuracy_control ")
    assert found["int8_search"] == "met", found["int8_search_reason"]
    assert found["int8_excluded_nodes"] == ["mm0"]  # the layer fed the outlier input
    assert found["int8_excluded_count"] == 1 and found["int8_candidate_nodes"] == 3
    steps = found["int8_search_steps"]
    assert steps[0]["excluded"] == 0 and steps[0]["drop_points"] > 10  # plain INT8
    assert steps[-1]["excluded"] == 1 and steps[-1]["drop_points"] <= 1.0
    assert steps[-1]["agreement"] >= found["int8_search_min_agreement"] == 0.95
    assert found["int8_search_reference"] == 1.0 and found["int8_search_items"] == 64
    assert found["int8_search_restore"] == "activations and weights"  # no SmoothQuant here
    # the artifact written is the restored one: one FakeQuantize fewer, and it keeps top-1
    assert found["quantized_nodes"] == found["int8_fake_quantize_plain"] - 1
    written = ov.Core().read_model(str(tmp_path / "aware" / "model.xml"))
    assert quantized_operations(written) == ["mm1", "logits"]
    assert accuracy(tmp_path / "aware" / "model.xml", task) >= 0.99
    row = int8_search_labels(found)  # a sweep row carries it flat, as the ORT search's
    assert row["int8_excluded_nodes"] == "mm0" and row["int8_search_steps"].startswith("0:0.")


def test_within_budget_is_not_needed_and_no_labels_is_skipped(fp32_ir, tmp_path):
    clean = Task(fp32_ir, outlier=0.0)
    fine = export(fp32_ir, tmp_path / "fine", clean)
    assert fine["int8_search"] == "not needed" and len(fine["int8_search_steps"]) == 1
    assert "NNCF reverted nothing" in fine["int8_search_reason"]
    assert fine["quantized_nodes"] == fine["int8_fake_quantize_plain"] == 3
    # with SmoothQuant (transformer scheme) a reverted operation keeps its smoothed weights
    smoothed = export(fp32_ir, tmp_path / "smoothed", clean, model_type="transformer")
    assert smoothed["smooth_quant"] and smoothed["int8_search_restore"] == "activations only"

    blind = export(fp32_ir, tmp_path / "blind", Task(fp32_ir, outlier=1000.0, labels=False))
    assert blind["int8_search"] == "skipped" and "no true labels" in blind["int8_search_reason"]
    assert blind["exporter"].startswith("nncf.quantize ")  # plain quantization, as before


class Disagreeing(Task):
    """Decision agreement that never reaches the floor: NNCF's quality check alone would
    accept its result."""

    def parity(self, reference, candidate, model=None):
        return {"metric_value": 0.5}


def test_the_agreement_floor_holds_and_the_plain_model_is_kept(fp32_ir, tmp_path):
    task = Disagreeing(fp32_ir, outlier=1000.0)
    found = export(fp32_ir, tmp_path / "floor", task, search_steps=3)
    assert found["int8_search"] == "not met"
    assert found["int8_search_steps"][-1]["drop_points"] <= 1.0  # quality alone would fit
    assert "agreement >= 0.95" in found["int8_search_reason"]
    assert "plain INT8 model is kept" in found["int8_search_reason"]
    assert found["int8_excluded_count"] == 0 and found["int8_excluded_nodes"] == []
    assert found["quantized_nodes"] == found["int8_fake_quantize_plain"]
    assert accuracy(tmp_path / "floor" / "model.xml", task) < 0.9  # plain: still broken


def test_sweeps_give_the_nncf_pass_its_budget_and_profile_size_in_the_key():
    with pytest.raises(UserError, match="max_accuracy_drop"):
        NncfParams(max_accuracy_drop=-1)
    sweep = TaskSweep(
        "text_classification",
        models=["minilm_classifier"],
        frameworks=["torch"],
        formats=["openvino"],
        precisions=["fp32", "int8-static"],
        profile="ci",
        max_accuracy_drop=2.0,
    )
    requests = {job.precision: job.request for job in plan(sweep)}
    assert requests["int8-static"].params == search_params("ci", 2.0)
    assert requests["fp32"].params == {}
    task = get_task("text_classification")
    pass_ = find_pass("torch", "openvino", "int8-static")

    def key(**params):
        return ArtifactRequest(
            "text_classification", "minilm_classifier", "torch", "openvino", "int8-static", params
        ).key(pass_, task)

    assert key() != key(max_accuracy_drop=0.5) != key(accuracy_aware=False)
    assert key(search_items=64) != key(search_items=128)
