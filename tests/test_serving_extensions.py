"""Triton's model configuration and statistics extensions over HTTP and gRPC, the
protocol's error body on every path (unknown routes and methods too), and dynamic
shapes served: a model file with dynamic spatial axes, warmed up by --dim or on its
first request, batched only with requests of the same shape."""

from __future__ import annotations

import json
import re
import threading

import grpc
import httpx
import numpy as np
import pytest

from tests.support.serving_util import affine_onnx, make_service, spatial_onnx
from workbench.batching import BatcherConfig
from workbench.serving.proto import open_inference_grpc_pb2 as pb
from workbench.serving.proto import open_inference_grpc_pb2_grpc as pb_grpc
from workbench.serving.registry import ModelRegistry, WarmupShapes, load_source
from workbench.serving.server import ServerThread
from workbench.serving.service import InferenceService, ServeSettings
from workbench.serving.stats import VersionStats

GOOD = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [0.0] * 8}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    affine = str(affine_onnx(tmp_path_factory.mktemp("ext") / "affine.onnx"))
    batcher = BatcherConfig(max_batch_size=8, max_queue_delay_ms=2.0, preferred_batch_sizes=(4,))
    service = make_service([("affine", affine, "1"), ("affine", affine, "2")], batcher=batcher)
    with ServerThread(service) as srv:
        yield srv


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(f"{server.host}:{server.grpc_port}") as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


# ---- errors in the protocol's form ----------------------------------------------------
@pytest.mark.parametrize(
    "method, path, status, words",
    [
        ("GET", "/nope", 404, "no route '/nope'"),
        ("GET", "/v2/models/affine/versions/1/nothing", 404, "no route"),
        ("POST", "/v2/health/live", 405, "method POST is not allowed"),
        ("GET", "/v2/models/affine/infer", 405, "use POST"),
        ("GET", "/v2/models/nope/config", 404, "unknown model 'nope'"),
        ("GET", "/v2/models/affine/versions/9/stats", 404, "no version '9'"),
    ],
)
def test_every_error_answers_the_protocol_error_body(server, method, path, status, words):
    r = httpx.request(method, server.url + path, timeout=5)
    assert r.status_code == status
    body = r.json()
    assert set(body) == {"error"} and words in body["error"], body


