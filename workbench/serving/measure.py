"""What the HTTP and gRPC fronts add per request, and the max QPS under a p99 bound
through each front: LoadGen (workbench.scenarios) in this process driving a server in
its own process over loopback, client and server pinned to different cores where the
host has two or more.

Overhead (null model, LoadGen single_stream: one request in flight, latency per request):
- `driver`: LoadGen + the scenario driver calling a function that returns at once;
- `in-process`: the server's registry + batcher called directly (no front);
- `http` / `grpc`: the same through `workbench serve`;
- `http-baseline` / `grpc-baseline`: the same client against a trivial server that
  answers a fixed reply (workbench.serving.baseline): client + loopback cost.
A front adds `front - baseline - (in-process - driver)` at each percentile (differences
of percentiles, not percentiles of differences: an estimate, stated as such).

Peak (a real model, LoadGen server scenario, Poisson arrivals, latency from the scheduled
time): `workbench.scenarios.peak.find_peak` through each front, with and without the
server's dynamic batcher.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from workbench.batching import BatcherConfig
from workbench.procs import die_with_parent
from workbench.scenarios.driver import ServedModel, run_scenario
from workbench.scenarios.peak import find_peak
from workbench.scenarios.settings import for_profile
from workbench.serving import clients
from workbench.serving.registry import load_source

ROOT = Path(__file__).resolve().parents[2]
NULL_SAMPLES = [{"x": np.full((1, 1), i, np.float32)} for i in range(64)]


def split_cores() -> tuple[set[int], set[int]]:
    """(client cores, server cores): disjoint halves where there are >= 2 cores."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return set(cores), set(cores)
    half = len(cores) // 2
    return set(cores[:half]), set(cores[half:])


class Process:
    """A child process pinned to `cores` that prints one JSON line once listening."""

    def __init__(self, argv: Sequence[str], cores: set[int], ready_url: str | None = None):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        parent = os.getpid()

        def in_child() -> None:
            os.sched_setaffinity(0, cores)
            # A benchmark killed mid-run (its SIGTERM handler runs only once LoadGen's C++
            # call returns) left its server running under init: the kernel ends it instead.
            die_with_parent(parent)

        self.proc = subprocess.Popen(
            list(argv),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            preexec_fn=in_child,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            self.stop()
            raise RuntimeError(f"{argv[2:5]} exited before listening (code {self.proc.poll()})")
        self.info = json.loads(line)
        if ready_url is not None:
            self._wait_ready(ready_url.format(**self.info))

    def _wait_ready(self, url: str, timeout_s: float = 300.0) -> None:
        # lazy: httpx
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{url} not ready within {timeout_s:g} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve_argv(source: str, batcher: bool, max_batch: int = 8, delay_ms: float = 0.0) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "workbench.cli",
        "serve",
        "--model",
        f"m={source}",
        "--http-port",
        "0",
        "--grpc-port",
        "0",
        "--max-queue-size",
        "4096",
        "--log-level",
        "warning",
    ]
    if batcher:
        return argv + ["--max-batch", str(max_batch), "--max-queue-delay-ms", str(delay_ms)]
    return argv + ["--no-batcher"]


def _latency_row(path: str, served: ServedModel, settings: Any) -> dict[str, Any]:
    row = run_scenario(served, settings, None)
    return {
        "path": path,
        "p50_ms": row["latency_ms_p50"],
        "p99_ms": row["latency_ms_p99"],
        "mean_ms": row["latency_ms_mean"],
        "queries": row["n_iterations"],
        "verdict": row["verdict"],
    }


def overhead(profile: str = "ci", min_duration_ms: int | None = None) -> dict[str, Any]:
    """Per-request latency of each path on the null model, and what each front adds
    (this process runs on the client cores meanwhile; its affinity is restored after)."""
    before = os.sched_getaffinity(0)
    try:
        return _overhead(profile, min_duration_ms)
    finally:
        os.sched_setaffinity(0, before)


def _overhead(profile: str, min_duration_ms: int | None) -> dict[str, Any]:
    # lazy: prometheus_client (via workbench.serving.server, workbench.serving.service)
    from workbench.serving.server import ModelSpec, build_service
    from workbench.serving.service import ServeSettings

    client_cores, server_cores = split_cores()
    os.sched_setaffinity(0, client_cores)
    settings = for_profile(
        profile, "single_stream", sample_count=len(NULL_SAMPLES), min_duration_ms=min_duration_ms
    )
    rows = []
    batcher = BatcherConfig(max_batch_size=8, max_queue_delay_ms=0.0)
    service = build_service([ModelSpec("m", "null")], batcher, ServeSettings())
    try:
        rows.append(_latency_row("driver", clients.noop_model(NULL_SAMPLES), settings))
        rows.append(
            _latency_row(
                "in-process", clients.in_process_model(service, "m", NULL_SAMPLES), settings
            )
        )
    finally:
        service.models.close()
    argv = serve_argv("null", batcher=True)
    health = "http://127.0.0.1:{http_port}/v2/health/ready"
    with (
        Process(argv, server_cores, health) as server,
        Process([sys.executable, "-m", "workbench.serving.baseline"], server_cores) as base,
    ):
        for path, port_of, make in (
            ("http", server.info, _http),
            ("http-baseline", base.info, _http),
            ("grpc", server.info, _grpc),
            ("grpc-baseline", base.info, _grpc),
        ):
            served = make(port_of)
            try:
                rows.append(_latency_row(path, served, settings))
            finally:
                served.close()
    by = {r["path"]: r for r in rows}
    added = {}
    for front in ("http", "grpc"):
        for q in ("p50_ms", "p99_ms"):
            inner = by["in-process"][q] - by["driver"][q]
            added[f"{front}_added_{q}"] = by[front][q] - by[f"{front}-baseline"][q] - inner
    return {
        "profile": profile,
        "rows": rows,
        "added": added,
        "client_cores": sorted(client_cores),
        "server_cores": sorted(server_cores),
        "load_average": os.getloadavg(),
    }


