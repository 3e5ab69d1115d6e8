"""Object detection (guide §6.2): a YOLOv8-style detector trained here on generated scenes.

The detector (`workbench.models.yolo_torch`, YOLOv8n widths and depths: C2f backbone,
SPPF, PAN-FPN neck, decoupled anchor-free DFL head) is trained once per machine on
generated scenes -- four shape classes on real photo, terrain and procedural
backgrounds (`workbench.vision.scenes`) -- and its weights are cached in the workspace.
The Keras model (`workbench.models.yolo_keras`) is the same network layer for layer
and receives the very same weights (through a .npz file: PyTorch and TensorFlow never
share a process). So detections mean something: mAP@0.5 against the scenes' ground
truth for every artifact, and box-level F1 between an artifact and its source.

Models differ only in input size (the network is fully convolutional and trained at
128 px on objects of 10..64 px, which every input size keeps): ``yolov8n_320`` is the
benchmark default (CPU-friendly), ``yolov8n_640`` is YOLO's usual 640 x 640.

Inputs: "images", float32 in [0, 1], letterboxed RGB -- NCHW for PyTorch, NHWC for
Keras. Output: the raw head ``[B, 4 + C, N]`` (cx, cy, w, h normalized by the input
size, then class scores); decoding, NMS and mapping back to the original image run
outside the model (`postprocess`), so artifacts stay plain tensor graphs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from workbench.models.yolo_config import YoloConfig
from workbench.parity import output_errors
from workbench.procs import cached_npz
from workbench.runtimes.tf_runtime import require_keras
from workbench.signature import TensorSpec
from workbench.tasks.base import Pipeline, Preset, Task
from workbench.vision.detection_metrics import GroundTruth, box_f1, evaluate
from workbench.vision.image_io import encode_image
from workbench.vision.letterbox import Letterbox, letterbox_batch, preprocess, to_model_input
from workbench.vision.scenes import CLASSES, make_scenes, scene
from workbench.vision.yolo_decode import CONF_THRESHOLD, IOU_THRESHOLD, Detections, decode_v8
from workbench.workspace import weights_dir

log = logging.getLogger(__name__)
MODELS = {"yolov8n_320": 320, "yolov8n_640": 640}
ARCH = {"widths": (16, 32, 64, 128, 256), "depths": (1, 2, 2, 1), "reg_max": 16}
TRAIN_SIZE = 128
TRAIN_STEPS = 1000
TRAIN_BATCH = 16
TRAIN_SEED = 0
WEIGHTS_VERSION = "1"  # bump when the architecture, data or training change (retrains)
MAP_CONF_THRESHOLD = 0.001  # mAP is computed over the whole precision-recall curve


def config(image_size: int) -> YoloConfig:
    return YoloConfig(num_classes=len(CLASSES), image_size=image_size, **ARCH)


def weights_path(steps: int = TRAIN_STEPS, seed: int = TRAIN_SEED) -> Path:
    name = f"object_detection-yolov8n-w{WEIGHTS_VERSION}-{TRAIN_SIZE}px-{steps}-{seed}"
    return weights_dir() / f"{name}.npz"


def trained_weights(steps: int = TRAIN_STEPS, seed: int = TRAIN_SEED) -> dict[str, np.ndarray]:
    """The detector's trained weights (BatchNorm folded, NumPy arrays keyed like the
    PyTorch state dict): trained once per machine, deterministically, then cached."""
    producer = "workbench.tasks.object_detection:train_to"
    return cached_npz(weights_path(steps, seed), producer, str(steps), str(seed))


def training_batch(step: int, batch: int = TRAIN_BATCH, size: int = TRAIN_SIZE, seed: int = 0):
    """Batch `step` of the training stream: (NCHW images, boxes in input px, classes)."""
    scenes = make_scenes(batch, size, seed=seed * 1_000_003 + step, stream="train")
    images, geometry = letterbox_batch([s.image for s in scenes], size)
    boxes = [g.to_input(s.boxes) for s, g in zip(scenes, geometry, strict=True)]
    return to_model_input(images, "nchw"), boxes, [s.classes for s in scenes]


def train_to(path: str, steps: int | str = TRAIN_STEPS, seed: int | str = TRAIN_SEED) -> None:
    """Train the detector and write its fused weights to `path` (.npz, atomically)."""
    steps, seed = int(steps), int(seed)

    # lazy: torch (via workbench.models.yolo_torch)
    import torch

    from workbench.models.yolo_torch import fused_state, train

    # Intra-op threads: $WORKBENCH_TRAIN_THREADS, else at most 2 (spinning OpenMP threads
    # on a busy small machine make training many times slower, never faster).
    torch.set_num_threads(
        int(os.environ.get("WORKBENCH_TRAIN_THREADS", min(2, os.cpu_count() or 1)))
    )
    started = time.perf_counter()
    log.info(
        "object_detection: training the detector once (%d steps of %d scenes at %d px); "
        "cached in %s",
        steps,
        TRAIN_BATCH,
        TRAIN_SIZE,
        path,
    )
    model = train(
        config(TRAIN_SIZE), lambda step: training_batch(step, seed=seed), steps, seed=seed
    )
    state = fused_state(model)
    state["__meta_train_seconds"] = np.asarray(time.perf_counter() - started)
    state["__meta_torch_threads"] = np.asarray(torch.get_num_threads())
    tmp = Path(path).with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **state)
    os.replace(tmp, path)


def _weights_only(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v for k, v in state.items() if not k.startswith("__meta")}


@dataclass
class DetectionLabels:
    """Ground truth of held-out scenes: true boxes in each original image's pixels, and
    how each image was letterboxed into the model input."""

    truths: list[GroundTruth]
    letterboxes: list[Letterbox]


class ObjectDetectionTask(Task):
    """Detect circles, squares, triangles and crosses in generated scenes."""

    name = "object_detection"
    models = tuple(MODELS)
    # Bump on any change to the models' code (workbench/models/, workbench/vision/): the
    # artifact cache key covers this module's source only.
    version = "2"
    parity_samples = 16  # scenes: enough boxes (~50) for box F1, cheap at 640 px on 2 cores
    # OpenVINO IR, bf16 and NNCF INT8 (opt-in passes) in all-format sweeps (quick, full):
    # NNCF's INT8 of yolov8n_320 kept box F1 within 0.1 point of FP32 where ORT's static
    # INT8 lost 2.5, so "what to ship" must see it.
    pass_params = {"openvino_ir": {}, "openvino_bf16": {}, "openvino_int8_static": {}}
    presets = {
        "ci": Preset(
            models=("yolov8n_320",),
            frameworks=("torch",),
            formats=("onnx",),
            precisions=("fp32", "int8-static"),
            batch_sizes=(1, 4),
        ),
        "quick": Preset(models=("yolov8n_320",), batch_sizes=(1, 8, 32)),
        "full": Preset(
            models=("yolov8n_640",),
            batch_sizes=(1, 2, 4, 8, 16, 32, 64),
            devices=("cpu", "cuda"),
        ),
    }
    classes = CLASSES

    def image_size(self, model: str) -> int:
        return MODELS[self.check_model(model)]

    def input_specs(self, model: str, framework: str = "torch") -> list[TensorSpec]:
        s = self.image_size(model)
        shape = ("batch", s, s, 3) if framework == "keras" else ("batch", 3, s, s)
        return [TensorSpec("images", "float32", shape)]

    def _layout(self, framework: str) -> str:
        return "nhwc" if framework == "keras" else "nchw"

    def scenes(self, model: str, n: int, seed: int = 0, stream: str = "bench") -> list[Any]:
        """Generated scenes (original images of varied sizes, with ground truth)."""
        return make_scenes(n, self.image_size(model), seed=seed, stream=stream)

    def raw_images(self, model: str, n: int, seed: int = 0) -> list[np.ndarray]:
        """Original (un-preprocessed) images of generated scenes."""
        return [s.image for s in self.scenes(model, n, seed)]

    def pipeline(self, model: str, framework: str = "torch") -> Pipeline:
        """Encoded JPEG scenes (as a client sends them) -> decode + letterbox -> model ->
        decode + threshold + class-aware NMS + boxes back in original pixels."""
        return Pipeline(
            raw_inputs=lambda n, seed: [
                _encoded_scene(self.image_size(model), seed, i % RAW_DISTINCT) for i in range(n)
            ],
            preprocess=lambda raw: self.preprocess(model, raw, framework),
            postprocess=lambda outputs, boxes: self.postprocess(model, outputs[0], boxes),
        )

    def preprocess(
        self, model: str, images: Sequence[Any], framework: str = "torch"
    ) -> tuple[dict[str, np.ndarray], list[Letterbox]]:
        """Original images (arrays, PIL images or paths) -> model feed and letterboxes."""
        batch, boxes = preprocess(images, self.image_size(model), self._layout(framework))
        return {"images": batch}, boxes

    def postprocess(
        self,
        model: str,
        output: np.ndarray,
        letterboxes: Sequence[Letterbox] | None = None,
        conf_threshold: float = CONF_THRESHOLD,
        iou_threshold: float = IOU_THRESHOLD,
    ) -> list[Detections]:
        """Raw head output -> detections per image (original pixels when letterboxes are
        given, else input pixels): threshold, class-aware NMS, map back, clip."""
        return decode_output(
            output, self.image_size(model), letterboxes, conf_threshold, iou_threshold
        )

    def _feed(self, model: str, n: int, seed: int, stream: str, framework: str):
        scenes = self.scenes(model, n, seed, stream)
        feed, boxes = self.preprocess(model, [s.image for s in scenes], framework)
        return feed, boxes, scenes

    def make_inputs(
        self, model: str, batch_size: int, seed: int = 0, framework: str = "torch"
    ) -> dict[str, np.ndarray]:
        return self._feed(model, batch_size, seed, "bench", framework)[0]

    def calibration_inputs(
        self, model: str, n: int, framework: str = "torch"
    ) -> dict[str, np.ndarray]:
        return self._feed(model, n, 0, "calibration", framework)[0]

    def held_out(
        self, model: str, n: int, framework: str = "torch"
    ) -> tuple[dict[str, np.ndarray], DetectionLabels]:
        """Held-out scenes (never trained on) and their ground truth."""
        feed, boxes, scenes = self._feed(model, n, 0, "held_out", framework)
        truths = [GroundTruth(s.boxes, s.classes) for s in scenes]
        return feed, DetectionLabels(truths, boxes)

    def build_torch(self, model: str) -> Any:
        # lazy: torch (via workbench.models.yolo_torch)
        from workbench.models.yolo_torch import build_fused

        return build_fused(config(self.image_size(model)), _weights_only(trained_weights()))

    def build_keras(self, model: str) -> Any:
        require_keras(f"the Keras model {model!r} of task {self.name!r}")
        # lazy: keras (via workbench.models.yolo_keras)
        from workbench.models.yolo_keras import build_yolo_keras  # imports keras

        return build_yolo_keras(
            config(self.image_size(model)), _weights_only(trained_weights()), name=model
        )

    def evaluate(self, output: np.ndarray, labels: DetectionLabels) -> dict[str, float]:
        """mAP@0.5 and per-class AP of raw outputs on held-out scenes (detections down to
        score 0.001), with precision, recall and F1 at the operating threshold 0.25."""
        output = np.asarray(output, dtype=np.float32)
        detections = decode_output(
            output, input_size_of(output), labels.letterboxes, MAP_CONF_THRESHOLD
        )
        return evaluate(
            detections, labels.truths, 0.5, num_classes=len(CLASSES), score_threshold=CONF_THRESHOLD
        )

    def accuracy(self, outputs: np.ndarray, labels: Any) -> float:
        """mAP@0.5 of the raw head outputs against the held-out scenes' ground truth."""
        return self.evaluate(outputs, labels)["map50"]

    def parity(
        self, reference: list[np.ndarray], candidate: list[np.ndarray], model: str | None = None
    ) -> dict[str, Any]:
        """Box-level F1 (same class, IoU >= 0.5) between the artifact's decoded detections
        and the source model's, plus the raw output errors."""
        ref = np.asarray(reference[0])
        cand = np.asarray(candidate[0], dtype=np.float32).reshape(ref.shape)
        size = input_size_of(ref)
        ref_det, cand_det = decode_output(ref, size), decode_output(cand, size)
        return {
            **output_errors(reference, candidate),
            "metric_name": "box_f1",
            "metric_value": box_f1(ref_det, cand_det),
            "reference_boxes": sum(len(d) for d in ref_det),
            "candidate_boxes": sum(len(d) for d in cand_det),
        }


