"""benchmarks/gpu_check.sh: its exit on a host without a GPU, and its CPU dry run (the same
command lines on the CPU, tiny), so the script a GPU session runs is known to work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench import devices

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
CALLS = (
    "fp32",
    "autocast-bf16",
    "autocast-fp16",
    "compile",
    "compile-bf16",
    "compile-pt2",
    "max-autotune",
)


def run_script(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
        cwd="/",
    )


def test_usage():
    proc = run_script()
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "usage: benchmarks/gpu_check.sh [--cpu-dry-run] [--keep-artifacts] DIR"
    )


@pytest.mark.skipif(bool(devices.nvidia_gpus()), reason="this host has a GPU")
def test_exits_at_once_without_a_gpu(tmp_path):
    out = tmp_path / "gpu"
    proc = run_script(str(out), timeout=20)
    assert proc.returncode == 1
    assert proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith("gpu_check: no GPU on this host (") and line.endswith(")")
    assert not out.exists()  # nothing measured, nothing written


@pytest.mark.slow
def test_cpu_dry_run(tmp_path):
    """Every call of the script, on the CPU with tiny limits (about 2 minutes here)."""
    out = tmp_path / "dry"
    proc = run_script("--cpu-dry-run", str(out), timeout=600, PYTHON=sys.executable)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "fingerprint id: " in (out / "env.txt").read_text()
    assert "torch " in (out / "torch.txt").read_text()
    files = sorted(p.name for p in (out / "rows").glob("*.jsonl"))
    assert files == [f"{i:02d}-{name}.jsonl" for i, name in enumerate(CALLS, start=1)]
    rows = [
        json.loads(line)
        for path in sorted((out / "rows").glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    assert rows and all(r["status"] == "ok" for r in rows), [
        (r["model"], r["format"], r.get("error")) for r in rows if r["status"] != "ok"
    ]
    providers = {(r["model"], r["format"], r["provider"]) for r in rows}
    assert providers == {
        ("resnet50", "eager", "cpu"),
        ("linear", "eager", "cpu (autocast bf16)"),
        ("linear", "torchscript", "cpu (autocast bf16)"),
        ("linear", "pt2", "cpu (autocast bf16)"),
        ("linear", "eager", "cpu (autocast fp16)"),
        ("linear", "eager", "cpu (compile default)"),
        ("linear", "eager", "cpu (autocast bf16, compile default)"),
        ("linear", "pt2", "cpu (compile default)"),
        ("linear", "eager", "cpu (autocast bf16, compile max-autotune)"),
    }
    summary = (out / "summary.txt").read_text()
    assert summary.splitlines()[0].split()[:4] == ["model", "format", "settings", "batch"]
    assert "9 rows; ok: 9, failed: 0, unavailable: 0" in summary
    assert "NOT ON THE GPU" not in summary
    assert not (out / "home" / "artifacts").exists()  # deleted without --keep-artifacts
    calls = (out / "calls.txt").read_text()
    assert calls.count(": exit 0 in ") == len(CALLS)
