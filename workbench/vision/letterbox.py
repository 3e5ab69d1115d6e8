"""YOLO pre-processing (guide §6.2, done as it means): letterbox, not stretch.

The guide resizes straight to 640x640 (distorting the aspect ratio), divides by
255 twice, indexes a float Mat's bytes as if they were uint8 and scales boxes
back per axis as if the image had been stretched. Here the image is scaled by
one factor so that it fits the square input, centred, and the rest is filled
with grey 114 (YOLO's pad value); the scale and padding are returned so that
boxes found in the input map back exactly to the original image. Resizing is
Pillow's (C), the layout change and scaling are one vectorized NumPy step, and
there is a batch path that writes every image into one preallocated array.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from workbench.errors import UserError
from workbench.vision.image_io import as_rgb, load_image, map_images  # noqa: F401

PAD_VALUE = 114
DEFAULT_SIZE = 640


@dataclass(frozen=True)
class Letterbox:
    """How one image was fitted into the square input: x_input = x_orig * scale + pad_x."""

    scale: float
    pad_x: int  # columns of padding on the left
    pad_y: int  # rows of padding on the top
    orig_h: int
    orig_w: int
    size: int

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """xyxy boxes in input pixels -> original image pixels, clipped to the image."""
        out = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, self.orig_w)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, self.orig_h)
        return out

    def to_input(self, boxes: np.ndarray) -> np.ndarray:
        """xyxy boxes in original pixels -> input pixels (the inverse of `to_original`)."""
        out = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
        out[:, [0, 2]] = out[:, [0, 2]] * self.scale + self.pad_x
        out[:, [1, 3]] = out[:, [1, 3]] * self.scale + self.pad_y
        return out


def letterbox_geometry(height: int, width: int, size: int, scaleup: bool = True) -> Letterbox:
    """Scale and padding that fit a height x width image into size x size, centred."""
    if size <= 0:
        raise UserError(f"letterbox size must be positive, got {size}")
    scale = min(size / height, size / width)
    if not scaleup:
        scale = min(scale, 1.0)
    new_h, new_w = _resized(height, width, scale, size)
    return Letterbox(scale, (size - new_w) // 2, (size - new_h) // 2, height, width, size)


def _resized(height: int, width: int, scale: float, size: int) -> tuple[int, int]:
    return min(size, max(1, round(height * scale))), min(size, max(1, round(width * scale)))


def letterbox_into(
    out: np.ndarray, image: Any, size: int, scaleup: bool = True, name: str = "image"
) -> Letterbox:
    """Letterbox `image` into the preallocated size x size x 3 uint8 `out` (already filled
    with the pad value); return the geometry."""
    rgb = as_rgb(image, name=name)
    box = letterbox_geometry(rgb.shape[0], rgb.shape[1], size, scaleup)
    new_h, new_w = _resized(rgb.shape[0], rgb.shape[1], box.scale, size)
    if (new_h, new_w) != rgb.shape[:2]:
        rgb = np.asarray(Image.fromarray(rgb).resize((new_w, new_h), Image.Resampling.BILINEAR))
    out[box.pad_y : box.pad_y + new_h, box.pad_x : box.pad_x + new_w] = rgb
    return box


def letterbox(
    image: Any, size: int = DEFAULT_SIZE, pad_value: int = PAD_VALUE, scaleup: bool = True
) -> tuple[np.ndarray, Letterbox]:
    """One image -> (size x size x 3 uint8 RGB letterboxed image, its geometry)."""
    out = np.full((size, size, 3), pad_value, dtype=np.uint8)
    return out, letterbox_into(out, image, size, scaleup)


def letterbox_batch(
    images: Sequence[Any],
    size: int = DEFAULT_SIZE,
    pad_value: int = PAD_VALUE,
    scaleup: bool = True,
) -> tuple[np.ndarray, list[Letterbox]]:
    """Many images (any sizes) -> (N x size x size x 3 uint8, one geometry per image)."""
    out = np.full((len(images), size, size, 3), pad_value, dtype=np.uint8)
    boxes = map_images(
        lambda i: letterbox_into(out[i], images[i], size, scaleup, name=f"image {i}"),
        len(images),
    )
    return out, boxes


def to_model_input(batch: np.ndarray, layout: str = "nchw") -> np.ndarray:
    """uint8 NHWC (or one HWC image) -> float32 in [0, 1], NCHW or NHWC, contiguous."""
    arr = np.asarray(batch)
    if arr.ndim == 3:
        arr = arr[None]
    if layout not in ("nchw", "nhwc"):
        raise UserError(f"layout must be 'nchw' or 'nhwc', got {layout!r}")
    if layout == "nchw":
        arr = arr.transpose(0, 3, 1, 2)
    out = np.empty(arr.shape, dtype=np.float32)
    np.multiply(arr, np.float32(1 / 255), out=out, casting="unsafe")
    return out


def preprocess(
    images: Any | Sequence[Any], size: int = DEFAULT_SIZE, layout: str = "nchw"
) -> tuple[np.ndarray, list[Letterbox]]:
    """Single image or a list of images -> (float32 model input batch, geometries)."""
    single = isinstance(images, (str, Path, bytes, Image.Image)) or (
        isinstance(images, np.ndarray) and images.ndim in (2, 3)
    )
    batch, boxes = letterbox_batch([images] if single else list(images), size)
    return to_model_input(batch, layout), boxes
