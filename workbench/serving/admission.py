"""Admission control at the front, before the expensive work.

A bound on inference requests in flight, counted from the moment a request arrives
(before its body is read or parsed) until its answer is sent: past the bound a request
is answered at once with 429 (HTTP, `{"error": ...}`) or RESOURCE_EXHAUSTED (gRPC), so
memory and CPU spent on requests grows with the bound, not with the offered load. The
batcher's own queue bound still sheds what reaches it. Health, metadata and metrics
routes are never counted, so they stay answerable under overload.

    gate = Admission(64)
    if not gate.try_enter(): answer 429
    try: ... finally: gate.leave()
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from workbench.serving.errors import Overloaded, ServeError

# Paths whose requests carry tensors or images: the ones that are counted.
COUNTED_SUFFIXES = ("/infer",)
COUNTED_PREFIXES = ("/api/",)


class Admission:
    """A thread-safe in-flight counter shared by the HTTP and gRPC fronts."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the in-flight limit must be >= 1, got {limit}")
        self.limit = limit
        self.in_flight = 0
        self.shed = 0  # answered 429 / RESOURCE_EXHAUSTED here
        self._lock = threading.Lock()

    def try_enter(self) -> bool:
        with self._lock:
            if self.in_flight >= self.limit:
                self.shed += 1
                return False
            self.in_flight += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def overloaded(self) -> Overloaded:
        return Overloaded(
            f"{self.limit} requests already in flight (--max-inflight): retry later or "
            "send to another replica"
        )


def counted(scope: dict) -> bool:
    path = scope.get("path", "")
    return scope.get("method") == "POST" and (
        path.endswith(COUNTED_SUFFIXES) or path.startswith(COUNTED_PREFIXES)
    )


class AdmissionLimit:
    """ASGI middleware: an inference request past the limit answers 429 before its body is
    read; every counted request gets its arrival time in `scope["state"]["arrived"]` (the
    start of its `--timeout-s` deadline)."""

    def __init__(self, app: Any, gate: Admission, on_shed: Any = None) -> None:
        self.app = app
        self.gate = gate
        self.on_shed = on_shed

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not counted(scope):
            return await self.app(scope, receive, send)
        scope.setdefault("state", {})["arrived"] = time.perf_counter()
        if not self.gate.try_enter():
            if self.on_shed is not None:
                self.on_shed(scope)
            return await send_error(send, self.gate.overloaded())
        try:
            await self.app(scope, receive, send)
        finally:
            self.gate.leave()


async def send_error(send: Any, error: ServeError) -> None:
    """Answer `{"error": message}` with the error's status, closing the connection (the
    unread body is not drained)."""
    body = json.dumps({"error": error.message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.http,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
