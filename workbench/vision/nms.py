"""Non-maximum suppression in NumPy, with the same semantics as torchvision.ops.

The guide's NMS compares every pair of detections in nested Python loops and
ignores the class. Here IoU is computed for one kept box against all remaining
candidates at once (the Python loop runs once per *kept* box, not per pair),
and class-aware NMS only lets a kept box suppress candidates of its own class
(exactly, on the original coordinates; the coordinate-offset trick loses float
precision on large offsets).
"""

from __future__ import annotations

import numpy as np


def box_area(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes)
    return (boxes[..., 2] - boxes[..., 0]).clip(0) * (boxes[..., 3] - boxes[..., 1]).clip(0)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes: (N, 4) x (M, 4) -> (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clip(0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int | None = None
) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, by decreasing score: a box is dropped when
    its IoU with a higher-scoring kept box is greater than `iou_threshold` (as
    torchvision.ops.nms). `max_keep` stops after that many boxes are kept."""
    return batched_nms(boxes, scores, None, iou_threshold, max_keep)


def batched_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray | None,
    iou_threshold: float,
    max_keep: int | None = None,
) -> np.ndarray:
    """Class-aware NMS: a box only suppresses boxes of its own class (classes None: all
    one class). Returns kept indices by decreasing score, as torchvision.ops.batched_nms.

    One Python iteration per kept box; each computes the IoU of that box with every
    remaining candidate in one vectorized step and drops the overlapping ones of its class.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    order = np.argsort(-scores, kind="stable")
    b = boxes[order].astype(np.float64)
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    cls = None if classes is None else np.asarray(classes).reshape(-1)[order]
    remaining = np.arange(len(order))
    keep: list[int] = []
    limit = len(order) if max_keep is None else max_keep
    while remaining.size and len(keep) < limit:
        i, rest = remaining[0], remaining[1:]
        keep.append(i)
        if not rest.size:
            break
        w = (np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])).clip(0)
        h = (np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])).clip(0)
        inter = w * h
        union = areas[i] + areas[rest] - inter
        # IoU > t  <=>  inter > t * union, without dividing (union <= 0 means IoU 0)
        drop = (inter > iou_threshold * union) & (union > 0)
        if cls is not None:
            drop &= cls[rest] == cls[i]
        remaining = rest[~drop]
    return order[np.asarray(keep, dtype=np.int64)]
