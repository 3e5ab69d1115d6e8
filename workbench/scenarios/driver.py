"""Run one LoadGen scenario against a model behind the dynamic batcher; one result row.

LoadGen (the C++ MLPerf LoadGen through its Python bindings) issues the queries: Poisson
arrivals for the server scenario, latency counted from each query's scheduled issue time.
The SUT hands every sample to the batcher and returns at once; the model runs on the
batcher's worker threads (one per model instance), and each finished request completes
its own LoadGen sample. Rejected and failed requests complete too (nothing hangs), are
counted, and make the run INVALID with the reason. A served model with an asynchronous
client (a server over HTTP or gRPC) is driven without the local batcher: each sample is
sent at its issue time and completed from the client's callback.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.batching import (
    NO_BATCHING,
    BatcherConfig,
    BatcherStats,
    DynamicBatcher,
    Feed,
    Request,
    RunBatch,
)
from workbench.scenarios.inflight import AsyncSubmit, InFlight
from workbench.scenarios.loadgen_log import latency_ms, read_detail, samples_per_s, verdict
from workbench.scenarios.settings import ScenarioSettings, loadgen_settings


@dataclass
class ServedModel:
    """A loaded model ready for a scenario: one `run_batch` per instance, the samples the
    query sample library holds (each a feed of one row), and labels for the row."""

    run_batches: list[RunBatch]
    samples: list[Feed]
    fixed_batch: int | None = None
    labels: dict[str, Any] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)
    # The model's own signature (the serving layer's metadata and input checks).
    inputs: list[Any] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)
    # An asynchronous client (a server's): LoadGen's non-offline runs without a batcher
    # issue straight to it instead of through worker threads (workbench.scenarios.inflight).
    submit_async: AsyncSubmit | None = None

    def close(self) -> None:
        for close in self.closers:
            close()


_LOADGEN_LOCK = threading.Lock()  # LoadGen is one test at a time per process


def run_scenario(
    served: ServedModel,
    settings: ScenarioSettings,
    batcher: BatcherConfig | None,
    log_dir: Path | None = None,
) -> dict[str, Any]:
    """One LoadGen run; the result row's fields (scenario, settings, verdict, latencies,
    queueing vs compute, batch sizes, rejects). `batcher=None` runs every request alone
    (batch 1) on the same worker threads, the baseline of the batcher comparison, or sends
    it through the served model's asynchronous client where it has one (then the row's
    compute times are client round trips)."""
    # lazy: mlperf_loadgen
    import mlperf_loadgen as lg

    config = batcher or BatcherConfig(
        max_batch_size=NO_BATCHING.max_batch_size,
        max_queue_delay_ms=NO_BATCHING.max_queue_delay_ms,
        max_queue_size=NO_BATCHING.max_queue_size,
        instances=len(served.run_batches),
    )
    runs = served.run_batches

    def completed(sample_id: int) -> None:
        lg.QuerySamplesComplete([lg.QuerySampleResponse(sample_id, 0, 0)])

    # Straight to an asynchronous client, or through the batcher's worker threads (the
    # offline query holds every sample at once: it keeps the worker threads' bound).
    direct = (
        InFlight(served.submit_async, completed)
        if served.submit_async is not None and batcher is None and settings.scenario != "offline"
        else None
    )
    dyn = (
        None
        if direct is not None
        else DynamicBatcher(
            runs if len(runs) > 1 else runs[0], config, fixed_batch=served.fixed_batch
        )
    )
    stopper = direct or dyn
    assert stopper is not None
    keep_logs = log_dir is not None  # else LoadGen's logs are read, then removed
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="loadgen-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    samples = served.samples
    deadline_s = (settings.max_duration_ms + settings.drain_grace_ms) / 1000.0
    feeders: list[threading.Thread] = []

    def complete(sample_id: int, request: Request) -> None:
        completed(sample_id)

    def feed_all(query_samples: list[Any], until: float) -> None:
        assert dyn is not None
        for q in query_samples:
            dyn.submit(
                samples[q.index],
                on_done=functools.partial(complete, q.id),
                block_s=max(until - time.monotonic(), 0.0),
            )

    def issue(query_samples: list[Any]) -> None:
        if settings.scenario == "offline":
            # One query holds every sample: feed it from a thread that waits for queue room.
            thread = threading.Thread(
                target=feed_all, args=(list(query_samples), started + deadline_s), daemon=True
            )
            feeders.append(thread)
            thread.start()
            return
        if direct is not None:
            for q in query_samples:
                direct.issue(q.id, q.index)
            return
        assert dyn is not None
        for q in query_samples:
            dyn.submit(samples[q.index], on_done=functools.partial(complete, q.id))

    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(len(samples), len(samples), lambda _: None, lambda _: None)
    log = lg.LogSettings()
    log.log_output.outdir = str(log_dir)
    log.log_output.copy_summary_to_stdout = False
    log.enable_trace = False
    # The server's arrivals come from its target QPS: only the others need the estimate.
    estimated_qps, estimated_latency_s = (
        (0.0, 0.0) if settings.scenario == "server" else estimate(served, config, settings)
    )
    watchdog = threading.Timer(
        deadline_s,
        stopper.close,
        args=("the run passed its maximum duration plus grace",),
    )
    watchdog.daemon = True
    with _LOADGEN_LOCK:
        started = time.monotonic()
        watchdog.start()
        try:
            lg.StartTestWithLogSettings(
                sut, qsl, loadgen_settings(settings, estimated_qps, estimated_latency_s), log
            )
        finally:
            wall_s = time.monotonic() - started
            watchdog.cancel()
            stopper.close()
            for thread in feeders:
                thread.join(timeout=5)
            lg.DestroyQSL(qsl)
            lg.DestroySUT(sut)
    stats = stopper.stats
    row = _row(settings, batcher, config, stats, log_dir, wall_s)
    row["scenario_client"] = "asynchronous" if direct is not None else f"{len(runs)} worker threads"
    if not keep_logs:
        shutil.rmtree(log_dir, ignore_errors=True)
        row["loadgen_log_dir"] = None
    return row


# LoadGen pre-generates every query: keep that bounded for near-free models (null).
MAX_EXPECTED_QPS = 150_000.0


def estimate(
    served: ServedModel, config: BatcherConfig, settings: ScenarioSettings
) -> tuple[float, float]:
    """Expected samples/s at full batches and seconds per query (a few timed calls,
    outside the test), for what LoadGen pre-generates."""

    def timed(rows: int) -> float:
        one = served.samples[0]
        feed = {k: np.concatenate([one[k]] * rows) for k in one}
        if served.fixed_batch:
            feed = {k: np.concatenate([one[k]] * served.fixed_batch) for k in one}
        run = served.run_batches[0]
        run(feed)
        began = time.perf_counter()
        for _ in range(3):
            run(feed)
        return max((time.perf_counter() - began) / 3, 1e-6)

    per_batch = timed(config.max_batch_size)
    qps = config.max_batch_size * len(served.run_batches) / per_batch
    per_query = per_batch if settings.scenario == "multi_stream" else timed(1)
    return min(qps, MAX_EXPECTED_QPS), per_query


def _percentile_ms(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q) * 1000.0) if values else None


def _row(
    settings: ScenarioSettings,
    batcher: BatcherConfig | None,
    config: BatcherConfig,
    stats: BatcherStats,
    log_dir: Path,
    wall_s: float,
) -> dict[str, Any]:
    detail = read_detail(log_dir)
    result, reasons = verdict(detail)
    if stats.rejected:
        reasons.append(f"{stats.rejected} requests rejected (queue full)")
    if stats.failed:
        causes = "; ".join(f"{n}x {why}" for why, n in stats.failure_reasons.most_common(3))
        reasons.append(f"{stats.failed} requests failed: {causes}")
    if stats.rejected or stats.failed:
        result = "INVALID"
    lat = latency_ms(detail)
    return {
        "status": "ok",
        "scenario": settings.scenario,
        "batch_size": config.max_batch_size,
        "n_iterations": detail.get("result_query_count"),
        "duration_s": wall_s,
        "latency_ms_mean": lat.get("mean"),
        "latency_ms_min": lat.get("min"),
        "latency_ms_p50": lat.get("p50"),
        "latency_ms_p90": lat.get("p90"),
        "latency_ms_p95": lat.get("p95"),
        "latency_ms_p99": lat.get("p99"),
        "latency_ms_max": lat.get("max"),
        "throughput_items_per_s": samples_per_s(detail),
        "offered_qps": detail.get("result_scheduled_samples_per_sec"),
        "scenario_settings": settings.to_json(),
        "batcher": config.to_json() if batcher is not None else None,
        "verdict": result,
        "verdict_reasons": reasons,
        "queue_ms_p50": _percentile_ms(stats.queue_s, 50),
        "queue_ms_p99": _percentile_ms(stats.queue_s, 99),
        "compute_ms_p50": _percentile_ms(stats.compute_s, 50),
        "compute_ms_p99": _percentile_ms(stats.compute_s, 99),
        "batch_histogram": {str(k): v for k, v in sorted(stats.batch_sizes.items())},
        "rejected": stats.rejected,
        "failed_requests": stats.failed,
        "loadgen_log_dir": str(log_dir),
    }


def passes(row: dict[str, Any], settings: ScenarioSettings) -> bool:
    """Whether a server run meets its bound under the settings' pass rule."""
    if row.get("status") != "ok" or row.get("rejected") or row.get("failed_requests"):
        return False
    if settings.pass_rule == "loadgen_valid":
        return row.get("verdict") == "VALID"
    p99 = row.get("latency_ms_p99")
    achieved = row.get("throughput_items_per_s") or 0.0
    offered = row.get("offered_qps") or float(settings.target_qps or 0)
    return (
        p99 is not None
        and p99 <= float(settings.latency_bound_ms or 0)
        and achieved >= 0.95 * offered  # kept up with the Poisson arrivals LoadGen scheduled
    )
