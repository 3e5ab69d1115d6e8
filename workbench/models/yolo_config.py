"""The detector's sizes and anchor grid, shared by the PyTorch and Keras builds (this
module imports neither framework, so each stays in its own process)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class YoloConfig:
    """Sizes of the detector. Defaults are YOLOv8n's widths and depths."""

    num_classes: int = 4
    widths: tuple[int, ...] = (16, 32, 64, 128, 256)  # stem, P2, P3, P4, P5 channels
    depths: tuple[int, ...] = (1, 2, 2, 1)  # C2f repeats in the P2..P5 backbone stages
    reg_max: int = 16  # DFL bins per box side
    image_size: int = 640

    def __post_init__(self) -> None:
        if self.image_size <= 0 or self.image_size % STRIDES[-1]:
            raise ValueError(f"image_size must be a positive multiple of 32, got {self.image_size}")
        if len(self.widths) != 5 or len(self.depths) != 4:
            raise ValueError("widths needs 5 entries (stem, P2..P5), depths 4 (P2..P5)")
        if self.num_classes < 1 or self.reg_max < 2:
            raise ValueError("num_classes must be >= 1 and reg_max >= 2")

    @property
    def head_channels(self) -> tuple[int, int]:
        """(box branch, class branch) widths, as YOLOv8 chooses them."""
        p3 = self.widths[2]
        return max(16, p3 // 4, self.reg_max * 4), max(p3, min(self.num_classes, 100))

    @property
    def num_anchors(self) -> int:
        return sum((self.image_size // s) ** 2 for s in STRIDES)


def anchor_points(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Anchor centres in pixels [N, 2] (x, y) and their strides [N], level by level, each
    level row-major -- the order in which the head flattens its maps."""
    points, strides = [], []
    for stride in STRIDES:
        n = image_size // stride
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        points.append((np.stack([xs, ys], -1).reshape(-1, 2) + 0.5) * stride)
        strides.append(np.full(n * n, stride))
    return (
        np.concatenate(points).astype(np.float32),
        np.concatenate(strides).astype(np.float32),
    )


def keras_layer_name(torch_key: str) -> tuple[str, str]:
    """A fused state-dict key ("c2f3.m.0.cv1.conv.weight") -> (Keras layer name,
    "kernel" or "bias"): Conv blocks drop their ".conv", dots become underscores."""
    module, _, kind = torch_key.rpartition(".")
    module = module.removesuffix(".conv")
    return module.replace(".", "_"), "kernel" if kind == "weight" else "bias"
