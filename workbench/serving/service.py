"""What both fronts call: resolve a model version, run a feed through its batcher with a
timeout, record metrics and a structured log line, and map failures to ServeErrors.

Task endpoints (workbench.serving.endpoints) call `InferenceService.infer` too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench import __version__
from workbench.batching import BatchFailedError, RejectedError, Request
from workbench.errors import UserError
from workbench.serving.admission import Admission
from workbench.serving.errors import (
    BadRequest,
    ModelFailed,
    NotReady,
    Overloaded,
    ServeError,
    Timeout,
)
from workbench.serving.metrics import ServerMetrics
from workbench.serving.registry import ModelRegistry, ModelVersion
from workbench.serving.tensors import check_against
from workbench.serving.urlfetch import UrlPolicy

log = logging.getLogger(__name__)  # under workbench.serving: serving/logs.py


@dataclass(frozen=True)
class ServeSettings:
    """Operational limits of one server."""

    max_body_bytes: int = 16 * 1024 * 1024
    timeout_s: float = 10.0  # per request: reading, parsing, queueing + compute
    max_inflight: int = 64  # inference requests in flight at the front (then 429)
    parse_workers: int = 1  # processes parsing large JSON bodies (0: threads only)
    model_control: bool = False  # the v2 repository load/unload endpoints
    url_policy: UrlPolicy = field(default_factory=UrlPolicy)
    drain_s: float = 30.0  # SIGTERM: longest wait for in-flight requests


@dataclass
class InferResult:
    """One answered request: the version that answered and the timings."""

    model: str
    version: str
    outputs: list[np.ndarray]
    output_names: list[str]
    queue_s: float
    compute_s: float
    total_s: float


class InferenceService:
    """The model registry, the metrics and the limits, shared by HTTP, gRPC and tasks."""

    def __init__(self, models: ModelRegistry, settings: ServeSettings | None = None) -> None:
        self.models = models
        self.settings = settings or ServeSettings()
        self.metrics = ServerMetrics(models)
        self.admission = Admission(self.settings.max_inflight)
        self.closers: list[Callable[[], None]] = []  # the fronts' resources (parse pools)
        self.live = True
        self.warm = False  # set once the initial models are loaded and warmed up
        self.draining_at: float | None = None  # perf_counter when SIGTERM arrived

    @property
    def draining(self) -> bool:
        return self.draining_at is not None

    @draining.setter
    def draining(self, value: bool) -> None:
        if not value:
            self.draining_at = None
        elif self.draining_at is None:
            self.draining_at = time.perf_counter()

    @property
    def ready(self) -> bool:
        return self.live and self.warm and not self.draining and self.models.all_ready()

    # ---- inference -----------------------------------------------------------------
    def _resolve(self, name: str, version: str | None, arrived: float) -> ModelVersion:
        # A request that arrived before the drain began is served (it may have spent a
        # while reading and parsing); one that arrived after it goes elsewhere.
        if self.draining_at is not None and arrived >= self.draining_at:
            raise NotReady("the server is shutting down: send the request to another replica")
        return self.models.resolve(name, version)

    def _submit(self, entry: ModelVersion, feed: dict[str, np.ndarray], on_done) -> Request:
        check_against(feed, entry.served.inputs, entry.name)
        try:
            return entry.batcher.submit(feed, on_done=on_done)
        except UserError as exc:  # more rows than the max batch
            raise BadRequest(str(exc)) from None

    def deadline(self, arrived: float | None) -> float:
        """When a request that arrived at `arrived` (perf_counter) times out."""
        return (arrived or time.perf_counter()) + self.settings.timeout_s

    def timeout(self, name: str, stage: str) -> Timeout:
        return Timeout(
            f"no answer from model {name!r} within {self.settings.timeout_s:g} s "
            f"(--timeout-s; ran out while {stage}): the server is overloaded or the model "
            "is slow"
        )

    async def infer(
        self,
        name: str,
        feed: dict[str, np.ndarray],
        version: str | None = None,
        protocol: str = "task",
        decode_s: float = 0.0,
        deadline: float | None = None,
    ) -> InferResult:
        """Run one request from async code (the HTTP front, task endpoints). `deadline`
        (perf_counter): when the request's --timeout-s runs out (default: from now)."""
        started = time.perf_counter()
        deadline = deadline if deadline is not None else started + self.settings.timeout_s
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()

        def done(_: Request) -> None:
            loop.call_soon_threadsafe(_resolve, future)

        entry = None
        try:
            entry = self._resolve(name, version, deadline - self.settings.timeout_s)
            request = self._submit(entry, feed, done)
            try:
                await asyncio.wait_for(future, max(deadline - time.perf_counter(), 0.0))
            except TimeoutError:
                raise self.timeout(name, "queued or running") from None
            return self._finish(entry, request, started, protocol, decode_s)
        except ServeError as exc:
            self.record_error(entry, name, protocol, exc.http, time.perf_counter() - started)
            raise

    def infer_sync(
        self,
        name: str,
        feed: dict[str, np.ndarray],
        version: str | None = None,
        protocol: str = "grpc",
        timeout_s: float | None = None,
        decode_s: float = 0.0,
        arrived: float | None = None,
    ) -> InferResult:
        """Run one request from a thread (the gRPC front); `timeout_s`: what is left of
        the request's deadline."""
        started = time.perf_counter()
        entry = None
        try:
            entry = self._resolve(name, version, started if arrived is None else arrived)
            request = self._submit(entry, feed, None)
            wait = (
                self.settings.timeout_s
                if timeout_s is None
                else min(timeout_s, self.settings.timeout_s)
            )
            try:
                request.result(wait)
            except TimeoutError:
                if not request.done:
                    raise self.timeout(name, "queued or running") from None
            except Exception:
                pass  # the request's own failure: _finish maps it
            return self._finish(entry, request, started, protocol, decode_s)
        except ServeError as exc:
            self.record_error(entry, name, protocol, exc.http, time.perf_counter() - started)
            raise

    def _finish(
        self,
        entry: ModelVersion,
        request: Request,
        started: float,
        protocol: str,
        decode_s: float = 0.0,
    ) -> InferResult:
        error = request.error
        if isinstance(error, RejectedError):
            raise Overloaded(f"model {entry.name!r} version {entry.version!r}: {error}")
        if isinstance(error, BatchFailedError):
            log.error("model failed", extra={"model": entry.name, "version": entry.version})
            raise ModelFailed(f"model {entry.name!r} version {entry.version!r}: {error}")
        if error is not None:
            raise ModelFailed(f"model {entry.name!r}: {error}")
        outputs = request.result(0)
        queue_s = (request.dispatched or request.submitted) - request.submitted
        compute_s = (request.finished or request.submitted) - (
            request.dispatched or request.submitted
        )
        total_s = time.perf_counter() - started
        self.metrics.observe(entry.name, entry.version, protocol, 200, queue_s, compute_s, total_s)
        entry.stats.success(request.rows, total_s + decode_s, queue_s, compute_s, decode_s)
        if entry.warmup != "done":
            entry.first_request_done({k: list(v.shape) for k, v in request.feed.items()})
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "request",
                extra={
                    "model": entry.name,
                    "version": entry.version,
                    "protocol": protocol,
                    "status": 200,
                    "total_ms": round(total_s * 1000, 3),
                    # where a slow request's time went (a tail's cause: queue or compute)
                    "decode_ms": round(decode_s * 1000, 3),
                    "queue_ms": round(queue_s * 1000, 3),
                    "compute_ms": round(compute_s * 1000, 3),
                    "batch_rows": request.batch_rows,
                },
            )
        return InferResult(
            entry.name,
            entry.version,
            outputs,
            entry.output_names(len(outputs)),
            queue_s,
            compute_s,
            total_s,
        )

    def record_output(self, model: str, version: str, encode_s: float) -> None:
        """The time spent encoding a successful answer (statistics' compute_output)."""
        try:
            self.models.get(model, version).stats.output(encode_s)
        except ServeError:
            pass  # unloaded meanwhile

    def record_error(
        self,
        entry: ModelVersion | None,
        name: str,
        protocol: str,
        status: int,
        total_s: float = 0.0,
    ) -> None:
        """Count an error; unknown model names are counted under model ''."""
        if entry is not None:
            entry.stats.fail(total_s)
        known = entry is not None or bool(self.models.versions(name))
        self.metrics.observe(
            name if known else "", entry.version if entry else "", protocol, status
        )
        if status >= 500 or status == 429:
            log.warning(
                "request failed",
                extra={"model": name, "protocol": protocol, "status": status},
            )

    def close(self) -> None:
        """Release the fronts' resources, then unload every model version."""
        for close in self.closers:
            close()
        self.closers.clear()
        self.models.close()

    def server_metadata(self) -> dict[str, Any]:
        return {
            "name": "workbench",
            "version": __version__,
            "extensions": ["binary_tensor_data", "model_configuration", "statistics"]
            + (["model_repository"] if self.settings.model_control else []),
        }


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
