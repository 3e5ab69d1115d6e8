"""Latency statistics: percentiles that refuse to exist without enough samples,
bootstrap confidence intervals, throughput, and a stability verdict.

A percentile q needs at least `min_samples_for(q)` samples (p99 needs 100):
with fewer, the value is reported missing with the reason, never guessed.
The method in words: docs/method.md §5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

PERCENTILES = (50, 90, 95, 99)
BOOTSTRAP_RESAMPLES = 1000
# A run whose p50 is not pinned down to this relative 95% CI half-width is flagged.
STABLE_P50_CI_HALF_WIDTH = 0.03


def min_samples_for(q: float) -> int:
    """Samples needed before percentile q is meaningful: at least one sample beyond it
    (p50 -> 2, p90 -> 10, p95 -> 20, p99 -> 100). Exact arithmetic: in floats
    1 / (1 - 0.9) is 10.000000000000002, which would make p90 need 11."""
    return max(2, math.ceil(100 / (100 - Fraction(str(q)))))


@dataclass
class LatencySummary:
    """Statistics of one measured configuration, latencies in milliseconds."""

    count: int
    mean: float
    std: float
    min: float
    max: float
    percentiles: dict[int, float | None]
    ci: dict[int, tuple[float, float] | None]
    missing: dict[str, str] = field(default_factory=dict)
    throughput_items_per_s: float = 0.0
    throughput_batches_per_s: float = 0.0
    stable: bool | None = None
    stability_note: str = ""

    def as_fields(self) -> dict[str, object]:
        """Flatten into result-row fields (`latency_ms_p50`, `..._ci_low`, ...)."""
        out: dict[str, object] = {
            "n_iterations": self.count,
            "latency_ms_mean": self.mean,
            "latency_ms_std": self.std,
            "latency_ms_min": self.min,
            "latency_ms_max": self.max,
            "throughput_items_per_s": self.throughput_items_per_s,
            "throughput_batches_per_s": self.throughput_batches_per_s,
            "stable": self.stable,
            "stability_note": self.stability_note,
            "missing_stats": "; ".join(f"{k}: {v}" for k, v in self.missing.items()) or None,
        }
        for q in PERCENTILES:
            out[f"latency_ms_p{q}"] = self.percentiles.get(q)
        for q in (50, 99):
            interval = self.ci.get(q)
            out[f"latency_ms_p{q}_ci_low"] = interval[0] if interval else None
            out[f"latency_ms_p{q}_ci_high"] = interval[1] if interval else None
        return out


def bootstrap_ci(
    samples: np.ndarray, q: float, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap 95% confidence interval of the q-th percentile.

    The q-th percentile of a resample (numpy's linear interpolation) depends only on two
    of its order statistics, and the i-th smallest of n values drawn with replacement is
    `sorted(samples)[floor(n * U)]` where U, the i-th smallest of n uniforms, follows
    Beta(i, n - i + 1). Drawing U directly gives exactly the distribution that resampling
    gives, at O(resamples) cost after one sort instead of O(n * resamples): a run of a
    million calls is summarized in milliseconds rather than minutes.
    """
    x = np.sort(np.asarray(samples, dtype=np.float64))
    n = int(x.size)
    if n == 0:
        raise ValueError("no samples to bootstrap")
    rng = np.random.default_rng(seed)
    position = (n - 1) * q / 100.0
    lower = min(int(math.floor(position)), n - 1)
    frac = position - lower
    rank = lower + 1  # 1-based rank of the lower order statistic
    u_low = rng.beta(rank, n - rank + 1, size=resamples)
    estimates = x[np.minimum((u_low * n).astype(np.int64), n - 1)]
    if frac > 0 and rank < n:
        # The next order statistic: the smallest of the n - rank uniforms above u_low.
        u_high = u_low + (1.0 - u_low) * rng.beta(1, n - rank, size=resamples)
        upper = x[np.minimum((u_high * n).astype(np.int64), n - 1)]
        estimates = estimates + frac * (upper - estimates)
    low, high = np.percentile(estimates, [2.5, 97.5])
    return float(low), float(high)


def summarize(
    latencies_ns: np.ndarray | list[int],
    batch_size: int,
    wall_time_s: float | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> LatencySummary:
    """Summarize per-call latencies (nanoseconds) of calls that each processed `batch_size`
    items. Throughput is items per second of summed call time (or of `wall_time_s`)."""
    ns = np.asarray(latencies_ns, dtype=np.float64)
    if ns.size == 0:
        raise ValueError("no latencies to summarize")
    ms = ns / 1e6
    n = int(ms.size)
    percentiles: dict[int, float | None] = {}
    ci: dict[int, tuple[float, float] | None] = {}
    missing: dict[str, str] = {}
    for q in PERCENTILES:
        need = min_samples_for(q)
        if n >= need:
            percentiles[q] = float(np.percentile(ms, q))
        else:
            percentiles[q] = None
            missing[f"p{q}"] = f"needs >= {need} samples, have {n}"
    for q in (50, 99):
        ci[q] = bootstrap_ci(ms, q, resamples) if percentiles[q] is not None else None
    busy_s = wall_time_s if wall_time_s is not None else float(ns.sum()) / 1e9
    batches_per_s = n / busy_s if busy_s > 0 else float("inf")
    summary = LatencySummary(
        count=n,
        mean=float(ms.mean()),
        std=float(ms.std(ddof=1)) if n > 1 else 0.0,
        min=float(ms.min()),
        max=float(ms.max()),
        percentiles=percentiles,
        ci=ci,
        missing=missing,
        throughput_items_per_s=batches_per_s * batch_size,
        throughput_batches_per_s=batches_per_s,
    )
    summary.stable, summary.stability_note = stability(summary)
    return summary


def stability(summary: LatencySummary) -> tuple[bool | None, str]:
    """Flag a run whose p50 is not pinned down: relative half-width of its 95% CI above
    STABLE_P50_CI_HALF_WIDTH. None when there are too few samples to tell."""
    p50, interval = summary.percentiles.get(50), summary.ci.get(50)
    if p50 is None or interval is None or p50 <= 0:
        return None, "too few samples to judge stability"
    half_width = (interval[1] - interval[0]) / 2 / p50
    if half_width > STABLE_P50_CI_HALF_WIDTH:
        return False, (
            f"wide spread: p50 95% CI half-width is {half_width:.1%} of p50 "
            f"(limit {STABLE_P50_CI_HALF_WIDTH:.0%}); rerun on a quieter host or measure longer"
        )
    return True, f"p50 95% CI half-width {half_width:.1%} of p50"
