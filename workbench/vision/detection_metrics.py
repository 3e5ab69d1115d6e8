"""Detection quality: mAP@0.5 against ground truth, box-level F1 between two detectors.

Matching is the usual one (PASCAL VOC / COCO): detections are taken by decreasing
score, each is matched to the not-yet-matched box of the same class with which it
has the highest IoU, if that IoU is at least the threshold. AP is the area under
the precision envelope (all-point interpolation); mAP averages AP over the classes
that have ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workbench.vision.nms import box_iou
from workbench.vision.yolo_decode import Detections


@dataclass
class GroundTruth:
    """One image's true boxes (xyxy, original pixels) and class ids."""

    boxes: np.ndarray  # (M, 4) float32
    classes: np.ndarray  # (M,) int64


def match(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    true_boxes: np.ndarray,
    true_classes: np.ndarray,
    iou_threshold: float = 0.5,
) -> np.ndarray:
    """True-positive flags for the detections, in the order given (greedy by score)."""
    tp = np.zeros(len(scores), dtype=bool)
    if len(scores) == 0 or len(true_boxes) == 0:
        return tp
    iou = box_iou(boxes, true_boxes)
    iou[np.asarray(classes)[:, None] != np.asarray(true_classes)[None, :]] = -1.0
    taken = np.zeros(len(true_boxes), dtype=bool)
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        row = np.where(taken, -1.0, iou[i])
        j = int(row.argmax())
        if row[j] >= iou_threshold:
            tp[i] = taken[j] = True
    return tp


def average_precision(tp: np.ndarray, scores: np.ndarray, n_true: int) -> float:
    """All-point interpolated AP of detections (tp flags, scores) against n_true boxes."""
    if n_true == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="stable")
    hits = np.cumsum(np.asarray(tp)[order])
    recall = hits / n_true
    precision = hits / np.arange(1, len(hits) + 1)
    envelope = np.maximum.accumulate(np.concatenate([precision, [0.0]])[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * envelope[:-1]))


def evaluate(
    detections: Sequence[Detections],
    truths: Sequence[GroundTruth],
    iou_threshold: float = 0.5,
    num_classes: int | None = None,
    score_threshold: float = 0.0,
) -> dict[str, float]:
    """mAP@iou_threshold and per-class AP over all the detections, and precision, recall
    and F1 of the detections scoring at least `score_threshold` (the operating point:
    mAP wants a low detection threshold, P/R/F1 the one used in deployment)."""
    if len(detections) != len(truths):
        raise ValueError(f"{len(detections)} detection sets for {len(truths)} images")
    tps, scores, classes = [], [], []
    for det, gt in zip(detections, truths, strict=True):
        tps.append(match(det.boxes, det.scores, det.classes, gt.boxes, gt.classes, iou_threshold))
        scores.append(det.scores)
        classes.append(det.classes)
    tp = np.concatenate(tps) if tps else np.zeros(0, bool)
    score = np.concatenate(scores) if scores else np.zeros(0)
    cls = np.concatenate(classes) if classes else np.zeros(0, np.int64)
    true_cls = np.concatenate([gt.classes for gt in truths]) if truths else np.zeros(0, np.int64)
    n_cls = num_classes or int(max(cls.max(initial=-1), true_cls.max(initial=-1)) + 1)
    result: dict[str, float] = {}
    aps = []
    for c in range(n_cls):
        ap = average_precision(tp[cls == c], score[cls == c], int(np.sum(true_cls == c)))
        result[f"ap50_class{c}" if iou_threshold == 0.5 else f"ap_class{c}"] = ap
        if not np.isnan(ap):
            aps.append(ap)
    operating = score >= score_threshold
    n_tp, n_det, n_true = int(tp[operating].sum()), int(operating.sum()), len(true_cls)
    result["map50" if iou_threshold == 0.5 else "map"] = float(np.mean(aps)) if aps else 0.0
    result["precision"] = n_tp / n_det if n_det else float(n_true == 0)
    result["recall"] = n_tp / n_true if n_true else 1.0
    result["f1"] = 2 * n_tp / (n_det + n_true) if n_det + n_true else 1.0
    return result


def mean_average_precision(
    detections: Sequence[Detections], truths: Sequence[GroundTruth], iou_threshold: float = 0.5
) -> float:
    """mAP over the classes with ground truth (0.0 when nothing is found)."""
    metrics = evaluate(detections, truths, iou_threshold)
    return metrics["map50" if iou_threshold == 0.5 else "map"]


def box_f1(
    reference: Sequence[Detections], candidate: Sequence[Detections], iou_threshold: float = 0.5
) -> float:
    """Box-level F1 of `candidate` against `reference` detections (same class, IoU >=
    threshold), pooled over images: 2 * matched / (n_reference + n_candidate); 1.0 when
    neither finds anything."""
    if len(reference) != len(candidate):
        raise ValueError(f"{len(reference)} reference images, {len(candidate)} candidate images")
    matched = total = 0
    for ref, cand in zip(reference, candidate, strict=True):
        matched += int(
            match(
                cand.boxes, cand.scores, cand.classes, ref.boxes, ref.classes, iou_threshold
            ).sum()
        )
        total += len(ref) + len(cand)
    return 2 * matched / total if total else 1.0
