"""The compiled callers (`onnxruntime-c`, `torch-cpp`) and the compiled KServe v2 front.

The C++ binaries are built once into the native cache (keyed by their sources' digest) and
reused by later sessions; the libtorch caller takes about a minute to compile the first
time, so its test is marked slow. A host without a compiler or the fetched headers gets
`unavailable` rows; those tests then skip with that reason.
"""

from __future__ import annotations

import json
import socket
import subprocess

import numpy as np
import pytest

from tests.support.serving_util import affine_onnx
from workbench.commands.bench.task import beside
from workbench.devices import parse_device
from workbench.errors import UnavailableError, UserError
from workbench.harness.runner import BenchConfig, run_config
from workbench.harness.timing import StopRule
from workbench.registry import get_runtime
from workbench.runtimes.base import RuntimeOptions
from workbench.runtimes.compiled import build
from workbench.runtimes.compiled.process import read_tensors, write_tensors
from workbench.sweep import from_profile, plan

CPU = parse_device("cpu")
RULE = StopRule(warmup_iters=3, warmup_time_s=0.0, min_iters=50, min_time_s=0.05, max_time_s=5)


def _need(runtime: str) -> None:
    reason = get_runtime(runtime).unavailable_reason(CPU)
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def affine(tmp_path_factory):
    return affine_onnx(tmp_path_factory.mktemp("compiled") / "affine.onnx")


def test_tensor_files_round_trip(tmp_path):
    arrays = [("x", np.arange(6, dtype=np.float32).reshape(2, 3)), ("ids", np.array([[7]]))]
    write_tensors(tmp_path / "a.wbt", arrays)
    back = read_tensors(tmp_path / "a.wbt")
    assert [name for name, _ in back] == ["x", "ids"]
    for (_, a), (_, b) in zip(arrays, back, strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype


def test_onnxruntime_c_matches_onnxruntime_and_refuses_bad_feeds(affine):
    _need("onnxruntime-c")
    options = RuntimeOptions(CPU, threads=1)
    python = get_runtime("onnxruntime").load(affine, options)
    compiled = get_runtime("onnxruntime-c").load(affine, options)
    try:
        assert [s.shape for s in compiled.inputs] == [("batch", 4)]
        feed = {"x": np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)}
        expected = python.to_numpy(python.run(python.prepare(feed)))
        got = compiled.to_numpy(compiled.run(compiled.prepare(feed)))
        np.testing.assert_array_equal(got[0], expected[0])
        with pytest.raises(UserError, match="dtype"):
            compiled.prepare({"x": np.zeros((1, 4), np.float64)})
        with pytest.raises(RuntimeError, match="invalid dimensions"):
            compiled.run(compiled.prepare({"x": np.zeros((1, 3), np.float32)}))
        # The process survives a refused call.
        np.testing.assert_array_equal(compiled.run(compiled.prepare(feed))[0], expected[0])
    finally:
        python.close()
        compiled.close()


def test_onnxruntime_c_rows_follow_the_stop_rule(affine):
    _need("onnxruntime-c")
    rows: list[dict] = []
    rule = StopRule(warmup_iters=2, warmup_time_s=0.0, min_iters=40, min_time_s=0.0,
                    max_time_s=5, max_iters=40)  # fmt: skip
    config = BenchConfig("onnxruntime-c", "onnx", str(affine), threads=1, batch_sizes=[1, 8],
                         rule=rule)  # fmt: skip
    run_config(config, rows.append)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    for row in rows:
        assert row["n_iterations"] == 40 == len(row["latencies_ms"])
        assert row["n_warmup"] == 2
        assert row["provider"].endswith("(C API)") and row["runtime_version"]
        assert 0 < row["latency_ms_p50"] < 50
        assert row["peak_rss_bytes"] > 1_000_000  # the caller's own process


