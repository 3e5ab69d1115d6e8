"""Interleaved A/B timing (issue 25): A and B timed alternately in one session, judged by the
per-round p50 ratios. A real 10 % slowdown of each call (`inject_slowdown`) is seen; A/A is
within noise; `workbench compare RUN` judges an interleaved run and names the mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workbench.analysis.compare import compare_interleaved, load_run, paired_verdict, sign_test
from workbench.cli import main
from workbench.errors import UserError
from workbench.harness.runner import BenchConfig, run_interleaved
from workbench.harness.timing import StopRule
from workbench.results import RunStore

RULE = StopRule(warmup_iters=2, warmup_time_s=0.0, min_iters=40, min_time_s=0.0, max_time_s=2)
LABELS = {"task": "null-delay", "model": "spin", "source_framework": "none", "precision": "fp32"}


def _config(slowdown: float) -> BenchConfig:
    return BenchConfig(
        "null",
        "null",
        batch_sizes=[1],
        rule=RULE,
        runtime_settings={"delay_ms": 0.5},
        labels=LABELS,
        inject_slowdown=slowdown,
    )


def _interleaved(slowdown: float) -> RunStore:
    store = RunStore.create({"task": "null-delay", "command": "interleaved"})
    run_interleaved(_config(0.0), _config(slowdown), 10, store.append)
    store.finish("ok")
    return store


def test_sign_test_and_paired_verdict() -> None:
    assert sign_test(10, 10) == pytest.approx(2 / 1024)
    assert sign_test(5, 10) == 1.0
    rng = np.random.default_rng(0)
    a = np.full(10, 1.0)
    slow = paired_verdict(a, a * np.linspace(1.08, 1.12, 10), 0.05, rng)
    assert slow["verdict"] == "slower" and slow["rounds B slower"] == 10
    # a median move with B slower in only 6 of 10 rounds is no verdict
    mixed = paired_verdict(a, np.array([1.3] * 6 + [0.9] * 4), 0.05, rng)
    assert mixed["verdict"] == "within noise"


def test_interleaved_slowdown_is_slower_and_aa_within_noise(workspace: Path, capsys) -> None:
    slow, same = _interleaved(0.10), _interleaved(0.0)
    _, frame = load_run(slow.run_id)
    assert set(frame["compare_arm"]) == {"A", "B"} and frame["compare_round"].max() == 9
    b_rows = frame[frame["compare_arm"] == "B"]
    assert all(o == {"delay_ms": 0.5, "inject_slowdown": 0.1} for o in b_rows["runtime_options"])
    result = compare_interleaved(frame)
    (row,) = result.table.to_dict(orient="records")
    assert row["verdict"] == "slower" and row["mode"] == "interleaved (10 rounds)"
    assert 1.05 < row["p50 ratio"] < 1.16 and row["ratio CI low"] > 1
    _, aa = load_run(same.run_id)
    assert list(compare_interleaved(aa).table["verdict"]) == ["within noise"]
    # the CLI: one run id judges the interleaved run, names the mode, gates on it
    assert main(["compare", slow.run_id, "--fail-on-regression", "5%"]) == 1
    out = capsys.readouterr().out
    assert "verdicts made by: interleaved (10 rounds)" in out and "slower" in out
    assert main(["compare", same.run_id, "--fail-on-regression", "5%"]) == 0


def test_a_run_without_arms_is_refused(workspace: Path) -> None:
    store = RunStore.create({"task": "null-delay"})
    store.finish("ok")
    with pytest.raises(UserError, match="no interleaved A/B rows"):
        compare_interleaved(load_run(store.run_id)[1])
