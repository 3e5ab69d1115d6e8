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
