"""Sweeps with real runtimes: a failing configuration becomes a `failed` row with its
reason, a benchmark worker killed by a signal costs only its own rows, and the tabular
task runs end to end (export, parity, benchmark) into a temporary workspace."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from workbench import results
from workbench.errors import UserError
from workbench.harness.runner import BenchConfig, run_config
from workbench.harness.timing import StopRule
from workbench.registry import RUNTIMES, get_runtime
from workbench.results import RunStore
from workbench.sweep import TaskSweep, plan, run_sweep, run_worker

EXTRA_RUNTIMES_ENV = RUNTIMES.plugin_env or ""
TINY = StopRule(warmup_iters=2, warmup_time_s=0.0, min_iters=20, min_time_s=0.02, max_time_s=5)


@pytest.fixture
def home(workspace: Path) -> Path:
    return workspace


def _save(graph, path: Path) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def pairs_onnx(tmp_path_factory) -> Path:
    """x [batch, 4] reshaped to [-1, 8]: fine for even batches, an ORT error for odd ones."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        "pairs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 8])],
        initializer=[numpy_helper.from_array(np.array([-1, 8], dtype=np.int64), "shape")],
    )
    return _save(graph, tmp_path_factory.mktemp("sweep-models") / "pairs.onnx")


def _rows_by_batch(store: RunStore) -> dict[int, dict]:
    frame = results.load(store.path.parent, run_ids=[store.run_id])
    return {int(r["batch_size"]): r for r in frame.to_dict(orient="records")}


def test_runtime_error_in_one_batch_size_is_a_failed_row(home, pairs_onnx):
    store = RunStore.create({"test": "runtime error"}, root=home / "runs")
    config = BenchConfig(
        runtime="onnxruntime",
        format="onnx",
        path=str(pairs_onnx),
        batch_sizes=[2, 3, 4],
        threads=1,
        rule=TINY,
    )
    emitted: list[dict] = []
    run_config(config, lambda row: emitted.append(store.append(row)))
    assert [r["batch_size"] for r in emitted] == [2, 3, 4]
    rows = _rows_by_batch(store)
    assert set(rows) == {2, 3, 4}
    failed = rows[3]
    assert failed["status"] == "failed"
    # ORT's own message, first line only, with the exception type.
    assert "reshape" in failed["error"].lower()
    assert "\n" not in failed["error"]
    assert failed["latency_ms_p50"] is None or np.isnan(failed["latency_ms_p50"])
    for b in (2, 4):
        assert rows[b]["status"] == "ok", rows[b]["error"]
        assert rows[b]["n_iterations"] >= 20
        assert rows[b]["latency_ms_p50"] > 0
        assert rows[b]["provider"] == "CPUExecutionProvider"


def test_plugin_runtime_module_that_does_not_import(monkeypatch):
    monkeypatch.setenv(EXTRA_RUNTIMES_ENV, "no_such_module_for_workbench")
    with pytest.raises(UserError, match="no_such_module_for_workbench"):
        get_runtime("null")


@pytest.fixture
def crash_plugin(load_plugin) -> None:
    """Make benchmark workers (only them: nothing here calls get_runtime meanwhile) load
    the test-only `crash` runtime, for one test."""
    load_plugin("tests.support.crashing_runtime", RUNTIMES)