def test_compiled_runtimes_are_unavailable_without_a_compiler_or_on_a_gpu(monkeypatch, affine):
    rows: list[dict] = []
    run_config(BenchConfig("onnxruntime-c", "onnx", str(affine), device="cuda"), rows.append)
    assert rows[0]["status"] == "unavailable" and "GPU" in rows[0]["error"]
    monkeypatch.setenv("CXX", "")
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    for runtime, fmt in (("onnxruntime-c", "onnx"), ("torch-cpp", "torchscript")):
        rows = []
        run_config(BenchConfig(runtime, fmt, str(affine)), rows.append)
        assert rows[0]["status"] == "unavailable", rows[0]
        assert "no C++ compiler" in rows[0]["error"]


@pytest.mark.slow
def test_torch_cpp_matches_torch(tmp_path):
    """Compiles the libtorch caller the first time (about a minute), then reuses it."""
    _need("torch-cpp")
    import torch

    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh()).eval()
    path = tmp_path / "m.pt"
    torch.jit.trace(module, torch.zeros(2, 4)).save(str(path))
    from workbench.signature import TensorSpec

    options = RuntimeOptions(CPU, threads=1, inputs=[TensorSpec("x", "float32", ("batch", 4))])
    compiled = get_runtime("torch-cpp").load(path, options)
    try:
        x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
        got = compiled.to_numpy(compiled.run(compiled.prepare({"x": x})))
        with torch.no_grad():
            np.testing.assert_allclose(got[0], module(torch.from_numpy(x)).numpy(), rtol=1e-6)
        measured = compiled.measure([compiled.prepare({"x": x})], RULE)
        assert len(measured.latencies_ns) >= RULE.min_iters
    finally:
        compiled.close()


# --- the compiled KServe v2 front -------------------------------------------------------


@pytest.fixture(scope="module")
def server(affine):
    _need("onnxruntime-c")
    from workbench.serving.compiled_front import server_argv

    proc = subprocess.Popen(server_argv(affine, "affine", max_body_mb=1), stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        info = json.loads(proc.stdout.readline())
        yield proc, f"http://127.0.0.1:{info['http_port']}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_server_answers_health_metadata_and_json_infer(server):
    import httpx

    _, url = server
    assert httpx.get(f"{url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{url}/v2/health/ready").status_code == 200
    meta = httpx.get(f"{url}/v2/models/affine").json()
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    body = {"id": "q", "inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4],
                                   "data": [[0, 1, 2, 3], [4, 5, 6, 7]]}]}  # fmt: skip
    reply = httpx.post(f"{url}/v2/models/affine/infer", json=body).json()
    assert reply["id"] == "q" and reply["outputs"][0]["shape"] == [2, 4]
    assert reply["outputs"][0]["data"] == [2 * v + 1 for v in range(8)]


BAD_REQUESTS = [
    ("GET", "/v2/models/nope", None, 404, "unknown model"),
    ("GET", "/nothing", None, 404, "unknown path"),
    ("GET", "/v2/models/affine/infer", None, 405, "POST"),
    ("POST", "/v2/models/affine/infer", b"not json", 400, "not a JSON object"),
    ("POST", "/v2/models/affine/infer", b"[1, 2]", 400, "not a JSON object"),
    ("POST", "/v2/models/affine/infer", b'{"inputs": 3}', 400, "'inputs'"),
    ("POST", "/v2/models/affine/infer",
     b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1]}]}',
     400, "bytes of data"),
    ("POST", "/v2/models/affine/infer",
     b'{"inputs": [{"name": "x", "datatype": "INT64", "shape": [1, 4], "data": [1,2,3,4]}]}',
     400, "dtype"),
    ("POST", "/v2/models/affine/infer",
     b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1,2,3]}]}',
     400, "inference failed"),
    ("POST", "/v2/models/affine/infer",
     b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": ["a",2,3,4]}]}',
     400, "numbers"),
    ("POST", "/v2/models/affine/infer",
     b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, -4], "data": []}]}',
     400, "bad shape"),
    ("POST", "/v2/models/affine/infer",
     b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], '
     b'"parameters": {"binary_data_size": 999}}]}', 400, "past the body"),
    ("POST", "/v2/models/affine/infer",
     b'{"inputs": [{"name": "x", "datatype": "WHAT", "shape": [1], "data": [1]}]}',
     400, "unsupported datatype"),
    ("POST", "/v2/models/affine/infer",
     b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1,2,3,4]}], '
     b'"outputs": [{"name": "zz"}]}', 400, "unknown output"),
    ("POST", "/v2/models/affine/infer", b"x" * (2 * 1024 * 1024), 413, "limit"),
]  # fmt: skip


