"""Faults injected into task sweeps (issue 15): an exporter or a runtime that raises,
segfaults, hangs past its timeout or exhausts memory under an address-space limit
(at load or on its Nth call) costs only its own configurations. The sweep ends with
every healthy row kept and exactly one failed row, with its reason, per bad
configuration (batch size). The faults live in tests/support/fault_plugin.py."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporters.base import ArtifactRequest, export
from tests.support.plugins import plugin_hooks
from workbench.harness.timing import StopRule
from workbench.registry import PASSES, RUNTIMES
from workbench.sweep import TaskSweep, planned_keys, row_key, run_stored
from workbench.workspace import ENV_VAR

# 1 first call + 1 warm-up + 5 timed = 7 run calls per batch size: call 10 is in batch 2
RULE = StopRule(warmup_iters=1, warmup_time_s=0.0, min_iters=5, min_time_s=0.0, max_time_s=5)
BATCHES = [1, 2, 4]
TIMEOUT_S = 5.0  # a benchmark worker starts in ~1 s
EXPORT_TIMEOUT_S = 15.0  # an exporter imports torch and builds the model first: ~5 s
MEMORY_LIMIT = 6 * 2**30  # address space: torch and ORT workers start well within it
REASONS = {
    "raise": "RuntimeError: injected fault",
    "segv": "killed by signal 11",
    "hang": "timed out after",
    "oom": "out of memory under the 6.0 GiB address-space limit",
}


@pytest.fixture(scope="module")
def faults_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A workspace with the fault plugin loaded here and in every child, and the healthy
    artifacts (ONNX and its `faultonnx` copy) exported once without time limits."""
    with pytest.MonkeyPatch.context() as patch:
        home = tmp_path_factory.mktemp("faults")
        patch.setenv(ENV_VAR, str(home))
        with plugin_hooks(patch, "tests.support.fault_plugin", PASSES, RUNTIMES):
            for fmt in ("onnx", "faultonnx"):
                assert export(ArtifactRequest("tabular", "linear", "torch", fmt))["status"] == "ok"
            yield home


def _sweep(formats: list[str], **fault: object) -> tuple[TaskSweep, list[dict]]:
    sweep = TaskSweep(
        task="tabular",
        models=["linear"],
        frameworks=["torch"],
        formats=formats,
        precisions=["fp32"],
        batch_sizes=BATCHES,
        threads=[1],
        rule=RULE,
        end_to_end=False,
        export_timeout_s=EXPORT_TIMEOUT_S,
        worker_timeout_s=TIMEOUT_S,
        memory_limit_bytes=MEMORY_LIMIT,
        runtime_settings={"fault": fault} if fault else {},
    )
    return sweep, run_stored(sweep, command="test faults").rows()


def _check_one_row_per_configuration(sweep: TaskSweep, rows: list[dict]) -> None:
    counts = Counter(row_key(r) for r in rows)
    assert sorted(counts) == sorted(planned_keys(sweep))
    assert set(counts.values()) == {1}


@pytest.fixture(scope="module")
def export_fault_rows(faults_home: Path) -> list[dict]:
    """One sweep with every exporter fault beside a healthy export."""
    sweep, rows = _sweep(["onnx", *(f"fault-{k}" for k in REASONS)])
    _check_one_row_per_configuration(sweep, rows)
    return rows


@pytest.mark.parametrize("kind", list(REASONS))
def test_exporter_fault_costs_only_its_configuration(export_fault_rows, kind):
    healthy = [r for r in export_fault_rows if r["format"] == "onnx"]
    assert [r["status"] for r in healthy] == ["ok"] * len(BATCHES), [r["error"] for r in healthy]
    bad = [r for r in export_fault_rows if r["format"] == f"fault-{kind}"]
    assert sorted(r["batch_size"] for r in bad) == BATCHES
    for row in bad:
        assert row["status"] == "failed"
        assert row["error"].startswith("export failed: ") and REASONS[kind] in row["error"]
        assert "\n" not in row["error"]


@pytest.mark.parametrize("at_call", [0, 10], ids=["at-load", "on-call-10"])
@pytest.mark.parametrize("kind", list(REASONS))
def test_runtime_fault_costs_only_its_rows(faults_home, kind, at_call):
    sweep, rows = _sweep(["onnx", "faultonnx"], fault=kind, at_call=at_call)
    _check_one_row_per_configuration(sweep, rows)
    healthy = [r for r in rows if r["format"] == "onnx"]
    assert [r["status"] for r in healthy] == ["ok"] * len(BATCHES), [r["error"] for r in healthy]
    status = {r["batch_size"]: r["status"] for r in rows if r["format"] == "faultonnx"}
    errors = {r["batch_size"]: r["error"] for r in rows if r["format"] == "faultonnx"}
    if at_call == 0:
        hit = BATCHES  # every batch size of the configuration
    elif kind in ("raise", "oom"):
        hit = [2]  # the worker survives a Python error: batch 4 runs after it
    else:
        hit = [2, 4]  # the worker died or was killed: its remaining batch sizes fail
    assert status == {b: "failed" if b in hit else "ok" for b in BATCHES}, errors
    for b in hit:
        assert REASONS[kind] in errors[b] and "\n" not in errors[b], errors[b]
