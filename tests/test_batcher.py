"""The dynamic batcher with a fake model and a fake clock, and result matching under
concurrency with a real clock and worker threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from workbench.batching import (
    SAMPLES_KEPT,
    BatcherConfig,
    BatcherStats,
    BatchFailedError,
    DynamicBatcher,
    RejectedError,
)
from workbench.errors import UserError


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def fake_model(feed):
    """A per-row function: each row's output depends on that row only."""
    x = feed["x"]
    return [x * 2.0 + 1.0, x.sum(axis=1, keepdims=True)]


def feed(value: float, rows: int = 1) -> dict[str, np.ndarray]:
    return {"x": np.full((rows, 3), value, dtype=np.float32)}


def manual(config: BatcherConfig, clock: FakeClock, **kwargs) -> DynamicBatcher:
    return DynamicBatcher(fake_model, config, clock=clock, **kwargs)


def test_batch_forms_at_max_size_without_waiting():
    clock = FakeClock()
    b = manual(BatcherConfig(max_batch_size=4, max_queue_delay_ms=10, instances=0), clock)
    reqs = [b.submit(feed(i)) for i in range(6)]
    assert b.step() == 4  # full batch at once, no delay
    assert b.step() == 0  # 2 left, delay not elapsed
    clock.advance(0.0099)
    assert b.step() == 0
    clock.advance(0.0002)
    assert b.step() == 2  # the oldest waited the max queue delay
    assert dict(b.stats.batch_sizes) == {4: 1, 2: 1}
    for i, r in enumerate(reqs):
        np.testing.assert_array_equal(r.result(0)[0], feed(i)["x"] * 2 + 1)


def test_batch_forms_by_delay_and_records_queueing():
    clock = FakeClock()
    b = manual(BatcherConfig(max_batch_size=8, max_queue_delay_ms=5, instances=0), clock)
    b.submit(feed(1))
    clock.advance(0.003)
    b.submit(feed(2))
    assert b.step() == 0
    clock.advance(0.002)
    assert b.step() == 2
    assert sorted(round(q, 6) for q in b.stats.queue_s) == [0.002, 0.005]


def test_the_per_request_samples_are_bounded_and_the_totals_are_not():
    """A long-running server keeps the newest samples only; its counters keep counting."""
    clock = FakeClock()
    b = manual(BatcherConfig(max_batch_size=1, max_queue_delay_ms=0, instances=0), clock)
    b.stats = BatcherStats(samples_kept=3)
    for i in range(5):
        b.submit(feed(i))
        clock.advance(0.001 * (i + 1))
        assert b.step() == 1
    assert b.stats.completed == 5 and dict(b.stats.batch_sizes) == {1: 5}
    assert [round(q, 6) for q in b.stats.queue_s] == [0.003, 0.004, 0.005]  # the newest 3
    assert len(b.stats.compute_s) == 3 and len(b.stats.cap_history) <= 3
    assert DynamicBatcher(fake_model, BatcherConfig(instances=0)).stats.queue_s.maxlen == (
        SAMPLES_KEPT
    )


def test_preferred_sizes_sent_at_once_largest_first():
    clock = FakeClock()
    cfg = BatcherConfig(
        max_batch_size=8, max_queue_delay_ms=100, preferred_batch_sizes=(2, 4), instances=0
    )
    b = manual(cfg, clock)
    for i in range(7):
        b.submit(feed(i))
    assert b.step() == 4  # largest preferred that 7 queued can form
    assert b.step() == 2  # 3 left: preferred 2
    assert b.step() == 0  # 1 left: no preferred size, wait for the delay
    clock.advance(0.1)
    assert b.step() == 1


def test_multi_row_requests_stay_whole():
    clock = FakeClock()
    b = manual(BatcherConfig(max_batch_size=4, max_queue_delay_ms=0, instances=0), clock)
    r1, r2 = b.submit(feed(1, rows=3)), b.submit(feed(2, rows=2))
    assert b.step() == 3
    assert b.step() == 2
    assert r1.result(0)[0].shape == (3, 3) and r2.result(0)[1].shape == (2, 1)


def test_fixed_batch_pads_and_refuses_larger_max():
    clock = FakeClock()
    seen = []

    def model(f):
        seen.append(len(f["x"]))
        return fake_model(f)

    b = DynamicBatcher(model, BatcherConfig(max_batch_size=4, instances=0), clock, fixed_batch=4)
    r = b.submit(feed(5))
    clock.advance(1)
    b.step()
    assert seen == [4] and r.result(0)[0].shape == (1, 3)
    with pytest.raises(UserError, match="fixed batch dimension of 2"):
        DynamicBatcher(model, BatcherConfig(max_batch_size=4), clock, fixed_batch=2)


