"""`POST /api/v1/moderate`: text and/or an image in, the moderation decision out.

Mounted with `--endpoint moderate=MODE[,policy=FILE.json][,int8=STAGE+STAGE][,threads=N]`:
MODE is `sequential` or `concurrent` (the moderator's own per-model batchers); the five
stage models load once at start-up (workbench.moderation). Bodies:
- JSON: `{"text": "...", "image_base64": "...", "image_url": "..."}` (any of them; the URL
  only where the server's URL policy allows it);
- multipart/form-data: a `text` field and/or an `image` (or `file`) upload.
Bad input answers 4xx with the reason (nothing to moderate, text over the cap, a 1x1 or
huge or unreadable image, bad base64, bad JSON, unsupported content type); a stage that
fails is named in the 200 answer's `failed_stages`, and the decision is then never safe.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from workbench.errors import UserError
from workbench.moderation.pipeline import Moderator
from workbench.moderation.policy import DEFAULT_POLICY, Policy
from workbench.moderation.request import decode_b64, make_request
from workbench.moderation.stages import STAGES, Variant
from workbench.serving.endpoints import EndpointContext, TaskEndpoint, request_deadline, within
from workbench.serving.errors import BadRequest, Unsupported
from workbench.serving.urlfetch import fetch_image


def moderator_from(ctx: EndpointContext) -> Moderator:
    """The moderator an endpoint config asks for (a UserError for a bad option)."""
    known = {"policy", "int8", "threads"}
    unknown = sorted(set(ctx.options) - known)
    if unknown:
        raise UserError(f"moderate endpoint: unknown options {unknown}; known: {sorted(known)}")
    policy = DEFAULT_POLICY
    if "policy" in ctx.options:
        path = Path(ctx.options["policy"])
        try:
            policy = Policy.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise UserError(f"moderate endpoint: cannot read policy {path}: {exc}") from None
    int8 = [s for s in ctx.options.get("int8", "").split("+") if s]
    variant = Variant("int8:" + "+".join(int8) if int8 else "fp32", {s: "int8" for s in int8})
    bad = sorted(set(int8) - set(STAGES))
    if bad:
        raise UserError(f"moderate endpoint: int8 names unknown stages {bad}")
    threads = int(ctx.options["threads"]) if "threads" in ctx.options else None
    return Moderator(ctx.model, variant, policy, threads)


async def read_moderation(request: Request, ctx: EndpointContext) -> tuple[Any, bytes | None]:
    """(text, image bytes or None) from a JSON or multipart body."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            payload = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequest(f"request body is not valid JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise BadRequest("expected a JSON object with text, image_base64 and/or image_url")
        image = None
        if payload.get("image_base64") is not None:
            if not isinstance(payload["image_base64"], str):
                raise BadRequest("image_base64 must be a string")
            image = decode_b64(payload["image_base64"])
        elif payload.get("image_url") is not None:
            image = await fetch_image(payload["image_url"], ctx.service.settings.url_policy)
        return payload.get("text"), image
    if kind == "multipart/form-data":
        form = await request.form()
        text = form.get("text")
        if text is not None and not isinstance(text, str):
            raise BadRequest("the multipart field 'text' must be a plain field, not a file")
        upload = form.get("image") or form.get("file")
        if isinstance(upload, str):
            raise BadRequest("the multipart field 'image' must be a file upload")
        return text, (await upload.read()) if upload is not None else None
    raise Unsupported(
        f"content-type {kind or 'none'!r}: send application/json (text, image_base64) or "
        "multipart/form-data (text, image)"
    )


class ModerateEndpoint(TaskEndpoint):
    """`POST /api/v1/moderate`: the five-stage moderator, loaded once at mount."""

    name = "moderate"

    def add_routes(self, app: FastAPI, ctx: EndpointContext) -> None:
        moderator = moderator_from(ctx)
        if not hasattr(app.state, "moderators"):
            app.state.moderators = {}
        app.state.moderators["moderate"] = moderator  # tests and notebooks reach the stages

        @app.post("/api/v1/moderate")
        async def moderate(request: Request) -> dict:
            began = time.perf_counter()
            deadline = request_deadline(request, ctx.service)
            text, image = await within(deadline, read_moderation(request, ctx), "reading")
            try:
                checked = await run_in_threadpool(make_request, text, image, moderator.policy)
            except UserError as exc:
                raise BadRequest(str(exc)) from None
            decision = await within(
                deadline, run_in_threadpool(moderator.moderate, checked), "moderating"
            )
            decision["latency_ms"]["request"] = (time.perf_counter() - began) * 1e3
            return decision