def test_grpc_errors_carry_matching_status_codes(stub, server):
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelConfig(pb.ModelConfigRequest(name="nope"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "unknown model" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelStatistics(pb.ModelStatisticsRequest(name="affine", version="9"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with grpc.insecure_channel(f"{server.host}:{server.grpc_port}") as channel:
        missing = channel.unary_unary("/inference.GRPCInferenceService/RepositoryIndex")
        with pytest.raises(grpc.RpcError) as err:
            missing(b"", timeout=5)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


# ---- model configuration ----------------------------------------------------------------
def test_config_over_http_in_tritons_shape(server):
    r = httpx.get(server.url + "/v2/models/affine/config", timeout=5)
    assert r.status_code == 200
    config = r.json()
    assert config["name"] == "affine"
    assert config["platform"] == "onnxruntime_onnx" and config["backend"] == "onnxruntime"
    assert config["max_batch_size"] == 8
    assert config["input"] == [
        {"name": "x", "data_type": "TYPE_FP32", "dims": [4], "format": "FORMAT_NONE"}
    ]
    assert config["output"] == [{"name": "y", "data_type": "TYPE_FP32", "dims": [4]}]
    assert config["dynamic_batching"]["preferred_batch_size"] == [4]
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 2000
    assert config["instance_group"][0]["count"] == 1
    assert config["instance_group"][0]["kind"] == "KIND_CPU"
    assert config["version_policy"] == {"specific": {"versions": [1, 2]}}
    v2 = httpx.get(server.url + "/v2/models/affine/versions/2/config", timeout=5).json()
    assert v2["name"] == "affine" and v2["parameters"]["warmup"]["string_value"] == "done"
    assert "model_configuration" in httpx.get(server.url + "/v2").json()["extensions"]


def test_config_over_grpc_matches_http(server, stub):
    from google.protobuf import json_format

    reply = stub.ModelConfig(pb.ModelConfigRequest(name="affine", version="1"), timeout=5)
    got = json_format.MessageToDict(reply.config, preserving_proto_field_name=True)
    http = httpx.get(server.url + "/v2/models/affine/versions/1/config", timeout=5).json()
    assert got["max_batch_size"] == http["max_batch_size"] == 8
    assert [int(d) for d in got["input"][0]["dims"]] == http["input"][0]["dims"] == [4]
    assert got["input"][0]["data_type"] == "TYPE_FP32"
    assert reply.config.dynamic_batching.max_queue_delay_microseconds == 2000
    assert list(reply.config.version_policy.specific.versions) == [1, 2]


# ---- statistics ---------------------------------------------------------------------------
def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_statistics_count_requests_and_agree_with_metrics(server, stub):
    url = server.url
    before = httpx.get(url + "/v2/models/affine/versions/1/stats", timeout=5).json()
    (b,) = before["model_stats"]
    for _ in range(3):
        r = httpx.post(url + "/v2/models/affine/versions/1/infer", json=GOOD, timeout=5)
        assert r.status_code == 200
    bad = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
    assert httpx.post(url + "/v2/models/affine/versions/1/infer", json=bad).status_code == 400
    (a,) = httpx.get(url + "/v2/models/affine/versions/1/stats", timeout=5).json()["model_stats"]
    assert a["name"] == "affine" and a["version"] == "1"
    assert a["inference_count"] - b["inference_count"] == 6  # 3 requests of 2 rows
    s, bs = a["inference_stats"], b["inference_stats"]
    assert s["success"]["count"] - bs["success"]["count"] == 3
    assert s["fail"]["count"] - bs["fail"]["count"] == 1
    for part in ("queue", "compute_input", "compute_infer", "compute_output"):
        assert s[part]["count"] - bs[part]["count"] == 3, part
        assert s[part]["ns"] > bs[part]["ns"], part
    assert s["success"]["ns"] >= s["compute_infer"]["ns"]
    assert a["last_inference"] > 0
    # the same counts as /metrics
    metrics = httpx.get(url + "/metrics", timeout=5).text
    ok = _metric(metrics, "workbench_requests_total", model="affine", version="1", status="200")
    assert ok == s["success"]["count"]
    batches = _metric(metrics, "workbench_batch_size_count", model="affine", version="1")
    assert (
        batches
        == a["execution_count"]
        == sum(x["compute_infer"]["count"] for x in a["batch_stats"])
    )
    assert {x["batch_size"] for x in a["batch_stats"]} >= {2}
    # every model / one model / gRPC
    every = httpx.get(url + "/v2/models/stats", timeout=5).json()["model_stats"]
    assert [(m["name"], m["version"]) for m in every] == [("affine", "1"), ("affine", "2")]
    assert len(httpx.get(url + "/v2/models/affine/stats").json()["model_stats"]) == 2
    reply = stub.ModelStatistics(pb.ModelStatisticsRequest(name="affine", version="1"), timeout=5)
    (g,) = reply.model_stats
    assert g.inference_stats.success.count == s["success"]["count"]
    assert g.execution_count == a["execution_count"]


def test_debug_log_says_where_each_request_spent_its_time(server, caplog):
    """`--log-level debug` logs every request with its queue and compute time and the rows
    of the batch it ran in: what a latency tail is read from."""
    two = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1.0] * 8}]}
    with caplog.at_level("DEBUG", logger="workbench.serving"):
        r = httpx.post(server.url + "/v2/models/affine/versions/2/infer", json=two, timeout=5)
    assert r.status_code == 200
    (record,) = [r for r in caplog.records if r.getMessage() == "request" and r.version == "2"]
    assert record.model == "affine" and record.protocol == "http" and record.status == 200
    assert record.batch_rows == 2  # alone in its batch: its own two rows
    assert 0 <= record.queue_ms and 0 < record.compute_ms
    assert record.queue_ms + record.compute_ms <= record.total_ms


