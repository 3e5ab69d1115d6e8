"""A dynamic batcher: requests in, batches to a model, each caller's own result out.

Independent of LoadGen and of the runtimes: it takes any `run_batch(feed) -> outputs`
callable over numpy feeds whose axis 0 is the batch. It sits outside the packages built on
it (scenarios, serving, moderation), so none of them reaches into another for it.

Semantics follow Triton's dynamic batcher:
- a batch never exceeds `max_batch_size`;
- when a preferred batch size can be formed from the queued requests, the largest such
  size is sent at once (without preferred sizes, `max_batch_size` is the one preferred size);
- otherwise the batcher waits until the oldest request has been queued `max_queue_delay_ms`,
  then sends the largest batch it can.
A batch is formed when a model instance (a worker thread) is free to run it, so queued
requests accumulate into larger batches while every instance is busy.

The source guide (§2.2, §9.2) kept one shared buffer and one result map, so concurrent
callers could read each other's results, and it ran an extra probe batch every 10 s to pick
a batch size. Here every request owns its `Request` handle and gets the rows of the batch
output at its own offset; the adaptive mode tunes the batch cap from the latency of the
real batches it has run, never from probes.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from workbench.errors import UserError

Feed = dict[str, np.ndarray]
Outputs = list[np.ndarray]
RunBatch = Callable[[Feed], Outputs]


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale."""


class MonotonicClock:
    def now(self) -> float:
        return time.perf_counter()


class RejectedError(RuntimeError):
    """The queue was full (or the batcher closed): the request was never run."""


class BatchFailedError(RuntimeError):
    """The model raised on the batch that held this request."""


