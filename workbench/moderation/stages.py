"""The five moderation stages, each one real model on ONNX Runtime with `run(items) ->
findings`, one finding per item. Text stages take strings, image stages HxWx3 uint8 RGB.

- ``profanity``: alt-profanity-check converted to ONNX -> P(offensive);
- ``sentiment``: the text_classification task's MiniLM (reviews, 3 classes);
- ``sensitive``: the ner task's MiniLM -> entities as character spans (long texts are
  split into windows at whitespace so nothing past the model's 128 tokens goes unread);
- ``nsfw``: Yahoo's Open-NSFW -> P(NSFW);
- ``objects``: the object_detection task's YOLOv8n-style detector -> boxes and classes.

Which artifact each stage loads is a `Variant` (FP32, or the INT8 artifact where its
parity holds). A stage's model is loaded once; ORT sessions are safe to call from
several threads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from exporters.base import ArtifactRequest, export
from workbench.errors import UserError
from workbench.moderation import nsfw
from workbench.moderation.profanity import OnnxProfanity
from workbench.nlp.data import SENTIMENTS
from workbench.registry import get_task
from workbench.tasks.ner import entities
from workbench.tasks.text_classification import softmax
from workbench.tasks.text_task import tokenizer
from workbench.vision.scenes import make_scenes

TEXT_STAGES = ("profanity", "sentiment", "sensitive")
IMAGE_STAGES = ("nsfw", "objects")
STAGES = TEXT_STAGES + IMAGE_STAGES
PRECISIONS = ("fp32", "int8")
SEQ_CUT = 128  # tokens per sentiment input and per NER window
NER_WINDOW_CHARS = 300  # a window of tweet-like text stays well under SEQ_CUT tokens
DETECTOR = "yolov8n_320"


@dataclass(frozen=True)
class Variant:
    """The precision each stage's artifact is loaded at (profanity has only its FP32
    TF-IDF graph: a sparse linear model has nothing INT8 would speed up)."""

    name: str = "fp32"
    precisions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for stage, precision in self.precisions.items():
            if stage not in STAGES:
                raise UserError(f"variant {self.name!r}: unknown stage {stage!r}; stages: {STAGES}")
            if precision not in PRECISIONS:
                raise UserError(
                    f"variant {self.name!r}: {stage} precision {precision!r} is not one of "
                    f"{PRECISIONS}"
                )
        if self.precisions.get("profanity", "fp32") != "fp32":
            raise UserError("the profanity stage has only an FP32 artifact")

    def precision(self, stage: str) -> str:
        return self.precisions.get(stage, "fp32")


FP32 = Variant()


def session(path: Path | str, threads: int) -> Any:
    # lazy: onnxruntime
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def task_artifact(task: str, model: str, precision: str) -> Path:
    """A task's ONNX artifact from the export cache (exported now if missing)."""
    wanted = {
        "fp32": "fp32",
        "int8": "int8-static" if task == "object_detection" else "int8-dynamic",
    }
    manifest = export(ArtifactRequest(task, model, "torch", "onnx", wanted[precision]))
    if manifest.get("status") != "ok":
        raise UserError(f"could not export {task}/{model} {precision}: {manifest.get('error')}")
    return Path(manifest["path"])