def test_our_messages_carry_tritons_field_numbers(tmp_path):
    """tritonclient's gRPC client decodes our ModelConfig/ModelStatistics replies: same
    field numbers and types as its own descriptors (each side in its own process, as both
    define package `inference` in protobuf's default pool)."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("tritonclient") is None:
        pytest.skip("tritonclient is not installed")
    script = tmp_path / "fields.py"
    script.write_text(FIELDS_SCRIPT)
    dumps = {}
    for side in ("ours", "theirs"):
        proc = subprocess.run(
            [sys.executable, str(script), side], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        dumps[side] = json.loads(proc.stdout)
    ours, theirs = dumps["ours"], dumps["theirs"]
    assert len(ours) > 20
    for path, fields in ours.items():
        assert path in theirs, path
        for name, desc in fields.items():
            assert theirs[path].get(name) == desc, (path, name)


FIELDS_SCRIPT = """
import json, sys
def dump(d, out, path):
    out[path] = {f.name: [f.number, f.type, bool(f.is_repeated)] for f in d.fields}
    for f in d.fields:
        if f.message_type is not None and not f.message_type.GetOptions().map_entry:
            if path.count(".") < 4:
                dump(f.message_type, out, path + "." + f.name)
        if f.enum_type is not None:
            out[path + "." + f.name + ":enum"] = {v.name: v.number for v in f.enum_type.values}
if sys.argv[1] == "ours":
    from workbench.serving.proto import open_inference_grpc_pb2 as m
else:
    from tritonclient.grpc import service_pb2 as m
out = {}
for n in ["ModelConfigRequest", "ModelConfigResponse", "ModelStatisticsRequest",
          "ModelStatisticsResponse"]:
    dump(m.DESCRIPTOR.message_types_by_name[n], out, n)
