"""The HTTP front: KServe v2 REST on FastAPI, plus /metrics, /health and task endpoints.

    app = create_app(service, endpoints=[EndpointConfig("classify", model="effnet")])

Routes: `/v2/health/live|ready`, `/v2`, `/v2/models/{name}[/versions/{v}]`,
`.../ready`, `.../infer` (JSON tensors and the binary-data extension), Triton's model
configuration (`.../config`) and statistics (`/v2/models[/{name}[/versions/{v}]]/stats`)
extensions, the repository
extension `/v2/repository/index` and `/v2/repository/models/{name}/load|unload` (only
with `model_control`), `/metrics` (Prometheus), `/health` (the guide's) and the task
endpoints mounted from `workbench.serving.endpoints`. Errors answer `{"error": message}`
with a 4xx/5xx status, unknown routes and methods included; handlers read the raw body
(no pydantic models on the hot path).

An inference request is admitted (or shed with 429) before its body is read
(serving/admission.py); its `--timeout-s` deadline runs from its arrival through reading,
parsing and queueing; parsing and tensor conversion, and encoding the answer, run on the
thread pool so health, metadata and metrics stay answerable while big JSON bodies parse.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from workbench.errors import UserError
from workbench.serving.admission import AdmissionLimit
from workbench.serving.config import model_config
from workbench.serving.endpoints import mount
from workbench.serving.errors import BadRequest, NotFound, Overloaded, ServeError, TooLarge
from workbench.serving.metrics import CONTENT_TYPE
from workbench.serving.parsing import HEADER_LENGTH, Parser
from workbench.serving.service import InferenceService
from workbench.serving.stats import model_statistics
from workbench.serving.tensors import to_json, to_raw, v2_datatype

log = logging.getLogger(__name__)  # under workbench.serving: serving/logs.py


class BodyLimit:
    """ASGI middleware: a body over `max_bytes` (declared or streamed) answers 413 before
    the app reads it whole."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for key, value in scope.get("headers", ()):
            if key == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                return await _send_error(send, TooLarge(self._message(int(value))))
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Raised inside the handler's body read: the app's ServeError
                    # handler answers 413.
                    raise TooLarge(self._message(seen))
            return message

        await self.app(scope, limited, send)

    def _message(self, size: int) -> str:
        return (
            f"request body of {size:,} bytes is over this server's cap of "
            f"{self.max_bytes:,} bytes (--max-body-mb)"
        )