@pytest.mark.parametrize("method,path,body,status,message", BAD_REQUESTS)
def test_server_refuses_bad_requests_with_json_errors(server, method, path, body, status, message):
    import httpx

    proc, url = server
    reply = httpx.request(method, url + path, content=body)
    assert reply.status_code == status, reply.text
    assert message in reply.json()["error"]
    assert proc.poll() is None
    assert httpx.get(f"{url}/v2/health/live").status_code == 200


def test_server_survives_broken_connections(server):
    import httpx

    proc, url = server
    port = int(url.rsplit(":", 1)[1])
    for raw in (
        b'POST /v2/models/affine/infer HTTP/1.1\r\nContent-Length: 100\r\n\r\n{"inp',
        b"\x00\xff garbage \r\n\r\n",
        b"GET /v2/health/live HTTP/1.1\r\n" + b"X: y\r\n" * 20000,
        b"POST /v2/models/affine/infer HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /v2/models/affine/infer HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            try:
                sock.sendall(raw)
            except OSError:
                pass  # the server may close first (oversized headers)
    assert proc.poll() is None
    assert httpx.get(f"{url}/v2/health/ready").status_code == 200


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_against_the_compiled_server(server, binary):
    httpclient = pytest.importorskip("tritonclient.http")
    from tritonclient.utils import InferenceServerException

    _, url = server
    client = httpclient.InferenceServerClient(url=url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("affine")
        x = np.arange(12, dtype=np.float32).reshape(3, 4)
        tensor = httpclient.InferInput("x", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        wanted = httpclient.InferRequestedOutput("y", binary_data=binary)
        result = client.infer("affine", [tensor], outputs=[wanted], request_id="r1")
        np.testing.assert_array_equal(result.as_numpy("y"), 2 * x + 1)
        assert result.get_response()["id"] == "r1"
        bad = httpclient.InferInput("x", [1, 4], "INT32")
        bad.set_data_from_numpy(np.zeros((1, 4), np.int32), binary_data=binary)
        with pytest.raises(InferenceServerException, match="dtype"):
            client.infer("affine", [bad])
    finally:
        client.close()


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ([], "--no-batcher"),
        (["--no-batcher", "--grpc-port", "-1", "--dim", "h=8"], "--dim"),
        (["--no-batcher", "--grpc-port", "-1", "--timeout-s", "2"], "--timeout-s"),
        (["--no-batcher", "--grpc-port", "-1", "--max-inflight", "4"], "--max-inflight"),
    ],
)
def test_serve_front_compiled_refuses_flags_it_cannot_honour(affine, capsys, extra, named):
    from workbench.cli import main

    assert main(["serve", "--front", "compiled", "--model", f"m={affine}", *extra]) == 2
    assert named in capsys.readouterr().err


def test_server_argv_needs_an_onnx_file(tmp_path):
    from workbench.serving.compiled_front import server_argv

    with pytest.raises((UserError, UnavailableError)):
        server_argv(tmp_path / "missing.onnx")


def test_benchmark_json_becomes_the_claims_frames(tmp_path):
    """What seed_claims reads from a quiet-machine compiled_vs_python.py run."""
    from workbench.study import claims, compiled

    def row(runtime, model, batch, p50_ms):
        return {"status": "ok", "runtime": runtime, "model": model, "batch_size": batch,
                "latency_ms_p50": p50_ms}  # fmt: skip

    data = {
        "per_call": [row("onnxruntime", "tabular_mlp", 1, 0.030),
                     row("onnxruntime-c", "tabular_mlp", 1, 0.005)],
        "size_rows": [row("onnxruntime", "mlp_w8", 1, 0.012),
                      row("onnxruntime-c", "mlp_w8", 1, 0.004)],
        "serving": [{"front": "python", "model": "tabular_mlp", "status": "ok", "p50_ms": 2.0,
                     "peak_qps": 300.0, "peak_rss_bytes": 150 << 20, "bound_ms": 100.0}],
    }  # fmt: skip
    path = tmp_path / "m.json"
    path.write_text(json.dumps(data))
    frames = compiled.load_measurements(path)
    adds = compiled.python_adds(frames["compiled"])
    assert adds["model"].tolist() == ["mlp_w8", "mlp"]
    np.testing.assert_allclose(adds["python_adds_us"], [8.0, 25.0])
    np.testing.assert_allclose(adds["ratio"], [3.0, 6.0])
    verdicts = claims.judge(frames, "quick").set_index("claim")
    per_call = verdicts.loc[
        "tabular mlp, batch 1, per call: onnxruntime's Python API vs a C++ caller on its C API"
    ]
    assert per_call["verdict"] == claims.CONFIRMED and "adds 25.0 us" in per_call["measured"]
    # Only the Python front measured: the serving parts say what failed or is missing.
    served = verdicts[verdicts.index.str.startswith("tabular mlp served")]
    assert (served["verdict"] == claims.NOT_MEASURABLE).all()


@pytest.mark.slow
def test_task_sweep_puts_compiled_rows_beside_the_python_ones(workspace):
    """`extra_runtimes` measures the same artifact on the compiled caller too; resume keys
    tell the two rows apart."""
    _need("onnxruntime-c")
    from workbench import results
    from workbench.results import RunStore
    from workbench.sweep import TaskSweep, plan, planned_keys, row_key, run_sweep

    sweep = TaskSweep(task="tabular", models=["linear"], frameworks=["torch"],
                      formats=["onnx"], precisions=["fp32"], batch_sizes=[1, 16], threads=[1],
                      rule=RULE, extra_runtimes={"onnx": ["onnxruntime-c"]})  # fmt: skip
    assert [j.runtime_name() for j in plan(sweep)] == ["onnxruntime", "onnxruntime-c"]
    store = RunStore.create({"test": "compiled sweep"})
    run_sweep(sweep, store)
    store.finish("ok")
    rows = results.load(run_ids=[store.run_id]).to_dict(orient="records")
    assert sorted((r["runtime"], r["batch_size"]) for r in rows) == [
        ("onnxruntime", 1), ("onnxruntime", 16), ("onnxruntime-c", 1), ("onnxruntime-c", 16),
    ]  # fmt: skip
    assert all(r["status"] == "ok" for r in rows), [r.get("error") for r in rows]
    assert sorted(row_key(r) for r in rows) == sorted(planned_keys(sweep))
    with pytest.raises(UserError, match="cannot run format"):
        TaskSweep(task="tabular", extra_runtimes={"onnx": ["torch-cpp"]})


def test_bench_task_runtime_measures_beside_each_formats_own():
    """`bench --task T --runtime onnxruntime-c`: the compiled caller's jobs beside the Python
    API's on the same ONNX artifacts; a format's own runtime adds nothing."""
    assert beside(["onnxruntime-c"], ["onnx", "torchscript"]) == {"onnx": ["onnxruntime-c"]}
    assert beside(["onnxruntime"], ["onnx"]) == {}
    sweep = from_profile("tabular", "ci", formats=["onnx"], precisions=["fp32"], batch_sizes=[1])
    sweep.extra_runtimes = beside(["onnxruntime-c"], sweep.formats)
    jobs = plan(sweep)
    assert {j.runtime_name() for j in jobs} == {"onnxruntime", "onnxruntime-c"}
    per_runtime = {
        r: [j.request for j in jobs if j.runtime_name() == r]
        for r in ("onnxruntime", "onnxruntime-c")
    }
    assert per_runtime["onnxruntime"] == per_runtime["onnxruntime-c"]  # the same artifacts
