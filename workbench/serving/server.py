"""Run a server: load the models, warm them up, start gRPC and HTTP, drain on SIGTERM.

Readiness (`/v2/health/ready`, gRPC ServerReady) turns true only after every initial model
version is loaded and warmed up, and false again as soon as SIGTERM arrives; then gRPC
stops taking calls and waits for its in-flight ones, uvicorn stops accepting connections
and waits for its in-flight requests (both up to `drain_s`), and the batchers close.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from workbench.batching import BatcherConfig
from workbench.errors import UserError
from workbench.serving.heap import return_large_buffers
from workbench.serving.registry import ModelRegistry, WarmupShapes, load_source
from workbench.serving.service import InferenceService, ServeSettings

log = logging.getLogger(__name__)  # under workbench.serving: serving/logs.py


@dataclass(frozen=True)
class ModelSpec:
    """`NAME[:VERSION]=SOURCE` from the command line."""

    name: str
    source: str
    version: str = "1"

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        key, sep, source = text.partition("=")
        name, _, version = key.partition(":")
        if not sep or not name or not source:
            raise UserError(
                f"--model must look like NAME[:VERSION]=SOURCE with SOURCE null, "
                f"task:TASK[/MODEL] or a model file (e.g. effnet:2=task:image_classification), "
                f"got {text!r}"
            )
        return cls(name, source, version or "1")


def build_service(
    models: Sequence[ModelSpec],
    batcher: BatcherConfig | None,
    settings: ServeSettings,
    seed: int = 0,
    instances: int = 1,
    weights: dict[tuple[str, str], float] | None = None,
    defaults: Sequence[tuple[str, str]] = (),
    warmup: WarmupShapes | None = None,
) -> InferenceService:
    """Load and warm every model version; the service is ready when this returns.
    `warmup`: --dim / --shape, sizing model files' symbolic dimensions for warm-up."""
    shapes = warmup or WarmupShapes()
    registry = ModelRegistry(
        batcher,
        seed=seed,
        instances=instances,
        loader=lambda source, n: load_source(source, n, shapes),
    )
    service = InferenceService(registry, settings)
    try:
        for spec in models:
            registry.load(spec.name, spec.source, spec.version)
            log.info(
                "model loaded",
                extra={"model": spec.name, "version": spec.version, "source": spec.source},
            )
        by_model: dict[str, dict[str, float]] = {}
        for (name, version), weight in (weights or {}).items():
            by_model.setdefault(name, {})[version] = weight
        for name, values in by_model.items():
            registry.set_weights(name, values)
        for name, version in defaults:
            registry.set_default(name, version)
    except Exception:
        registry.close()
        raise
    service.warm = True
    return service


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(
            f"cannot listen on {host}:{port}: {exc}; pick another --http-port"
        ) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.listen(2048)
    return sock


def serve(
    service: InferenceService,
    endpoints: Sequence[Any] = (),
    host: str = "127.0.0.1",
    http_port: int = 8000,
    grpc_port: int | None = 8001,
    announce: Callable[[dict], None] | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT, then drain; returns the exit code."""
    # lazy: uvicorn, grpc, fastapi, starlette
    import uvicorn

    from workbench.serving.grpc_front import start_grpc
    from workbench.serving.http_app import create_app

    return_large_buffers()  # request bodies and tensors: memory back after a burst
    app = create_app(service, endpoints)
    sock = bind(host, http_port)
    grpc_server, bound_grpc = (None, None)
    if grpc_port is not None:
        grpc_server, bound_grpc = start_grpc(service, host, grpc_port)
    drain_s = service.settings.drain_s
    stopping: list[Any] = []

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            if not service.draining:
                service.draining = True
                log.info("draining", extra={"signal": sig, "drain_s": drain_s})
                if grpc_server is not None:
                    stopping.append(grpc_server.stop(drain_s))
            super().handle_exit(sig, frame)
            # uvicorn re-raises the signal once shut down, which would kill the process
            # before gRPC and the batchers are drained: the drain below exits 0 instead.
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list):
                captured.clear()

    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(max(drain_s, 1)),
        lifespan="off",
    )
    server = DrainingServer(config)
    info = {
        "event": "listening",
        "host": host,
        "http_port": sock.getsockname()[1],
        "grpc_port": bound_grpc,
        "models": service.models.index(),
    }
    (announce or _print)(info)
    log.info("listening", extra={k: v for k, v in info.items() if k != "event"})
    try:
        server.run(sockets=[sock])
    finally:
        service.draining = True
        if grpc_server is not None:
            (stopping[0] if stopping else grpc_server.stop(drain_s)).wait(drain_s + 1)
        service.close()
        sock.close()
        log.info("stopped")
    return 0


def _print(info: dict) -> None:
    print(json.dumps(info), flush=True)
    sys.stdout.flush()


class ServerThread:
    """A server on loopback in background threads (tests, notebooks, benchmarks):
    uvicorn in its own thread (no signal handlers off the main thread) plus gRPC.

        with ServerThread(service) as srv:
            httpx.get(f"{srv.url}/v2/health/ready")
    """

    def __init__(
        self,
        service: InferenceService,
        endpoints: Sequence[Any] = (),
        host: str = "127.0.0.1",
        grpc: bool = True,
    ) -> None:
        # lazy: uvicorn, grpc, fastapi, starlette
        import uvicorn

        from workbench.serving.grpc_front import start_grpc
        from workbench.serving.http_app import create_app

        self.service = service
        app = create_app(service, endpoints)  # first: a bad endpoint leaves nothing open
        self.sock = bind(host, 0)
        self.host = host
        self.http_port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.http_port}"
        self.grpc_server, self.grpc_port = start_grpc(service, host, 0) if grpc else (None, None)
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.service.draining = True
        self.server.should_exit = True
        self.thread.join(timeout=10)
        if self.grpc_server is not None:
            self.grpc_server.stop(1).wait(2)
        self.service.close()
        self.sock.close()

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