def test_worker_killed_by_a_signal_costs_only_its_rows(home, crash_plugin, pairs_onnx):
    store = RunStore.create({"test": "worker crash"}, root=home / "runs")
    labels = {"model": "crash-test"}

    # 1. The worker aborts while loading: every batch size becomes a failed row.
    run_worker(
        store,
        BenchConfig(
            runtime="crash", format="onnx", batch_sizes=[1, 2, 4], rule=TINY, labels=labels
        ),
        {},
    )
    # 2. The worker aborts on batch 4: batch 1 was stored by the worker, 4 and 8 fail.
    run_worker(
        store,
        BenchConfig(
            runtime="crash",
            format="onnx",
            batch_sizes=[1, 4, 8],
            rule=TINY,
            runtime_settings={"crash_at_batch": 4},
            labels=labels,
        ),
        {},
    )
    # 3. The next configuration in the same store runs normally.
    run_worker(
        store,
        BenchConfig(
            runtime="onnxruntime",
            format="onnx",
            path=str(pairs_onnx),
            batch_sizes=[2, 4],
            threads=1,
            rule=TINY,
        ),
        {},
    )

    frame = results.load(store.path.parent, run_ids=[store.run_id])
    rows = frame.to_dict(orient="records")
    crash_rows = [r for r in rows if r["runtime"] == "crash"]
    assert sorted(r["batch_size"] for r in crash_rows) == [1, 1, 2, 4, 4, 8]

    ok = [r for r in crash_rows if r["status"] == "ok"]
    assert [r["batch_size"] for r in ok] == [1]  # stored by the worker before it died
    failed = [r for r in crash_rows if r["status"] == "failed"]
    assert sorted(r["batch_size"] for r in failed) == [1, 2, 4, 4, 8]
    for row in failed:
        assert "benchmark worker died" in row["error"]
        assert "signal 6" in row["error"]
        assert row["model"] == "crash-test"  # labels survive into the parent's rows

    ort_rows = [r for r in rows if r["runtime"] == "onnxruntime"]
    assert sorted(r["batch_size"] for r in ort_rows) == [2, 4]
    assert all(r["status"] == "ok" for r in ort_rows), [r["error"] for r in ort_rows]
    # Every row is complete JSON: nothing half-written by the dying workers.
    assert len(store.rows_path.read_text().splitlines()) == len(rows) == 8


@pytest.mark.parametrize(
    ("framework", "fmt", "runtime"),
    [("torch", "onnx", "onnxruntime"), ("keras", "tflite", "litert")],
)
def test_tabular_sweep_end_to_end(home, framework, fmt, runtime):
    """Export (in a subprocess), check parity, benchmark (in a worker) and store."""
    sweep = TaskSweep(
        task="tabular",
        models=["linear"],
        frameworks=[framework],
        formats=[fmt],
        precisions=["fp32"],
        batch_sizes=[1, 16],
        threads=[1],
        rule=TINY,
    )
    jobs = plan(sweep)
    assert [(j.source_framework, j.format, j.precision) for j in jobs] == [(framework, fmt, "fp32")]
    store = RunStore.create({"test": "tabular sweep"})
    progress: list[str] = []
    run_sweep(sweep, store, progress.append)
    store.finish("ok")
    assert len(progress) == 1

    assert store.path.parent == home / "runs"
    frame = results.load(run_ids=[store.run_id])
    assert sorted(frame["batch_size"]) == [1, 16]
    for row in frame.to_dict(orient="records"):
        assert row["status"] == "ok", row["error"]
        assert row["task"] == "tabular"
        assert row["model"] == "linear"
        assert row["format"] == fmt
        assert row["precision"] == "fp32"
        assert row["runtime"] == runtime
        assert row["source_framework"] == framework
        assert row["parity_pass"] is True
        assert row["accuracy"] is not None and 0.5 < row["accuracy"] <= 1.0
        assert row["artifact_sha256"]
        assert Path(row["artifact_path"]).exists()
        assert row["n_iterations"] >= 20
        assert row["threads"] == 1
    # The artifact was exported into the temporary workspace, not the repo's.
    assert any((home / "artifacts").glob("tabular-linear/*/manifest.json"))


def test_a_stored_sweep_is_data_and_reruns_from_its_manifest(home):
    """run_stored keeps the sweep itself in the manifest; `bench --rerun` rebuilds it."""
    from workbench.cli import main
    from workbench.sweep import from_profile, run_stored

    sweep = from_profile(
        "tabular",
        "ci",
        models=["linear"],
        formats=["onnx"],
        precisions=["fp32"],
        batch_sizes=[2],
        threads=[1],
        rule=TINY,
        runtime_settings={"onnxruntime": {"allow_spinning": False}},
    )
    assert sweep.frameworks == ["torch"] and sweep.profile == "ci"  # the rest from the preset
    store = run_stored(sweep, command="test")
    stored = store.manifest["config"]["sweep"]
    assert TaskSweep.from_json(json.loads(json.dumps(stored))) == sweep
    assert main(["bench", "--rerun", store.run_id, "--output", "json"]) == 0
    runs = results.load_manifests()
    assert [m["config"]["command"] for m in runs] == ["test", f"bench --rerun {store.run_id}"]
    frame = results.load()
    assert list(frame["status"]) == ["ok", "ok"]
    assert [r["allow_spinning"] for r in frame["runtime_options"]] == [False, False]