def _http(info: dict) -> ServedModel:
    return clients.http_model(f"http://127.0.0.1:{info['http_port']}", "m", NULL_SAMPLES)


def _grpc(info: dict) -> ServedModel:
    return clients.grpc_model(f"127.0.0.1:{info['grpc_port']}", "m", NULL_SAMPLES)


def peak(
    source: str,
    bound_ms: float,
    profile: str = "ci",
    fronts: Sequence[str] = ("in-process", "http", "grpc"),
    max_probes: int = 5,
    concurrency: int = 8,
    max_batch: int = 8,
    delay_ms: float = 2.0,
) -> list[dict[str, Any]]:
    """Max QPS with p99 under `bound_ms` through each front, with and without the
    server's batcher; one row per (front, batcher) with the peak and its probes.
    `concurrency`: the in-process front's model instances (the HTTP and gRPC fronts are
    driven through their asynchronous clients, which keep any number in flight)."""
    before = os.sched_getaffinity(0)
    try:
        return _peak(
            source, bound_ms, profile, fronts, max_probes, concurrency, max_batch, delay_ms
        )
    finally:
        os.sched_setaffinity(0, before)


def _peak(
    source: str,
    bound_ms: float,
    profile: str,
    fronts: Sequence[str],
    max_probes: int,
    concurrency: int,
    max_batch: int,
    delay_ms: float,
) -> list[dict[str, Any]]:
    # lazy: prometheus_client (via workbench.serving.server, workbench.serving.service)
    from workbench.serving.server import ModelSpec, build_service
    from workbench.serving.service import ServeSettings

    client_cores, server_cores = split_cores()
    os.sched_setaffinity(0, client_cores)
    settings = for_profile(profile, "server", target_qps=1.0, latency_bound_ms=bound_ms)
    local = load_source(source)  # the model's own samples (real inputs for a task)
    samples = local.samples[:8]
    local.close()
    out = []
    for batched in (True, False):
        config = (
            BatcherConfig(max_batch_size=max_batch, max_queue_delay_ms=delay_ms)
            if batched
            else None
        )
        for front in fronts:
            if front == "in-process":
                os.sched_setaffinity(0, server_cores)  # the model runs where a server's would
                service = build_service([ModelSpec("m", source)], config, ServeSettings())
                served = clients.in_process_model(service, "m", samples, concurrency)
                try:
                    out.append(_peak_row(front, batched, served, settings, max_probes))
                finally:
                    service.models.close()
                    os.sched_setaffinity(0, client_cores)
                continue
            argv = serve_argv(source, batched, max_batch, delay_ms)
            health = "http://127.0.0.1:{http_port}/v2/health/ready"
            with Process(argv, server_cores, health) as server:
                make = clients.http_model if front == "http" else clients.grpc_model
                target = (
                    f"http://127.0.0.1:{server.info['http_port']}"
                    if front == "http"
                    else f"127.0.0.1:{server.info['grpc_port']}"
                )
                served = make(target, "m", samples)  # LoadGen sends asynchronously
                try:
                    out.append(_peak_row(front, batched, served, settings, max_probes))
                finally:
                    served.close()
    return out


def _peak_row(front: str, batched: bool, served: ServedModel, settings: Any, probes: int) -> dict:
    # One request at a time gives the unbatched capacity: start the search just under it.
    one = served.run_batches[0]
    one(served.samples[0])
    began = time.perf_counter()
    for i in range(5):
        one(served.samples[i % len(served.samples)])
    start = 0.8 * 5 / (time.perf_counter() - began)
    best, rows = find_peak(served, settings, None, max_probes=probes, start_qps=start)
    return {
        "front": front,
        "batcher": batched,
        "peak_qps": best,
        "bound_ms": settings.latency_bound_ms,
        "probes": [
            {
                "target_qps": r["scenario_settings"]["target_qps"],
                "achieved_qps": r["throughput_items_per_s"],
                "p99_ms": r["latency_ms_p99"],
                "verdict": r["verdict"],
            }
            for r in rows
        ],
    }


def overhead_rows(profile: str = "ci") -> list[dict[str, Any]]:
    """`overhead` as tidy rows (one per path; the fronts carry their added ms)."""
    result = overhead(profile)
    added = result["added"]
    out = []
    for row in result["rows"]:
        front = row["path"]
        out.append(
            {
                **row,
                "status": "ok",
                "added_p50_ms": added.get(f"{front}_added_p50_ms"),
                "added_p99_ms": added.get(f"{front}_added_p99_ms"),
                "client_cores": result["client_cores"],
                "server_cores": result["server_cores"],
                "load_average_1m": result["load_average"][0],
            }
        )
    return out
