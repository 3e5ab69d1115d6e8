"""Admission control before the expensive work: past --max-inflight a request is shed
(429 / RESOURCE_EXHAUSTED) before its body is read, and --timeout-s runs from arrival,
covering a body that is slow to arrive (504). A slow model and a limit of one make it
deterministic."""

from __future__ import annotations

import socket
import threading
import time

import grpc
import httpx
import numpy as np
import pytest

from tests.support.serving_util import imagenet_head_onnx, make_service
from workbench.batching import BatcherConfig
from workbench.serving.endpoints import EndpointConfig
from workbench.serving.proto import open_inference_grpc_pb2 as pb
from workbench.serving.proto import open_inference_grpc_pb2_grpc as pb_grpc
from workbench.serving.server import ServerThread
from workbench.serving.service import ServeSettings

SLOW_S = 0.6
GOOD = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}


@pytest.fixture
def server():
    batcher = BatcherConfig(max_batch_size=1, max_queue_delay_ms=0, max_queue_size=8)
    service = make_service(
        [("slow", "slow", "1")],
        batcher=batcher,
        settings=ServeSettings(max_inflight=1, timeout_s=2.0),
        delay_s=SLOW_S,
    )
    with ServerThread(service) as srv:
        yield srv


def _occupy(url: str) -> tuple[threading.Thread, list]:
    """One slow request in flight (the limit), started in the background."""
    done: list = []

    def run() -> None:
        done.append(httpx.post(url + "/v2/models/slow/infer", json=GOOD, timeout=10).status_code)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, done


def _wait_in_flight(srv, count: int = 1) -> None:
    deadline = time.monotonic() + 5
    while srv.service.admission.in_flight < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert srv.service.admission.in_flight == count


def test_past_the_limit_is_shed_before_the_body_is_read(server):
    thread, done = _occupy(server.url)
    _wait_in_flight(server)
    # A body that could not even be parsed: shed with 429 (not 400), so it was not read.
    started = time.perf_counter()
    r = httpx.post(server.url + "/v2/models/slow/infer", content=b"{not json" * 1000, timeout=5)
    shed_s = time.perf_counter() - started
    assert r.status_code == 429 and "in flight" in r.json()["error"]
    assert shed_s < SLOW_S / 2  # answered at once, not after the slow request
    # health, metadata and metrics are not counted: answered while the limit is reached
    assert httpx.get(server.url + "/v2/health/live", timeout=5).status_code == 200
    assert httpx.get(server.url + "/v2/models/slow", timeout=5).status_code == 200
    metrics = httpx.get(server.url + "/metrics", timeout=5).text
    assert 'workbench_requests_total{model="",protocol="http",status="429",version=""} 1.0' in (
        metrics
    )
    thread.join(timeout=10)
    assert done == [200]
    assert server.service.admission.in_flight == 0
    # the place is free again
    assert httpx.post(server.url + "/v2/models/slow/infer", json=GOOD, timeout=5).status_code == 200


def test_a_shed_request_with_a_big_body_gets_its_429(server):
    """A body bigger than the socket buffers, shed while the client is still sending it: the
    server drains it unparsed, so the client reads the 429 (closing with the body unread
    resets the connection and httpx raises ReadError/WriteError instead); the drained
    connection stays usable."""
    thread, done = _occupy(server.url)
    _wait_in_flight(server)
    big = b"[" + b"0.5, " * 1_500_000 + b"0.5]"  # 7.5 MB: not parsed, not read whole at once
    with httpx.Client(timeout=10) as client:
        started = time.perf_counter()
        r = client.post(server.url + "/v2/models/slow/infer", content=big)
        shed_s = time.perf_counter() - started
        assert r.status_code == 429 and "in flight" in r.json()["error"]
        assert r.headers.get("connection") != "close"
        assert shed_s < SLOW_S  # drained and answered, not queued behind the slow request
        thread.join(timeout=10)
        # the same connection carries the next request
        assert client.post(server.url + "/v2/models/slow/infer", json=GOOD).status_code == 200
    assert done == [200]


def test_grpc_past_the_limit_is_resource_exhausted(server):
    thread, done = _occupy(server.url)  # the limit is shared by both fronts
    _wait_in_flight(server)
    req = pb.ModelInferRequest(model_name="slow")
    req.inputs.add(name="x", datatype="FP32", shape=[1, 4])
    req.raw_input_contents.append(np.zeros(4, np.float32).tobytes())
    with grpc.insecure_channel(f"{server.host}:{server.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.ModelInfer(req, timeout=5)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "in flight" in err.value.details()
        assert stub.ServerLive(pb.ServerLiveRequest(), timeout=5).live
        thread.join(timeout=10)
        assert stub.ModelInfer(req, timeout=5).model_version == "1"
    assert done == [200]


def _send_part_of_a_body(srv, path: bytes, start: bytes) -> tuple[bytes, float]:
    """POST `path` announcing a 1,000-byte JSON body and send only `start` of it; the reply's
    head (or what came within 5 s) and the seconds it took."""
    with socket.create_connection((srv.host, srv.http_port), timeout=5) as sock:
        sock.sendall(
            b"POST " + path + b" HTTP/1.1\r\nhost: x\r\n"
            b"content-type: application/json\r\ncontent-length: 1000\r\n\r\n" + start
        )  # ... and the rest never comes
        started = time.perf_counter()
        reply = b""
        while b"\r\n\r\n" not in reply and time.perf_counter() - started < 5:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        return reply, time.perf_counter() - started


def test_the_deadline_covers_a_body_slow_to_arrive():
    service = make_service(
        [("slow", "slow", "1")], settings=ServeSettings(timeout_s=0.5), delay_s=0.01
    )
    with ServerThread(service, grpc=False) as srv:
        reply, waited = _send_part_of_a_body(srv, b"/v2/models/slow/infer", b'{"inputs": ')
        assert reply.startswith(b"HTTP/1.1 504"), reply[:200]
        assert 0.3 < waited < 3.0
        assert b"reading the request body" in reply or b"--timeout-s" in reply
        # the server still answers
        r = httpx.post(srv.url + "/v2/models/slow/infer", json=GOOD, timeout=5)
        assert r.status_code == 200
        (stats,) = httpx.get(srv.url + "/v2/models/slow/stats", timeout=5).json()["model_stats"]
        assert stats["inference_stats"]["success"]["count"] == 1


def test_a_task_endpoints_deadline_runs_from_arrival(tmp_path):
    """/api/v1/classify: an image body that never finishes arriving is a 504 within the
    request's --timeout-s (the deadline covers reading, not only the model's queue)."""
    head = str(imagenet_head_onnx(tmp_path / "head.onnx"))
    service = make_service([("head", head, "1")], settings=ServeSettings(timeout_s=0.5))
    with ServerThread(service, [EndpointConfig.parse("classify=head")], grpc=False) as srv:
        reply, waited = _send_part_of_a_body(srv, b"/api/v1/classify", b'{"image_base64')
        assert reply.startswith(b"HTTP/1.1 504"), reply[:300]
        assert 0.3 < waited < 3.0
        assert b"reading the image" in reply
        assert httpx.get(srv.url + "/v2/health/live", timeout=5).status_code == 200
