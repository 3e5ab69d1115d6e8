"""LoadGen through the server's own clients (workbench.serving.clients), over loopback:
the asynchronous path sends each sample at its issue time and is completed from the
transport's callback, so one client keeps many requests in flight (the server batches
them), failures are counted with the server's reason, and nothing outlives the run."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest

from tests.support.serving_util import affine_onnx, make_service
from workbench.batching import BatcherConfig
from workbench.scenarios.driver import run_scenario
from workbench.scenarios.settings import for_profile
from workbench.serving import clients
from workbench.serving.server import ServerThread

SAMPLES = [{"x": np.full((1, 4), i, np.float32)} for i in range(8)]
SHORT = dict(min_duration_ms=1000, max_duration_ms=4000, drain_grace_ms=3000)
SLOW_S = 0.05  # per batch: one request at a time would serve 20/s


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    affine = str(affine_onnx(tmp_path_factory.mktemp("lg") / "affine.onnx"))
    batcher = BatcherConfig(max_batch_size=8, max_queue_delay_ms=2)
    service = make_service(
        [("affine", affine, "1"), ("slow", "slow", "1")], batcher, delay_s=SLOW_S
    )
    with ServerThread(service) as srv:
        yield srv


def _client(server, front: str, model: str, instances: int = 1):
    if front == "http":
        return clients.http_model(server.url, model, SAMPLES, instances)
    return clients.grpc_model(f"127.0.0.1:{server.grpc_port}", model, SAMPLES, instances)


def _server_run(server, front: str, model: str, qps: float, bound_ms: float) -> dict:
    """One short LoadGen server-scenario run through a fresh client (no local batcher)."""
    served = _client(server, front, model)
    try:
        settings = for_profile("ci", "server", target_qps=qps, latency_bound_ms=bound_ms, **SHORT)
        return run_scenario(served, settings, None)
    finally:
        served.close()


def _successes(server, model: str) -> int:
    stats = httpx.get(f"{server.url}/v2/models/{model}/stats", timeout=5).json()
    return sum(s["inference_stats"]["success"]["count"] for s in stats["model_stats"])


@pytest.mark.parametrize("front", ["http", "grpc"])
def test_loadgen_server_run_through_the_asynchronous_client(server, front):
    before = _successes(server, "affine")
    row = _server_run(server, front, "affine", qps=200, bound_ms=500)
    assert row["scenario_client"] == "asynchronous"
    assert row["failed_requests"] == 0 and row["rejected"] == 0, row["verdict_reasons"]
    assert row["n_iterations"] >= 100
    # every query LoadGen counted reached the model (the server's statistics extension)
    assert _successes(server, "affine") - before >= row["n_iterations"]
    assert 0 < row["latency_ms_p50"] <= row["latency_ms_p99"]


@pytest.mark.parametrize("front", ["http", "grpc"])
def test_one_asynchronous_client_keeps_requests_in_flight(server, front):
    # 100/s offered to a model taking 50 ms per batch: one blocking client serves at most
    # 20/s; the asynchronous one (one instance, as `_client` makes) lets the server batch.
    row = _server_run(server, front, "slow", qps=100, bound_ms=1000)
    assert row["failed_requests"] == 0, row["verdict_reasons"]
    assert row["throughput_items_per_s"] >= 0.9 * row["offered_qps"] > 50
    assert row["latency_ms_p99"] < 1000


@pytest.mark.parametrize("front", ["http", "grpc"])
def test_failed_requests_make_the_run_invalid_with_the_servers_reason(server, front):
    row = _server_run(server, front, "nope", qps=50, bound_ms=500)
    assert row["verdict"] == "INVALID"
    assert row["failed_requests"] == row["n_iterations"] > 0
    reasons = " ".join(row["verdict_reasons"])
    assert "failed" in reasons and "unknown model" in reasons
    assert ("404" in reasons) if front == "http" else ("NOT_FOUND" in reasons)


def test_closing_the_http_client_stops_its_thread(server):
    before = {t.name for t in threading.enumerate()}
    served = _client(server, "http", "affine")
    done = threading.Event()
    served.submit_async(0, lambda error: done.set())
    assert done.wait(10)
    served.close()
    time.sleep(0.1)
    assert "http-client" not in {t.name for t in threading.enumerate()} - before
