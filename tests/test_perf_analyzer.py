"""Triton's own load generator, perf_analyzer (a binary nobody here wrote, fetched at set-up
by workbench.serving.perf_analyzer), drives the real `workbench serve` over HTTP and gRPC:
a model with a fixed non-batch shape, and a model file with dynamic spatial axes served
without warm-up shapes (perf_analyzer is given the request shape). Each run is bounded: one
concurrency level, small count windows. It must report a throughput, exit 0, print no error,
and the server's statistics extension must count the requests with none failed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.serving_util import affine_onnx, spatial_onnx
from workbench.errors import UnavailableError
from workbench.serving import perf_analyzer

ROOT = Path(__file__).resolve().parents[1]


def _available() -> str | None:
    try:
        perf_analyzer.binary()
    except UnavailableError as exc:
        return str(exc)
    return None


REASON = _available()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"perf_analyzer: {REASON}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pa")
    affine = affine_onnx(tmp / "affine.onnx")
    spatial = spatial_onnx(tmp / "spatial.onnx")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workbench.cli",
            "serve",
            "--model",
            f"affine={affine}",
            "--model",
            f"det={spatial}",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
            "--log-level",
            "warning",
        ],  # fmt: skip
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield json.loads(proc.stdout.readline()), tmp
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _stats(info: dict, model: str) -> dict:
    url = f"http://127.0.0.1:{info['http_port']}/v2/models/{model}/stats"
    (entry,) = httpx.get(url, timeout=10).json()["model_stats"]
    return entry["inference_stats"]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("model,extra", [("affine", []), ("det", ["--shape", "images:3,32,48"])])
def test_perf_analyzer_reports_throughput_without_errors(server, protocol, model, extra):
    info, tmp = server
    port = info["http_port"] if protocol == "http" else info["grpc_port"]
    before = _stats(info, model)
    out = tmp / f"{model}_{protocol}.csv"
    proc = perf_analyzer.run(
        [
            "-m",
            model,
            "-u",
            f"127.0.0.1:{port}",
            "-i",
            protocol,
            *extra,
            "--concurrency-range",
            "2",
            "--measurement-mode",
            "count_windows",
            "--measurement-request-count",
            "40",
            "--stability-percentage",
            "1000",
            "--max-trials",
            "3",
            "--percentile",
            "99",
            "-f",
            str(out),
        ],  # fmt: skip
        timeout_s=120,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-2000:]
    assert "error" not in text.lower() and "failed" not in text.lower(), text[-2000:]
    (row,) = perf_analyzer.read_csv(out)
    assert row["Concurrency"] == 2 and row["Inferences/Second"] > 0
    assert row["p99 latency"] > 0
    after = _stats(info, model)
    served = int(after["success"]["count"]) - int(before["success"]["count"])
    assert served >= 3 * 40  # at least its three count windows, all answered
    assert int(after["fail"]["count"]) == int(before["fail"]["count"])
    assert "Server:" in proc.stdout  # it read the statistics extension for its report
