"""`workbench serve --model NAME=model.yaml` (#23): a user's model served on loopback by
the real command. One KServe v2 infer request is answered with the model's own outputs,
under the model's own output names; a bad request gets a 4xx in the protocol's error
form (`{"error": "..."}`).

The model is a small ONNX file with two named outputs (its export is a checked copy, so
the server is up in seconds); the served outputs are compared with ONNX Runtime running
that file directly."""

from __future__ import annotations

import json
import select
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from workbench.procs import child_env
from workbench.usermodel import workflow
from workbench.usermodel.probe import probe

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120.0


def _model(path: Path) -> None:
    """features [batch, 4] -> scores = features @ W + b, probs = softmax(scores)."""
    rng = np.random.default_rng(0)
    weight = helper.make_tensor("W", TensorProto.FLOAT, [4, 3], rng.standard_normal(12).tolist())
    bias = helper.make_tensor("b", TensorProto.FLOAT, [3], [0.1, -0.2, 0.3])
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "W"], ["mm"]),
            helper.make_node("Add", ["mm", "b"], ["scores"]),
            helper.make_node("Softmax", ["scores"], ["probs"], axis=1),
        ],
        "two_heads",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4])],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3]),
        ],
        [weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture
def spec_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _model(tmp_path / "two_heads.onnx")
    rows = np.random.default_rng(1).standard_normal((4, 4)).astype("float32")
    np.savez(tmp_path / "batch.npz", features=rows)
    monkeypatch.setattr(workflow, "run_probe", probe)  # the probe in this process
    workflow.init_spec(
        str(tmp_path / "two_heads.onnx"),
        tmp_path / "two_heads.yaml",
        sample=str(tmp_path / "batch.npz"),
    )
    return tmp_path / "two_heads.yaml"


def test_serve_a_model_yaml_answers_with_the_models_own_outputs(spec_file, tmp_path):
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workbench.cli",
            "serve",
            "--model",
            f"mine={spec_file}",
            "--http-port",
            "0",
            "--grpc-port",
            "-1",
        ],
        cwd=ROOT,
        env=child_env(WORKBENCH_HOME=str(tmp_path / "home")),
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )
    try:
        # the "listening" event, printed once the model is exported and loaded
        ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
        assert ready, f"not listening after {START_TIMEOUT_S:.0f} s: {log.read_text()[-2000:]}"
        line = proc.stdout.readline()
        assert line, log.read_text()[-2000:]
        info = json.loads(line)
        url = f"http://127.0.0.1:{info['http_port']}/v2/models/mine"
        meta = httpx.get(url, timeout=10).json()
        assert [o["name"] for o in meta["outputs"]] == ["scores", "probs"]
        assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [("features", "FP32")]

        x = np.random.default_rng(2).standard_normal((2, 4)).astype("float32")
        body = {
            "inputs": [
                {
                    "name": "features",
                    "shape": [2, 4],
                    "datatype": "FP32",
                    "data": x.ravel().tolist(),
                }
            ]
        }
        reply = httpx.post(url + "/infer", json=body, timeout=30)
        assert reply.status_code == 200, reply.text
        outputs = {o["name"]: o for o in reply.json()["outputs"]}
        assert list(outputs) == ["scores", "probs"]
        session = ort.InferenceSession(
            str(spec_file.parent / "two_heads.onnx"), providers=["CPUExecutionProvider"]
        )
        scores, probs = session.run(None, {"features": x})
        for name, own in (("scores", scores), ("probs", probs)):
            served = np.asarray(outputs[name]["data"], "float32").reshape(outputs[name]["shape"])
            np.testing.assert_allclose(served, own, rtol=1e-6, atol=1e-6)

        wrong = {"inputs": [{**body["inputs"][0], "name": "pixels"}]}
        bad = httpx.post(url + "/infer", json=wrong, timeout=30)
        assert 400 <= bad.status_code < 500
        assert set(bad.json()) == {"error"} and "pixels" in bad.json()["error"]
        ragged = {"inputs": [{**body["inputs"][0], "shape": [2, 5]}]}
        bad = httpx.post(url + "/infer", json=ragged, timeout=30)
        assert 400 <= bad.status_code < 500 and set(bad.json()) == {"error"}, bad.text
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
