"""Non-maximum suppression in NumPy, with the same semantics as torchvision.ops.

The guide's NMS compares every pair of detections in nested Python loops and
ignores the class. Here IoU is computed a chunk of candidates at a time in one
vectorized step, and class-aware NMS only lets a kept box suppress candidates of
its own class (exactly, on the original coordinates; the coordinate-offset trick
loses float precision on large offsets).
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


CHUNK = 128  # candidates resolved per vectorized step


def batched_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray | None,
    iou_threshold: float,
    max_keep: int | None = None,
) -> np.ndarray:
    """Class-aware NMS: a box only suppresses boxes of its own class (classes None: all
    one class). Returns kept indices by decreasing score, as torchvision.ops.batched_nms.

    The score-sorted candidates are walked in chunks: a chunk is first tested against
    every box kept so far in one (kept x chunk) matrix, then resolved greedily inside
    itself with one (chunk x chunk) matrix -- a Python step only for rows that suppress
    something -- and the walk stops once `max_keep` boxes are kept, so the low-scoring
    tail is never compared. Worst case, 8,400 candidates kept down to 300: about 4 ms
    against 19 ms for one Python step per kept box (benchmarks/nms_speed.py).
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    order = np.argsort(-scores, kind="stable")
    ordered = boxes[order].astype(np.float64)
    n = len(order)
    cls = np.zeros(n, np.int64) if classes is None else np.asarray(classes).reshape(-1)[order]
    limit = n if max_keep is None else min(max_keep, n)
    kept_boxes, kept_cls, k = np.empty((limit, 4)), np.empty(limit, np.int64), 0
    keep: list[np.ndarray] = []
    for start in range(0, n, CHUNK):
        if k >= limit:
            break
        chunk, chunk_cls = ordered[start : start + CHUNK], cls[start : start + CHUNK]
        if k:
            hit = _suppresses(kept_boxes[:k], chunk, iou_threshold)
            hit &= kept_cls[:k, None] == chunk_cls[None, :]
            alive = np.flatnonzero(~hit.any(axis=0))
        else:
            alive = np.arange(len(chunk))
        alive = _greedy_within(chunk[alive], chunk_cls[alive], alive, iou_threshold)
        take = alive[: limit - k]
        kept_boxes[k : k + take.size], kept_cls[k : k + take.size] = chunk[take], chunk_cls[take]
        k += take.size
        keep.append(start + take)
    return order[np.concatenate(keep)] if keep else np.zeros(0, np.int64)


def _greedy_within(
    boxes: np.ndarray, classes: np.ndarray, index: np.ndarray, iou_threshold: float
) -> np.ndarray:
    """The entries of `index` that survive greedy NMS among themselves (sorted by score):
    row j of the upper-triangular matrix says which later boxes j would suppress; only a
    still-live j suppresses, and j's own fate is settled by the rows before it."""
    if index.size < 2:
        return index
    same = classes[:, None] == classes[None, :]
    suppresses = np.triu(_suppresses(boxes, boxes, iou_threshold) & same, 1)
    live = np.ones(index.size, bool)
    for j in np.flatnonzero(suppresses.any(axis=1)).tolist():
        if live[j]:
            live &= ~suppresses[j]
    return index[live]


def _suppresses(a: np.ndarray, b: np.ndarray, iou_threshold: float) -> np.ndarray:
    """(K, 4) x (C, 4) xyxy -> (K, C) bool: IoU > threshold, tested as
    inter > t * union without dividing (union <= 0 means IoU 0)."""
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = w.clip(0) * h.clip(0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return (inter > iou_threshold * union) & (union > 0)
