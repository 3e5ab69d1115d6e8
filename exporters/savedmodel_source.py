"""Passes for a TensorFlow SavedModel directory given as the *source* model
(`workbench model init saved_model_dir`): re-exported, not only timed.

- `savedmodel_source`: the directory itself, copied into the artifact cache (the
  `savedmodel` format, timed by the TensorFlow runtime);
- `savedmodel_tflite*`: TFLite at fp32, fp16, int8-dynamic and int8-static through
  `tf.lite.TFLiteConverter.from_saved_model` on its serving signature, with the same
  configuration as the Keras TFLite passes (`exporters.tflite_quantize`);
- `savedmodel_onnx`: ONNX through tf2onnx's SavedModel loader (what `python -m
  tf2onnx.convert --saved-model` runs), inputs and outputs named as in the signature,
  and on top of it the ONNX Runtime FP16 and INT8 passes.

Each artifact's parity is checked against the SavedModel itself (its signature run by
TensorFlow, `workbench.usermodel.loaded.SavedModelSource`). They are the built-in passes
with "savedmodel" as their source framework, under names of their own, so no existing
pass or cache key changes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from exporters.base import ExportContext, Pass
from exporters.keras_onnx import KerasOnnxParams, name_dynamic_axes, require_tf2onnx
from exporters.onnx_quantize import OnnxFp16, OnnxInt8Dynamic, OnnxInt8Static
from exporters.tflite_quantize import (
    KerasTFLiteFP16,
    KerasTFLiteInt8Dynamic,
    KerasTFLiteInt8Static,
    tensor_census,
)
from exporters.torch_onnx import check_onnx
from workbench.runtimes.tf_runtime import import_tensorflow, require_keras

SAVEDMODEL = ("savedmodel",)
FROM_SAVED_MODEL = "tf.lite.TFLiteConverter.from_saved_model"


def saved_model_converter(tf: Any, ctx: ExportContext) -> Any:
    """The TFLite converter of the source SavedModel's serving signature."""
    source = ctx.source_model
    return tf.lite.TFLiteConverter.from_saved_model(
        str(source.path), signature_keys=[source.signature_key]
    )


class SavedModelCopy(Pass):
    """The user's SavedModel directory, copied into the artifact cache as it is."""

    name = "savedmodel_source"
    source_frameworks = SAVEDMODEL
    format = "savedmodel"
    filename = "saved_model"

    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        shutil.copytree(ctx.source_model.path, out, dirs_exist_ok=True)
        return {
            "exporter": "copy of the source SavedModel directory",
            "signature": ctx.source_model.signature_key,
        }


class SavedModelTFLite(Pass):
    name = "savedmodel_tflite"
    source_frameworks = SAVEDMODEL
    format = "tflite"
    filename = "model.tflite"

    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        require_keras(f"pass {self.name!r}")
        tf = import_tensorflow()
        out.write_bytes(saved_model_converter(tf, ctx).convert())
        return {
            "exporter": FROM_SAVED_MODEL,
            "exporter_version": tf.__version__,
            "signature": ctx.source_model.signature_key,
            **tensor_census(out),
        }


class FromSavedModel:
    """The Keras TFLite quantization passes, converting from the SavedModel directory."""

    source_frameworks = SAVEDMODEL
    converter_name = FROM_SAVED_MODEL

    def converter(self, tf: Any, ctx: ExportContext) -> Any:
        return saved_model_converter(tf, ctx)


class SavedModelTFLiteFP16(FromSavedModel, KerasTFLiteFP16):
    name = "savedmodel_tflite_fp16"


class SavedModelTFLiteInt8Dynamic(FromSavedModel, KerasTFLiteInt8Dynamic):
    name = "savedmodel_tflite_int8_dynamic"


class SavedModelTFLiteInt8Static(FromSavedModel, KerasTFLiteInt8Static):
    name = "savedmodel_tflite_int8_static"

    def dataset(self, samples: dict[str, np.ndarray], names: list[str]) -> Iterator[Any]:
        """Items keyed by input name: the converter's positional order is the traced
        function's, which neither the signature (sorted) nor the spec need follow."""
        count = len(np.asarray(samples[names[0]]))
        for i in range(count):
            yield {name: np.asarray(samples[name][i : i + 1]) for name in names}


class SavedModelOnnx(Pass):
    """SavedModel -> ONNX with tf2onnx's SavedModel loader on the serving signature."""

    name = "savedmodel_onnx"
    source_frameworks = SAVEDMODEL
    format = "onnx"
    filename = "model.onnx"
    Params = KerasOnnxParams

    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        require_tf2onnx(self.name)
        tf = import_tensorflow()
        # lazy: onnx, tf2onnx
        import onnx
        import tf2onnx
        from tf2onnx import tf_loader

        source = ctx.source_model
        graph_def, inputs, outputs, renames = tf_loader.from_saved_model(
            str(source.path),
            None,
            None,
            tag=["serve"],
            signatures=[source.signature_key],
            return_tensors_to_rename=True,
        )
        proto, _ = tf2onnx.convert.from_graph_def(
            graph_def,
            name=source.path.name,
            input_names=inputs,
            output_names=outputs,
            opset=ctx.params.opset,
            tensors_to_rename=renames,
        )
        specs = {spec.name: spec for spec in ctx.input_specs()}
        got = [i.name for i in proto.graph.input]
        if sorted(got) != sorted(specs):
            raise ValueError(
                f"tf2onnx named the inputs {got}, the model's inputs are {list(specs)}"
            )
        name_dynamic_axes(proto, [specs[name] for name in got])
        onnx.save(proto, str(out))
        return {
            "exporter": "tf2onnx (tf_loader.from_saved_model + convert.from_graph_def)",
            "exporter_version": tf2onnx.__version__,
            "tensorflow_version": tf.__version__,
            "signature": source.signature_key,
            "opset": check_onnx(out),
            "output_names": [o.name for o in proto.graph.output],
        }


class SavedModelOnnxFp16(OnnxFp16):
    name = "savedmodel_onnx_fp16"
    source_frameworks = SAVEDMODEL


class SavedModelOnnxInt8Dynamic(OnnxInt8Dynamic):
    name = "savedmodel_onnx_int8_dynamic"
    source_frameworks = SAVEDMODEL


class SavedModelOnnxInt8Static(OnnxInt8Static):
    name = "savedmodel_onnx_int8_static"
    source_frameworks = SAVEDMODEL
