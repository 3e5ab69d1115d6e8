"""Accuracy-aware INT8 (exporters.int8_search) on a small real ONNX model: a three-layer
MLP whose layers carry a weight outlier on an input that is always zero. The outlier does
not change the FP32 function, but per-tensor INT8 weights scale to it and round the
layer's other weights to zero, so dynamic INT8 loses most of its accuracy until that
layer stays in float."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import quantize_dynamic

from exporters.base import ArtifactRequest, find_pass
from exporters.int8_search import AccuracySearch, run_search, search_params
from exporters.onnx_quantize import DynamicConfig
from workbench.errors import UserError
from workbench.registry import get_task
from workbench.sweep import TaskSweep, int8_search_labels, plan

WIDTH = 32


def mlp(path: Path, outliers: tuple[int, ...]) -> None:
    """x (n, WIDTH) -> 3 x (MatMul + Relu) -> logits (n, 4); layers in `outliers` get a
    weight of 1000 on their input 0, which is always zero (the data's feature 0, or a
    zero weight column of the layer before)."""
    rng = np.random.default_rng(0)
    nodes, inits, name = [], [], "x"
    for layer, out_width in enumerate((WIDTH, WIDTH, 4)):
        weight = rng.normal(0, 1 / np.sqrt(WIDTH), (WIDTH, out_width)).astype(np.float32)
        if layer + 1 in outliers:  # the next layer's input 0 is then always zero
            weight[:, 0] = 0.0
        if layer in outliers:
            weight[0, 0] = 1000.0
        inits.append(numpy_helper.from_array(weight, f"w{layer}"))
        out = f"h{layer}" if layer < 2 else "logits"
        nodes.append(helper.make_node("MatMul", [name, f"w{layer}"], [f"m{layer}"], f"mm{layer}"))
        if layer < 2:
            nodes.append(helper.make_node("Relu", [f"m{layer}"], [out], f"relu{layer}"))
        else:
            nodes[-1].output[0] = out
        name = out
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", WIDTH])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def labelled(path: Path, n: int = 256) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Inputs (feature 0 always zero) and labels: the FP32 model's own top-1."""
    # lazy: onnxruntime
    import onnxruntime

    x = np.random.default_rng(1).normal(size=(n, WIDTH)).astype(np.float32)
    x[:, 0] = 0.0
    logits = onnxruntime.InferenceSession(str(path)).run(None, {"x": x})[0]
    return {"x": x}, logits.argmax(axis=1)


def top1(outputs: list[np.ndarray], labels: np.ndarray) -> float:
    return float(np.mean(outputs[0].argmax(axis=1) == labels))


def dynamic(fp32: Path):
    def make(extra: list[str], path: Path) -> None:
        quantize_dynamic(str(fp32), str(path), nodes_to_exclude=list(extra))

    return make


def search(tmp_path: Path, outliers: tuple[int, ...], **params) -> dict:
    fp32 = tmp_path / "fp32.onnx"
    mlp(fp32, outliers)
    config = AccuracySearch(**params)
    return run_search(config, dynamic(fp32), fp32, tmp_path / "int8.onnx", labelled(fp32), top1)


def test_a_budget_missing_int8_keeps_its_worst_node_in_float(tmp_path):
    found = search(tmp_path, (1,), max_accuracy_drop=1.0, search_steps=4)
    steps = found["int8_search_steps"]
    assert steps[0]["excluded"] == 0 and steps[0]["drop_points"] > 10  # plain INT8 misses
    assert found["int8_search"] == "met"
    assert found["int8_excluded_nodes"] == ["mm1"]  # the outlier layer, ranked first
    assert found["int8_excluded_count"] == 1
    assert found["int8_candidate_nodes"] == 3
    assert steps[-1]["drop_points"] <= 1.0 and len(steps) >= 2
    assert found["int8_search_reference"] == 1.0
    # the artifact written is the searched one: mm1 stays a float MatMul
    written = onnx.load(str(tmp_path / "int8.onnx"))
    assert any(n.name == "mm1" and n.op_type == "MatMul" for n in written.graph.node)
    assert not (tmp_path / "int8.search.onnx").exists()
    # ...and a row carries it flat
    row = int8_search_labels(found)
    assert row["int8_excluded_nodes"] == "mm1"
    assert row["int8_search_steps"].startswith("0:0.") and " 1:" in row["int8_search_steps"]


