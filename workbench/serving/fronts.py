"""The Python front against the compiled front, serving the same ONNX file (issue 24).

Both servers run in their own process, pinned to the server cores, with no batcher (the
compiled front has none): `workbench serve --no-batcher` (FastAPI/uvicorn over the
onnxruntime Python API) and `workbench serve --front compiled` (C++ over ONNX Runtime's C
API). The same client drives each, KServe v2 HTTP with binary tensors
(workbench.serving.clients.http_model) under LoadGen (workbench.scenarios):
- latency at a fixed load: single_stream (one request in flight), p50 and p99;
- max QPS with p99 under a bound: the server scenario's bounded peak search;
- memory: the server process's resident set once loaded, and its peak (VmHWM) after the
  load (the compiled front replaces the `workbench serve` process with exec, so the PID
  measured is the server's own).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from workbench.scenarios.driver import ServedModel, run_scenario
from workbench.scenarios.peak import find_peak
from workbench.scenarios.settings import for_profile
from workbench.serving import clients
from workbench.serving.measure import Process, serve_argv, split_cores

FRONTS = ("python", "compiled")
HEALTH = "http://127.0.0.1:{http_port}/v2/health/ready"


def front_argv(front: str, path: str | Path, threads: int | None = None) -> list[str]:
    """`workbench serve` for one ONNX file through `front`, no batcher, any free port."""
    if front == "python":
        return serve_argv(str(path), batcher=False)
    argv = [
        sys.executable, "-m", "workbench.cli", "serve", "--front", "compiled",
        "--model", f"m={path}", "--http-port", "0", "--grpc-port", "-1", "--no-batcher",
        "--log-level", "warning",
    ]  # fmt: skip
    return argv


def memory_of(pid: int) -> dict[str, int | None]:
    """The process's resident set now and at its peak, in bytes (None off Linux)."""
    out: dict[str, int | None] = {"rss_bytes": None, "peak_rss_bytes": None}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_bytes"] = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                out["peak_rss_bytes"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return out


def _peak(served: ServedModel, settings: Any, probes: int) -> tuple[float | None, list[dict]]:
    """The bounded peak search, started just under one-at-a-time capacity."""
    one = served.run_batches[0]
    one(served.samples[0])
    began = time.perf_counter()
    for i in range(5):
        one(served.samples[i % len(served.samples)])
    start = 0.8 * 5 / (time.perf_counter() - began)
    best, rows = find_peak(served, settings, None, max_probes=probes, start_qps=start)
    probes_out = [
        {
            "target_qps": r["scenario_settings"]["target_qps"],
            "achieved_qps": r["throughput_items_per_s"],
            "p99_ms": r["latency_ms_p99"],
            "verdict": r["verdict"],
        }
        for r in rows
    ]
    return best, probes_out


def compare_fronts(
    path: str | Path,
    samples: list[dict[str, np.ndarray]],
    profile: str = "ci",
    bound_ms: float = 100.0,
    max_probes: int = 4,
    fronts: tuple[str, ...] = FRONTS,
    peak: bool = True,
    labels: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One row per front: single_stream p50/p99, the peak QPS under `bound_ms` (when
    `peak`), and the server's memory. A front that cannot start is a failed row."""
    before = os.sched_getaffinity(0)
    client_cores, server_cores = split_cores()
    os.sched_setaffinity(0, client_cores)
    latency = for_profile(profile, "single_stream", sample_count=len(samples))
    server = for_profile(profile, "server", target_qps=1.0, latency_bound_ms=bound_ms)
    out = []
    try:
        for front in fronts:
            row: dict[str, Any] = {"front": front, "artifact_path": str(path), **(labels or {})}
            try:
                with Process(front_argv(front, path), server_cores, HEALTH) as proc:
                    row.update({f"loaded_{k}": v for k, v in memory_of(proc.proc.pid).items()})
                    url = f"http://127.0.0.1:{proc.info['http_port']}"
                    served = clients.http_model(url, "m", samples)
                    try:
                        one = run_scenario(served, latency, None)
                        row.update(
                            p50_ms=one["latency_ms_p50"],
                            p99_ms=one["latency_ms_p99"],
                            queries=one["n_iterations"],
                        )
                        if peak:
                            row["peak_qps"], row["probes"] = _peak(served, server, max_probes)
                            row["bound_ms"] = bound_ms
                    finally:
                        served.close()
                    row.update(memory_of(proc.proc.pid))
                row["status"] = "ok"
            except Exception as exc:  # noqa: BLE001 - one front failing is a failed row
                row.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:300])
            out.append(row)
    finally:
        os.sched_setaffinity(0, before)
    return out
