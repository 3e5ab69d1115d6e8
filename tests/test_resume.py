"""Kill and resume: a `kill -9` of the CLI at any point of a task sweep loses no finished
row and leaves no torn row or served half-written artifact, and `workbench bench --resume
RUN_ID` measures exactly the missing configurations, with no duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from workbench.procs import child_env
from workbench.results import RunStore
from workbench.sweep import TaskSweep, planned_keys, row_key

# eager + ONNX of the tabular model at three batch sizes: 6 rows, one export
BENCH = [
    "bench",
    "--task",
    "tabular",
    "--model",
    "linear",
    "--frameworks",
    "torch",
    "--formats",
    "eager,onnx",
    "--precisions",
    "fp32",
    "--batch",
    "1,2,4",
    "--threads",
    "1",
    "--profile",
    "ci",
    "--warmup",
    "2",
    "--min-iters",
    "20",
    "--min-time",
    "0.2",
    "--max-time",
    "2",
    "--no-end-to-end",
    "--output",
    "json",
]
DEADLINE_S = 120


def _rows(run_dir: Path) -> list[str]:
    path = run_dir / "rows.jsonl"
    return path.read_text().splitlines() if path.exists() else []


def _exporting(proc: psutil.Process) -> bool:
    try:
        return any(
            "exporters.worker" in " ".join(c.cmdline()) for c in proc.children(recursive=True)
        )
    except psutil.Error:
        return False


def _start_and_kill(home: Path, when: str, k: int = 0) -> tuple[Path, list[psutil.Process]]:
    """Start the CLI sweep and SIGKILL it (only it) during an export, or once `k` rows
    are stored; its run directory and the children it had then."""
    env = child_env(WORKBENCH_HOME=str(home))
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", *BENCH],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ps = psutil.Process(proc.pid)
    runs = home / "runs"
    deadline = time.monotonic() + DEADLINE_S
    run_dir = None
    while time.monotonic() < deadline and proc.poll() is None:
        run_dir = run_dir or next((p for p in runs.glob("*") if p.is_dir()), None)
        if run_dir and (
            (when == "export" and _exporting(ps)) or (when == "rows" and len(_rows(run_dir)) >= k)
        ):
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the sweep ended before the kill point"
    children = ps.children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert run_dir is not None
    return run_dir, children


@pytest.mark.parametrize(("when", "k"), [("export", 0), ("rows", 1), ("rows", 4)])
def test_kill_at_any_point_then_resume(workspace, when, k):
    run_dir, children = _start_and_kill(workspace, when, k)
    # The CLI's workers die with it (no orphan appends rows a resume would measure again).
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [p.cmdline() for p in alive]
    before = _rows(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "running"  # killed: never marked finished
    if when == "rows":
        assert len(before) >= k
    # A torn last line (a writer killed mid-row) is allowed; every other line is whole.
    whole = [json.loads(line) for line in before if line.endswith("}")]

    from workbench.cli import main

    assert main(["bench", "--resume", run_dir.name, "--output", "json"]) == 0

    store = RunStore.open(run_dir)
    rows = store.rows()
    ids = [r["row_id"] for r in rows]
    assert set(r["row_id"] for r in whole) <= set(ids)  # rows lost: 0
    sweep = TaskSweep.from_json(store.manifest["config"]["sweep"])
    counts = Counter(row_key(r) for r in rows)
    assert sorted(counts) == sorted(planned_keys(sweep))  # nothing missing
    assert max(counts.values()) == 1  # duplicates: 0
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]
    assert all(line.endswith("}") for line in _rows(run_dir))  # no torn line left
    assert store.manifest["status"] == "ok"
    assert store.manifest["row_count"] == len(rows) == 6
    assert store.manifest["resumed"][-1]["missing"] == 6 - len(whole)
    # The artifact measured is the one its manifest vouches for.
    for row in rows:
        if row["format"] == "onnx":
            art = json.loads((Path(row["artifact_path"]).parent / "manifest.json").read_text())
            assert art["status"] == "ok" and row["artifact_sha256"] == art["sha256"]

    # A second resume finds nothing missing and measures nothing.
    assert main(["bench", "--resume", run_dir.name, "--output", "json"]) == 0
    assert len(RunStore.open(run_dir).rows()) == 6


def test_resume_refuses_what_it_cannot_resume(workspace, capsys):
    from workbench.cli import main

    store = RunStore.create({"command": "bench", "model_file": "x.onnx"})
    cases = [
        (["--resume", "nope"], "no run 'nope'"),
        (["--resume", store.run_id], "not a task sweep"),
        (["--resume", store.run_id, "--batch", "1"], "drop --batch"),
        (["--resume", store.run_id, "--rerun", store.run_id], "not both"),
    ]
    for argv, message in cases:
        assert main(["bench", *argv, "--output", "json"]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_resume_waits_for_a_live_writer_and_cuts_a_torn_row(workspace):
    store = RunStore.create({"command": "bench"})
    store.append({"status": "ok", "batch_size": 1})
    with store.rows_path.open("ab") as fh:
        fh.write(b'{"run_id": "torn')
    assert store.repair() == len(b'{"run_id": "torn')
    assert len(store.rows()) == 1
    assert store.rows_path.read_bytes().endswith(b"\n")
    with store.exclusive():
        from workbench.errors import UserError

        with pytest.raises(UserError, match="another process"):
            with RunStore.open(store.path).exclusive():
                pass
