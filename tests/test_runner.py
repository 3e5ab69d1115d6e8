"""run_config on the real `null` runtime: repeats, stability flags and row fields."""

from __future__ import annotations

import pytest

from workbench.errors import UserError
from workbench.harness import runner
from workbench.harness.runner import BenchConfig, run_config
from workbench.harness.timing import StopRule
from workbench.results import RESULT_FIELDS

RULE = StopRule(warmup_iters=2, warmup_time_s=0.0, min_iters=200, min_time_s=0.01)


def _rows(config: BenchConfig) -> list[dict]:
    rows: list[dict] = []
    run_config(config, rows.append)
    return rows


def test_repeats_record_each_p50_and_their_spread():
    rows = _rows(BenchConfig("null", "null", batch_sizes=[1, 4], rule=RULE, repeats=3))
    assert [r["batch_size"] for r in rows] == [1, 4]
    for row in rows:
        assert set(row) <= set(RESULT_FIELDS)
        assert row["status"] == "ok" and row["repeats"] == 3
        assert len(row["repeat_p50s_ms"]) == 3
        assert row["n_iterations"] >= 3 * RULE.min_iters
        assert len(row["latencies_ms"]) == row["n_iterations"]
        assert row["repeat_p50_max_dev"] >= 0


def test_repeat_drift_beyond_the_limit_is_flagged(monkeypatch):
    monkeypatch.setattr(runner, "REPEAT_P50_MAX_DEV", -1.0)  # any spread at all is too much
    row = _rows(BenchConfig("null", "null", rule=RULE, repeats=2))[0]
    assert row["stable"] is False
    assert "across 2 repeats" in row["stability_note"]


def test_single_run_has_no_repeat_fields():
    row = _rows(BenchConfig("null", "null", rule=RULE))[0]
    assert row["repeats"] == 1 and "repeat_p50s_ms" not in row


@pytest.mark.parametrize("repeats", [0, -2])
def test_repeats_must_be_positive(repeats):
    with pytest.raises(UserError, match="repeats"):
        BenchConfig("null", "null", repeats=repeats)


def test_fixed_batch_model_fails_other_batch_sizes_instead_of_mislabelling():
    """A model fixed at batch 1 must not produce a row labelled batch 8 that measured 1."""
    from workbench.signature import TensorSpec

    rows: list[dict] = []
    fixed = [TensorSpec("x", "float32", (1, 10))]
    run_config(
        BenchConfig("null", "null", batch_sizes=[1, 8], rule=RULE), rows.append, input_specs=fixed
    )
    assert rows[0]["status"] == "ok" and rows[0]["input_shape"] == "1x10"
    assert rows[1]["status"] == "failed"
    assert "fixed batch dimension of 1" in rows[1]["error"]


def _busy(ms: float) -> None:
    import time

    end = time.perf_counter() + ms / 1e3
    while time.perf_counter() < end:
        pass


def _pipeline(pre_ms: float, post_ms: float, fail: bool = False):
    import numpy as np

    from workbench.tasks.base import Pipeline

    def preprocess(raw):
        _busy(pre_ms)
        if fail:
            raise ValueError("decoder exploded")
        return {"x": np.zeros((len(raw), 1), np.float32)}, len(raw)

    seen: list[int] = []

    def postprocess(outputs, meta):
        _busy(post_ms)
        seen.append(meta)

    return Pipeline(lambda n, seed: [b"raw"] * n, preprocess, postprocess), seen


