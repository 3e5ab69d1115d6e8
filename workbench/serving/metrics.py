"""Prometheus metrics of one server (its own CollectorRegistry, so tests can run many).

Per request (observed by the fronts): requests by model, version, protocol and status;
queue, compute and total latency histograms by model and version. Read from the batchers
at scrape time (no per-request cost): the batch-size histogram, queue depth and rejects.
A request for an unknown model is counted under model "" so client-chosen names cannot
grow the label set without bound.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from workbench.serving.registry import ModelRegistry

LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class BatcherCollector:
    """Batch sizes, queue depth and rejects straight from each version's batcher stats."""

    def __init__(self, models: ModelRegistry) -> None:
        self.models = models

    def collect(self) -> Iterator[Any]:
        sizes = HistogramMetricFamily(
            "workbench_batch_size", "rows per batch run", labels=["model", "version"]
        )
        depth = GaugeMetricFamily(
            "workbench_queue_depth", "requests waiting for a batch", labels=["model", "version"]
        )
        rejects = CounterMetricFamily(
            "workbench_queue_rejects",
            "requests rejected because the queue was full",
            labels=["model", "version"],
        )
        for entry in self.models.entries():
            labels = [entry.name, entry.version]
            stats = entry.batcher.stats
            counts = _snapshot(stats.batch_sizes)
            buckets = [
                (str(float(bound)), sum(n for size, n in counts.items() if size <= bound))
                for bound in BATCH_BUCKETS
            ]
            total = sum(counts.values())
            buckets.append(("+Inf", total))
            sizes.add_metric(labels, buckets, sum(size * n for size, n in counts.items()))
            depth.add_metric(labels, entry.batcher.queue_depth)
            rejects.add_metric(labels, stats.rejected)
        yield sizes
        yield depth
        yield rejects


class ServerMetrics:
    """The per-request metrics plus the batcher collector, in one registry."""

    def __init__(self, models: ModelRegistry) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "workbench_requests",
            "requests answered, by model, version, protocol and status",
            ["model", "version", "protocol", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "workbench_request_errors",
            "requests answered with an error, by model, version, protocol and status",
            ["model", "version", "protocol", "status"],
            registry=self.registry,
        )
        self.latency = {
            part: Histogram(
                f"workbench_request_{part}_seconds",
                f"per-request {part} time",
                ["model", "version"],
                buckets=LATENCY_BUCKETS,
                registry=self.registry,
            )
            for part in ("queue", "compute", "total")
        }
        self.registry.register(BatcherCollector(models))

    def observe(
        self,
        model: str,
        version: str,
        protocol: str,
        status: int,
        queue_s: float | None = None,
        compute_s: float | None = None,
        total_s: float | None = None,
    ) -> None:
        code = str(status)
        self.requests.labels(model, version, protocol, code).inc()
        if status >= 400:
            self.errors.labels(model, version, protocol, code).inc()
            return
        for part, value in (("queue", queue_s), ("compute", compute_s), ("total", total_s)):
            if value is not None:
                self.latency[part].labels(model, version).observe(value)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _snapshot(counter: Any) -> dict[int, int]:
    """A copy of a Counter a batcher thread may be updating (retry on a resize race)."""
    for _ in range(10):
        try:
            return dict(counter)
        except RuntimeError:
            continue
    return {}