def test_a_search_out_of_steps_says_how_far_it_got(tmp_path):
    found = search(tmp_path, (0, 1), max_accuracy_drop=1.0, search_steps=1)
    assert found["int8_search"] == "not met"
    assert len(found["int8_search_steps"]) == 2  # plain INT8 and the one step allowed
    assert found["int8_excluded_nodes"] == [] and found["int8_excluded_count"] == 0
    reason = found["int8_search_reason"]
    assert "no step within budget" in reason and "after 1 step(s)" in reason
    assert "plain INT8 model is kept" in reason
    written = onnx.load(str(tmp_path / "int8.onnx"))
    assert not any(n.op_type == "MatMul" for n in written.graph.node)  # plain: all quantized


def test_within_budget_no_labels_and_off(tmp_path):
    fp32 = tmp_path / "fp32.onnx"
    mlp(fp32, ())
    out = tmp_path / "int8.onnx"
    fine = run_search(
        AccuracySearch(max_accuracy_drop=5.0), dynamic(fp32), fp32, out, labelled(fp32), top1
    )
    assert fine["int8_search"] == "not needed" and len(fine["int8_search_steps"]) == 1
    blind = run_search(AccuracySearch(), dynamic(fp32), fp32, out, None, top1)
    assert blind["int8_search"] == "skipped" and "no true labels" in blind["int8_search_reason"]
    off = run_search(AccuracySearch(accuracy_aware=False), dynamic(fp32), fp32, out, None, top1)
    assert off == {"int8_search": "off"} and out.exists()


def test_search_parameters_are_checked_sized_by_profile_and_keyed():
    with pytest.raises(UserError, match="max_accuracy_drop"):
        DynamicConfig(max_accuracy_drop=-1)
    with pytest.raises(UserError, match="search_steps"):
        DynamicConfig(search_steps=0)
    assert search_params("ci", 2.0) == {
        "max_accuracy_drop": 2.0,
        "search_items": 64,
        "search_steps": 3,
    }
    assert search_params("full", 1.0)["search_items"] > search_params("ci", 1.0)["search_items"]
    task = get_task("tabular")
    pass_ = find_pass("torch", "onnx", "int8-dynamic")

    def key(**params):
        return ArtifactRequest("tabular", "mlp", "torch", "onnx", "int8-dynamic", params).key(
            pass_, task
        )

    assert key() != key(max_accuracy_drop=0.5) != key(accuracy_aware=False)
    assert key(search_items=48) != key(search_items=128)


def test_a_sweep_gives_int8_passes_its_budget_and_profile_size():
    sweep = TaskSweep(
        "tabular",
        models=["mlp"],
        frameworks=["torch"],
        formats=["onnx"],
        precisions=["fp32", "int8-dynamic"],
        profile="ci",
        max_accuracy_drop=2.0,
    )
    requests = {job.precision: job.request for job in plan(sweep)}
    assert requests["int8-dynamic"].params == search_params("ci", 2.0)
    assert requests["fp32"].params == {}


def test_the_decision_agreement_floor_holds_a_step_back(tmp_path):
    fp32 = tmp_path / "fp32.onnx"
    mlp(fp32, (1,))

    def agreement(reference, candidate):
        return float(np.mean(reference[0].argmax(1) == candidate[0].argmax(1)))

    found = run_search(
        AccuracySearch(search_steps=2),
        dynamic(fp32),
        fp32,
        tmp_path / "int8.onnx",
        labelled(fp32),
        top1,
        agreement,
        min_agreement=1.5,  # no model agrees more than always: the floor cannot be met
    )
    assert found["int8_search"] == "not met"
    assert all("agreement" in step for step in found["int8_search_steps"])
    assert found["int8_search_steps"][1]["drop_points"] <= 1.0  # quality alone would fit
    assert "agreement >= 1.5" in found["int8_search_reason"]


def test_the_search_never_keeps_most_of_the_model_in_float(tmp_path):
    # two broken layers of three: fitting needs 2 in float, over a third of the nodes
    found = search(tmp_path, (0, 1), search_steps=5, max_excluded_fraction=0.34)
    assert found["int8_search"] == "not met"
    assert max(step["excluded"] for step in found["int8_search_steps"]) == 1
    assert "of at most 1 nodes" in found["int8_search_reason"]
    met = search(tmp_path, (0, 1), search_steps=5, max_excluded_fraction=0.7)
    assert met["int8_search"] == "met" and sorted(met["int8_excluded_nodes"]) == ["mm0", "mm1"]
