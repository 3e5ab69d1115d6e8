"""Image-classification pre- and post-processing (guide §6.1, done as it means).

The guide resizes straight to 224x224 (distorting the aspect ratio), reads a
float image's bytes as if they were uint8, divides by 255 twice and normalizes
in a per-pixel triple loop. Here: decode -> RGB -> resize the shorter side to
256 (bilinear with antialiasing, Pillow's C code) -> centre crop 224 -> one
fused NumPy multiply-add per image that scales to [0, 1], applies the mean/std
and writes straight into a preallocated NCHW or NHWC float32 batch. That is the
torchvision ImageNet evaluation transform, and tests check it against
torchvision's own `Resize`/`CenterCrop`/`ToTensor`/`Normalize`.

Post-processing is a numerically stable softmax and a top-k by argpartition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from workbench.errors import UserError
from workbench.vision.image_io import as_rgb, map_images

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LAYOUTS = ("nchw", "nhwc")
IMAGENET_CLASSES_FILE = Path(__file__).resolve().parents[1] / "data" / "imagenet_classes.txt"


@cache
def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names in index order (torchvision's list, copied so that
    processes without torch can name classes)."""
    return IMAGENET_CLASSES_FILE.read_text(encoding="utf-8").splitlines()


@dataclass(frozen=True)
class ClassifyPreprocess:
    """Resize the shorter side, centre-crop, normalize: one image or a batch."""

    crop: int = 224
    resize: int = 256  # shorter side before the crop (224 / 256 = ImageNet's 0.875)
    mean: tuple[float, float, float] = IMAGENET_MEAN  # in [0, 1] pixel units
    std: tuple[float, float, float] = IMAGENET_STD
    layout: str = "nchw"
    _scale: np.ndarray = field(init=False, repr=False, compare=False)
    _offset: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise UserError(f"layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if self.crop <= 0 or self.resize < self.crop:
            raise UserError(f"need 0 < crop <= resize, got crop={self.crop} resize={self.resize}")
        std = np.asarray(self.std, dtype=np.float64)
        if std.shape != (3,) or (std <= 0).any() or len(self.mean) != 3:
            raise UserError(f"mean and std need 3 values, std > 0; got {self.mean}, {self.std}")
        # (x / 255 - mean) / std == x * scale - offset, one multiply-add per element.
        object.__setattr__(self, "_scale", (1.0 / (255.0 * std)).astype(np.float32))
        object.__setattr__(
            self, "_offset", (np.asarray(self.mean, dtype=np.float64) / std).astype(np.float32)
        )

    def resized_crop(self, image: Any, name: str = "image") -> np.ndarray:
        """Any image -> crop x crop x 3 uint8 RGB (shorter side resized, centre crop)."""
        rgb = as_rgb(image, name=name)
        h, w = rgb.shape[:2]
        new_h, new_w = _shorter_side_to(h, w, self.resize)
        if (new_h, new_w) != (h, w):
            resized = Image.fromarray(rgb).resize((new_w, new_h), Image.Resampling.BILINEAR)
            rgb = np.asarray(resized)
        top = int(round((new_h - self.crop) / 2.0))
        left = int(round((new_w - self.crop) / 2.0))
        return rgb[top : top + self.crop, left : left + self.crop]

    def batch(self, images: Sequence[Any]) -> np.ndarray:
        """Many images of any sizes -> one float32 batch in the model's layout (images in
        parallel, one thread per core, each writing its own slice)."""
        if len(images) == 0:
            raise UserError("no images given: pass at least one image")
        c = self.crop
        shape = (len(images), 3, c, c) if self.layout == "nchw" else (len(images), c, c, 3)
        out = np.empty(shape, dtype=np.float32)
        scale, offset = self._scale, self._offset
        if self.layout == "nchw":
            scale, offset = scale[:, None, None], offset[:, None, None]

        def one(i: int) -> None:
            crop = self.resized_crop(images[i], name=_name_of(images[i], i))
            pixels = crop.transpose(2, 0, 1) if self.layout == "nchw" else crop
            np.multiply(pixels, scale, out=out[i], casting="unsafe")
            out[i] -= offset

        map_images(one, len(images))
        return out

    def __call__(self, images: Any | Sequence[Any]) -> np.ndarray:
        """One image (path, bytes, PIL image or HxW[xC] array) or a list of them -> batch."""
        return self.batch([images] if is_single_image(images) else list(images))


def is_single_image(images: Any) -> bool:
    """Whether `images` is one image rather than a sequence of images."""
    return isinstance(images, (str, Path, bytes, bytearray, Image.Image)) or (
        isinstance(images, np.ndarray) and images.ndim in (2, 3)
    )


def _name_of(image: Any, index: int) -> str:
    return str(image) if isinstance(image, (str, Path)) else f"image {index}"


def _shorter_side_to(height: int, width: int, size: int) -> tuple[int, int]:
    """torchvision's Resize(int) rule: the shorter side becomes `size`, the longer one
    keeps the aspect ratio (truncated)."""
    if height <= width:
        return size, max(1, int(size * width / height))
    return max(1, int(size * height / width)), size


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    z = np.asarray(logits, dtype=np.float32)
    z = z - z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


@dataclass(frozen=True)
class TopK:
    """The k best classes per image, best first, with their probabilities."""

    indices: np.ndarray  # [B, k] int64
    probs: np.ndarray  # [B, k] float32

    def labelled(self, names: Sequence[str] | None) -> list[list[tuple[str, float]]]:
        """[(class name or index, probability), ...] per image."""
        return [
            [(names[j] if names else str(j), float(p)) for j, p in zip(row, probs, strict=True)]
            for row, probs in zip(self.indices, self.probs, strict=True)
        ]


def top_k(logits: np.ndarray, k: int = 5) -> TopK:
    """Softmax, then the k most probable classes per row (argpartition, then a sort of k)."""
    probs = softmax(np.atleast_2d(logits))
    k = min(k, probs.shape[-1])
    part = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    part_probs = np.take_along_axis(probs, part, axis=1)
    order = np.argsort(-part_probs, axis=1, kind="stable")
    return TopK(np.take_along_axis(part, order, axis=1), np.take_along_axis(part_probs, order, 1))