RAW_DISTINCT = 8  # distinct encoded scenes per raw batch (generating scenes is slow)


@cache
def _encoded_scene(size: int, seed: int, index: int) -> bytes:
    """One generated end-to-end scene as JPEG bytes, made once per process."""
    return encode_image(scene(size, seed, index, "bench").image, "JPEG", quality=90)


def input_size_of(output: np.ndarray) -> int:
    """The input size S of a raw output [B, 4 + C, N]: N = S^2 (1/8^2 + 1/16^2 + 1/32^2)."""
    anchors = np.asarray(output).shape[-1]
    size = round(float(np.sqrt(anchors * 1024 / 21)))
    if size % 32 or config(size).num_anchors != anchors:
        raise ValueError(f"{anchors} anchors per image is not a YOLOv8 output of a square input")
    return size


def decode_output(
    output: np.ndarray,
    size: int,
    letterboxes: Sequence[Letterbox] | None = None,
    conf_threshold: float = CONF_THRESHOLD,
    iou_threshold: float = IOU_THRESHOLD,
) -> list[Detections]:
    """The detector's raw output at input size `size` -> detections per image."""
    detections = decode_v8(
        output, conf_threshold=conf_threshold, iou_threshold=iou_threshold, box_scale=size
    )
    if letterboxes is None:
        return detections
    return [d.mapped(b) for d, b in zip(detections, letterboxes, strict=True)]
