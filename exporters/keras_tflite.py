"""Keras -> TFLite with `tf.lite.TFLiteConverter.from_keras_model` (FP32 here; the
quantized variants are separate passes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exporters.base import Pass, register


@register
class KerasTFLite(Pass):
    name = "keras_tflite"
    source_framework = "keras"
    format = "tflite"
    filename = "model.tflite"

    def export(
        self,
        source_model: Any,
        task: Any,
        model: str,
        out: Path,
        precision: str,
        params: dict[str, Any],
    ) -> dict[str, Any]:
        import tensorflow as tf

        converter = tf.lite.TFLiteConverter.from_keras_model(source_model)
        out.write_bytes(converter.convert())
        return {
            "exporter": "tf.lite.TFLiteConverter.from_keras_model",
            "exporter_version": tf.__version__,
        }
