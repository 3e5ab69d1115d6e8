"""The timed loop's stopping rules, with a fake clock: no test waits for real time."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workbench.errors import UserError
from workbench.harness.timing import StopRule, time_calls

MS = 1_000_000  # nanoseconds


class FakeClock:
    """Time stands still except inside the fake model, which costs `cost_ns` per call
    (and the fake synchronize, which costs `sync_ns`)."""

    def __init__(self, cost_ns: int = MS, sync_ns: int = 0) -> None:
        self.now = 1_000_000_000_000
        self.cost_ns = cost_ns
        self.sync_ns = sync_ns
        self.feeds: list[object] = []
        self.events: list[str] = []

    def __call__(self) -> int:
        return self.now

    def run(self, feed: object) -> None:
        self.feeds.append(feed)
        self.events.append("run")
        self.now += self.cost_ns

    def synchronize(self) -> None:
        self.events.append("sync")
        self.now += self.sync_ns


class TickingClock:
    """A clock that advances by a fixed step on every read (the model itself is free)."""

    def __init__(self, step_ns: int) -> None:
        self.now = 0
        self.step_ns = step_ns
        self.reads = 0

    def __call__(self) -> int:
        self.reads += 1
        self.now += self.step_ns
        return self.now


def rule(**kwargs) -> StopRule:
    base = {
        "warmup_iters": 0,
        "warmup_time_s": 0.0,
        "min_iters": 10,
        "min_time_s": 0.0,
        "max_time_s": 1000.0,
        "max_iters": 1_000_000,
    }
    return StopRule(**{**base, **kwargs})


def run_measure(clock: FakeClock, stop: StopRule, pool=(0,), sync: bool = False):
    return time_calls(
        clock.run,
        list(pool),
        stop,
        synchronize=clock.synchronize if sync else None,
        clock=clock,
    )


def test_min_time_keeps_measuring_after_min_iters():
    clock = FakeClock(cost_ns=MS)
    result = run_measure(clock, rule(min_iters=10, min_time_s=1.0))
    # 10 iterations are reached after 10 ms; the loop goes on until 1 s of calls.
    assert len(result.latencies_ns) == 1000
    assert result.stopped_by == "min_reached"
    assert result.duration_s == pytest.approx(1.0)


def test_min_iters_keeps_measuring_after_min_time():
    clock = FakeClock(cost_ns=10 * MS)
    result = run_measure(clock, rule(min_iters=500, min_time_s=1.0))
    # 1 s is reached after 100 calls; the loop goes on to 500 calls.
    assert len(result.latencies_ns) == 500
    assert result.stopped_by == "min_reached"
    assert result.duration_s == pytest.approx(5.0)


def test_stops_as_soon_as_both_minimums_are_met():
    clock = FakeClock(cost_ns=MS)
    result = run_measure(clock, rule(min_iters=37, min_time_s=0.037))
    assert len(result.latencies_ns) == 37


def test_every_latency_is_recorded():
    clock = FakeClock(cost_ns=3 * MS)
    result = run_measure(clock, rule(min_iters=25))
    assert result.latencies_ns.dtype == np.int64
    assert result.latencies_ns.tolist() == [3 * MS] * 25


def test_max_time_stops_before_min_iters():
    clock = FakeClock(cost_ns=10 * MS)
    result = run_measure(clock, rule(min_iters=1000, min_time_s=1.0, max_time_s=2.0))
    assert result.stopped_by == "max_time"
    assert len(result.latencies_ns) == 200
    assert result.duration_s == pytest.approx(2.0)


def test_max_time_stops_a_single_slow_call():
    clock = FakeClock(cost_ns=5_000 * MS)
    result = run_measure(clock, rule(min_iters=10, min_time_s=1.0, max_time_s=2.0))
    assert result.stopped_by == "max_time"
    assert len(result.latencies_ns) == 1


def test_max_iters():
    clock = FakeClock(cost_ns=MS)
    result = run_measure(clock, rule(min_iters=10, min_time_s=10.0, max_iters=50))
    assert result.stopped_by == "max_iters"
    assert len(result.latencies_ns) == 50


def test_long_runs_grow_the_latency_buffer():
    clock = FakeClock(cost_ns=1)
    result = run_measure(clock, rule(min_iters=200_000))
    assert len(result.latencies_ns) == 200_000
    assert (result.latencies_ns == 1).all()


def test_warmup_runs_at_least_warmup_iters():
    clock = FakeClock(cost_ns=MS)
    result = run_measure(clock, rule(warmup_iters=7, warmup_time_s=0.0, min_iters=5))
    assert result.n_warmup == 7
    assert len(clock.feeds) == 7 + 5
    assert result.warmup_s == pytest.approx(0.007)


def test_warmup_runs_at_least_warmup_time():
    clock = FakeClock(cost_ns=10 * MS)
    result = run_measure(clock, rule(warmup_iters=2, warmup_time_s=0.1, min_iters=5))
    assert result.n_warmup == 10  # 2 iterations are not enough: 0.1 s takes 10
    assert result.warmup_s == pytest.approx(0.1)


def test_warmup_count_wins_when_longer_than_warmup_time():
    clock = FakeClock(cost_ns=10 * MS)
    result = run_measure(clock, rule(warmup_iters=30, warmup_time_s=0.1, min_iters=5))
    assert result.n_warmup == 30


def test_warmup_is_not_timed():
    clock = FakeClock(cost_ns=MS)
    result = run_measure(clock, rule(warmup_iters=50, warmup_time_s=1.0, min_iters=5))
    assert result.n_warmup == 1000
    assert len(result.latencies_ns) == 5
    assert result.duration_s == pytest.approx(0.005)


def test_pool_is_rotated_in_order():
    clock = FakeClock()
    pool = ["a", "b", "c"]
    result = run_measure(clock, rule(warmup_iters=4, min_iters=8), pool=pool)
    warm, timed = clock.feeds[: result.n_warmup], clock.feeds[result.n_warmup :]
    assert warm == ["a", "b", "c", "a"]
    assert timed == [pool[i % 3] for i in range(8)]


def test_empty_pool_is_refused():
    with pytest.raises(ValueError):
        run_measure(FakeClock(), rule(), pool=())


def test_synchronize_once_per_call_and_inside_the_timed_region():
    clock = FakeClock(cost_ns=MS, sync_ns=2 * MS)
    result = run_measure(clock, rule(warmup_iters=3, min_iters=20), sync=True)
    n_calls = result.n_warmup + len(result.latencies_ns)
    assert clock.events == ["run", "sync"] * n_calls
    # The device work waited for by synchronize counts in every latency.
    assert result.latencies_ns.tolist() == [3 * MS] * 20


def test_no_synchronize_by_default():
    clock = FakeClock(cost_ns=MS, sync_ns=2 * MS)
    run_measure(clock, rule(min_iters=5), sync=False)
    assert "sync" not in clock.events


def test_ticking_clock():
    """With a clock that advances on every read, latency is one step per call and the
    stopping rule still counts elapsed time from the clock."""
    clock = TickingClock(step_ns=MS)
    calls = []
    result = time_calls(calls.append, [0], rule(min_iters=3, min_time_s=0.05), clock=clock)
    assert set(result.latencies_ns.tolist()) == {MS}
    # Each call reads the clock twice (2 ms of fake time), so 0.05 s takes 25 calls.
    assert len(result.latencies_ns) == 25
    assert result.stopped_by == "min_reached"


def test_default_rule_is_valid():
    stop = StopRule()
    assert stop.min_iters >= 1 and stop.max_time_s >= stop.min_time_s


@pytest.mark.parametrize(
    "kwargs",
    [
        {"warmup_iters": -1},
        {"min_iters": -5},
        {"warmup_time_s": -0.1},
        {"min_time_s": -1.0},
        {"max_time_s": 0.0},
        {"max_time_s": -3.0},
        {"min_time_s": 5.0, "max_time_s": 1.0},
        {"max_iters": 0},
        {"min_iters": 100, "max_iters": 10},
        {"max_time_s": math.nan},
        {"min_time_s": math.nan},
        {"warmup_time_s": math.inf},
        {"max_time_s": math.inf},
    ],
)
def test_stop_rule_rejects_bad_values(kwargs):
    with pytest.raises(UserError):
        StopRule(**kwargs)
