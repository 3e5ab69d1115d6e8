"""Queries in flight through an asynchronous client: LoadGen's server, single- and
multi-stream scenarios issue each sample straight to the client (no local batcher, no
worker thread per request), and each reply completes its own LoadGen sample.

Why: a pool of threads making blocking calls is a client that queues by itself. With 32
threads on one core, the Python client's own p99 rose well before the server's did, so
LoadGen measured the client (issue 27: 44 vs perf_analyzer's 55 QPS over gRPC). An
asynchronous client sends at LoadGen's scheduled times and is completed from its
transport's callbacks, as perf_analyzer's request-rate mode is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from workbench.batching import BatcherStats, failure_reason

# done(error): None once answered, else why the request failed.
Done = Callable[[BaseException | None], None]
# submit(sample index, done): send without waiting; `done` is called once, from any thread.
AsyncSubmit = Callable[[int, Done], None]


class InFlight:
    """Issues LoadGen samples through `submit` and completes each exactly once: when its
    reply arrives, or when the run is closed (past its maximum duration) with a reason."""

    def __init__(self, submit: AsyncSubmit, complete: Callable[[int], None]) -> None:
        self._submit = submit
        self._complete = complete
        self._lock = threading.Lock()
        self._pending: dict[int, float] = {}  # LoadGen sample id -> sent at
        self._closed: str | None = None
        self.stats = BatcherStats()

    def issue(self, sample_id: int, index: int) -> None:
        with self._lock:
            if self._closed is not None:
                self._fail_now(sample_id, self._closed)
                return
            self._pending[sample_id] = time.monotonic()
        try:
            self._submit(index, lambda error: self._done(sample_id, error))
        except Exception as exc:  # the client refused it before sending
            self._done(sample_id, exc)

    def _done(self, sample_id: int, error: BaseException | None) -> None:
        with self._lock:
            sent = self._pending.pop(sample_id, None)
            if sent is None:  # already completed by close()
                return
            if error is None:
                self.stats.completed += 1
                self.stats.compute_s.append(time.monotonic() - sent)  # round trip
            else:
                self.stats.failed += 1
                self.stats.failure_reasons[_reason(error)] += 1
        self._complete(sample_id)

    def _fail_now(self, sample_id: int, reason: str) -> None:
        self.stats.failed += 1
        self.stats.failure_reasons[reason] += 1
        self._complete(sample_id)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._pending)

    def close(self, reason: str = "the run ended before this request was answered") -> None:
        """Completes every request still waiting (as failed, with `reason`) so LoadGen
        never waits on a reply that will not come; later replies are ignored."""
        with self._lock:
            self._closed = reason
            left = list(self._pending)
            self._pending.clear()
            self.stats.failed += len(left)
            if left:
                self.stats.failure_reasons[reason] += len(left)
        for sample_id in left:
            self._complete(sample_id)


def _reason(error: BaseException) -> str:
    detail: Any = getattr(error, "details", None)
    if callable(detail):  # grpc.RpcError: its status code and details
        try:
            return f"{error.code().name}: {detail()}"[:200]  # type: ignore[attr-defined]
        except Exception:
            pass
    return failure_reason(error)[:200]