@dataclass(frozen=True)
class BatcherConfig:
    """How requests become batches. `adaptive` tunes the batch cap toward
    `latency_target_ms` (queueing + compute of a request) from the batches it ran."""

    max_batch_size: int = 8
    max_queue_delay_ms: float = 1.0
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_size: int = 1024
    instances: int = 1
    adaptive: bool = False
    latency_target_ms: float | None = None
    adapt_window: int = 8  # batches per adaptation step

    def __post_init__(self) -> None:
        if not isinstance(self.max_batch_size, int) or self.max_batch_size < 1:
            raise UserError(f"max batch size must be a positive integer, got {self.max_batch_size}")
        if self.max_queue_delay_ms < 0:
            raise UserError(f"max queue delay must be >= 0 ms, got {self.max_queue_delay_ms}")
        bad = [p for p in self.preferred_batch_sizes if not 1 <= p <= self.max_batch_size]
        if bad:
            raise UserError(
                f"preferred batch sizes {bad} are outside 1..max batch size "
                f"({self.max_batch_size}): lower them or raise --max-batch"
            )
        if self.max_queue_size < 1:
            raise UserError(f"max queue size must be >= 1, got {self.max_queue_size}")
        if not isinstance(self.instances, int) or self.instances < 0:
            raise UserError(f"instances must be a non-negative integer, got {self.instances}")
        if self.adaptive and (self.latency_target_ms is None or self.latency_target_ms <= 0):
            raise UserError("the adaptive batcher needs a positive latency target (ms)")
        if self.adapt_window < 1:
            raise UserError(f"adapt_window must be >= 1, got {self.adapt_window}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["preferred_batch_sizes"] = list(self.preferred_batch_sizes)
        return data


NO_BATCHING = BatcherConfig(max_batch_size=1, max_queue_delay_ms=0.0)


class Request:
    """One caller's request: its feed (batch axis of 1 or more rows) and, once done,
    its own outputs or the reason it failed."""

    __slots__ = (
        "feed",
        "rows",
        "submitted",
        "dispatched",
        "finished",
        "batch_rows",
        "key",
        "_event",
        "_outputs",
        "_error",
        "on_done",
    )

    def __init__(self, feed: Feed, rows: int, submitted: float, on_done: Any) -> None:
        self.feed = feed
        self.rows = rows
        self.submitted = submitted
        self.dispatched: float | None = None
        self.finished: float | None = None
        self.batch_rows = 0  # rows of the batch it ran in, once dispatched
        # Requests batch together only with requests of the same per-row shapes.
        self.key = tuple((k, v.shape[1:], v.dtype.str) for k, v in feed.items())
        self._event = threading.Event()
        self._outputs: Outputs | None = None
        self._error: BaseException | None = None
        self.on_done = on_done

    def _finish(self, outputs: Outputs | None, error: BaseException | None) -> None:
        self._outputs, self._error = outputs, error
        self._event.set()
        if self.on_done is not None:
            self.on_done(self)

    @property
    def done(self) -> bool:
        return self._event.is_set()

    @property
    def error(self) -> BaseException | None:
        return self._error

    def result(self, timeout: float | None = None) -> Outputs:
        """This request's outputs; raises the reason it failed or was rejected."""
        if not self._event.wait(timeout):
            raise TimeoutError(f"no result within {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._outputs is not None
        return self._outputs


# Newest per-request samples a batcher keeps (about 6 MB per list at most): more than a
# bounded scenario run records (2,000 QPS for 100 s), far less than a server serves.
SAMPLES_KEPT = 200_000


@dataclass
class BatcherStats:
    """What the batcher saw: batch sizes, per-request queueing, per-batch compute.

    The per-request and per-batch samples keep the newest `samples_kept` each: a scenario
    run reads percentiles from all of them, while a server that runs for days must not
    grow with every request it serves (its totals live in the counters)."""

    batch_sizes: Counter = field(default_factory=Counter)
    batch_compute_s: Counter = field(default_factory=Counter)  # per batch size
    completed: int = 0
    rejected: int = 0
    failed: int = 0
    failure_reasons: Counter = field(default_factory=Counter)
    samples_kept: int = SAMPLES_KEPT
    queue_s: deque[float] = field(init=False)
    compute_s: deque[float] = field(init=False)
    cap_history: deque[int] = field(init=False)

    def __post_init__(self) -> None:
        self.queue_s = deque(maxlen=self.samples_kept)
        self.compute_s = deque(maxlen=self.samples_kept)
        self.cap_history = deque(maxlen=self.samples_kept)


def _split(outputs: Outputs, offsets: list[tuple[int, int]]) -> list[Outputs]:
    return [[np.asarray(o)[a:b] for o in outputs] for a, b in offsets]


class DynamicBatcher:
    """Queue + batch formation + `instances` worker threads running `run_batch`.

    With `instances=0` no thread is started and the caller drives dispatch with `step()`
    (deterministic tests with a fake clock). `fixed_batch`: the model's batch axis is
    fixed at this size, so every batch is padded up to it (the padding rows dropped)."""

    def __init__(
        self,
        run_batch: RunBatch | Sequence[RunBatch],
        config: BatcherConfig,
        clock: Clock | None = None,
        fixed_batch: int | None = None,
    ) -> None:
        if fixed_batch is not None and config.max_batch_size > fixed_batch:
            raise UserError(
                f"max batch {config.max_batch_size} does not fit the model's fixed batch "
                f"dimension of {fixed_batch}: use --max-batch {fixed_batch} or less, or "
                "re-export the model with a dynamic batch axis"
            )
        # One callable per model instance (or one shared by all of them).
        self.runs = list(run_batch) if isinstance(run_batch, Sequence) else [run_batch]
        self.config = config
        self.clock = clock or MonotonicClock()
        self.fixed_batch = fixed_batch
        self.stats = BatcherStats()
        self.cap = config.max_batch_size
        self._queue: deque[Request] = deque()
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._closed = False
        self._window: list[float] = []
        self._threads = [
            threading.Thread(target=self._worker, args=(i,), name=f"batcher-{i}", daemon=True)
            for i in range(config.instances)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a batch now (a gauge for the server's metrics)."""
        return len(self._queue)

    def batch_snapshot(self) -> tuple[dict[int, int], dict[int, float]]:
        """Copies of (batches run, their compute seconds) by batch size."""
        with self._cond:
            return dict(self.stats.batch_sizes), dict(self.stats.batch_compute_s)

    # ---- callers -------------------------------------------------------------------
    def submit(
        self,
        feed: Feed,
        on_done: Callable[[Request], None] | None = None,
        block_s: float = 0.0,
    ) -> Request:
        """Queue one request. When the queue is full it waits up to `block_s`, then the
        request is rejected: it finishes at once with a RejectedError (never run)."""
        rows = len(next(iter(feed.values())))
        if rows > self.config.max_batch_size:
            raise UserError(
                f"a request of {rows} rows exceeds the max batch size {self.config.max_batch_size}"
            )
        request = Request(feed, rows, self.clock.now(), on_done)
        reason = None
        with self._cond:
            deadline = time.monotonic() + block_s
            while not self._closed and len(self._queue) >= self.config.max_queue_size:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            if self._closed:
                reason = "the batcher is closed"
            elif len(self._queue) >= self.config.max_queue_size:
                reason = (
                    f"queue full ({self.config.max_queue_size} requests waiting): the offered "
                    "load exceeds what the model instances sustain"
                )
            else:
                self._queue.append(request)
                self._queued_rows += rows
                self._cond.notify_all()
            if reason:
                self.stats.rejected += 1
        if reason:
            request._finish(None, RejectedError(reason))
        return request

    def close(self, reason: str = "the batcher was closed before this request ran") -> None:
        """Stop the workers; requests still queued fail with `reason` (nothing hangs)."""
        with self._cond:
            self._closed = True
            left = list(self._queue)
            self._queue.clear()
            self._queued_rows = 0
            self.stats.failed += len(left)
            if left:
                self.stats.failure_reasons[reason] += len(left)
            self._cond.notify_all()
        for request in left:
            request._finish(None, RejectedError(reason))
        for thread in self._threads:
            thread.join(timeout=30)

    def __enter__(self) -> DynamicBatcher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- batch formation -------------------------------------------------------------
    def _targets(self) -> list[int]:
        preferred = [p for p in self.config.preferred_batch_sizes if p <= self.cap]
        return sorted(preferred or [self.cap])

    def _ready_rows(self, now: float) -> int:
        """Rows to dispatch now (0: keep waiting). Caller holds the lock."""
        if not self._queue:
            return 0
        if self._queue[0].rows > self.cap:
            return self._queue[0].rows  # never split: above the adaptive cap, it runs alone
        available = self._fill(self.cap)
        fitting = [t for t in self._targets() if t <= available]
        if fitting:
            return fitting[-1]
        waited = now - self._queue[0].submitted
        if waited * 1000.0 >= self.config.max_queue_delay_ms:
            return available
        return 0

    def _fill(self, limit: int) -> int:
        """Rows of the queued requests, oldest first and of the oldest one's shapes, that
        fit in `limit` whole."""
        rows = 0
        key = self._queue[0].key if self._queue else None
        for request in self._queue:
            if rows + request.rows > limit or request.key != key:
                break
            rows += request.rows
        return rows

    def _take(self, rows: int, now: float) -> list[Request]:
        batch: list[Request] = []
        taken = 0
        key = self._queue[0].key if self._queue else None
        while self._queue and taken + self._queue[0].rows <= rows and self._queue[0].key == key:
            request = self._queue.popleft()
            request.dispatched = now
            taken += request.rows
            batch.append(request)
        for request in batch:
            request.batch_rows = taken
        self._queued_rows -= taken
        self._cond.notify_all()  # room in the queue for blocked submitters
        return batch

    def _wait_s(self, now: float) -> float | None:
        if not self._queue:
            return None
        due = self._queue[0].submitted + self.config.max_queue_delay_ms / 1000.0
        return max(due - now, 0.0)

    def step(self) -> int:
        """Manual mode: form and run one batch if one is due now; its size (0: none)."""
        with self._cond:
            now = self.clock.now()
            rows = self._ready_rows(now)
            batch = self._take(rows, now) if rows else []
        if batch:
            self._run(batch, self.runs[0])
        return sum(r.rows for r in batch)

    def _worker(self, index: int) -> None:
        run_batch = self.runs[index % len(self.runs)]
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    now = self.clock.now()
                    rows = self._ready_rows(now)
                    if rows:
                        batch = self._take(rows, now)
                        break
                    self._cond.wait(self._wait_s(now))
            self._run(batch, run_batch)

    # ---- running -----------------------------------------------------------------------
    def _run(self, batch: list[Request], run_batch: RunBatch) -> None:
        offsets, start = [], 0
        for request in batch:
            offsets.append((start, start + request.rows))
            start += request.rows
        feed = {
            name: np.concatenate([r.feed[name] for r in batch], axis=0)
            if len(batch) > 1
            else batch[0].feed[name]
            for name in batch[0].feed
        }
        if self.fixed_batch is not None and start < self.fixed_batch:
            pad = self.fixed_batch - start
            feed = {k: np.concatenate([v, np.repeat(v[-1:], pad, axis=0)]) for k, v in feed.items()}
        began = self.clock.now()
        try:
            outputs = run_batch(feed)
            error = None
        except Exception as exc:  # the model raised on this batch: fail its requests only
            outputs, error = None, exc
        ended = self.clock.now()
        with self._cond:
            self.stats.batch_sizes[start] += 1
            self.stats.batch_compute_s[start] += ended - began
            self.stats.compute_s.append(ended - began)
            self.stats.queue_s.extend(began - r.submitted for r in batch)
            if error is None:
                self.stats.completed += len(batch)
            else:
                self.stats.failed += len(batch)
                self.stats.failure_reasons[failure_reason(error)] += len(batch)
            if self.config.adaptive:
                self._adapt(max(ended - r.submitted for r in batch), start)
        if error is not None:
            failure = BatchFailedError(f"the model raised on this batch: {failure_reason(error)}")
            for request in batch:
                request.finished = ended
                request._finish(None, failure)
            return
        try:
            parts = _split(outputs, offsets)
        except Exception as exc:
            for request in batch:
                request._finish(
                    None, BatchFailedError(f"cannot split outputs: {failure_reason(exc)}")
                )
            return
        for request, part in zip(batch, parts, strict=True):
            request.finished = ended
            request._finish(part, None)

    def _adapt(self, worst_latency_s: float, size: int) -> None:
        """AIMD on the batch cap from the real batches' latency (caller holds the lock):
        over the target, halve the cap; well under it with full batches, grow it by one."""
        self._window.append(worst_latency_s)
        if len(self._window) < self.config.adapt_window:
            return
        worst_ms = max(self._window) * 1000.0
        self._window.clear()
        target = float(self.config.latency_target_ms or 0.0)
        if worst_ms > target:
            self.cap = max(1, self.cap // 2)
        elif worst_ms < 0.8 * target and size >= self.cap:
            self.cap = min(self.config.max_batch_size, self.cap + 1)
        self.stats.cap_history.append(self.cap)


def failure_reason(exc: BaseException) -> str:
    """An exception as one short line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