class Stage:
    """One model of the pipeline: `run(items)` gives one finding (a dict) per item."""

    name: ClassVar[str]
    branch: ClassVar[str]  # "text" or "image"

    def __init__(self, precision: str = "fp32", threads: int = 1) -> None:
        self.precision = precision
        self.threads = threads

    def run(self, items: Sequence[Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"stage": self.name, "precision": self.precision, "artifact": str(self.path)}

    path: Path | str = ""


class ProfanityStage(Stage):
    name = "profanity"
    branch = "text"

    def __init__(self, precision: str = "fp32", threads: int = 1) -> None:
        super().__init__(precision, threads)
        self.model = OnnxProfanity(threads)
        self.path = self.model.path

    def run(self, items: Sequence[str]) -> list[dict[str, Any]]:
        return [{"score": float(s)} for s in self.model.scores(list(items))]


class SentimentStage(Stage):
    name = "sentiment"
    branch = "text"

    def __init__(self, precision: str = "fp32", threads: int = 1) -> None:
        super().__init__(precision, threads)
        self.path = task_artifact("text_classification", "minilm_classifier", precision)
        self.session = session(self.path, threads)

    def run(self, items: Sequence[str]) -> list[dict[str, Any]]:
        batch = tokenizer(SEQ_CUT).encode(list(items), "longest")
        probs = softmax(self.session.run(None, batch.feed())[0])
        return [
            {
                "label": SENTIMENTS[int(p.argmax())],
                "probabilities": {s: float(v) for s, v in zip(SENTIMENTS, p, strict=True)},
                "truncated": i in batch.truncated,
            }
            for i, p in enumerate(probs)
        ]


def windows(text: str, size: int = NER_WINDOW_CHARS) -> list[tuple[int, str]]:
    """`text` cut at whitespace into pieces of at most `size` characters (a longer word is
    cut inside), each with its start offset: every character lies in exactly one piece."""
    pieces: list[tuple[int, str]] = []
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            space = text.rfind(" ", start + 1, end)
            end = space if space > start else end
        pieces.append((start, text[start:end]))
        start = end
    return pieces or [(0, text)]


class SensitiveStage(Stage):
    name = "sensitive"
    branch = "text"

    def __init__(self, precision: str = "fp32", threads: int = 1) -> None:
        super().__init__(precision, threads)
        self.path = task_artifact("ner", "minilm_ner", precision)
        self.session = session(self.path, threads)

    def run(self, items: Sequence[str]) -> list[dict[str, Any]]:
        owners, starts, pieces = [], [], []
        for i, text in enumerate(items):
            for start, piece in windows(text):
                owners.append(i)
                starts.append(start)
                pieces.append(piece)
        batch = tokenizer(SEQ_CUT).encode(pieces, "longest")
        found = entities(batch, self.session.run(None, batch.feed())[0])
        out: list[dict[str, Any]] = [{"entities": []} for _ in items]
        for owner, start, ents in zip(owners, starts, found, strict=True):
            out[owner]["entities"].extend(
                {"type": e.type, "start": start + e.start, "end": start + e.end, "text": e.text}
                for e in ents
            )
        return out


class NsfwStage(Stage):
    name = "nsfw"
    branch = "image"

    def __init__(self, precision: str = "fp32", threads: int = 1) -> None:
        super().__init__(precision, threads)
        self.path = nsfw.fp32_path() if precision == "fp32" else nsfw.int8_path(calibration())
        self.session = session(self.path, threads)

    def run(self, items: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        probs = self.session.run(None, {nsfw.INPUT: nsfw.preprocess(list(items))})[0]
        return [{"score": float(p[nsfw.NSFW_INDEX])} for p in probs]


def calibration() -> list[np.ndarray]:
    """Calibration images for the static INT8 NSFW model: generated scenes only, so the
    real photos of the evaluation set are never seen by the calibrator."""
    return [s.image for s in make_scenes(16, 320, seed=4242, stream="calibration")]


class ObjectStage(Stage):
    name = "objects"
    branch = "image"

    def __init__(self, precision: str = "fp32", threads: int = 1) -> None:
        super().__init__(precision, threads)
        self.task = get_task("object_detection")
        self.path = task_artifact("object_detection", DETECTOR, precision)
        self.session = session(self.path, threads)

    def run(self, items: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        feed, boxes = self.task.preprocess(DETECTOR, list(items))
        output = self.session.run(None, feed)[0]
        found = self.task.postprocess(DETECTOR, output, boxes)
        names = self.task.classes
        return [
            {
                "detections": [
                    {"class": names[int(c)], "score": float(s), "box": [float(v) for v in b]}
                    for b, s, c in zip(d.boxes, d.scores, d.classes, strict=True)
                ]
            }
            for d in found
        ]


STAGE_CLASSES: dict[str, type[Stage]] = {
    cls.name: cls
    for cls in (ProfanityStage, SentimentStage, SensitiveStage, NsfwStage, ObjectStage)
}


def build_stages(variant: Variant = FP32, threads: int | None = None) -> dict[str, Stage]:
    """Every stage loaded at the variant's precisions, `threads` intra-op threads each
    (default 1: stages run side by side in concurrent mode)."""
    threads = threads or 1
    return {name: cls(variant.precision(name), threads) for name, cls in STAGE_CLASSES.items()}


def redact(text: str, spans: Sequence[tuple[int, int, str]]) -> str:
    """`text` with each [start, end) span replaced by [LABEL] (spans may overlap)."""
    out, last = [], 0
    for start, end, label in sorted(spans):
        if start < last:
            continue
        out.append(text[last:start])
        out.append(f"[{re.sub(r'[^A-Za-z0-9_]', '_', label).upper()}]")
        last = end
    out.append(text[last:])
    return "".join(out)


def cores() -> int:
    return len(os.sched_getaffinity(0))