async def _send_error(send: Any, error: ServeError) -> None:
    body = json.dumps({"error": error.message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.http,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def error_response(exc: ServeError) -> JSONResponse:
    return JSONResponse({"error": exc.message}, status_code=exc.http)


def create_app(service: InferenceService, endpoints: Sequence[Any] = ()) -> Any:
    """The ASGI app: FastAPI routes wrapped in the body-size limit."""
    app = FastAPI(title="workbench serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service
    parser = Parser(service.settings.parse_workers)
    service.closers.append(parser.close)

    @app.exception_handler(ServeError)
    async def _serve_error(_: Request, exc: ServeError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(UserError)
    async def _user_error(_: Request, exc: UserError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # Unknown routes (404) and methods (405): the protocol's error body, not FastAPI's
        # {"detail": ...}, which clients of the protocol cannot read.
        return JSONResponse(
            {"error": _route_error(request, exc)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = (exc.errors() or [{}])[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse(
            {"error": f"invalid request: {where}: {first.get('msg', 'invalid value')}"},
            status_code=400,
        )

    @app.exception_handler(ClientDisconnect)
    async def _gone(_: Request, exc: ClientDisconnect) -> Response:
        service.metrics.observe("", "", "http", 499)
        return Response(status_code=499)

    # ---- health and metadata -------------------------------------------------------
    @app.get("/v2/health/live")
    async def live() -> Response:
        return JSONResponse({"live": service.live}, status_code=200 if service.live else 503)

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        ok = service.ready
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    @app.get("/v2")
    async def server_metadata() -> dict:
        return service.server_metadata()

    @app.get("/health")
    async def health() -> Response:
        ok = service.ready
        body = {"status": "ok" if ok else "not ready", "models": service.models.index()}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    # ---- model configuration and statistics extensions (before /v2/models/{name}) ----
    @app.get("/v2/models/stats")
    @app.get("/v2/models/{name}/stats")
    @app.get("/v2/models/{name}/versions/{version}/stats")
    async def statistics(name: str | None = None, version: str | None = None) -> dict:
        return {"model_stats": [model_statistics(e) for e in _entries(service, name, version)]}

    @app.get("/v2/models/{name}/config")
    @app.get("/v2/models/{name}/versions/{version}/config")
    async def config(name: str, version: str | None = None) -> dict:
        entry = _lookup(service, name, version)
        return model_config(entry, service.models.versions(name))

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None) -> dict:
        entry = _lookup(service, name, version)
        return entry.metadata(service.models.versions(name))

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None) -> Response:
        try:
            entry = _lookup(service, name, version)
        except NotFound as exc:
            return error_response(exc)
        body = {"name": name, "version": entry.version, "ready": entry.ready}
        return JSONResponse(body, status_code=200 if entry.ready else 503)

    # ---- inference -----------------------------------------------------------------
    async def infer(request: Request) -> Response:
        # A plain Starlette route (no FastAPI parameter injection): the hot path.
        name = request.path_params["name"]
        version = request.path_params.get("version")
        deadline = service.deadline(request.scope.get("state", {}).get("arrived"))
        header_length = request.headers.get(HEADER_LENGTH)
        try:
            try:
                body = await asyncio.wait_for(request.body(), _left(deadline))
            except TimeoutError:
                raise service.timeout(name, "reading the request body") from None
            began = time.perf_counter()
            # Off the event loop (and for big JSON, out of the process: json.loads holds
            # the GIL for the whole parse of a 3 MB tensor). Within the deadline: under
            # overload, bodies wait for a parse worker, and one whose deadline passed
            # there is answered 504 at its deadline rather than parsed late for nothing.
            wait_s = parser.wait_s(body, header_length)
            if wait_s > _left(deadline):
                raise Overloaded(
                    f"the request bodies waiting to be parsed would take {wait_s:.2f} s, "
                    f"past this request's deadline ({_left(deadline):.2f} s left of "
                    "--timeout-s): retry later, send binary tensors, or use another replica"
                )
            try:
                payload, feed, binary_out = await asyncio.wait_for(
                    parser.parse(body, header_length), _left(deadline)
                )
            except TimeoutError:
                raise service.timeout(name, "parsing the request") from None
            del body
            decode_s = time.perf_counter() - began
        except ServeError as exc:
            service.record_error(None, name, "http", exc.http)
            raise
        result = await service.infer(name, feed, version, "http", decode_s, deadline)
        began = time.perf_counter()
        response = await run_in_threadpool(infer_response, payload, result, binary_out)
        service.record_output(result.model, result.version, time.perf_counter() - began)
        return response

    app.add_route("/v2/models/{name}/infer", infer, methods=["POST"])
    app.add_route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"])

    # ---- repository extension (load/unload without a restart) ----------------------
    if service.settings.model_control:
        _add_repository(app, service)

    mount(app, service, endpoints)

    def shed(scope: dict) -> None:
        service.metrics.observe("", "", "http", 429)

    return AdmissionLimit(
        BodyLimit(app, service.settings.max_body_bytes),
        service.admission,
        shed,
        drain_s=service.settings.timeout_s,
        drain_max_bytes=service.settings.max_body_bytes,
    )


def _route_error(request: Request, exc: HTTPException) -> str:
    """The message of a routing error, naming the path or method and what exists."""
    path = request.url.path
    if exc.status_code == 404:
        return (
            f"no route {path!r}: see /v2 (server metadata), /v2/models/{{name}} and "
            "/v2/models/{name}/infer"
        )
    if exc.status_code == 405:
        allowed = (getattr(exc, "headers", None) or {}).get("Allow", "")
        return f"method {request.method} is not allowed on {path!r}" + (
            f": use {allowed}" if allowed else ""
        )
    return str(exc.detail)


def _left(deadline: float) -> float:
    return max(deadline - time.perf_counter(), 0.0)


def _entries(service: InferenceService, name: str | None, version: str | None) -> list[Any]:
    """The versions a statistics request names: all, a model's, or one."""
    if name is None:
        return sorted(service.models.entries(), key=lambda e: (e.name, e.version))
    if version is not None:
        return [service.models.get(name, version)]
    versions = service.models.versions(name)
    if not versions:
        service.models.get(name)  # raises NotFound with the loaded names
    return [service.models.get(name, v) for v in versions]


def _lookup(service: InferenceService, name: str, version: str | None) -> Any:
    """The named version, else the default one (metadata never draws an A/B choice)."""
    return service.models.get(name, version)


def infer_response(payload: dict, result: Any, binary_out: set[str]) -> Response:
    requested = [o.get("name") for o in payload.get("outputs") or [] if isinstance(o, dict)]
    names = result.output_names
    if requested:
        unknown = [n for n in requested if n not in names]
        if unknown:
            raise BadRequest(f"model {result.model!r} has no output {unknown[0]!r}: {names}")
    outputs, blobs = [], []
    for name, array in zip(names, result.outputs, strict=True):
        if requested and name not in requested:
            continue
        if "*" in binary_out or name in binary_out:
            raw = to_raw(array)
            tensor = {
                "name": name,
                "datatype": v2_datatype(array.dtype),
                "shape": list(array.shape),
                "parameters": {"binary_data_size": len(raw)},
            }
            blobs.append(raw)
        else:
            tensor = to_json(name, array)
        outputs.append(tensor)
    body: dict[str, Any] = {
        "model_name": result.model,
        "model_version": result.version,
        "outputs": outputs,
    }
    if "id" in payload:
        body["id"] = payload["id"]
    head = json.dumps(body).encode()
    headers = {"x-model-version": result.version}
    if blobs:
        headers[HEADER_LENGTH] = str(len(head))
        return Response(
            head + b"".join(blobs), media_type="application/octet-stream", headers=headers
        )
    return Response(head, media_type="application/json", headers=headers)


def _add_repository(app: FastAPI, service: InferenceService) -> None:
    @app.post("/v2/repository/index")
    async def index() -> list:
        return service.models.index()

    @app.post("/v2/repository/models/{name}/load")
    async def load(name: str, request: Request) -> dict:
        params = await _params(request)
        source = params.get("source")
        if not isinstance(source, str) or not source:
            raise BadRequest(
                "load needs parameters.source: null, task:TASK[/MODEL] or a model file path"
            )
        version = str(params.get("version") or "1")
        weight = params.get("weight")
        entry = await asyncio.to_thread(
            service.models.load,
            name,
            source,
            version,
            float(weight) if weight is not None else None,
            bool(params.get("default", False)),
        )
        log.info("model loaded", extra={"model": name, "version": entry.version, "source": source})
        return {"name": name, "version": entry.version, "state": "READY"}

    @app.post("/v2/repository/models/{name}/unload")
    async def unload(name: str, request: Request) -> dict:
        params = await _params(request)
        version = params.get("version")
        gone = await asyncio.to_thread(
            service.models.unload, name, str(version) if version is not None else None
        )
        log.info("model unloaded", extra={"model": name, "versions": gone})
        return {"name": name, "unloaded": gone}

    @app.post("/v2/repository/models/{name}/weights")
    async def weights(name: str, request: Request) -> dict:
        params = await _params(request)
        try:
            values = {str(k): float(v) for k, v in params.items()}
        except (TypeError, ValueError):
            raise BadRequest("weights are parameters {version: weight >= 0}") from None
        service.models.set_weights(name, values)
        return {"name": name, "weights": values}


async def _params(request: Request) -> dict:
    body = await request.body()
    if not body:
        return {}
    try:
        payload = json.loads(body)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    params = payload.get("parameters", {}) if isinstance(payload, dict) else None
    if not isinstance(params, dict):
        raise BadRequest("expected a JSON object with a 'parameters' object")
    return params
