"""Per-version request statistics in the shape of Triton's statistics extension.

    GET /v2/models[/{name}[/versions/{v}]]/stats   ->  {"model_stats": [...]}

Counted by the fronts as requests finish (a lock, a few integer additions): success and
fail counts with their total duration, and per successful request its queue time (in the
batcher), compute_input (decoding the request's tensors from JSON, binary or protobuf),
compute_infer (the run of the batch that held it) and compute_output (encoding the
answer). Per batch size, the executions and their compute time come from the version's
batcher (the same counts `/metrics` exports as `workbench_batch_size`, warm-up included).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

PARTS = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.ns += max(int(seconds * 1e9), 0)

    def to_json(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class VersionStats:
    """What one model version answered since it was loaded."""

    inference_count: int = 0  # rows of successful requests (Triton: inferences)
    last_inference_ms: int = 0
    parts: dict[str, Duration] = field(default_factory=lambda: {p: Duration() for p in PARTS})
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def success(
        self, rows: int, total_s: float, queue_s: float, compute_s: float, decode_s: float
    ) -> None:
        with self._lock:
            self.inference_count += rows
            self.last_inference_ms = int(time.time() * 1000)
            self.parts["success"].add(total_s)
            self.parts["queue"].add(queue_s)
            self.parts["compute_infer"].add(compute_s)
            self.parts["compute_input"].add(decode_s)
            # counted here, its time added once the answer is encoded: Triton's readers
            # (perf_analyzer) require equal compute_input/infer/output counts in every
            # snapshot and abort otherwise ("compute counts must be the same")
            self.parts["compute_output"].count += 1

    def output(self, encode_s: float) -> None:
        with self._lock:
            self.parts["compute_output"].ns += max(int(encode_s * 1e9), 0)

    def fail(self, total_s: float) -> None:
        with self._lock:
            self.parts["fail"].add(total_s)

    def snapshot(self) -> tuple[int, int, dict[str, dict[str, int]]]:
        with self._lock:
            return (
                self.inference_count,
                self.last_inference_ms,
                {p: d.to_json() for p, d in self.parts.items()},
            )


def model_statistics(entry: Any) -> dict[str, Any]:
    """One version's entry of the statistics response (Triton's field names)."""
    inferences, last, parts = entry.stats.snapshot()
    sizes, compute = entry.batcher.batch_snapshot()
    batch_stats = [
        {
            "batch_size": size,
            "compute_input": {"count": count, "ns": 0},
            "compute_infer": {"count": count, "ns": int(compute.get(size, 0.0) * 1e9)},
            "compute_output": {"count": count, "ns": 0},
        }
        for size, count in sorted(sizes.items())
    ]
    return {
        "name": entry.name,
        "version": entry.version,
        "last_inference": last,
        "inference_count": inferences,
        "execution_count": sum(sizes.values()),
        "inference_stats": {
            **parts,
            "cache_hit": {"count": 0, "ns": 0},
            "cache_miss": {"count": 0, "ns": 0},
        },
        "batch_stats": batch_stats,
    }
