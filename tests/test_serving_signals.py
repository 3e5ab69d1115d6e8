"""Services stop with their command: SIGTERM or SIGINT to `workbench serve` (with a JSON
parse worker running) and to `workbench cluster up --local 1` (a Dask scheduler, a
nanny and its worker) leaves no child process alive. Every wait is bounded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.serving_util import imagenet_head_onnx

ROOT = Path(__file__).resolve().parents[1]


def descendants(pid: int) -> set[int]:
    """Every process below `pid` now (from /proc's children lists)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                children = (task / "children").read_text().split()
            except FileNotFoundError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def stop_and_check(proc: subprocess.Popen, sig: int, children: set[int]) -> None:
    assert children, "the command started no child process: nothing to check"
    proc.send_signal(sig)
    try:
        proc.wait(timeout=45)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 10
    while any(alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = sorted(p for p in children if alive(p))
    for pid in survivors:  # clean up after a failure, then report it
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not survivors, f"children still running after {signal.Signals(sig).name}: {survivors}"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_takes_its_children_down(tmp_path, sig):
    model = imagenet_head_onnx(tmp_path / "head.onnx")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workbench.cli",
            "serve",
            "--model",
            f"m={model}",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
            "--drain-s",
            "5",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        info = json.loads(proc.stdout.readline())
        # a 3 MB JSON body: parsed in a worker process, which the server starts now
        x = np.zeros((1, 3, 224, 224), np.float32)
        body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32"}]}
        body["inputs"][0]["data"] = x.ravel().tolist()
        r = httpx.post(
            f"http://127.0.0.1:{info['http_port']}/v2/models/m/infer", json=body, timeout=60
        )
        assert r.status_code == 200, r.text
        children = descendants(proc.pid)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    stop_and_check(proc, sig, children)
    assert proc.returncode == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cluster_up_takes_its_children_down(tmp_path, sig):
    pytest.importorskip("distributed")
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "cluster", "up", "--local", "1", "--port", "0"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "WORKBENCH_HOME": str(tmp_path / "home")},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # printed once the worker has joined
        assert line.startswith("scheduler "), line
        deadline = time.monotonic() + 30
        children = descendants(proc.pid)
        while len(children) < 3 and time.monotonic() < deadline:  # scheduler, nanny, worker
            time.sleep(0.2)
            children = descendants(proc.pid)
    except BaseException:
        for pid in descendants(proc.pid):
            os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()
        raise
    stop_and_check(proc, sig, children)
