"""Keras -> TFLite with `tf.lite.TFLiteConverter.from_keras_model` (FP32 here; the
quantized variants are separate passes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exporters.base import ExportContext, Pass
from workbench.runtimes.tf_runtime import require_keras


class KerasTFLite(Pass):
    name = "keras_tflite"
    source_frameworks = ("keras",)
    format = "tflite"
    filename = "model.tflite"

    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        require_keras(f"pass {self.name!r}")
        source_model = ctx.source_model
        # lazy: tensorflow
        import tensorflow as tf

        converter = tf.lite.TFLiteConverter.from_keras_model(source_model)
        out.write_bytes(converter.convert())
        return {
            "exporter": "tf.lite.TFLiteConverter.from_keras_model",
            "exporter_version": tf.__version__,
        }