print(json.dumps(out))
"""


# ---- dynamic shapes served ---------------------------------------------------------------
@pytest.fixture(scope="module")
def spatial(tmp_path_factory) -> str:
    return str(spatial_onnx(tmp_path_factory.mktemp("dyn") / "spatial.onnx"))


def _images(n: int, h: int, w: int, value: float = 1.0) -> dict:
    data = np.full((n, 3, h, w), value, np.float32)
    data[:, 1] *= 2
    return {
        "inputs": [
            {
                "name": "images",
                "shape": list(data.shape),
                "datatype": "FP32",
                "data": data.reshape(-1).tolist(),
            }
        ]
    }


def _service(spatial: str, warmup: WarmupShapes, batcher: BatcherConfig) -> InferenceService:
    registry = ModelRegistry(batcher, loader=lambda source, n: load_source(source, n, warmup))
    registry.load("det", spatial, "1")
    service = InferenceService(registry, ServeSettings())
    service.warm = True
    return service


def test_dynamic_spatial_axes_warm_up_on_the_first_request(spatial, caplog):
    batcher = BatcherConfig(max_batch_size=4, max_queue_delay_ms=1)
    with caplog.at_level("INFO", logger="workbench.serving"):
        service = _service(spatial, WarmupShapes(), batcher)
    assert any("warms up on its first request" in r.getMessage() for r in caplog.records)
    with ServerThread(service, grpc=False) as srv:
        meta = httpx.get(srv.url + "/v2/models/det", timeout=5).json()
        assert meta["inputs"][0]["shape"] == [-1, 3, -1, -1]
        assert meta["parameters"]["warmup"] == "first request"
        config = httpx.get(srv.url + "/v2/models/det/config", timeout=5).json()
        assert config["input"][0]["dims"] == [3, -1, -1]
        for h, w in ((32, 48), (20, 20)):
            r = httpx.post(srv.url + "/v2/models/det/infer", json=_images(2, h, w), timeout=10)
            assert r.status_code == 200, r.text
            out = r.json()["outputs"][0]
            assert out["shape"] == [2, 3]
            assert np.allclose(out["data"], [1.0, 2.0, 1.0] * 2)
        meta = httpx.get(srv.url + "/v2/models/det", timeout=5).json()
        assert meta["parameters"]["warmup"] == "done"
        bad = _images(1, 8, 8)
        bad["inputs"][0]["shape"] = [1, 4, 8, 8]
        bad["inputs"][0]["data"] = [0.0] * 256
        r = httpx.post(srv.url + "/v2/models/det/infer", json=bad, timeout=5)
        assert r.status_code == 400 and "takes [-1, 3, -1, -1]" in r.json()["error"]


def test_dims_and_shapes_size_the_warm_up(spatial):
    batcher = BatcherConfig(max_batch_size=4, max_queue_delay_ms=1)
    for warmup in (
        WarmupShapes(dims={"height": 16, "width": 24}),
        WarmupShapes(shapes={"images": ["B", 3, 16, 24]}),
    ):
        service = _service(spatial, warmup, batcher)
        try:
            (entry,) = service.models.entries()
            assert entry.warmup == "done"
            assert entry.served.samples[0]["images"].shape == (1, 3, 16, 24)
            assert sum(entry.batcher.batch_snapshot()[0].values()) >= 1  # warm-up ran
        finally:
            service.models.close()


def test_requests_batch_only_with_requests_of_the_same_shape(spatial):
    # A long queue delay and a batch of 8: the 6 concurrent requests (3 of each of two
    # shapes) wait together, so a batch mixing shapes would be formed if it could be.
    batcher = BatcherConfig(max_batch_size=8, max_queue_delay_ms=150)
    service = _service(spatial, WarmupShapes(dims={"height": 8, "width": 8}), batcher)
    (entry,) = service.models.entries()
    before = dict(entry.batcher.batch_snapshot()[0])
    with ServerThread(service, grpc=False) as srv:
        codes: list[int] = []

        def send(h: int, w: int, value: float) -> None:
            r = httpx.post(
                srv.url + "/v2/models/det/infer", json=_images(1, h, w, value), timeout=10
            )
            codes.append(r.status_code)
            assert np.allclose(r.json()["outputs"][0]["data"], [value, 2 * value, value])

        threads = [
            threading.Thread(target=send, args=(h, w, v))
            for v, (h, w) in enumerate([(8, 8), (12, 16)] * 3, start=1)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        assert codes == [200] * 6
    after = entry.batcher.batch_snapshot()[0]
    ran = {size: after.get(size, 0) - before.get(size, 0) for size in after}
    assert sum(size * n for size, n in ran.items()) == 6
    assert max(size for size, n in ran.items() if n) <= 3  # never both shapes in one batch


def test_serve_has_dim_and_shape_options():
    from workbench.cli import build_parser

    args = build_parser().parse_args(
        ["serve", "--model", "det=x.onnx", "--dim", "height=32", "--shape", "images=Bx3x32x32"]
    )
    assert args.dim == ["height=32"] and args.shape == ["images=Bx3x32x32"]
    assert re.search(r"--max-inflight", build_parser().format_help() + _serve_help())


def _serve_help() -> str:
    from workbench.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices["serve"].format_help()


def test_statistics_compute_counts_agree_between_answer_and_encoding():
    """perf_analyzer aborts ("Server side statistics compute counts must be the same") when
    a snapshot taken while an answer is being encoded shows fewer compute_output than
    compute_infer counts; the output's time may arrive later, its count may not."""
    stats = VersionStats()
    stats.success(rows=1, total_s=0.01, queue_s=0.001, compute_s=0.005, decode_s=0.002)
    _, _, mid = stats.snapshot()
    counts = {mid[p]["count"] for p in ("compute_input", "compute_infer", "compute_output")}
    assert counts == {1}
    stats.output(0.003)
    _, _, after = stats.snapshot()
    assert after["compute_output"] == {"count": 1, "ns": 3_000_000}


def test_parser_says_how_long_a_big_json_body_would_wait():
    """The wait estimate the front sheds by (429 when it outlasts the deadline): none
    before a worker parse was timed, and none for bodies parsed on threads; after one,
    one parse per body queued ahead plus its own."""
    import asyncio
    import json as json_

    from workbench.serving.parsing import PROCESS_MIN_BYTES, Parser

    count = PROCESS_MIN_BYTES // 4
    body = json_.dumps(
        {"inputs": [{"name": "x", "shape": [1, count], "datatype": "FP32", "data": [0.5] * count}]}
    ).encode()
    parser = Parser(workers=1)
    try:
        assert parser.wait_s(body, None) == 0.0  # nothing measured yet
        _, feed, _ = asyncio.run(parser.parse(body, None))
        assert feed["x"].shape == (1, count)
        one = parser.wait_s(body, None)
        assert 0.0 < one < 5.0
        assert parser.wait_s(b"{}", None) == 0.0  # small: parsed on a thread
        assert parser.wait_s(body, str(len(body))) == 0.0  # binary: parsed on a thread
        parser._queued = 3  # three bodies ahead in the one worker's queue
        assert parser.wait_s(body, None) == 4 * one
    finally:
        parser.close()