@pytest.mark.parametrize(("pre_ms", "post_ms"), [(8.0, 1.0), (1.0, 8.0)])
def test_end_to_end_times_each_stage_separately(pre_ms, post_ms):
    """Each stage's time is its own: with one stage 8x the other, the short one never
    reaches the long one's time (which it would if the stages' clocks overlapped). Only
    lower bounds and that 7 ms gap are asserted, so a loaded host cannot fail it."""
    pipeline, seen = _pipeline(pre_ms=pre_ms, post_ms=post_ms)
    rule = StopRule(warmup_iters=1, warmup_time_s=0.0, min_iters=20, min_time_s=0.0)
    rows: list[dict] = []
    run_config(
        BenchConfig("null", "null", batch_sizes=[2], rule=rule), rows.append, pipeline=pipeline
    )
    [row] = rows
    assert row["status"] == "ok" and "e2e_error" not in row
    assert row["pre_ms_p50"] >= pre_ms and row["post_ms_p50"] >= post_ms
    short, long_ = sorted([("pre_ms_p50", pre_ms), ("post_ms_p50", post_ms)], key=lambda t: t[1])
    assert row[short[0]] < long_[1]
    assert row["e2e_model_ms_p50"] < short[1]  # the null model does nothing
    assert row["e2e_ms_p50"] >= row["pre_ms_p50"] + row["post_ms_p50"]
    assert row["e2e_n_iterations"] == 20
    assert row["e2e_items_per_s"] == pytest.approx(2 / (row["e2e_ms_p50"] / 1e3))
    assert set(seen) == {2}  # postprocess got what preprocess returned for it


def test_failing_pipeline_keeps_the_model_only_figures():
    pipeline, _ = _pipeline(pre_ms=0.0, post_ms=0.0, fail=True)
    rows: list[dict] = []
    run_config(BenchConfig("null", "null", rule=RULE), rows.append, pipeline=pipeline)
    assert rows[0]["status"] == "ok" and rows[0]["latency_ms_p50"] is not None
    assert rows[0]["e2e_error"] == "ValueError: decoder exploded"
    assert "e2e_ms_p50" not in rows[0]


def test_end_to_end_off_skips_the_pipeline():
    pipeline, seen = _pipeline(pre_ms=0.0, post_ms=0.0)
    rows: list[dict] = []
    config = BenchConfig("null", "null", rule=RULE, end_to_end=False)
    run_config(config, rows.append, pipeline=pipeline)
    assert "e2e_ms_p50" not in rows[0] and not seen


def test_pipeline_feed_follows_the_artifact_s_own_input_names():
    import numpy as np

    from workbench.harness.runner import by_input_name
    from workbench.runtimes.null_runtime import NullModel
    from workbench.signature import TensorSpec

    x = np.zeros((1, 2), np.float32)
    renamed = NullModel([TensorSpec("serving_default_input:0", "float32", ("batch", 2))], None)
    assert list(by_input_name(renamed, {"input": x})) == ["serving_default_input:0"]
    same = NullModel([TensorSpec("input", "float32", ("batch", 2))], None)
    assert list(by_input_name(same, {"input": x})) == ["input"]
    two = NullModel([TensorSpec("a", "float32", (1,)), TensorSpec("b", "float32", (1,))], None)
    assert by_input_name(two, {"input": x}) == {"input": x}  # counts differ: left as it is


def test_real_feeds_take_the_artifact_s_input_types():
    """A task's real feed is cast within its family (float to float, int to int) to the
    artifact's input dtype; another kind is left for the runtime to refuse."""
    import numpy as np

    from workbench.signature import TensorSpec

    specs = [
        TensorSpec("x", "float16", ("batch", 3)),
        TensorSpec("ids", "int32", ("batch", 2)),
        TensorSpec("mask", "int64", ("batch", 2)),
    ]
    feed = {
        "x": np.ones((2, 3), np.float32),
        "ids": np.array([[1, 2], [3, 4]], np.int64),
        "mask": np.ones((2, 2), np.float32),  # a float where ints are due: not converted
    }
    out = runner.as_spec_dtypes(specs, feed)
    assert out["x"].dtype == np.float16 and out["ids"].dtype == np.int32
    assert out["mask"].dtype == np.float32
    assert np.array_equal(out["ids"], feed["ids"])
