"""The timed loop: warm up, then measure until both a minimum iteration count and a
minimum duration are reached, never past a maximum duration.

Inputs come from a pool prepared before timing; the loop only picks the next
entry, calls the model (and synchronizes on a GPU) between two
`perf_counter_ns` readings, and stores the difference. The clock is injectable
so the stopping rules are testable without waiting.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.errors import UserError

Clock = Callable[[], int]


@dataclass(frozen=True)
class StopRule:
    """When warm-up and measurement end. Times are in seconds."""

    warmup_iters: int = 10
    warmup_time_s: float = 0.2
    min_iters: int = 100
    min_time_s: float = 1.0
    max_time_s: float = 30.0
    max_iters: int = 1_000_000

    def __post_init__(self) -> None:
        for name in ("warmup_time_s", "min_time_s", "max_time_s"):
            # NaN passes every comparison below and inf cannot become nanoseconds.
            if not math.isfinite(getattr(self, name)):
                raise UserError(
                    f"{name} must be a finite number of seconds, got {getattr(self, name)}"
                )
        for name in ("warmup_iters", "min_iters"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("warmup_time_s", "min_time_s"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must be >= 0 seconds, got {getattr(self, name)}")
        if self.max_time_s <= 0 or self.max_time_s < self.min_time_s:
            raise UserError(
                f"max_time_s ({self.max_time_s}) must be positive and >= min_time_s "
                f"({self.min_time_s})"
            )
        if self.max_iters < max(1, self.min_iters):
            raise UserError(f"max_iters ({self.max_iters}) must be >= min_iters ({self.min_iters})")


@dataclass
class Measurement:
    """Raw outcome of one timed loop."""

    latencies_ns: np.ndarray
    n_warmup: int
    warmup_s: float
    duration_s: float  # wall time of the measured phase
    stopped_by: str  # "min_reached", "max_time", "max_iters"
    # Set when the loop ran in another process (a compiled caller): that process's peak
    # resident memory over the loop, which the measuring Python process cannot see.
    peak_rss_bytes: int | None = None


def time_calls(
    run: Callable[[Any], Any],
    pool: Sequence[Any],
    rule: StopRule,
    synchronize: Callable[[], None] | None = None,
    clock: Clock = time.perf_counter_ns,
) -> Measurement:
    """Time `run(pool[i % len(pool)])` per docs/method.md §3-§4. `synchronize`, when given
    (CUDA), is called inside the timed region after every call so device work counts."""
    if not pool:
        raise ValueError("the input pool is empty")
    n_pool = len(pool)
    max_ns = int(rule.max_time_s * 1e9)

    # Warm-up: both a count and a time, bounded by the maximum duration.
    warm_start = clock()
    warm_min_ns = int(rule.warmup_time_s * 1e9)
    n_warm = 0
    while n_warm < rule.warmup_iters or clock() - warm_start < warm_min_ns:
        run(pool[n_warm % n_pool])
        if synchronize is not None:
            synchronize()
        n_warm += 1
        if clock() - warm_start >= max_ns:
            break
    warmup_s = (clock() - warm_start) / 1e9

    # A list append is the cheapest bookkeeping per call (cheaper than numpy item stores),
    # and it happens outside the timed region anyway.
    latencies: list[int] = []
    record = latencies.append
    min_ns = int(rule.min_time_s * 1e9)
    n = 0
    stopped_by = "min_reached"
    start = clock()
    while True:
        feed = pool[n % n_pool]
        if synchronize is None:
            t0 = clock()
            run(feed)
            t1 = clock()
        else:
            t0 = clock()
            run(feed)
            synchronize()
            t1 = clock()
        record(t1 - t0)
        n += 1
        elapsed = t1 - start
        if n >= rule.min_iters and elapsed >= min_ns:
            break
        if elapsed >= max_ns:
            stopped_by = "max_time"
            break
        if n >= rule.max_iters:
            stopped_by = "max_iters"
            break
    duration_s = (clock() - start) / 1e9
    return Measurement(
        np.asarray(latencies, dtype=np.int64), n_warm, warmup_s, duration_s, stopped_by
    )
