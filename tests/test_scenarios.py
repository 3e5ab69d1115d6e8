"""LoadGen integration: every scenario on the null runtime, VALID and INVALID verdicts
with their reasons, rejections and failing batches, peak finding. Each run is bounded by
its max duration (a few seconds)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from workbench.batching import BatcherConfig, DynamicBatcher
from workbench.errors import UserError
from workbench.scenarios.driver import ServedModel, run_scenario
from workbench.scenarios.models import load_file, load_null
from workbench.scenarios.settings import SCENARIOS, ScenarioSettings, for_profile

SHORT = dict(min_duration_ms=500, max_duration_ms=3000, drain_grace_ms=3000)
BATCHER = BatcherConfig(max_batch_size=8, max_queue_delay_ms=0.5)


@pytest.fixture(scope="module")
def null_model():
    served = load_null(instances=2, sample_count=32)
    yield served
    served.close()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_scenario_runs_on_the_null_runtime(null_model, scenario, tmp_path):
    extra = dict(target_qps=500, latency_bound_ms=1000) if scenario == "server" else {}
    settings = for_profile("ci", scenario, **SHORT, **extra)
    began = time.monotonic()
    row = run_scenario(null_model, settings, BATCHER, log_dir=tmp_path)
    assert time.monotonic() - began < 15
    assert row["scenario"] == scenario
    assert row["verdict"] in ("VALID", "INVALID")
    assert row["n_iterations"] and row["n_iterations"] > 0
    assert 0 < row["latency_ms_p50"] <= row["latency_ms_p99"] <= row["latency_ms_max"]
    assert row["throughput_items_per_s"] > 0
    assert sum(row["batch_histogram"].values()) > 0
    assert row["scenario_settings"]["full_length"] is False  # a short run says so
    assert row["scenario_settings"]["min_duration_ms"] == 500
    assert row["rejected"] == 0 and row["failed_requests"] == 0
    if scenario == "multi_stream":
        assert row["batch_histogram"].get("8")  # 8 samples per query can batch together


def test_valid_server_run(null_model, tmp_path):
    # ~1000 queries at 1000 QPS on a model that does nothing, judged at p99 against a 1 s
    # bound: only a host stalled for a whole second could fail it.
    settings = for_profile("ci", "server", target_qps=1000, latency_bound_ms=1000, **SHORT)
    settings = settings.with_(min_duration_ms=1000)
    row = run_scenario(null_model, settings, BATCHER, log_dir=tmp_path)
    assert row["verdict"] == "VALID", row["verdict_reasons"]
    assert row["verdict_reasons"] == []
    assert row["latency_ms_p99"] < 1000


def test_invalid_server_run_names_its_reasons(null_model, tmp_path):
    # A 1 ns bound no query can meet, and more queries than the max duration allows.
    settings = ScenarioSettings(
        "server",
        target_qps=200,
        latency_bound_ms=1e-6,
        min_duration_ms=300,
        max_duration_ms=600,
        min_query_count=100_000,
        drain_grace_ms=2000,
    )
    row = run_scenario(null_model, settings, BATCHER, log_dir=tmp_path)
    assert row["verdict"] == "INVALID"
    reasons = " | ".join(row["verdict_reasons"])
    assert "performance constraints not met" in reasons
    assert "minimum query count not met" in reasons


def _slow_model(delay_s: float, fail_marker: float | None = None) -> ServedModel:
    def run(feed):
        x = feed["x"]
        if fail_marker is not None and (x == fail_marker).any():
            raise RuntimeError("poisoned batch")
        time.sleep(delay_s)
        return [x * 2]

    samples = [{"x": np.full((1, 2), float(i), np.float32)} for i in range(16)]
    return ServedModel(run_batches=[run], samples=samples)


def test_overloaded_queue_rejects_and_ends_in_time(tmp_path):
    served = _slow_model(0.01)  # 10 ms per batch of at most 2: ~200 samples/s at best
    settings = ScenarioSettings(
        "server",
        target_qps=2000,
        latency_bound_ms=50,
        min_duration_ms=500,
        max_duration_ms=1000,
        drain_grace_ms=2000,
    )
    cfg = BatcherConfig(max_batch_size=2, max_queue_delay_ms=1, max_queue_size=8)
    began = time.monotonic()
    row = run_scenario(served, settings, cfg, log_dir=tmp_path)
    assert time.monotonic() - began < 1.0 + 2.0 + 3.0
    assert row["rejected"] > 0
    assert row["verdict"] == "INVALID"
    assert any("rejected (queue full)" in r for r in row["verdict_reasons"])


def test_failing_batch_fails_its_requests_only(tmp_path):
    served = _slow_model(0.0, fail_marker=3.0)
    settings = ScenarioSettings(
        "server",
        target_qps=300,
        latency_bound_ms=100,
        min_duration_ms=300,
        max_duration_ms=1000,
        drain_grace_ms=2000,
    )
    row = run_scenario(served, settings, BatcherConfig(max_batch_size=1), log_dir=tmp_path)
    assert row["failed_requests"] > 0
    assert row["n_iterations"] > row["failed_requests"]  # the rest went on
    assert any("poisoned batch" in r for r in row["verdict_reasons"])
    assert row["verdict"] == "INVALID"


def test_bad_settings_are_user_errors():
    with pytest.raises(UserError, match="target QPS must be > 0"):
        ScenarioSettings("server", target_qps=0, latency_bound_ms=10)
    with pytest.raises(UserError, match="latency bound must be > 0"):
        ScenarioSettings("server", target_qps=10, latency_bound_ms=-1)
    with pytest.raises(UserError, match="unknown scenario 'burst'"):
        ScenarioSettings("burst")
    with pytest.raises(UserError, match="needs --target-qps"):
        ScenarioSettings("server")


def test_full_profile_keeps_mlperf_minimum():
    s = for_profile("full", "server", target_qps=10, latency_bound_ms=100)
    assert s.min_duration_ms == 600_000 and s.full_length
    assert s.max_duration_ms > s.min_duration_ms


def test_find_peak_brackets_and_bisects(null_model, tmp_path):
    from workbench.scenarios.peak import find_peak

    settings = for_profile("ci", "server", target_qps=1, latency_bound_ms=1000, **SHORT)
    settings = settings.with_(min_duration_ms=300)
    peak, rows = find_peak(null_model, settings, BATCHER, max_probes=3, start_qps=100)
    # a do-nothing model at a 1 s bound passes every probe: it doubles each time
    assert [r["scenario_settings"]["target_qps"] for r in rows] == [100, 200, 400]
    assert all(r["latency_ms_p99"] < 1000 and r["rejected"] == 0 for r in rows)
    assert peak == 400
    assert all(r["peak_qps"] == peak for r in rows)


def test_find_peak_halves_until_a_probe_passes(tmp_path):
    from workbench.scenarios.peak import find_peak

    served = _slow_model(0.02)  # one instance, batch 1: at most ~50 requests/s
    settings = ScenarioSettings(
        "server",
        target_qps=1,
        latency_bound_ms=200,
        min_duration_ms=400,
        max_duration_ms=1500,
        drain_grace_ms=2000,
        pass_rule="p99_under_bound",
    )
    one_by_one = BatcherConfig(max_batch_size=1, max_queue_delay_ms=0, max_queue_size=16)
    peak, rows = find_peak(served, settings, one_by_one, max_probes=3, start_qps=800)
    assert [r["scenario_settings"]["target_qps"] for r in rows] == [800, 400, 200]
    assert all(r["verdict"] == "INVALID" for r in rows)  # all far over capacity
    assert peak is None


def test_cli_scenario_rows_and_bad_input(tmp_path, monkeypatch, capsys):
    import json

    from workbench.cli import main

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    args = ["bench", "--runtime", "null", "--scenario", "server", "--profile", "ci"]
    code = main(
        [
            *args,
            "--target-qps",
            "300",
            "--latency-bound-ms",
            "500",
            "--min-duration-ms",
            "300",
            "--output",
            "json",
            "--max-batch",
            "4",
        ]
    )
    assert code == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["scenario"] == "server" and row["runtime"] == "null"
    assert row["scenario_settings"]["target_qps"] == 300
    assert row["batcher"]["max_batch_size"] == 4
    assert row["verdict"] in ("VALID", "INVALID")
    for bad, message in [
        (["--target-qps", "0", "--latency-bound-ms", "5"], "target QPS must be > 0"),
        (["--target-qps", "10", "--latency-bound-ms", "0"], "latency bound must be > 0"),
        (["--find-peak", "--target-qps", "10", "--latency-bound-ms", "5"], "drop --target-qps"),
    ]:
        assert main([*args, *bad]) == 2
        assert message in capsys.readouterr().err
    assert main(["bench", "--runtime", "null", "--scenario", "burst"]) == 2
    assert "unknown scenario 'burst'" in capsys.readouterr().err


def _dense_onnx(path, batch) -> str:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "B"], ["y"]),
        ],
        "dense",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 8])],
        initializer=[
            numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), "W"),
            numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "B"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return str(path)


def test_onnxruntime_file_through_the_batcher_matches_solo_runs(tmp_path):
    """A real runtime (ONNX Runtime, two instances) behind the batcher: every one of 2,000
    concurrent replies equals that request run alone on the same session."""
    served = load_file(
        _dense_onnx(tmp_path / "dense.onnx", "batch"), instances=2, threads=1, sample_count=50
    )
    cfg = BatcherConfig(max_batch_size=8, max_queue_delay_ms=0.5, instances=2, max_queue_size=4096)
    replies: dict[tuple[int, int], list] = {}

    def caller(c: int) -> None:
        pending = [(i, batcher.submit(served.samples[(c * 7 + i) % 50])) for i in range(500)]
        for i, req in pending:
            replies[(c, i)] = req.result(timeout=60)

    with DynamicBatcher(served.run_batches, cfg) as batcher:
        threads = [threading.Thread(target=caller, args=(c,)) for c in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert len(replies) == 2000 and max(batcher.stats.batch_sizes) > 1
    for (c, i), got in replies.items():
        want = served.run_batches[0](served.samples[(c * 7 + i) % 50])
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)
    served.close()


def test_cli_model_file_server_run_and_fixed_batch_refused(tmp_path, monkeypatch, capsys):
    import json

    from workbench.cli import main

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    dynamic = _dense_onnx(tmp_path / "dense.onnx", "batch")
    args = [
        "--scenario",
        "server",
        "--profile",
        "ci",
        "--target-qps",
        "200",
        "--latency-bound-ms",
        "500",
        "--min-duration-ms",
        "300",
        "--output",
        "json",
    ]
    assert main(["bench", dynamic, *args, "--instances", "2", "--threads", "1"]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["runtime"] == "onnxruntime" and row["provider"] == "CPUExecutionProvider"
    assert row["model"] == "dense.onnx" and row["scenario_settings"]["instances"] == 2
    assert row["n_iterations"] > 0 and row["rejected"] == 0
    fixed = _dense_onnx(tmp_path / "fixed.onnx", 2)
    assert main(["bench", fixed, *args, "--max-batch", "8"]) == 2
    assert "fixed batch dimension of 2" in capsys.readouterr().err


def test_detail_log_parsing_prefers_per_query_latency(tmp_path):
    import json

    from workbench.scenarios.loadgen_log import latency_ms, read_detail, samples_per_s, verdict

    def line(key, value, error=False):
        meta = {"is_error": error, "is_warning": False}
        return ":::MLLOG " + json.dumps({"key": key, "value": value, "metadata": meta})

    lines = [
        line("result_validity", "INVALID"),
        line("result_perf_constraints_met", True),
        line("result_min_duration_met", False),
        line("result_min_queries_met", True),
        line("early_stopping_met", False),
        line("early_stopping_result", " * Only processed 10 queries.\n * Need 600."),
        line("result_99.00_percentile_per_query_latency_ns", 4_000_000),
        line("result_99.00_percentile_latency_ns", 2_000_000),
        line("result_mean_query_latency_ns", 2_000_000),
        line("effective_samples_per_query", 8),
        line("error_runtime", "ran out of queries", error=True),
        "not a log line",
    ]
    (tmp_path / "mlperf_log_detail.txt").write_text("\n".join(lines))
    detail = read_detail(tmp_path)
    result, reasons = verdict(detail)
    assert result == "INVALID"
    assert reasons[:2] == ["minimum duration not met", "early stopping not met"]
    assert "early stopping: Only processed 10 queries. Need 600." in reasons
    assert "LoadGen error: error_runtime: ran out of queries" in reasons
    assert latency_ms(detail)["p99"] == 4.0  # multi_stream: per query
    assert samples_per_s(detail) == 8 / 0.002
