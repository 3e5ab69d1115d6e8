"""The latency statistics, checked against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.harness.stats import (
    PERCENTILES,
    bootstrap_ci,
    min_samples_for,
    summarize,
)
from workbench.results import RESULT_FIELDS


def latencies_ns(n: int, seed: int = 0, scale_ms: float = 2.0) -> np.ndarray:
    """Right-skewed latencies like real ones, in integer nanoseconds."""
    rng = np.random.default_rng(seed)
    return (rng.lognormal(0.0, 0.3, n) * scale_ms * 1e6).astype(np.int64)


@pytest.mark.parametrize("n", [100, 137, 5000])
def test_summary_matches_numpy(n):
    ns = latencies_ns(n, seed=n)
    ms = ns / 1e6
    s = summarize(ns, batch_size=1, resamples=200)
    assert s.count == n
    assert s.mean == pytest.approx(np.mean(ms), rel=1e-12)
    assert s.std == pytest.approx(np.std(ms, ddof=1), rel=1e-12)
    assert s.min == pytest.approx(np.min(ms), rel=1e-12)
    assert s.max == pytest.approx(np.max(ms), rel=1e-12)
    for q in PERCENTILES:
        assert s.percentiles[q] == pytest.approx(np.percentile(ms, q), rel=1e-12)
    assert s.missing == {}


def test_accepts_a_list_of_ints():
    s = summarize([1_000_000, 3_000_000], batch_size=1, resamples=50)
    assert s.mean == pytest.approx(2.0)
    assert s.percentiles[50] == pytest.approx(2.0)


def test_empty_latencies_raise():
    with pytest.raises(ValueError):
        summarize([], batch_size=1)


@pytest.mark.parametrize(("q", "need"), [(50, 2), (90, 10), (95, 20), (99, 100)])
def test_min_samples_for(q, need):
    assert min_samples_for(q) == need


def test_p99_missing_below_100_samples_with_reason():
    s = summarize(latencies_ns(99), batch_size=1, resamples=100)
    assert s.percentiles[99] is None
    assert s.ci[99] is None
    assert "p99" in s.missing
    assert "100" in s.missing["p99"] and "99" in s.missing["p99"]
    # The others exist and are numpy's.
    ms = latencies_ns(99) / 1e6
    for q in (50, 90, 95):
        assert s.percentiles[q] == pytest.approx(np.percentile(ms, q))
    fields = s.as_fields()
    assert fields["latency_ms_p99"] is None
    assert fields["latency_ms_p99_ci_low"] is None and fields["latency_ms_p99_ci_high"] is None
    assert "p99" in fields["missing_stats"]


def test_p99_present_at_100_samples():
    ns = latencies_ns(100)
    s = summarize(ns, batch_size=1, resamples=100)
    assert s.percentiles[99] == pytest.approx(np.percentile(ns / 1e6, 99))
    assert s.ci[99] is not None
    assert "p99" not in s.missing
    assert s.as_fields()["missing_stats"] is None


def test_one_sample_has_no_percentiles():
    s = summarize([5_000_000], batch_size=1)
    assert s.count == 1
    assert s.mean == s.min == s.max == pytest.approx(5.0)
    assert s.std == 0.0
    assert all(s.percentiles[q] is None for q in PERCENTILES)
    assert set(s.missing) == {f"p{q}" for q in PERCENTILES}
    assert s.stable is None


def test_p50_needs_two_samples():
    s = summarize([1_000_000, 2_000_000], batch_size=1, resamples=100)
    assert s.percentiles[50] == pytest.approx(1.5)
    assert s.ci[50] is not None
    assert s.percentiles[90] is None and "p90" in s.missing


@pytest.mark.parametrize("q", [50, 99])
def test_bootstrap_ci_contains_point_estimate(q):
    ns = latencies_ns(400, seed=3)
    s = summarize(ns, batch_size=1)
    low, high = s.ci[q]
    assert low <= s.percentiles[q] <= high
    assert low < high


def test_bootstrap_ci_narrows_with_more_samples():
    small = summarize(latencies_ns(200, seed=1), batch_size=1)
    large = summarize(latencies_ns(20_000, seed=2), batch_size=1)
    for q in (50, 99):
        width_small = small.ci[q][1] - small.ci[q][0]
        width_large = large.ci[q][1] - large.ci[q][0]
        assert width_large < width_small / 3


@pytest.mark.parametrize(("n", "q"), [(30, 50), (150, 50), (150, 99), (1000, 90)])
def test_bootstrap_ci_agrees_with_brute_force_resampling(n, q):
    """The order-statistic shortcut gives the interval that resampling with numpy gives."""
    x = np.random.default_rng(n).lognormal(0.0, 0.5, n)
    resamples = 4000
    rng = np.random.default_rng(99)
    idx = rng.integers(0, n, size=(resamples, n))
    brute = np.percentile(np.percentile(x[idx], q, axis=1), [2.5, 97.5])
    low, high = bootstrap_ci(x, q, resamples=resamples)
    tolerance = 0.1 * (brute[1] - brute[0])
    assert low == pytest.approx(brute[0], abs=tolerance)
    assert high == pytest.approx(brute[1], abs=tolerance)


def test_bootstrap_is_deterministic():
    x = latencies_ns(300) / 1e6
    assert bootstrap_ci(x, 50) == bootstrap_ci(x, 50)


def test_throughput_is_items_over_summed_time():
    ns = latencies_ns(250, seed=5)
    batch = 16
    s = summarize(ns, batch_size=batch, resamples=50)
    busy_s = ns.sum() / 1e9
    assert s.throughput_items_per_s == pytest.approx(batch * len(ns) / busy_s, rel=1e-12)
    assert s.throughput_batches_per_s == pytest.approx(len(ns) / busy_s, rel=1e-12)


def test_throughput_from_wall_time_when_given():
    s = summarize(latencies_ns(50), batch_size=4, wall_time_s=2.0, resamples=50)
    assert s.throughput_items_per_s == pytest.approx(4 * 50 / 2.0)


def test_bimodal_wide_distribution_is_flagged_unstable():
    rng = np.random.default_rng(0)
    fast = rng.normal(1.0, 0.01, 200)
    slow = rng.normal(2.0, 0.01, 200)
    ns = (rng.permutation(np.concatenate([fast, slow])) * 1e6).astype(np.int64)
    s = summarize(ns, batch_size=1)
    assert s.stable is False
    assert "wide spread" in s.stability_note
    assert s.as_fields()["stable"] is False


def test_tight_distribution_is_stable():
    rng = np.random.default_rng(0)
    ns = (rng.normal(10.0, 0.05, 500) * 1e6).astype(np.int64)
    s = summarize(ns, batch_size=1)
    assert s.stable is True
    assert s.as_fields()["stable"] is True


@pytest.mark.parametrize("n", [1, 50, 100])
def test_as_fields_are_result_fields(n):
    fields = summarize(latencies_ns(n), batch_size=2, resamples=50).as_fields()
    unknown = set(fields) - set(RESULT_FIELDS)
    assert not unknown, f"as_fields returns keys that are not result fields: {unknown}"
    for q in PERCENTILES:
        assert f"latency_ms_p{q}" in fields
    for key in (
        "n_iterations",
        "latency_ms_mean",
        "latency_ms_std",
        "latency_ms_min",
        "latency_ms_max",
        "throughput_items_per_s",
        "latency_ms_p50_ci_low",
        "latency_ms_p99_ci_high",
    ):
        assert key in fields
    assert fields["n_iterations"] == n
