"""Clients nobody here wrote, against the real `workbench serve` command: tritonclient's
HTTP and gRPC clients read the model configuration and statistics extensions (what
Triton's perf_analyzer asks for before its first request), infer, and see the server's
errors; for a fixed-shape model and for a model file with dynamic spatial axes served
without warm-up shapes.

The clients run in their own process: tritonclient's gRPC stubs and the server's define
the same protobuf package (`inference`), which one process's default pool cannot hold.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.serving_util import affine_onnx, spatial_onnx

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tritonclient") is None, reason="tritonclient is not installed"
)

CLIENT = r"""
import json, sys
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

http_url, grpc_url = sys.argv[1], sys.argv[2]
out = {}
h = httpclient.InferenceServerClient(url=http_url)
g = grpcclient.InferenceServerClient(url=grpc_url)
for proto, client, mod in (("http", h, httpclient), ("grpc", g, grpcclient)):
    r = {}
    config = client.get_model_config("affine", as_json=True) if proto == "grpc" else (
        client.get_model_config("affine"))
    r["config"] = config.get("config", config)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    t = mod.InferInput("x", [2, 4], "FP32")
    t.set_data_from_numpy(x)
    res = client.infer("affine", [t])
    r["y"] = res.as_numpy("y").tolist()
    img = np.ones((1, 3, 24, 40), np.float32)
    t = mod.InferInput("images", list(img.shape), "FP32")
    t.set_data_from_numpy(img)
    r["means"] = client.infer("det", [t]).as_numpy("means").tolist()
    det = client.get_model_config("det", as_json=True) if proto == "grpc" else (
        client.get_model_config("det"))
    r["det_config"] = det.get("config", det)
    stats = client.get_inference_statistics("affine", as_json=True) if proto == "grpc" else (
        client.get_inference_statistics("affine"))
    r["stats"] = stats["model_stats"]
    try:
        client.get_model_config("nope")
        r["error"] = None
    except InferenceServerException as exc:
        r["error"] = str(exc)
    out[proto] = r
print(json.dumps(out))
"""


def test_tritonclient_http_and_grpc_read_config_and_statistics(tmp_path):
    affine = affine_onnx(tmp_path / "affine.onnx")
    spatial = spatial_onnx(tmp_path / "spatial.onnx")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
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
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(server.stdout.readline())
        script = tmp_path / "client.py"
        script.write_text(CLIENT)
        proc = subprocess.run(
            [
                sys.executable,
                str(script),
                f"127.0.0.1:{info['http_port']}",
                f"127.0.0.1:{info['grpc_port']}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        out = json.loads(proc.stdout)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            assert server.wait(timeout=30) == 0
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    for proto in ("http", "grpc"):
        r = out[proto]
        config = r["config"]
        assert config["name"] == "affine" and int(config["max_batch_size"]) == 8
        assert config["input"][0]["data_type"] == "TYPE_FP32"
        assert [int(d) for d in config["input"][0]["dims"]] == [4]
        assert "dynamic_batching" in config
        assert r["y"] == [[1.0, 3.0, 5.0, 7.0], [9.0, 11.0, 13.0, 15.0]]
        assert r["means"] == [[1.0, 1.0, 1.0]]
        dims = [int(d) for d in r["det_config"]["input"][0]["dims"]]
        assert dims == [3, -1, -1]
        (stats,) = r["stats"]
        assert stats["name"] == "affine" and int(stats["inference_stats"]["success"]["count"]) >= 1
        assert "unknown model 'nope'" in r["error"]
    # the gRPC client's statistics come after the HTTP client's two requests and its own
    grpc_success = int(out["grpc"]["stats"][0]["inference_stats"]["success"]["count"])
    assert grpc_success == 2