def test_bounded_queue_rejects_with_reason():
    clock = FakeClock()
    b = manual(BatcherConfig(max_batch_size=2, max_queue_size=3, instances=0), clock)
    reqs = [b.submit(feed(i)) for i in range(5)]
    assert b.stats.rejected == 2
    with pytest.raises(RejectedError, match="queue full"):
        reqs[4].result(0)
    clock.advance(1)
    while b.step():
        pass
    assert [r.result(0)[0][0, 0] for r in reqs[:3]] == [1.0, 3.0, 5.0]


def test_model_raising_fails_only_its_batch():
    clock = FakeClock()

    def flaky(f):
        if (f["x"] == 13).any():
            raise ValueError("bad row")
        return fake_model(f)

    b = DynamicBatcher(flaky, BatcherConfig(max_batch_size=2, instances=0), clock)
    reqs = [b.submit(feed(v)) for v in (1, 13, 2, 3)]
    b.step(), b.step()
    with pytest.raises(BatchFailedError, match="ValueError: bad row"):
        reqs[1].result(0)
    with pytest.raises(BatchFailedError):
        reqs[0].result(0)
    assert reqs[2].result(0)[0][0, 0] == 5.0 and reqs[3].result(0)[0][0, 0] == 7.0
    assert b.stats.failed == 2 and b.stats.completed == 2


def test_adaptive_cap_shrinks_over_target_and_grows_back():
    clock = FakeClock()
    cost = {"per_row": 0.01}

    def slow(f):
        clock.advance(cost["per_row"] * len(f["x"]))
        return fake_model(f)

    cfg = BatcherConfig(
        max_batch_size=8,
        max_queue_delay_ms=0,
        instances=0,
        adaptive=True,
        latency_target_ms=50,
        adapt_window=2,
    )
    b = DynamicBatcher(slow, cfg, clock)
    for _ in range(4):  # batches of 8 take 80 ms > 50 ms target
        for i in range(8):
            b.submit(feed(i))
        while b.step():
            pass
    assert b.cap < 8
    shrunk = b.cap
    cost["per_row"] = 0.001  # now far under target with full batches
    for _ in range(40):
        for i in range(b.cap):
            b.submit(feed(i))
        while b.step():
            pass
    assert b.cap > shrunk
    assert b.stats.cap_history  # every step recorded


def test_request_larger_than_a_lowered_cap_runs_alone():
    clock = FakeClock()
    b = manual(BatcherConfig(max_batch_size=4, max_queue_delay_ms=0, instances=0), clock)
    b.cap = 1  # as the adaptive mode may set it
    r = b.submit(feed(1, rows=3))
    assert b.step() == 3
    assert r.result(0)[0].shape == (3, 3)


def test_bad_config_is_a_user_error():
    with pytest.raises(UserError, match="preferred batch sizes"):
        BatcherConfig(max_batch_size=4, preferred_batch_sizes=(8,))
    with pytest.raises(UserError, match="max batch size"):
        BatcherConfig(max_batch_size=0)
    with pytest.raises(UserError, match="latency target"):
        BatcherConfig(adaptive=True)


def test_close_fails_queued_requests_and_nothing_hangs():
    clock = FakeClock()
    b = manual(BatcherConfig(max_batch_size=4, max_queue_delay_ms=1000, instances=0), clock)
    r = b.submit(feed(1))
    b.close("deadline reached")
    with pytest.raises(RejectedError, match="deadline reached"):
        r.result(0)


def test_every_caller_gets_its_own_result_under_concurrency():
    """10,000 requests from 8 threads through 3 worker instances; every reply is compared
    with the same request run alone."""
    rng = np.random.default_rng(0)
    callers, per_caller = 8, 1250
    inputs = rng.standard_normal((callers, per_caller, 1, 5)).astype(np.float32)
    weights = rng.standard_normal((5, 4)).astype(np.float32)

    def model(f):
        x = f["x"]
        return [np.tanh(x @ weights), x.max(axis=1)]

    cfg = BatcherConfig(
        max_batch_size=16,
        max_queue_delay_ms=0.5,
        preferred_batch_sizes=(4, 8, 16),
        max_queue_size=20000,
        instances=3,
    )
    replies: list[list] = [[None] * per_caller for _ in range(callers)]

    def caller(c: int) -> None:
        pending = [batcher.submit({"x": inputs[c, i]}) for i in range(per_caller)]
        for i, req in enumerate(pending):
            replies[c][i] = req.result(timeout=60)

    with DynamicBatcher(model, cfg) as batcher:
        threads = [threading.Thread(target=caller, args=(c,)) for c in range(callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    assert sum(batcher.stats.batch_sizes.values()) > 0
    assert max(batcher.stats.batch_sizes) > 1  # batching did happen
    assert batcher.stats.completed == callers * per_caller
    for c in range(callers):
        for i in range(per_caller):
            solo = model({"x": inputs[c, i]})
            for got, want in zip(replies[c][i], solo, strict=True):
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
