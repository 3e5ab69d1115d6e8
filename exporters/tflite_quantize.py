"""Keras -> TFLite with reduced precision through `tf.lite.TFLiteConverter`:

- `keras_tflite_fp16`: float16 weights (`Optimize.DEFAULT` + `supported_types=[tf.float16]`);
  the interpreter dequantizes them to float32 at load, so it shrinks the file, not the math.
- `keras_tflite_int8_dynamic`: dynamic-range quantization (int8 weights, activations
  quantized on the fly); no representative dataset.
- `keras_tflite_int8_static`: full-integer INT8 with a representative dataset drawn from the
  task's own calibration generator (never the held-out parity set). With `int8_io` the model
  takes and returns int8 tensors; the manifest then carries `input_quantization` and
  `output_quantization` (scale, zero point), and the parity check quantizes the float
  held-out inputs with them and dequantizes the outputs. Benchmarks of such a file run on
  generated int8 inputs, since the interpreter reports int8 inputs.
  With `float_tail` (default true) the ops after the model's last weighted layer (no
  weights of their own: a detector's DFL softmax, box decode and output concat, a
  classifier's softmax) are kept in float: see `tail_nodes`. The manifest lists them
  (`float_nodes`, `float_ops`).

Every artifact's manifest counts its quantized tensors from the interpreter's tensor
details (`quantized_tensors` out of `total_tensors`, plus the count of each dtype and op).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from exporters.base import ExportContext, Pass
from workbench.deps import require
from workbench.errors import UserError
from workbench.options import Options, option
from workbench.runtimes.litert_runtime import LITERT_MISSING
from workbench.runtimes.tf_runtime import require_keras


def check_calibration_shapes(
    samples: dict[str, np.ndarray], expected: Sequence[tuple[str, Sequence[Any]]]
) -> int:
    """Check a calibration set against the model's inputs before calibration starts.

    `expected` is (name, shape) per model input, axis 0 the batch; a None, negative or
    named dimension matches any size. Returns the number of samples; raises ValueError
    naming the input and both shapes otherwise."""
    missing = [name for name, _ in expected if name not in samples]
    if missing:
        raise ValueError(
            f"representative dataset has no input(s) {', '.join(map(repr, missing))}: it has "
            f"{', '.join(map(repr, samples)) or 'none'}, the model takes "
            f"{', '.join(repr(n) for n, _ in expected)}"
        )
    counts = set()
    for name, shape in expected:
        array = np.asarray(samples[name])
        model_shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in shape)
        ok = array.ndim == len(model_shape) and all(
            want is None or got == want
            for got, want in zip(array.shape[1:], model_shape[1:], strict=True)
        )
        if not ok:
            raise ValueError(
                f"representative dataset input {name!r} has shape {tuple(array.shape)} "
                f"but the model's input {name!r} has shape {model_shape} "
                "(None: any size; axis 0 is the sample axis)"
            )
        counts.add(array.shape[0])
    if len(counts) != 1 or 0 in counts:
        raise ValueError(
            f"representative dataset inputs must hold the same non-zero number of samples, "
            f"got {sorted(counts)}"
        )
    return counts.pop()


def representative_dataset(
    samples: dict[str, np.ndarray], names: Sequence[str]
) -> Iterator[list[np.ndarray]]:
    """One sample per yield: a list of arrays (batch 1) in the model's input order."""
    n = len(np.asarray(samples[names[0]]))
    for i in range(n):
        yield [np.asarray(samples[name][i : i + 1]) for name in names]


def tensor_census(model_path: Path) -> dict[str, Any]:
    """How many tensors are quantized (int8/int16/int32 with quantization parameters, or
    float16) out of all the interpreter's tensors, with dtype and op counts."""
    # lazy: ai_edge_litert
    from ai_edge_litert import interpreter as litert

    interp = litert.Interpreter(model_path=str(model_path))
    details = interp.get_tensor_details()
    dtypes = Counter(np.dtype(d["dtype"]).name for d in details)
    quantized = sum(
        1
        for d in details
        if np.dtype(d["dtype"]) == np.float16 or len(d["quantization_parameters"]["scales"]) > 0
    )
    try:
        ops = Counter(op["op_name"] for op in interp._get_ops_details())  # private API
    except Exception:  # noqa: BLE001 - op counts are informative only
        ops = Counter()
    return {
        "quantized_tensors": quantized,
        "total_tensors": len(details),
        "tensor_dtypes": dict(sorted(dtypes.items())),
        "op_counts": dict(sorted(ops.items())),
    }


def io_quantization(details: list[dict[str, Any]], names: Sequence[str]) -> list[dict | None]:
    """(scale, zero point, dtype) of each int8/uint8 input or output; None for float ones."""
    result: list[dict | None] = []
    for name, detail in zip(names, details, strict=False):
        dtype = np.dtype(detail["dtype"])
        if dtype.kind in "iu":
            scale, zero_point = detail["quantization"]
            result.append(
                {
                    "name": name,
                    "dtype": dtype.name,
                    "scale": float(scale),
                    "zero_point": int(zero_point),
                }
            )
        else:
            result.append(None)
    return result


