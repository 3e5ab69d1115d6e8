"""YOLO post-processing: decode raw head tensors into detections (guide §6.2, fixed).

Two output layouts are understood:

* YOLOv8 (anchor-free, no objectness): ``[B, 4 + C, N]`` -- rows cx, cy, w, h, then one
  score per class; the score of a candidate is its best class score.
* YOLOv5 (the guide's): ``[B, N, 5 + C]`` -- cx, cy, w, h, objectness, class
  probabilities; the score is objectness x class probability (the guide thresholds
  objectness alone first, then the product; only the product matters).

The guide's decoder also hard-codes 80 classes, truncates boxes to ints, scales them
back per axis as if the image had been stretched, never clips them, and runs NMS
across classes. Here: any number of classes, a confidence threshold on the final
score, class-aware NMS, then the boxes are mapped back through the letterbox and
clipped to the original image. Everything except the per-kept-box NMS loop is
vectorized over candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workbench.vision.letterbox import Letterbox
from workbench.vision.nms import batched_nms

CONF_THRESHOLD = 0.25
IOU_THRESHOLD = 0.45
MAX_DET = 300


@dataclass
class Detections:
    """One image's detections: xyxy boxes, scores and class ids, by decreasing score."""

    boxes: np.ndarray  # (K, 4) float32
    scores: np.ndarray  # (K,) float32
    classes: np.ndarray  # (K,) int64

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def mapped(self, box: Letterbox) -> Detections:
        """The same detections in the original image's pixels (clipped to it)."""
        return Detections(box.to_original(self.boxes), self.scores, self.classes)


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    xywh = np.asarray(xywh, dtype=np.float32)
    half = xywh[..., 2:4] / 2
    return np.concatenate([xywh[..., :2] - half, xywh[..., :2] + half], axis=-1)


def _select(
    boxes_xywh: np.ndarray,
    class_scores: np.ndarray,
    conf_threshold: float,
    iou_threshold: float,
    max_det: int,
    class_agnostic: bool,
) -> Detections:
    """One image: candidates (N, 4) cx,cy,w,h and (N, C) scores -> kept detections."""
    classes = class_scores.argmax(axis=1)
    scores = np.take_along_axis(class_scores, classes[:, None], axis=1)[:, 0]
    mask = scores >= conf_threshold
    if not mask.any():
        return Detections.empty()
    boxes = xywh_to_xyxy(boxes_xywh[mask])
    scores, classes = scores[mask].astype(np.float32), classes[mask].astype(np.int64)
    keep = batched_nms(boxes, scores, None if class_agnostic else classes, iou_threshold, max_det)
    return Detections(boxes[keep], scores[keep], classes[keep])


def decode_v8(
    output: np.ndarray,
    conf_threshold: float = CONF_THRESHOLD,
    iou_threshold: float = IOU_THRESHOLD,
    max_det: int = MAX_DET,
    box_scale: float = 1.0,
    class_agnostic: bool = False,
) -> list[Detections]:
    """YOLOv8 ``[B, 4 + C, N]`` (or ``[4 + C, N]``) -> detections per image, in input
    pixels. `box_scale` multiplies the box rows (e.g. the input size when the model emits
    boxes normalized to 0..1, as this repository's detector does)."""
    out = np.asarray(output, dtype=np.float32)
    if out.ndim == 2:
        out = out[None]
    if out.ndim != 3 or out.shape[1] < 5:
        raise ValueError(f"YOLOv8 output must be [B, 4 + C, N] with C >= 1, got {out.shape}")
    return [
        _select(
            img[:4].T * np.float32(box_scale),
            img[4:].T,
            conf_threshold,
            iou_threshold,
            max_det,
            class_agnostic,
        )
        for img in out
    ]


def decode_v5(
    output: np.ndarray,
    conf_threshold: float = CONF_THRESHOLD,
    iou_threshold: float = IOU_THRESHOLD,
    max_det: int = MAX_DET,
    box_scale: float = 1.0,
    class_agnostic: bool = False,
) -> list[Detections]:
    """YOLOv5 ``[B, N, 5 + C]`` (or ``[N, 5 + C]``) -> detections per image, in input
    pixels; a candidate's score for class c is objectness x P(c)."""
    out = np.asarray(output, dtype=np.float32)
    if out.ndim == 2:
        out = out[None]
    if out.ndim != 3 or out.shape[2] < 6:
        raise ValueError(f"YOLOv5 output must be [B, N, 5 + C] with C >= 1, got {out.shape}")
    return [
        _select(
            img[:, :4] * np.float32(box_scale),
            img[:, 4:5] * img[:, 5:],
            conf_threshold,
            iou_threshold,
            max_det,
            class_agnostic,
        )
        for img in out
    ]


DECODERS = {"v8": decode_v8, "v5": decode_v5}


def decode(output: np.ndarray, layout: str = "v8", **kwargs: float) -> list[Detections]:
    """Decode a raw head tensor of the given layout ("v8" or "v5")."""
    if layout not in DECODERS:
        raise ValueError(f"unknown YOLO layout {layout!r}: choose one of {', '.join(DECODERS)}")
    return DECODERS[layout](output, **kwargs)


def postprocess(
    output: np.ndarray,
    letterboxes: Sequence[Letterbox],
    layout: str = "v8",
    **kwargs: float,
) -> list[Detections]:
    """Decode, threshold, NMS, then map each image's boxes back to its original pixels."""
    detections = decode(output, layout, **kwargs)
    if len(detections) != len(letterboxes):
        raise ValueError(f"{len(detections)} images in the output, {len(letterboxes)} letterboxes")
    return [d.mapped(box) for d, box in zip(detections, letterboxes, strict=True)]
