"""Keras -> ONNX with tf2onnx (`tf2onnx.convert.from_keras`).

The input signature comes from the task's input specs, so the ONNX inputs carry the
task's names and its symbolic axes (batch, and sequence where a task has one) stay
dynamic; tf2onnx names them `unk__N`, which are renamed to the task's dimension names.
`onnx.checker` and shape inference run on the file (`exporters.torch_onnx.check_onnx`,
which imports onnx only, never torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporters.base import ExportContext, Pass
from exporters.torch_onnx import check_onnx
from workbench.deps import require
from workbench.options import Options, option
from workbench.runtimes.tf_runtime import require_keras


@dataclass(frozen=True)
class KerasOnnxParams(Options):
    opset: int = option(17, "the ONNX opset tf2onnx writes")


def require_tf2onnx(pass_name: str) -> None:
    """TensorFlow, tf2onnx and onnx, or an UnavailableError naming what to install."""
    require_keras(f"pass {pass_name!r}")
    for module in ("tf2onnx", "onnx"):
        require(
            module,
            f"{module} is not installed: pass {pass_name!r} converts with tf2onnx and "
            "checks the file with onnx (pip install tf2onnx onnx)",
        )


class KerasOnnx(Pass):
    name = "keras_onnx"
    source_frameworks = ("keras",)
    format = "onnx"
    filename = "model.onnx"
    Params = KerasOnnxParams

    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        require_tf2onnx(self.name)
        # lazy: tensorflow, tf2onnx
        import tensorflow as tf
        import tf2onnx

        specs = ctx.input_specs()
        signature = [
            tf.TensorSpec(
                [d if isinstance(d, int) else None for d in spec.shape],
                tf.as_dtype(spec.dtype),
                name=spec.name,
            )
            for spec in specs
        ]
        proto, _ = tf2onnx.convert.from_keras(
            ctx.source_model, input_signature=signature, opset=ctx.params.opset
        )
        got = [i.name for i in proto.graph.input]
        wanted = [spec.name for spec in specs]
        if got != wanted:
            raise ValueError(f"tf2onnx named the inputs {got}, the task's inputs are {wanted}")
        name_dynamic_axes(proto, specs)
        # lazy: onnx
        import onnx

        onnx.save(proto, str(out))
        return {
            "exporter": "tf2onnx.convert.from_keras",
            "exporter_version": tf2onnx.__version__,
            "tensorflow_version": tf.__version__,
            "opset": check_onnx(out),
            "output_names": [o.name for o in proto.graph.output],
        }


def name_dynamic_axes(proto: Any, specs: list[Any]) -> None:
    """Give tf2onnx's anonymous dimensions (`unk__N`) the task's names, in the inputs and
    wherever the same symbol appears in the outputs."""
    renames: dict[str, str] = {}
    for value, spec in zip(proto.graph.input, specs, strict=True):
        for dim, want in zip(value.type.tensor_type.shape.dim, spec.shape, strict=False):
            if isinstance(want, str) and dim.dim_param:
                renames.setdefault(dim.dim_param, want)
                dim.dim_param = renames[dim.dim_param]
    for value in list(proto.graph.output) + list(proto.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in renames:
                dim.dim_param = renames[dim.dim_param]
