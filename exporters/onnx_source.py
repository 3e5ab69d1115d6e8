"""Passes for an ONNX file given as the *source* model (`workbench model init model.onnx`):
the file itself as the FP32 ONNX artifact, and on top of it the same FP16, dynamic and
static INT8 and transformer-optimizer passes the PyTorch and Keras exports get, each
checked against the original file (the task's source model is the file run by ONNX
Runtime, `workbench.usermodel.loaded.OnnxSource`).

They are the built-in passes with "onnx" as their source framework, under names of
their own, so no existing pass or cache key changes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from exporters.base import ExportContext, Pass
from exporters.onnx_optimize import OnnxTransformerOptimize
from exporters.onnx_quantize import (
    OnnxFp16,
    OnnxFusedInt8Dynamic,
    OnnxFusedInt8Static,
    OnnxInt8Dynamic,
    OnnxInt8Static,
)
from exporters.torch_onnx import check_onnx

ONNX = ("onnx",)


class OnnxSourceCopy(Pass):
    """The user's ONNX file, checked and copied into the artifact cache as it is."""

    name = "onnx_source"
    source_frameworks = ONNX
    format = "onnx"
    filename = "model.onnx"

    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        source = Path(ctx.source_model.path)
        shutil.copyfile(source, out)
        return {"exporter": "copy of the source ONNX file", "opset": check_onnx(out)}


class OnnxSourceFp16(OnnxFp16):
    name = "onnx_source_fp16"
    source_frameworks = ONNX


class OnnxSourceInt8Dynamic(OnnxInt8Dynamic):
    name = "onnx_source_int8_dynamic"
    source_frameworks = ONNX


class OnnxSourceInt8Static(OnnxInt8Static):
    name = "onnx_source_int8_static"
    source_frameworks = ONNX


class OnnxSourceTransformerOptimize(OnnxTransformerOptimize):
    name = "onnx_source_transformer_optimize"
    source_frameworks = ONNX


class OnnxSourceFusedInt8Dynamic(OnnxFusedInt8Dynamic):
    name = "onnx_source_fused_int8_dynamic"
    source_frameworks = ONNX


class OnnxSourceFusedInt8Static(OnnxFusedInt8Static):
    name = "onnx_source_fused_int8_static"
    source_frameworks = ONNX
