"""Keras -> TensorFlow SavedModel with `model.export` (serving signature, dynamic batch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exporters.base import ExportContext, Pass
from workbench.runtimes.tf_runtime import require_keras


class KerasSavedModel(Pass):
    name = "keras_savedmodel"
    source_frameworks = ("keras",)
    format = "savedmodel"
    filename = "saved_model"

    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        require_keras(f"pass {self.name!r}")
        source_model = ctx.source_model
        # lazy: tensorflow
        import tensorflow as tf

        source_model.export(str(out), format="tf_saved_model", verbose=False)
        return {
            "exporter": "keras.Model.export(format='tf_saved_model')",
            "exporter_version": tf.__version__,
        }
