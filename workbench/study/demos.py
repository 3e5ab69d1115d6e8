"""What the exported vision artifacts actually output, for the notebooks to show.

Measured rows say how fast an artifact is and whether it agrees with its source;
these functions run the artifacts themselves -- through the workbench's runtimes,
end to end with the task's own pre- and post-processing -- on real photographs
(classification) or held-out scenes (detection), so a reader sees the predictions
behind the parity figures. Only ONNX and TFLite artifacts are run here: their
runtimes load in any process, whereas TorchScript and SavedModel would pull
PyTorch or TensorFlow into the notebook's kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.devices import parse_device
from workbench.formats import runtime_for
from workbench.registry import get_runtime, get_task
from workbench.runtimes.base import RuntimeOptions, run_in_batches
from workbench.tasks.base import Task
from workbench.vision.classify_preprocess import imagenet_classes
from workbench.vision.detection_metrics import GroundTruth
from workbench.vision.photos import photo_bytes
from workbench.vision.yolo_decode import Detections

DEMO_FORMATS = ("onnx", "tflite")


@dataclass(frozen=True)
class Artifact:
    """One exported artifact named by its result rows."""

    model: str
    source_framework: str
    format: str
    precision: str
    path: str

    @property
    def label(self) -> str:
        return f"{self.source_framework}/{self.format}/{self.precision}"


def artifacts(frame: pd.DataFrame, task: str, model: str | None = None) -> list[Artifact]:
    """The distinct ONNX/TFLite artifacts of `task` (and `model`) with an ok row."""
    if frame.empty:
        return []
    ok = frame[
        (frame["status"] == "ok")
        & (frame["task"] == task)
        & frame["format"].isin(DEMO_FORMATS)
        & frame["artifact_path"].notna()
    ]
    if model is not None:
        ok = ok[ok["model"] == model]
    columns = ["model", "source_framework", "format", "precision", "artifact_path"]
    unique = ok[columns].drop_duplicates().sort_values(columns)
    return [Artifact(*row) for row in unique.itertuples(index=False)]


def _outputs(task: Task, artifact: Artifact, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The artifact's outputs for `feed` on the CPU, through the workbench's runtime."""
    specs = task.input_specs(artifact.model, artifact.source_framework)
    runtime = get_runtime(runtime_for(artifact.format))
    options = RuntimeOptions(parse_device("cpu"), format=artifact.format, inputs=specs)
    loaded = runtime.load(Path(artifact.path), options)
    try:
        return run_in_batches(loaded, feed)
    finally:
        loaded.close()


def photo_predictions(
    frame: pd.DataFrame, photos: list[str], model: str = "efficientnet_lite0", top: int = 3
) -> pd.DataFrame:
    """Top-`top` ImageNet classes per bundled photo for every ONNX/TFLite artifact of
    `model` in `frame`, through the task's own pipeline (decode, resize, crop, normalize;
    softmax, top-k)."""
    task = get_task("image_classification")
    names = imagenet_classes()
    rows = []
    for artifact in artifacts(frame, "image_classification", model):
        pipeline = task.pipeline(model, artifact.source_framework)
        if pipeline is None:
            continue
        feed, meta = pipeline.preprocess([photo_bytes(p) for p in photos])
        best = pipeline.postprocess(_outputs(task, artifact, feed), meta)
        for photo, labelled in zip(photos, best.labelled(names), strict=True):
            rows.append(
                {
                    "photo": photo,
                    "artifact": artifact.label,
                    **{
                        f"top{k + 1}": f"{name} ({prob:.2f})"
                        for k, (name, prob) in enumerate(labelled[:top])
                    },
                }
            )
    return pd.DataFrame(rows)


@dataclass
class DetectionExample:
    """One held-out scene with its ground truth and an artifact's detections."""

    image: np.ndarray
    truth: GroundTruth
    detections: Detections
    artifact: str


def detection_examples(
    frame: pd.DataFrame, model: str | None = None, n: int = 2
) -> list[DetectionExample]:
    """`n` held-out scenes run end to end through each ONNX/TFLite detector artifact of
    `model` (default: the first measured) -- letterbox, model, threshold + NMS, boxes
    back in original pixels."""
    task = get_task("object_detection")
    found_artifacts = artifacts(frame, "object_detection", model)
    if not found_artifacts:
        return []
    model = found_artifacts[0].model
    scenes = task.scenes(model, n, seed=0, stream="held_out")
    examples = []
    for artifact in [a for a in found_artifacts if a.model == model]:
        feed, boxes = task.preprocess(model, [s.image for s in scenes], artifact.source_framework)
        output = _outputs(task, artifact, feed)[0]
        found = task.postprocess(model, output, boxes)
        for scene, detections in zip(scenes, found, strict=True):
            truth = GroundTruth(scene.boxes, scene.classes)
            examples.append(DetectionExample(scene.image, truth, detections, artifact.label))
    return examples
