"""Admission control at the front, before the expensive work.

A bound on inference requests in flight, counted from the moment a request arrives
(before its body is read or parsed) until its answer is sent: past the bound a request
is answered with 429 (HTTP, `{"error": ...}`) or RESOURCE_EXHAUSTED (gRPC) without being
parsed, so memory and CPU spent on requests grows with the bound, not with the offered
load. An HTTP request's body is read and discarded first (chunk by chunk, within the
request's deadline and the body cap): a server that closes a connection with an unread
body in its socket resets it, and a client still sending (httpx, requests, curl all send
the whole body before reading) then gets a connection error instead of the 429. Measured
with `benchmarks/serving_overload.py` before this drain: 180 of 442 JSON requests and 184
of 2,710 binary ones at 2.5x the peak ended in `ReadError`. The
batcher's own queue bound still sheds what reaches it. Health, metadata and metrics
routes are never counted, so they stay answerable under overload.

    gate = Admission(64)
    if not gate.try_enter(): answer 429
    try: ... finally: gate.leave()
"""

from __future__ import annotations

import asyncio
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
    """ASGI middleware: an inference request past the limit answers 429 without being
    parsed (its body drained, see the module doc); every counted request gets its arrival
    time in `scope["state"]["arrived"]` (the start of its `--timeout-s` deadline)."""

    def __init__(
        self,
        app: Any,
        gate: Admission,
        on_shed: Any = None,
        drain_s: float = 1.0,
        drain_max_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.app = app
        self.gate = gate
        self.on_shed = on_shed
        self.drain_s = drain_s
        self.drain_max_bytes = drain_max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not counted(scope):
            return await self.app(scope, receive, send)
        scope.setdefault("state", {})["arrived"] = time.perf_counter()
        if not self.gate.try_enter():
            if self.on_shed is not None:
                self.on_shed(scope)
            drained = await drain(receive, self.drain_s, self.drain_max_bytes)
            return await send_error(send, self.gate.overloaded(), close=not drained)
        try:
            await self.app(scope, receive, send)
        finally:
            self.gate.leave()


async def drain(receive: Any, within_s: float, max_bytes: int) -> bool:
    """Read and discard a request body; True when it was read to its end within `within_s`
    seconds and `max_bytes` (then the connection can stay open), False otherwise."""
    seen = 0
    try:
        async with asyncio.timeout(within_s):
            while seen <= max_bytes:
                message = await receive()
                if message["type"] != "http.request":
                    return False  # the client went away
                seen += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return True
    except TimeoutError:
        pass
    return False


async def send_error(send: Any, error: ServeError, close: bool = True) -> None:
    """Answer `{"error": message}` with the error's status; `close`: the connection ends
    with it (its body was not read to the end, so it cannot carry another request)."""
    body = json.dumps({"error": error.message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": error.http, "headers": headers})
    await send({"type": "http.response.body", "body": body})
