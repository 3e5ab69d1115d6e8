"""Task endpoints (`/api/v1/...`) on top of the v2 server, registered by name.

A task endpoint turns a domain request (an image, a text) into a model feed, runs it
through the server's model registry and batcher (`ctx.service.infer`), and answers in
the domain's terms. Each is a `TaskEndpoint` class whose `add_routes` adds its routes to
the app; the server mounts the ones named on the command line
(`workbench serve --endpoint NAME=MODEL`), looking them up in `workbench.registry.ENDPOINTS`
like any other plugin (so `workbench list` shows them and listing imports no framework).

Adding one (e.g. in workbench/serving/moderate_endpoint.py, then one line in the built-in
table of `workbench/registry.py`, or from another package the entry point
`[project.entry-points."workbench.endpoints"] moderate = "my_pkg.mod:Moderate"`):

    from fastapi import FastAPI, Request
    from workbench.serving.endpoints import EndpointContext, TaskEndpoint

    class Moderate(TaskEndpoint):
        name = "moderate"

        def add_routes(self, app: FastAPI, ctx: EndpointContext) -> None:
            @app.post("/api/v1/moderate")
            async def moderate(request: Request) -> dict:
                feed = ...  # from await request.json() / request.form()
                result = await ctx.service.infer(ctx.model, feed)
                return {"model": result.model, "version": result.version, ...}

`ctx.model` is the registry model the endpoint serves, `ctx.options` its extra
`KEY=VALUE` settings, `ctx.service` the InferenceService (its settings hold the URL-fetch
policy, `read_image` below reads an uploaded, base64 or, when allowed, fetched image).
Raise `workbench.serving.errors` (BadRequest, ...) for a 4xx with a message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from fastapi import FastAPI, Request

from workbench.errors import UserError
from workbench.registry import ENDPOINTS
from workbench.serving.errors import BadRequest, Timeout, Unsupported
from workbench.serving.service import InferenceService
from workbench.serving.urlfetch import fetch_image


@dataclass(frozen=True)
class EndpointConfig:
    """One endpoint to mount: its registered name, the model it serves, its options."""

    name: str
    model: str
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> EndpointConfig:
        """`NAME=MODEL[,KEY=VALUE...]`, e.g. `classify=effnet,task_model=efficientnet_lite0`."""
        name, sep, rest = text.partition("=")
        parts = [p for p in rest.split(",") if p]
        if not sep or not name or not parts or "=" in parts[0]:
            raise UserError(
                f"--endpoint must look like NAME=MODEL[,KEY=VALUE...] (e.g. classify=effnet), "
                f"got {text!r}"
            )
        options = {}
        for part in parts[1:]:
            key, eq, value = part.partition("=")
            if not eq or not key:
                raise UserError(f"--endpoint option {part!r} must be KEY=VALUE")
            options[key] = value
        return cls(name, parts[0], options)


@dataclass(frozen=True)
class EndpointContext:
    """What an endpoint's routes serve: the service, the model's name, its options."""

    service: InferenceService
    model: str
    options: dict[str, str]


class TaskEndpoint(ABC):
    """A task endpoint: its `name` (the `--endpoint NAME`) and the routes it adds.

    A class with a name, like tasks, runtimes and passes, so the one `Registry` holds it:
    built-in table, `workbench.endpoints` entry points, `$WORKBENCH_EXTRA_ENDPOINTS`."""

    name: ClassVar[str]

    @abstractmethod
    def add_routes(self, app: FastAPI, ctx: EndpointContext) -> None:
        """Add this endpoint's routes to `app`, serving `ctx.model`."""


def mount(app: FastAPI, service: InferenceService, configs: Sequence[EndpointConfig]) -> None:
    """Add each configured endpoint's routes; an unknown name is a one-line UserError
    that lists the registered ones."""
    for config in configs:
        endpoint = ENDPOINTS.create(config.name)
        endpoint.add_routes(app, EndpointContext(service, config.model, dict(config.options)))


T = TypeVar("T")


def request_deadline(request: Request, service: InferenceService) -> float:
    """When a task request's --timeout-s runs out (perf_counter): from its arrival at the
    front (the admission middleware stamps it), so reading the body, fetching an image and
    pre-processing count against it as they do for the v2 infer route."""
    return service.deadline(request.scope.get("state", {}).get("arrived"))


async def within(deadline: float, work: Awaitable[T], stage: str) -> T:
    """`work`, or a 504 naming `stage` when the request's deadline passes first."""
    left = max(deadline - time.perf_counter(), 0.0)
    try:
        return await asyncio.wait_for(work, left)
    except TimeoutError:
        raise Timeout(
            f"no answer within the request's --timeout-s (ran out while {stage}): the "
            "server is overloaded, the client is slow to send, or the work is slow"
        ) from None


async def read_image(request: Request, service: InferenceService) -> bytes:
    """The image of a task request: a multipart file (field `image` or `file`), a JSON
    body with `image_base64`, or (only when the server allows URLs) `image_url`."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = await request.form()
        upload = form.get("image") or form.get("file")
        if upload is None or isinstance(upload, str):
            raise BadRequest("multipart request has no file field 'image' (or 'file')")
        data = await upload.read()
        if not data:
            raise BadRequest("the uploaded image is empty (0 bytes)")
        return data
    if kind == "application/json":
        try:
            payload = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequest(f"request body is not valid JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise BadRequest("expected a JSON object with image_base64 or image_url")
        if "image_base64" in payload:
            try:
                return base64.b64decode(payload["image_base64"], validate=True)
            except (binascii.Error, ValueError, TypeError):
                raise BadRequest("image_base64 is not valid base64") from None
        if "image_url" in payload:
            return await fetch_image(payload["image_url"], service.settings.url_policy)
        raise BadRequest("expected image_base64 (or image_url where the server allows it)")
    raise Unsupported(
        f"content-type {kind or 'none'!r}: send multipart/form-data with an 'image' file, "
        "or application/json with image_base64"
    )
