"""OpenVINO IR and NNCF post-training INT8 of the FP32 ONNX artifact.

Three passes make the `openvino` format (an IR: `model.xml` + `model.bin`), whichever
framework exported the ONNX file:

- `openvino_ir` (fp32): `openvino.convert_model` of the ("onnx", "fp32") artifact,
  saved with `save_model(compress_to_fp16=False)` so the weights stay float32.
- `openvino_bf16` (bf16): the same IR with `runtime_options/INFERENCE_PRECISION_HINT=bf16`
  in its rt_info, so the file itself says it runs in bf16 (the `openvino` runtime honours
  it, and refuses it on a CPU without AMX-BF16 or AVX512-BF16: the row is `unavailable`).
  The weights are unchanged: bf16 is the CPU plugin's arithmetic, not a file precision.
- `openvino_int8_static` (int8-static): `nncf.quantize` of the FP32 IR on the task's own
  calibration inputs (FakeQuantize ops: int8 weights and activations, calibrated ranges).
  For transformers (`model_type="transformer"`, as the MiniLM tasks set it) NNCF keeps
  softmax, normalization and GELU in float and applies SmoothQuant (alpha 0.95 on MatMuls
  by default), which moves activation outliers into the weights.
  Activation ranges: NNCF's default averages each calibration item's own min and max.
  An item is one row (batch 1); an image or a token sequence holds many positions, so
  its own extremes are near the tensor's, but a tabular row is one vector: the mean of
  256 rows' maxima set the tabular MLP's last hidden range to 5.0 where held-out rows
  reach 16.7, so 0.8% of those activations were clipped and logits moved by up to 0.61
  of the output scale on 4,096 held-out rows (p99 0.26, p50 0.011; agreement 0.982).
  Where every input is a (batch, features) float tensor, `auto` takes the extremes of
  all items instead (minmax): max 0.12, p99 0.014, agreement 0.995 on the same rows.
  Accuracy-aware by default (`NncfParams` are the ORT passes' `AccuracySearch` options,
  sized by the sweep's profile): where the task has true labels the pass calls
  `nncf.quantize_with_accuracy_control` with the same settings, which reverts the worst
  groups of quantizers to float while the task's quality on the labelled slice is more
  than `max_accuracy_drop` points below the FP32 IR's, and the result is held to the
  verdict's rule (quality and decision agreement) before it is kept
  (`exporters.nncf_accuracy`); the manifest records it as the ORT search does
  (`int8_search*`, `int8_excluded_*`). Without labels: `skipped`, plain `nncf.quantize`.

The passes are opt-in (`Pass.opt_in`): all-format sweeps plan them for the tasks that list
them in `Task.pass_params` (the NLP and vision tasks, and every user model: its source,
torch, Keras, SavedModel or an ONNX file, has an FP32 ONNX artifact to convert);
`--formats openvino` asks for them anywhere. Each pass opts out of OpenVINO's and NNCF's
usage telemetry before importing them (`workbench.runtimes.openvino_runtime.opt_out_of_telemetry`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from exporters.base import ExportContext, Pass
from exporters.int8_search import AccuracySearch, labelled_slice
from exporters.nncf_accuracy import ENGINE, quantize_with_control
from workbench.errors import UserError
from workbench.options import NoOptions, option
from workbench.parity_thresholds import min_agreement
from workbench.runtimes.base import feed_keys
from workbench.runtimes.openvino_runtime import (
    PRECISION_KEY,
    RUNTIME_OPTIONS,
    is_quantized,
    opt_out_of_telemetry,
)

FORMAT = "openvino"
FILENAME = "model.xml"
CALIBRATION_BATCH = 1  # NNCF counts calibration items as dataset entries


@dataclass(frozen=True)
class NncfParams(AccuracySearch):
    """Parameters of `openvino_int8_static` (nncf.quantize, or
    nncf.quantize_with_accuracy_control where the task has true labels: the
    `AccuracySearch` options, which a sweep sizes by profile)."""

    calibration_size: int = option(256, "calibration items drawn from the task's own set")
    model_type: Literal["auto", "transformer"] = option(
        "auto",
        "NNCF's model type: transformer keeps softmax/normalization/GELU in float and "
        "applies SmoothQuant; auto: NNCF's generic scheme",
    )
    preset: Literal["performance", "mixed"] = option(
        "performance",
        "NNCF's preset: performance (symmetric activations) or mixed (asymmetric "
        "activations, better for non-ReLU nets such as transformers)",
    )
    smooth_quant_alpha: float = option(
        0.95,
        "SmoothQuant's alpha on MatMuls for model_type=transformer (negative: off)",
    )
    fast_bias_correction: bool = option(
        True, "NNCF's fast bias correction (false: the slower, more exact one)"
    )
    activation_range: Literal["auto", "mean_minmax", "minmax"] = option(
        "auto",
        "how activation ranges come from the calibration items: mean_minmax (NNCF's default: "
        "the mean over items of each item's min and max), minmax (the extremes of all "
        "items); auto: minmax where every input is a (batch, features) float tensor, "
        "else mean_minmax",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.calibration_size, bool) or self.calibration_size < 1:
            raise UserError(
                "pass 'openvino_int8_static': calibration_size must be a positive integer, "
                f"got {self.calibration_size!r}"
            )


def _upstream(pass_name: str, ctx: ExportContext) -> Path:
    if ctx.upstream_path is None:
        raise RuntimeError(f"pass {pass_name!r} needs its upstream artifact")
    return Path(ctx.upstream_path)


def _save(model: Any, out: Path) -> dict[str, Any]:
    """Save an ov.Model as IR at `out` (float weights kept float32); manifest extras."""
    # lazy: openvino
    import openvino as ov

    ov.save_model(model, str(out), compress_to_fp16=False)
    return {
        "exporter_version": ov.get_version(),
        "ops": len(model.get_ops()),
        "quantized_nodes": sum(op.get_type_name() == "FakeQuantize" for op in model.get_ops()),
    }


class OpenVinoIr(Pass):
    name = "openvino_ir"
    source_frameworks = ("torch", "keras", "savedmodel", "onnx")
    format = FORMAT
    precisions = ("fp32",)
    filename = FILENAME
    upstream = ("onnx", "fp32")
    Params = NoOptions
    opt_in = True  # planned for the tasks that list it (Task.pass_params): NLP and vision

    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        opt_out_of_telemetry()
        # lazy: openvino
        import openvino as ov

        model = ov.convert_model(str(_upstream(self.name, ctx)))
        return {"exporter": "openvino.convert_model (ONNX frontend)", **_save(model, out)}


class OpenVinoBf16(Pass):
    name = "openvino_bf16"
    source_frameworks = ("torch", "keras", "savedmodel", "onnx")
    format = FORMAT
    precisions = ("bf16",)
    filename = FILENAME
    upstream = (FORMAT, "fp32")
    Params = NoOptions
    opt_in = True

    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        opt_out_of_telemetry()
        # lazy: openvino
        import openvino as ov

        model = ov.Core().read_model(str(_upstream(self.name, ctx)))
        model.set_rt_info("bf16", [RUNTIME_OPTIONS, PRECISION_KEY])
        return {
            "exporter": "openvino IR with runtime_options INFERENCE_PRECISION_HINT=bf16",
            **_save(model, out),
        }


def calibration_items(
    feed: dict[str, np.ndarray], input_names: list[str]
) -> list[dict[str, np.ndarray]]:
    """The calibration feed as one dict per item (batch 1), keyed by the IR's own input
    names (matched as the parity check matches them)."""
    keys = feed_keys(input_names, list(feed))
    count = len(next(iter(feed.values())))
    return [
        {
            name: np.asarray(feed[key][i : i + CALIBRATION_BATCH])
            for name, key in zip(input_names, keys, strict=True)
        }
        for i in range(0, count, CALIBRATION_BATCH)
    ]


def resolve_activation_range(setting: str, inputs: list[tuple[Any, bool]]) -> str:
    """The activation range estimator to use: the setting, or for `auto` minmax when every
    input (its rank, whether it is floating point) is a (batch, features) float tensor,
    so a calibration item is one vector; token ids (batch, sequence) hold many positions
    per item, as images do: mean_minmax there."""
    if setting != "auto":
        return setting
    vectors = all(real and rank.is_static and rank.get_length() <= 2 for rank, real in inputs)
    return "minmax" if inputs and vectors else "mean_minmax"


class NncfInt8Static(Pass):
    name = "openvino_int8_static"
    source_frameworks = ("torch", "keras", "savedmodel", "onnx")
    format = FORMAT
    precisions = ("int8-static",)
    filename = FILENAME
    upstream = (FORMAT, "fp32")
    Params = NncfParams
    opt_in = True

    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        opt_out_of_telemetry()
        # lazy: openvino, nncf
        import nncf
        import openvino as ov
        from nncf.quantization.advanced_parameters import (
            AdvancedQuantizationParameters,
            AdvancedSmoothQuantParameters,
        )
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet

        params: NncfParams = ctx.params
        model = ov.Core().read_model(str(_upstream(self.name, ctx)))
        names = [port.get_any_name() for port in model.inputs]
        items = calibration_items(ctx.calibration_inputs(params.calibration_size), names)
        transformer = params.model_type == "transformer"
        activation_range = resolve_activation_range(
            params.activation_range,
            [
                (port.get_partial_shape().rank, port.get_element_type().is_real())
                for port in model.inputs
            ],
        )
        ranges = {}
        if activation_range == "minmax":
            ranges["activations_range_estimator_params"] = RangeEstimatorParametersSet.MINMAX
        advanced = AdvancedQuantizationParameters(
            smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=params.smooth_quant_alpha),
            **ranges,
        )
        dataset = nncf.Dataset(items)
        settings: dict[str, Any] = {
            "preset": getattr(nncf.QuantizationPreset, params.preset.upper()),
            "subset_size": len(items),
            "fast_bias_correction": params.fast_bias_correction,
            "model_type": nncf.ModelType.TRANSFORMER if transformer else None,
            "advanced_parameters": advanced,
        }
        search = _accuracy_search(ctx, params)
        if isinstance(search, dict):  # off, or no labels: plain quantization
            quantized, searched = nncf.quantize(model, dataset, **settings), search
            exporter = "nncf.quantize"
        else:
            smoothed = transformer and params.smooth_quant_alpha >= 0
            quantized, searched = quantize_with_control(
                model, dataset, *search, params, settings, smooth_quant=smoothed
            )
            exporter = ENGINE
        if not is_quantized(quantized):
            raise UserError("NNCF inserted no FakeQuantize: nothing in this model was quantized")
        extras = _save(quantized, out)
        return {
            "exporter": f"{exporter} (post-training, OpenVINO backend)",
            "nncf_version": nncf.__version__,
            "calibration_items": len(items),
            "model_type": params.model_type,
            "activation_range": activation_range,
            "smooth_quant": transformer and params.smooth_quant_alpha >= 0,
            **extras,
            **searched,
        }


def _accuracy_search(ctx: ExportContext, params: NncfParams) -> tuple[Any, ...] | dict[str, Any]:
    """What the accuracy-aware mode needs (the labelled held-out slice, the task's quality,
    its decision agreement and the precision's floor), or the manifest fields saying why it
    does not run (`off`; `skipped` without true labels)."""
    if not params.accuracy_aware:
        return {"int8_search": "off"}
    task = ctx.task
    slice_ = labelled_slice(ctx, params.search_items)
    if slice_ is None:
        return {
            "int8_search": "skipped",
            "int8_search_reason": "the task has no true labels: nothing to keep within "
            "budget; plain nncf.quantize",
        }

    def quality(outputs: list[np.ndarray], labels: Any) -> float:
        return task.accuracy(task.scored_output(outputs), labels)

    def agreement(reference: list[np.ndarray], candidate: list[np.ndarray]) -> float | None:
        return task.parity(reference, candidate, model=ctx.model).get("metric_value")

    return (
        slice_,
        quality,
        agreement if callable(getattr(task, "parity", None)) else None,
        min_agreement(ctx.precision, getattr(task, "name", None)),
    )
