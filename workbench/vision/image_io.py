"""Decoding images from whatever a user hands over into HxWx3 uint8 RGB.

Every vision task starts here: a file path, encoded bytes (what a server
receives), a PIL image or an array. Grey, palette, 16-bit and RGBA images are
converted; corrupt, empty or oversized inputs become a `UserError` naming the
input, never an exception deep inside NumPy or Pillow.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from workbench.errors import UserError

MAX_PIXELS = 200_000_000  # refuse larger decoded images with a clear error
T = TypeVar("T")


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(len(os.sched_getaffinity(0)), thread_name_prefix="workbench-images")


def map_images(function: Callable[[int], T], count: int) -> list[T]:
    """`function(i)` for i in range(count), on one thread per core when there is more than
    one image: Pillow's decoders and resamplers and NumPy's arithmetic release the GIL,
    so a batch's images really are processed in parallel. Exceptions propagate."""
    if count <= 1 or len(os.sched_getaffinity(0)) == 1:
        return [function(i) for i in range(count)]
    return list(_pool().map(function, range(count)))


def load_image(path: str | Path) -> np.ndarray:
    """Decode an image file to HxWx3 uint8 RGB; a UserError naming the file otherwise."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not an image file")
    with open(path, "rb") as handle:
        return decode_image(handle.read(), name=str(path))


def decode_image(data: bytes, name: str = "image bytes") -> np.ndarray:
    """Decode encoded image bytes (PNG, JPEG, ...) to HxWx3 uint8 RGB."""
    if not data:
        raise UserError(f"{name}: empty (0 bytes), not an image")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise UserError(
                    f"{name}: image is {img.width}x{img.height}, more than {MAX_PIXELS:,} "
                    "pixels; downscale it before inference"
                )
            img.load()
            return as_rgb(img, name=name)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as exc:
        raise UserError(f"{name}: not a readable image ({type(exc).__name__}: {exc})") from None


def encode_image(rgb: np.ndarray, fmt: str = "PNG", quality: int = 90) -> bytes:
    """HxWx3 uint8 -> encoded bytes (what arrives over the wire in end-to-end timing)."""
    buffer = io.BytesIO()
    options = {"quality": quality} if fmt.upper() in ("JPEG", "JPG") else {}
    Image.fromarray(as_rgb(rgb)).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def as_rgb(image: Any, name: str = "image") -> np.ndarray:
    """Any image (file path, encoded bytes, PIL image, or array HxW / HxWx1 / HxWx3 /
    HxWx4 of uint8, uint16, bool or float in [0, 1]) -> HxWx3 uint8 RGB. Grey is
    replicated to three channels; an alpha channel is dropped (the colour channels are
    kept)."""
    if isinstance(image, (str, Path)):
        return load_image(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return decode_image(bytes(image), name=name)
    if isinstance(image, Image.Image):
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image = np.asarray(image)
    arr = np.asarray(image)
    if arr.dtype == object:
        raise UserError(f"{name}: not an image (got {type(image).__name__})")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise UserError(
            f"{name}: expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UserError(f"{name}: empty image (shape {arr.shape})")
    if arr.dtype == np.uint8:
        pass
    elif arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        arr = (arr // 257).astype(np.uint8)
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise UserError(f"{name}: float image holds NaN or infinity")
        arr = np.rint(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
    else:
        raise UserError(f"{name}: unsupported pixel type {arr.dtype} (use uint8 or float 0..1)")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])
