"""The HTTP front of `workbench serve` on loopback: the KServe v2 protocol (the spec's
own examples), the binary extension, bad input (4xx and the server keeps serving),
versions and A/B, metrics, overload (429), timeouts and readiness."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import Counter

import httpx
import numpy as np
import pytest

from tests.support.serving_util import affine_onnx, make_service
from workbench.batching import BatcherConfig
from workbench.serving.server import ServerThread
from workbench.serving.service import ServeSettings


@pytest.fixture(scope="module")
def affine(tmp_path_factory) -> str:
    return str(affine_onnx(tmp_path_factory.mktemp("serve") / "affine.onnx"))


@pytest.fixture(scope="module")
def server(affine):
    service = make_service(
        [("affine", affine, "1"), ("affine", affine, "2"), ("null", "null", "1")],
        settings=ServeSettings(max_body_bytes=64 * 1024, model_control=True),
    )
    with ServerThread(service, grpc=False) as srv:
        yield srv


def _infer(url: str, body, model: str = "affine", version: str | None = None, **kw):
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(url + path, content=data, timeout=10, **kw)


GOOD = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}


def _still_serving(url: str) -> None:
    r = _infer(url, GOOD)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [3.0, 5.0, 7.0, 9.0]


def test_health_and_metadata_follow_the_v2_spec(server):
    url = server.url
    assert httpx.get(url + "/v2/health/live").json() == {"live": True}
    assert httpx.get(url + "/v2/health/ready").status_code == 200
    meta = httpx.get(url + "/v2").json()
    assert meta["name"] == "workbench" and "binary_tensor_data" in meta["extensions"]
    model = httpx.get(url + "/v2/models/affine").json()
    assert model["name"] == "affine" and model["versions"] == ["1", "2"]
    assert model["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert model["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 4]}]
    assert httpx.get(url + "/v2/models/affine/versions/2").json()["name"] == "affine"
    ready = httpx.get(url + "/v2/models/affine/versions/2/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert httpx.get(url + "/v2/models/nope/ready").status_code == 404
    health = httpx.get(url + "/health").json()
    assert health["status"] == "ok" and {m["name"] for m in health["models"]} == {"affine", "null"}


def test_infer_like_the_spec_example_with_nested_data_and_id(server):
    # The v2 spec's request example: an id, nested row-major data, a requested output.
    body = {
        "id": "42",
        "inputs": [
            {
                "name": "x",
                "shape": [2, 4],
                "datatype": "FP32",
                "data": [[1, 2, 3, 4], [0, 0, 0, -1]],
            }
        ],
        "outputs": [{"name": "y"}],
    }
    r = _infer(server.url, body, version="1")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["id"] == "42" and out["model_name"] == "affine" and out["model_version"] == "1"
    assert r.headers["x-model-version"] == "1"
    assert out["outputs"] == [
        {"name": "y", "datatype": "FP32", "shape": [2, 4], "data": [3, 5, 7, 9, 1, 1, 1, -1]}
    ]


def test_binary_tensor_extension_in_and_out(server):
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [2, 4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
        }
    ).encode()
    r = _infer(
        server.url, head + x.tobytes(), headers={"Inference-Header-Content-Length": str(len(head))}
    )
    assert r.status_code == 200, r.text
    split = int(r.headers["inference-header-content-length"])
    meta = json.loads(r.content[:split])
    assert meta["outputs"][0]["parameters"]["binary_data_size"] == x.nbytes
    y = np.frombuffer(r.content[split:], np.float32).reshape(2, 4)
    np.testing.assert_array_equal(y, 2 * x + 1)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "not valid JSON"),
        ({"inputs": "x"}, 400, "'inputs' list"),
        (
            {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT64", "data": [1, 2, 3, 4]}]},
            400,
            "takes FP32",
        ),
        (
            {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]},
            400,
            "shape [1, 3]",
        ),
        (
            {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2]}]},
            400,
            "2 values for shape [1, 4]",
        ),
        (
            {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP99", "data": [1, 2, 3, 4]}]},
            400,
            "not a v2 datatype",
        ),
        (
            {"inputs": [{"name": "z", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]},
            400,
            "no input 'z'",
        ),
        (
            {
                "inputs": [
                    {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": ["a", 2, 3, 4]}
                ]
            },
            400,
            "does not fit",
        ),
        (
            {"inputs": [{"name": "x", "shape": [9, 4], "datatype": "FP32", "data": [0] * 36}]},
            400,
            "exceeds the max batch size",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "x",
                        "shape": [1, 4],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": 16},
                    }
                ]
            },
            400,
            "binary_data_size",
        ),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_problem_and_the_server_keeps_serving(
    server, body, status, words
):
    r = _infer(server.url, body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]
    _still_serving(server.url)


def test_unknown_model_or_version_is_404(server):
    r = _infer(server.url, GOOD, model="nope")
    assert r.status_code == 404 and "unknown model 'nope'" in r.json()["error"]
    r = _infer(server.url, GOOD, version="7")
    assert r.status_code == 404 and "no version '7'" in r.json()["error"]
    assert httpx.get(server.url + "/v2/models/affine/versions/7").status_code == 404
    _still_serving(server.url)


def test_body_over_the_cap_is_413_declared_or_streamed(server):
    big = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1.0] * 40000}]}
    r = _infer(server.url, big)
    assert r.status_code == 413 and "cap" in r.json()["error"]

    def chunks():  # no content-length: the cap applies to what streams in
        for _ in range(100):
            yield b" " * 4096

    r = httpx.post(server.url + "/v2/models/affine/infer", content=chunks(), timeout=10)
    assert r.status_code == 413
    _still_serving(server.url)


def test_a_client_that_disconnects_mid_request_does_not_hurt_the_server(server):
    for _ in range(3):
        with socket.create_connection((server.host, server.http_port), timeout=5) as s:
            s.sendall(
                b"POST /v2/models/affine/infer HTTP/1.1\r\nHost: x\r\n"
                b'Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"inputs": ['
            )
    _still_serving(server.url)


def test_versions_load_and_unload_without_a_restart(server, affine):
    url = server.url
    r = httpx.post(
        url + "/v2/repository/models/affine/load",
        json={"parameters": {"source": affine, "version": "3"}},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert httpx.get(url + "/v2/models/affine").json()["versions"] == ["1", "2", "3"]
    assert _infer(url, GOOD, version="3").json()["model_version"] == "3"
    index = httpx.post(url + "/v2/repository/index").json()
    assert {(m["name"], m["version"]) for m in index} >= {("affine", "3"), ("null", "1")}
    r = httpx.post(
        url + "/v2/repository/models/affine/unload", json={"parameters": {"version": "3"}}
    )
    assert r.json()["unloaded"] == ["3"]
    assert _infer(url, GOOD, version="3").status_code == 404
    bad = httpx.post(url + "/v2/repository/models/x/load", json={"parameters": {}})
    assert bad.status_code == 400 and "parameters.source" in bad.json()["error"]
    missing = httpx.post(
        url + "/v2/repository/models/x/load", json={"parameters": {"source": "/no/such/model.onnx"}}
    )
    assert missing.status_code == 400
    _still_serving(url)


def test_ab_split_follows_the_weights_and_every_response_names_its_version(server):
    url = server.url
    r = httpx.post(
        url + "/v2/repository/models/affine/weights", json={"parameters": {"1": 3, "2": 1}}
    )
    assert r.status_code == 200, r.text
    try:
        with httpx.Client(base_url=url) as client:
            seen = Counter(
                client.post("/v2/models/affine/infer", content=json.dumps(GOOD)).json()[
                    "model_version"
                ]
                for _ in range(400)
            )
    finally:
        httpx.post(
            url + "/v2/repository/models/affine/weights", json={"parameters": {"1": 0, "2": 0}}
        )
    # 3:1 over 400 draws: 300 expected for version 1, sd ~8.7; 5 sd either way.
    assert seen.keys() == {"1", "2"} and 256 <= seen["1"] <= 344, seen


def test_ab_draws_are_seeded_and_reproducible(affine):
    def draws(seed: int) -> list[str]:
        service = make_service([("m", "null", "a"), ("m", "null", "b")], seed=seed)
        service.models.set_weights("m", {"a": 1, "b": 1})
        out = [service.models.resolve("m").version for _ in range(200)]
        service.models.close()
        return out

    first = draws(7)
    assert first == draws(7)
    assert first != draws(8)
    assert 70 <= first.count("a") <= 130


def test_metrics_count_requests_by_version_and_status_and_show_batches(server):
    _infer(server.url, GOOD, version="2")
    _infer(server.url, b"{broken")
    text = httpx.get(server.url + "/metrics").text
    assert (
        'workbench_requests_total{model="affine",protocol="http",status="200",version="2"}' in text
    )
    assert 'status="400"' in text and "workbench_request_errors_total" in text
    for name in ("queue", "compute", "total"):
        assert (
            f'workbench_request_{name}_seconds_bucket{{le="0.001",model="affine",version="2"}}'
            in text
        )
    assert 'workbench_batch_size_bucket{le="1.0",model="affine",version="2"}' in text
    assert 'workbench_queue_depth{model="affine",version="2"} 0.0' in text
    assert 'workbench_queue_rejects_total{model="affine",version="2"} 0.0' in text


def test_overload_is_answered_429_without_a_crash():
    slow = BatcherConfig(max_batch_size=1, max_queue_delay_ms=0, max_queue_size=2)
    service = make_service([("slow", "slow", "1")], batcher=slow, delay_s=0.1)
    body = json.dumps(
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0] * 4}]}
    )

    async def burst(url: str) -> list[int]:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            replies = await asyncio.gather(
                *(client.post("/v2/models/slow/infer", content=body) for _ in range(12))
            )
        return [r.status_code for r in replies]

    with ServerThread(service, grpc=False) as srv:
        codes = Counter(asyncio.run(burst(srv.url)))
        assert codes[429] >= 1 and codes[200] >= 1 and set(codes) <= {200, 429}, codes
        r = httpx.post(srv.url + "/v2/models/slow/infer", content=body, timeout=10)
        assert r.status_code == 200
        text = httpx.get(srv.url + "/metrics").text
        assert f'workbench_queue_rejects_total{{model="slow",version="1"}} {codes[429]}.0' in text
        assert f'status="429",version="1"}} {codes[429]}.0' in text


def test_a_request_past_its_timeout_is_504_and_the_next_one_is_answered():
    service = make_service(
        [("slow", "slow", "1")], settings=ServeSettings(timeout_s=0.05), delay_s=0.2
    )
    body = json.dumps(
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0] * 4}]}
    )
    with ServerThread(service, grpc=False) as srv:
        r = httpx.post(srv.url + "/v2/models/slow/infer", content=body, timeout=10)
        assert r.status_code == 504 and "within 0.05 s" in r.json()["error"]
        assert httpx.get(srv.url + "/v2/health/live").status_code == 200


def test_not_ready_until_warm_and_not_ready_while_draining():
    service = make_service([("m", "null", "1")])
    service.warm = False
    with ServerThread(service, grpc=False) as srv:
        assert httpx.get(srv.url + "/v2/health/ready").status_code == 503
        service.warm = True
        assert httpx.get(srv.url + "/v2/health/ready").status_code == 200
        service.draining = True
        assert httpx.get(srv.url + "/v2/health/ready").status_code == 503
        assert httpx.get(srv.url + "/v2/health/live").status_code == 200


def test_a_client_gone_while_its_request_computes_does_not_hurt_the_server():
    service = make_service([("slow", "slow", "1")], delay_s=0.2)
    body = json.dumps(
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0] * 4}]}
    ).encode()
    with ServerThread(service, grpc=False) as srv:
        with socket.create_connection((srv.host, srv.http_port), timeout=5) as s:
            s.sendall(
                b"POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            time.sleep(0.05)  # queued or computing, then the client vanishes
        r = httpx.post(srv.url + "/v2/models/slow/infer", content=body, timeout=10)
        assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [0, 0, 0, 0]