# Ops that carry weights: int8 pays off here (4x smaller weights, integer kernels).
WEIGHTED_OPS = frozenset(
    {
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "TRANSPOSE_CONV",
        "FULLY_CONNECTED",
        "BATCH_MATMUL",
        "CONV_3D",
        "EMBEDDING_LOOKUP",
        "UNIDIRECTIONAL_SEQUENCE_LSTM",
    }
)


def tail_nodes(model_content: bytes) -> tuple[list[str], Counter]:
    """Output tensor names (and op counts) of the ops no weighted op depends on: the
    weight-free tail between the last weighted layer(s) and the outputs.

    Why keep it in float: its tensors mix quantities of very different ranges in one
    per-tensor scale (a detector's DFL expectation in bins and the same distance times
    the stride in pixels, pixel boxes and 0..1 scores in one concat), and TFLite's
    calibrator records for the input of an in-place elementwise op the range of that
    op's output (yolov8n_320: `Sum` of the DFL, 0..15 bins, logged as 0..480, the range
    of `Sum * stride`; `Softmax` logged as 0..15), so int8 there rounds box distances to
    ~1.9 bins = 15..60 px. These ops have no weights to shrink and little compute."""
    # lazy: ai_edge_litert
    from ai_edge_litert import interpreter as litert

    interp = litert.Interpreter(
        model_content=model_content,
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    names = {d["index"]: d["name"] for d in interp.get_tensor_details()}
    # private API, as in tensor_census; the model's ops in execution order (a delegate's
    # DELEGATE nodes, were there any, are not ops of the model)
    ops = [op for op in interp._get_ops_details() if op["op_name"] != "DELEGATE"]
    consumers: dict[int, list[int]] = {}
    for i, op in enumerate(ops):
        for t in op["inputs"]:
            consumers.setdefault(int(t), []).append(i)
    feeds_weights = [False] * len(ops)  # op is weighted or some weighted op depends on it
    for i in range(len(ops) - 1, -1, -1):
        op = ops[i]
        feeds_weights[i] = op["op_name"] in WEIGHTED_OPS or any(
            feeds_weights[c] for t in op["outputs"] for c in consumers.get(int(t), [])
        )
    tail = [i for i in range(len(ops)) if not feeds_weights[i]]
    nodes = [names[int(t)] for i in tail for t in ops[i]["outputs"] if int(t) in names]
    return nodes, Counter(ops[i]["op_name"] for i in tail)


def _require_converter_and_interpreter(pass_name: str) -> None:
    """A ModuleNotFoundError naming what is missing: TensorFlow's converter, or the
    ai-edge-litert interpreter that inspects the quantized file."""
    require_keras(f"pass {pass_name!r}")
    require(
        "ai_edge_litert",
        f"{LITERT_MISSING}: pass {pass_name!r} inspects the quantized file in its "
        "interpreter (pip install ai-edge-litert)",
    )


class _KerasTFLiteQuantized(Pass):
    """Shared conversion; subclasses configure the converter."""

    source_frameworks = ("keras",)
    format = "tflite"
    filename = "model.tflite"

    # what `converter` calls: the manifests' exporter name
    converter_name: ClassVar[str] = "tf.lite.TFLiteConverter.from_keras_model"

    def converter(self, tf: Any, ctx: ExportContext) -> Any:
        """The TFLite converter for the source model (a SavedModel source overrides it)."""
        return tf.lite.TFLiteConverter.from_keras_model(ctx.source_model)

    def configure(self, converter: Any, tf: Any, ctx: ExportContext) -> dict[str, Any]:
        raise NotImplementedError

    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        _require_converter_and_interpreter(self.name)
        # lazy: tensorflow
        import tensorflow as tf

        converter = self.converter(tf, ctx)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        extras = self.configure(converter, tf, ctx)
        out.write_bytes(converter.convert())
        return {
            "exporter": self.converter_name,
            "exporter_version": tf.__version__,
            **extras,
            **tensor_census(out),
        }


class KerasTFLiteFP16(_KerasTFLiteQuantized):
    name = "keras_tflite_fp16"
    precisions = ("fp16",)

    def configure(self, converter: Any, tf: Any, ctx: ExportContext) -> dict[str, Any]:
        converter.target_spec.supported_types = [tf.float16]
        return {"quantization": "float16 weights (Optimize.DEFAULT, supported_types=[float16])"}


class KerasTFLiteInt8Dynamic(_KerasTFLiteQuantized):
    name = "keras_tflite_int8_dynamic"
    precisions = ("int8-dynamic",)

    def configure(self, converter: Any, tf: Any, ctx: ExportContext) -> dict[str, Any]:
        return {"quantization": "dynamic range: int8 weights (Optimize.DEFAULT)"}


@dataclass(frozen=True)
class TFLiteInt8StaticParams(Options):
    """Parameters of `keras_tflite_int8_static` (full-integer quantization)."""

    calibration_size: int = option(500, "representative items drawn from the task's own set")
    int8_io: bool = option(False, "int8 model inputs and outputs (the manifest gives their scales)")
    float_tail: bool = option(True, "keep the weight-free ops after the last weighted layer float")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.calibration_size < 1:
            raise UserError(
                "pass 'keras_tflite_int8_static': calibration_size must be a positive "
                f"integer, got {self.calibration_size!r}"
            )


class KerasTFLiteInt8Static(_KerasTFLiteQuantized):
    name = "keras_tflite_int8_static"
    precisions = ("int8-static",)
    # 200 samples leave the hidden activations' ranges short of the held-out tails (tabular
    # mlp: max abs error 2.4 = 26% of the output scale, argmax still 100%); 500 gives 0.32.
    # float_tail: the weight-free ops after the last weighted layer stay float (see
    # tail_nodes). yolov8n_320: box F1 vs float 0.516 -> 0.986, mAP@0.5 0.519 -> 0.908
    # (float 0.904), +19 KB; all of the loss was in that tail.
    Params = TFLiteInt8StaticParams

    def dataset(self, samples: dict[str, np.ndarray], names: list[str]) -> Iterator[Any]:
        """The representative items, as the converter takes them (lists in input order)."""
        return representative_dataset(samples, names)

    def configure(self, converter: Any, tf: Any, ctx: ExportContext) -> dict[str, Any]:
        size, int8_io = ctx.params.calibration_size, ctx.params.int8_io
        specs = ctx.input_specs()
        names = [spec.name for spec in specs]
        keras_inputs = list(getattr(ctx.source_model, "inputs", None) or [])
        shapes = (
            [tuple(k.shape) for k in keras_inputs]
            if len(keras_inputs) == len(specs)
            else [spec.shape for spec in specs]
        )
        samples = ctx.calibration_inputs(size)
        n = check_calibration_shapes(samples, list(zip(names, shapes, strict=True)))
        converter.representative_dataset = lambda: self.dataset(samples, names)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        return {
            "quantization": "full integer int8 (representative dataset)",
            "calibration_samples": n,
            "calibration_source": "task.calibration_inputs (distinct from the parity set)",
            "int8_io": int8_io,
        }

    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        _require_converter_and_interpreter(self.name)
        if ctx.params.float_tail:
            extras = self._export_float_tail(ctx, out)
        else:
            extras = {**super().export(ctx, out), "float_tail": False}
        if extras["int8_io"]:
            # lazy: ai_edge_litert
            from ai_edge_litert import interpreter as litert

            interp = litert.Interpreter(model_path=str(out))
            outputs = interp.get_output_details()
            names = [spec.name for spec in ctx.input_specs()]
            extras["input_quantization"] = io_quantization(interp.get_input_details(), names)
            extras["output_quantization"] = io_quantization(outputs, [d["name"] for d in outputs])
            extras["parity_io"] = (
                "held-out float inputs quantized with input_quantization; int8 outputs "
                "dequantized with output_quantization before comparison"
            )
        return extras

    def _export_float_tail(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        """Calibrate, then quantize with the weight-free tail denylisted: the two steps
        `TFLiteConverter.convert()` runs itself (calibrate, `mlir_quantize`), split the way
        `tf.lite.experimental.QuantizationDebugger` splits them for selective quantization
        (its `denylisted_nodes`), here without its numeric-verify debug model."""
        # lazy: tensorflow
        import tensorflow as tf
        from tensorflow.lite.python import convert  # mlir_quantize: what the debugger calls

        converter = self.converter(tf, ctx)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        extras = self.configure(converter, tf, ctx)
        converter._experimental_calibrate_only = True  # noqa: SLF001 - as the debugger does
        calibrated = converter.convert()
        nodes, ops = tail_nodes(calibrated)
        io_type = tf.int8 if extras["int8_io"] else tf.float32
        out.write_bytes(
            convert.mlir_quantize(
                calibrated,
                disable_per_channel=converter._experimental_disable_per_channel,  # noqa: SLF001
                input_data_type=io_type,
                output_data_type=io_type,
                denylisted_nodes=nodes or None,
            )
        )
        return {
            "exporter": f"{self.converter_name} (calibrate only) + mlir_quantize(denylisted_nodes)",
            "exporter_version": tf.__version__,
            **extras,
            "quantization": "full integer int8 (representative dataset) up to the last "
            "weighted layer; weight-free tail in float",
            "float_tail": True,
            "float_nodes": nodes,
            "float_ops": dict(sorted(ops.items())),
            "float_tail_reason": "ops after the last weighted layer (no weights to "
            "quantize) kept float: per-tensor int8 scales there mix ranges (DFL bins vs "
            "pixels, boxes vs scores) and TFLite's calibrator logs an in-place elementwise "
            "op's input with that op's output range",
            **tensor_census(out),
        }
