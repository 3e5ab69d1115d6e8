"""SIGTERM on a real server process: readiness drops, requests in flight (HTTP and gRPC)
are answered, new connections are refused, and the process exits 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import httpx
import numpy as np

from workbench.serving.proto import open_inference_grpc_pb2 as pb
from workbench.serving.proto import open_inference_grpc_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[1]
BODY = json.dumps(
    {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
)


def test_sigterm_drains_in_flight_requests_then_exits():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.serving_slow_server", "0.4"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(proc.stdout.readline())
        url = f"http://127.0.0.1:{info['http_port']}"
        deadline = time.monotonic() + 30
        while httpx.get(url + "/v2/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "server never became ready"
            time.sleep(0.05)
        results: dict[str, object] = {}

        def http_call(key: str) -> None:
            r = httpx.post(url + "/v2/models/slow/infer", content=BODY, timeout=20)
            results[key] = (r.status_code, r.json().get("outputs"))

        def grpc_call() -> None:
            with grpc.insecure_channel(f"127.0.0.1:{info['grpc_port']}") as ch:
                req = pb.ModelInferRequest(model_name="slow")
                req.inputs.add(name="x", datatype="FP32", shape=[1, 4])
                req.raw_input_contents.append(np.ones(4, np.float32).tobytes())
                reply = pb_grpc.GRPCInferenceServiceStub(ch).ModelInfer(req, timeout=20)
                results["grpc"] = reply.model_version

        threads = [threading.Thread(target=http_call, args=(f"http{i}",)) for i in range(2)]
        threads.append(threading.Thread(target=grpc_call))
        for t in threads:
            t.start()
        # All three in flight (the model takes 0.4 s per request, one at a time): one
        # running, two queued. Polled rather than slept, so a loaded host cannot send the
        # signal before the requests have arrived.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            metrics = httpx.get(url + "/metrics", timeout=5).text
            if 'workbench_queue_depth{model="slow",version="1"} 2.0' in metrics:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(timeout=30)
        assert results.get("grpc") == "1", results
        for i in range(2):
            status, outputs = results[f"http{i}"]
            assert status == 200 and outputs[0]["data"] == [1, 2, 3, 4], results
        assert proc.wait(timeout=30) == 0
        try:
            httpx.get(url + "/v2/health/live", timeout=2)
            raise AssertionError("the server still accepts connections after draining")
        except httpx.TransportError:
            pass
        logs = proc.stderr.read()
        assert '"msg": "draining"' in logs and '"msg": "stopped"' in logs
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_workbench_serve_cli_serves_the_null_model_and_stops_on_sigterm():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workbench.cli",
            "serve",
            "--model",
            "m=null",
            "--model",
            "m:2=null",
            "--weight",
            "m:2=1",
            "--http-port",
            "0",
            "--grpc-port",
            "-1",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(proc.stdout.readline())
        assert info["grpc_port"] is None
        url = f"http://127.0.0.1:{info['http_port']}"
        assert httpx.get(url + "/v2/health/ready").status_code == 200
        body = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [0]}]}
        reply = httpx.post(url + "/v2/models/m/infer", json=body)
        assert reply.json()["model_version"] == "2"  # the only weighted version
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_workbench_serve_bad_flags_exit_2_with_a_message(capsys):
    from workbench.cli import main

    assert main(["serve", "--model", "no-source"]) == 2
    assert "--model must look like NAME[:VERSION]=SOURCE" in capsys.readouterr().err
    assert main(["serve", "--model", "m=null", "--weight", "m=1"]) == 2
    assert "--weight needs NAME:VERSION" in capsys.readouterr().err
    assert main(["serve", "--model", "m=null", "--endpoint", "classify"]) == 2
    assert "--endpoint must look like" in capsys.readouterr().err
