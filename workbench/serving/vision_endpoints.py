"""`POST /api/v1/classify` and `/api/v1/detect`: image in, labels or boxes out, with the
pre- and post-processing of the image_classification and object_detection tasks.

Options: `task_model` (which task model's preprocessing to use; default: the served
artifact's own task model, else the task's default model), `top_k` (classify, default 5).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from workbench.errors import UserError
from workbench.registry import get_task
from workbench.serving.endpoints import (
    EndpointContext,
    TaskEndpoint,
    read_image,
    request_deadline,
    within,
)
from workbench.serving.errors import BadRequest
from workbench.vision.classify_preprocess import imagenet_classes, top_k


def _task_model(ctx: EndpointContext, task: Any) -> str:
    explicit = ctx.options.get("task_model")
    if explicit:
        return task.check_model(explicit)
    entry = ctx.service.models.get(ctx.model)
    labels = entry.served.labels
    if labels.get("task") == task.name and labels.get("model"):
        return str(labels["model"])
    return task.models[0]


async def _preprocess(pipeline: Any, data: bytes) -> tuple[dict, Any]:
    try:
        return await run_in_threadpool(pipeline.preprocess, [data])
    except UserError as exc:  # not an image, too many pixels...
        raise BadRequest(str(exc)) from None


class ClassifyEndpoint(TaskEndpoint):
    """`POST /api/v1/classify`: an image in, the top-k ImageNet labels out."""

    name = "classify"

    def add_routes(self, app: FastAPI, ctx: EndpointContext) -> None:
        task = get_task("image_classification")
        k = int(ctx.options.get("top_k", 5))
        cache: dict[str, Any] = {}

        def pipeline() -> Any:
            model = _task_model(ctx, task)
            if model not in cache:
                cache[model] = task.pipeline(model)
                if cache[model] is None:
                    raise BadRequest(f"task model {model!r} takes no images: use an ImageNet model")
            return cache[model]

        @app.post("/api/v1/classify")
        async def classify(request: Request) -> dict:
            deadline = request_deadline(request, ctx.service)
            data = await within(deadline, read_image(request, ctx.service), "reading the image")
            feed, _ = await within(deadline, _preprocess(pipeline(), data), "pre-processing")
            result = await ctx.service.infer(ctx.model, feed, deadline=deadline)
            best = top_k(result.outputs[0], k)
            names = imagenet_classes() if result.outputs[0].shape[-1] == 1000 else None
            return {
                "model": result.model,
                "version": result.version,
                "predictions": [
                    {"label": label, "probability": p} for label, p in best.labelled(names)[0]
                ],
                "latency_ms": round(result.total_s * 1000, 3),
            }


class DetectEndpoint(TaskEndpoint):
    """`POST /api/v1/detect`: an image in, boxes in its own pixel coordinates out."""

    name = "detect"

    def add_routes(self, app: FastAPI, ctx: EndpointContext) -> None:
        task = get_task("object_detection")

        @app.post("/api/v1/detect")
        async def detect(request: Request) -> dict:
            deadline = request_deadline(request, ctx.service)
            data = await within(deadline, read_image(request, ctx.service), "reading the image")
            model = _task_model(ctx, task)
            feed, boxes = await within(
                deadline, _preprocess(task.pipeline(model), data), "pre-processing"
            )
            result = await ctx.service.infer(ctx.model, feed, deadline=deadline)
            found = task.postprocess(model, result.outputs[0], boxes)[0]
            return {
                "model": result.model,
                "version": result.version,
                "detections": [
                    {"box_xyxy": [float(v) for v in box], "score": float(s), "class_id": int(c)}
                    for box, s, c in zip(found.boxes, found.scores, found.classes, strict=True)
                ],
                "latency_ms": round(result.total_s * 1000, 3),
            }
