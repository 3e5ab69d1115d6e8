"""ONNX Runtime quantization and reduced precision of the FP32 ONNX artifact.

Three passes, each transforming the ("onnx", "fp32") artifact (`ctx.upstream_path`),
whichever framework exported it:

- `onnx_int8_dynamic`: ORT's pre-processing, then `quantize_dynamic` (int8 weights,
  activations quantized at run time by DynamicQuantizeLinear; QOperator format).
- `onnx_int8_static`: pre-processing, then `quantize_static` in QDQ format with
  activation ranges calibrated (MinMax, Entropy or Percentile) on the task's own
  calibration inputs, which are checked against the model's inputs before calibration.
  By default (`float_outputs`) the Q/DQ pair on a model output produced by Gemm/MatMul is
  dropped: ORT still runs that op as an integer kernel with float output (QGemm,
  MatMulIntegerToFloat), and the output is no longer clipped to the calibrated range
  (on the tabular MLP that clipping alone made the max error 10x larger).
- `onnx_fp16`: `onnxruntime.transformers.float16.convert_float_to_float16`, by default
  keeping float32 inputs and outputs so callers feed the same arrays as for FP32.

Both INT8 passes are accuracy-aware by default (`exporters.int8_search`): where the task has
true labels and the INT8 model loses more than `max_accuracy_drop` points of its quality,
the most sensitive nodes are kept in float until it fits; the manifest records the
search (`int8_search*`, `int8_excluded_*`), and `excluded_nodes` counts them too.

Node counts in the manifest (`node_count_definition` says which applies):
- `total_nodes`: nodes of the FP32 graph that was handed to the converter (after
  pre-processing for INT8), i.e. the model's own operators;
- `quantized_nodes`: operators of the output graph that compute on reduced-precision data.
  Dynamic: integer-arithmetic ops (MatMulInteger, ConvInteger, DynamicQuantizeMatMul,
  QGemm, QLinear*, ...). Static QDQ: ops other than QuantizeLinear/DequantizeLinear that
  take at least one input from a DequantizeLinear (the pattern ORT fuses into an integer
  kernel). FP16: ops other than Cast with a float16 output. Activations such as Relu can
  be folded into QuantizeLinear by the QDQ quantizer, so they vanish rather than count.
- INT8 only, from the graph ORT's CPU provider builds on this machine (`cpu_int8_kernels`):
  `cpu_integer_nodes`, ops it runs as integer kernels, and `cpu_unfused_quantized_nodes`,
  Conv/MatMul/Gemm ops it still runs in float on DequantizeLinear outputs. The file says
  what was quantized; these say what runs quantized (they differ for S8S8 QDQ on x86).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from exporters.base import ExportContext, Pass
from exporters.int8_search import AccuracySearch, labelled_slice, run_search
from exporters.torch_onnx import check_onnx
from workbench.env import cpu_flags
from workbench.errors import UserError
from workbench.harness.memory import current_rss_bytes, peak_rss_bytes, reset_peak_rss
from workbench.options import Options, option
from workbench.parity_thresholds import min_agreement

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
QUANT_TYPES = ("qint8", "quint8")
# onnxruntime#24815: quantize_static's int32-bias weight-scale adjustment raises on a
# Gemm bias with a singleton axis; this extra option skips the adjustment.
INT32_BIAS_OPTION = "QDQDisableWeightAdjustForInt32Bias"
INT32_BIAS_WORKAROUND = (
    "QDQDisableWeightAdjustForInt32Bias (onnxruntime#24815: the int32-bias weight-scale "
    "adjustment failed on this model)"
)
CALIBRATION_BATCH = 32
# What one calibration batch may add to the exporter's resident memory (`calibrate`).
CALIBRATION_MEMORY_BYTES = 512 << 20
INTEGER_OPS = frozenset(
    {
        "MatMulInteger",
        "ConvInteger",
        "DynamicQuantizeMatMul",
        "MatMulIntegerToFloat",
        "DynamicQuantizeLSTM",
        "QAttention",
        "QGemm",
        "QLinearMatMul",
        "QLinearConv",
        "QLinearAdd",
        "QLinearMul",
        "QEmbedLayerNormalization",
    }
)
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
# Float compute ops as they appear in ORT's optimized CPU graph.
FLOAT_COMPUTE_OPS = frozenset({"Conv", "FusedConv", "MatMul", "FusedMatMul", "Gemm", "FusedGemm"})
# CPU features that give ONNX Runtime fast INT8 dot products (workbench.env.cpu_flags names).
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
NO_VNNI_WARNING = "this CPU has no VNNI/AMX: INT8 matmuls may not beat FP32"
CONV_DYNAMIC_WARNING = (
    "dynamic INT8 on a model with Conv layers is often slower than FP32 in ONNX Runtime "
    "(activations are quantized at run time); prefer static INT8 (onnx_int8_static)"
)
U8S8_NO_VNNI_WARNING = (
    "quint8 activations with qint8 weights (U8S8) can saturate on CPUs without VNNI "
    "(VPMADDUBSW); if accuracy drops, try activation_type=qint8 or per_channel=false"
)
FP16_CPU_WARNING = (
    "ONNX Runtime's CPU provider runs most FP16 ops by casting; expect FP16 to be slower "
    "than FP32 on CPU (FP16 pays off on GPUs)"
)


class CalibrationSetError(UserError, ValueError):
    """A calibration set that does not fit the model's inputs (raised before calibration)."""


# --------------------------------------------------------------------------- configs


def _choice(pass_name: str, key: str, value: Any, valid: Sequence[Any]) -> None:
    if value not in valid:
        raise UserError(
            f"pass {pass_name!r}: {key}={value!r} is not valid: choose one of "
            + ", ".join(map(str, valid))
        )


def names_list(text: str) -> list[str]:
    """A comma-separated parameter ("MatMul, Gather") as a list of names."""
    return [name.strip() for name in text.split(",") if name.strip()]


@dataclass(frozen=True)
class NodeSelection(Options):
    """Which nodes an INT8 pass quantizes, as comma-separated names (empty: ORT's default).

    - `op_types_to_quantize`: only these op types ("MatMul,Gather"). ORT 1.31's dynamic
      INT8 quantizes Gather on a constant table (embedding lookups) by default; "MatMul"
      keeps the embeddings in float, "Gather" asks for them explicitly. The manifest's
      `int8_op_types` says which ops compute on 8-bit data.
    - `op_types_to_exclude`: keep every node of these op types in float
      ("Softmax,LayerNormalization,Erf"): static INT8 of a transformer collapses when its
      softmax, normalization and GELU run on 8-bit activations.
    - `nodes_to_exclude`: keep these nodes (by name, as in the FP32 graph after ORT's
      pre-processing) in float.
    """

    op_types_to_quantize: str = option(
        "", "quantize only these op types, comma-separated (empty: ORT's default)"
    )
    op_types_to_exclude: str = option("", "keep nodes of these op types in float, comma-separated")
    nodes_to_exclude: str = option(
        "", "keep these nodes in float, comma-separated names from the pre-processed graph"
    )


@dataclass(frozen=True)
class DynamicConfig(NodeSelection, AccuracySearch):
    """Parameters of `onnx_int8_dynamic` (ORT quantize_dynamic). Per-channel weights cost
    little here and keep much more accuracy on transformers (MiniLM embeddings: mean
    cosine 0.990 per channel vs 0.954 per tensor, measured for issue 10); the default
    stays per-tensor so existing artifacts and their cache keys keep their meaning."""

    per_channel: bool = option(False, "one weight scale per output channel, not per tensor")
    weight_type: str = option("qint8", "the 8-bit type of the weights: qint8 or quint8")

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice("onnx_int8_dynamic", "weight_type", self.weight_type, QUANT_TYPES)


@dataclass(frozen=True)
class StaticConfig(NodeSelection, AccuracySearch):
    """Parameters of `onnx_int8_static` (ORT quantize_static, QDQ)."""

    calibration_method: str = option(
        "minmax", "how activation ranges come from calibration: minmax, entropy or percentile"
    )
    calibration_size: int = option(256, "calibration items drawn from the task's own set")
    per_channel: bool = option(True, "one weight scale per output channel, not per tensor")
    # quint8 activations (U8S8): ORT's docs name S8S8 in QDQ format as the general first
    # choice, but on x86-64 the CPU provider's fast integer kernels are U8S8 (VNNI's
    # VPDPBUSD multiplies u8 by s8). Measured with ORT 1.31.1 on an AVX-512-VNNI Xeon
    # (2 threads, ResNet-18, batch 1): S8S8 QDQ got 9 of 20 Convs fused into QLinearConv,
    # the rest ran in float behind DequantizeLinear, 64 ms vs 57 ms FP32 (forcing the
    # fusion with session.qdqisint8allowed=1: 383 ms); U8S8 fused all 20, 27 ms. U8S8 can
    # saturate on AVX2/AVX-512 CPUs without VNNI (VPMADDUBSW); the manifest warns there.
    activation_type: str = option("quint8", "the 8-bit type of the activations: quint8 or qint8")
    weight_type: str = option("qint8", "the 8-bit type of the weights: qint8 or quint8")
    # Leave model outputs in float where ORT still fuses the producer into an integer
    # kernel with float output (Gemm -> QGemm, MatMul -> MatMulIntegerToFloat): a Q/DQ
    # pair on a graph output only clips and rounds what the caller gets back.
    float_outputs: bool = option(
        True, "no Q/DQ pair on outputs whose producer ORT fuses into a float-output integer op"
    )
    # Weights in 7 bits (ORT's reduce_range): without VNNI/AMX, x86 integer kernels sum
    # u8*s8 pairs into int16 (VPMADDUBSW), which saturates for full-range weights. Measured
    # on a 2-core AMD EPYC with AVX2 only (ORT 1.31.1, tabular mlp, per-channel U8S8):
    # top-1 agreement with FP32 0.984 and scaled error 0.145 (parity fails) with 8-bit
    # weights. "auto": on when the exporting host's CPU has neither VNNI nor AMX (the value
    # used is what the manifest and the cache key record).
    reduce_range: bool | Literal["auto"] = option(
        "auto",
        "7-bit weights (ORT's reduce_range), against int16 saturation on CPUs without VNNI "
        "or AMX (auto: on when the exporting CPU has neither)",
    )

    def __post_init__(self) -> None:
        if self.reduce_range == "auto":
            object.__setattr__(self, "reduce_range", not any(int8_support().values()))
        super().__post_init__()
        name = "onnx_int8_static"
        _choice(name, "calibration_method", self.calibration_method, CALIBRATION_METHODS)
        if (
            not isinstance(self.calibration_size, int)
            or isinstance(self.calibration_size, bool)
            or self.calibration_size < 1
        ):
            raise UserError(
                f"pass {name!r}: calibration_size must be a positive integer, "
                f"got {self.calibration_size!r}"
            )
        _choice(name, "activation_type", self.activation_type, QUANT_TYPES)
        _choice(name, "weight_type", self.weight_type, QUANT_TYPES)


@dataclass(frozen=True)
class Fp16Config(Options):
    """Parameters of `onnx_fp16`: keep_io_types leaves the graph's inputs and outputs in
    float32 (Casts at the edges), so callers feed the same arrays as FP32."""

    keep_io_types: bool = option(
        True, "keep the graph's inputs and outputs float32, so callers feed FP32 arrays"
    )


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class OnnxInput:
    """A graph input of the model to calibrate: name, numpy dtype and shape (int or None
    for a symbolic/unknown dimension)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]


def onnx_inputs(model: Any) -> list[OnnxInput]:
    """The real inputs (not initializers) of an onnx ModelProto."""
    # lazy: onnx
    from onnx import helper

    initializers = {init.name for init in model.graph.initializer}
    inputs = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        dims = tuple(
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in tensor.shape.dim
        )
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type))
        inputs.append(OnnxInput(value.name, dtype, dims))
    return inputs


def _shape_text(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def validate_calibration_inputs(
    feed: Mapping[str, np.ndarray], expected: Sequence[OnnxInput]
) -> int:
    """Check a calibration set against the model's inputs before any calibration runs:
    every input present, nothing extra, same dtype, same rank, fixed non-batch dimensions
    equal, and one item count across inputs. Returns that count; raises
    CalibrationSetError (a ValueError) naming the input, the shape given and expected."""
    names = [spec.name for spec in expected]
    missing = [name for name in names if name not in feed]
    if missing:
        raise CalibrationSetError(
            f"calibration set has no input {missing[0]!r}: the model takes "
            f"{', '.join(names)}; the set has {', '.join(feed) or 'nothing'}"
        )
    extra = [name for name in feed if name not in names]
    if extra:
        raise CalibrationSetError(
            f"calibration set has input {extra[0]!r} that the model does not take: "
            f"the model takes {', '.join(names)}"
        )
    counts: dict[str, int] = {}
    for spec in expected:
        value = np.asarray(feed[spec.name])
        want = _shape_text(spec.shape)
        if value.dtype != spec.dtype:
            raise CalibrationSetError(
                f"calibration input {spec.name!r} has dtype {value.dtype} but the model "
                f"expects {spec.dtype} (shape given {tuple(value.shape)}, expected {want})"
            )
        if value.ndim != len(spec.shape):
            raise CalibrationSetError(
                f"calibration input {spec.name!r} has shape {tuple(value.shape)} but the "
                f"model expects {want} (rank {value.ndim} instead of {len(spec.shape)})"
            )
        for axis in range(1, value.ndim):
            if spec.shape[axis] is not None and value.shape[axis] != spec.shape[axis]:
                raise CalibrationSetError(
                    f"calibration input {spec.name!r} has shape {tuple(value.shape)} but "
                    f"the model expects {want} (axis {axis}: {value.shape[axis]} instead "
                    f"of {spec.shape[axis]})"
                )
        if value.ndim == 0 or value.shape[0] == 0:
            raise CalibrationSetError(
                f"calibration input {spec.name!r} is empty (shape {tuple(value.shape)}, "
                f"expected {want}): give at least one item"
            )
        counts[spec.name] = value.shape[0]
    if len(set(counts.values())) > 1:
        raise CalibrationSetError(
            "calibration inputs disagree on the number of items: "
            + ", ".join(f"{name}: {count}" for name, count in counts.items())
        )
    return next(iter(counts.values()), 0)


def _fixed_batch(expected: Sequence[OnnxInput]) -> int | None:
    sizes = {spec.shape[0] for spec in expected if spec.shape and spec.shape[0] is not None}
    return sizes.pop() if len(sizes) == 1 else None


def _data_reader(
    feed: Mapping[str, np.ndarray], count: int, batch: int, whole_batches: bool
) -> Any:
    """A CalibrationDataReader yielding `feed` in batches of `batch` items (dropping a short
    last batch when `whole_batches`, for models whose batch axis is fixed)."""
    # lazy: onnxruntime
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            stop = count - count % batch if whole_batches else count
            self._starts = iter(range(0, stop, batch))

        def get_next(self) -> dict[str, np.ndarray] | None:
            start = next(self._starts, None)
            if start is None:
                return None
            return {
                name: np.ascontiguousarray(value[start : start + batch])
                for name, value in feed.items()
            }

    return _Reader()


# Calibrator settings per method, passed to ORT's create_calibrator explicitly. MinMax and
# Percentile use ORT's own defaults. Entropy does not: quantize_static builds its entropy
# histogram with 128 bins and 128 quantized bins, which leaves one candidate threshold
# (the full range) unless the histogram happens to grow while merging batches, so
# "entropy" silently equals MinMax (it did, bit for bit, on the tabular MLP). 512 bins
# give the KL search 129 candidate ranges; 256 quantized bins model the 256 levels of an
# 8-bit tensor over the signed histogram. (ORT's KL search is pure Python: 2048 bins cost
# ~1.5 s per tensor, 512 bins ~0.4 s.)
CALIBRATOR_OPTIONS: dict[str, dict[str, Any]] = {
    "minmax": {},
    "entropy": {"num_bins": 512, "num_quantized_bins": 256},
    "percentile": {"num_bins": 2048, "percentile": 99.999, "symmetric": True},
}


def _calibration_method(name: str) -> Any:
    # lazy: onnxruntime
    from onnxruntime.quantization import CalibrationMethod

    return {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[name]


def calibrate(
    model_path: Path,
    feed: Mapping[str, np.ndarray],
    count: int,
    fixed_batch: int | None,
    method: str,
    cache: Path,
    memory_bytes: int = CALIBRATION_MEMORY_BYTES,
) -> Path:
    """Run ORT's calibrator for `method` over the first `count` items of `feed` on the
    model at `model_path` and save the tensor ranges to `cache` (a JSON file
    quantize_static loads through its calibration_cache_path), in bounded memory:

    - the session runs without ORT's CPU arena (which keeps the largest run's memory),
      and the batch is as large as fits `memory_bytes` by a probe of 1 and 4 items (a
      fixed batch axis keeps its size): one batch of 32 images of the 640-px detector
      alone peaked at 7.6 GB;
    - batches are fed one `collect_data` call each, so only one batch's intermediate
      outputs are alive at a time: ORT keeps every output of a call until it ends, and
      the histogram methods copy them all once more. Min/max ranges merge exactly across
      calls; histograms merge as ORT merges them batch by batch. (ORT's own
      `max_intermediate_outputs` option is no help: in 1.31 it drops the outputs it
      clears instead of merging them.)"""
    # lazy: onnxruntime
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    calibrator = create_calibrator(
        model_path,
        # The op types quantize_static itself calibrates: the ones it can quantize.
        sorted(set(QLinearOpsRegistry) | set(QDQRegistry)),
        augmented_model_path=str(cache.with_name("augmented.onnx")),
        calibrate_method=_calibration_method(method),
        extra_options=CALIBRATOR_OPTIONS[method],
    )
    _without_arena(calibrator)
    batch = fixed_batch or _calibration_batch(calibrator.infer_session, feed, memory_bytes)
    reader = _data_reader(feed, count, batch, whole_batches=fixed_batch is not None)
    while (item := reader.get_next()) is not None:
        calibrator.collect_data(OneBatchReader(item))
    save_tensors_data(calibrator.compute_data(), cache)
    return cache


def _without_arena(calibrator: Any) -> None:
    """Rebuild the calibrator's session (as ORT builds it) without the CPU memory arena:
    an arena keeps the largest batch's activations (rounded up) for the session's life,
    which is the process's peak; without it each run returns its memory."""
    # lazy: onnxruntime
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.enable_cpu_mem_arena = False
    calibrator.infer_session = ort.InferenceSession(
        calibrator.augmented_model_path,
        sess_options=options,
        providers=calibrator.execution_providers,
    )


class OneBatchReader:
    """A CalibrationDataReader of one batch (ORT only calls get_next)."""

    def __init__(self, item: dict[str, np.ndarray]) -> None:
        self._item: dict[str, np.ndarray] | None = item

    def get_next(self) -> dict[str, np.ndarray] | None:
        item, self._item = self._item, None
        return item


def _calibration_batch(session: Any, feed: Mapping[str, np.ndarray], memory_bytes: int) -> int:
    """The largest calibration batch (at most CALIBRATION_BATCH) whose run fits
    `memory_bytes`, from the peak RSS that runs of one and of two items add: the memory
    of a run is not proportional to its batch at small sizes (ResNet-50 added ~30 MB for
    one image, ~3 GB for 32), so the slope between the two counts too. (A probe of four
    640-px images cost more than the batch it chose.) Where the peak cannot be reset
    (not Linux), one item at a time."""
    count = len(next(iter(feed.values())))

    def added(n: int) -> int | None:
        base = current_rss_bytes()
        if not base or not reset_peak_rss():
            return None
        session.run(None, {name: np.ascontiguousarray(v[:n]) for name, v in feed.items()})
        return max(peak_rss_bytes() - base, 0)

    one, n = added(1), min(2, count)
    more = added(n) if one is not None and n > 1 else None
    if one is None or more is None:
        return 1
    per_item = max(more / n, (more - one) / (n - 1), 1.0)
    return int(max(1, min(CALIBRATION_BATCH, memory_bytes // per_item)))


def _quant_type(name: str) -> Any:
    # lazy: onnxruntime
    from onnxruntime.quantization import QuantType

    return {"qint8": QuantType.QInt8, "quint8": QuantType.QUInt8}[name]


def preprocess_model(source: Path, out: Path) -> None:
    """ORT's quantization pre-processing: symbolic shape inference, graph optimization,
    ONNX shape inference."""
    # lazy: onnxruntime
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # auto_merge: symbolic shape inference merges conflicting symbolic dims (e.g. after
    # Resize/upsample in detector necks) instead of failing.
    quant_pre_process(str(source), str(out), auto_merge=True)


def _restore_io_dim_names(source: Any, out: Path) -> None:
    """Pre-processing renames symbolic dims ("batch" -> "s31"); give the inputs and outputs
    of `out` the symbolic names of the FP32 model again so `--dim NAME=` keeps working."""
    # lazy: onnx
    import onnx

    model = onnx.load(str(out))
    changed = False
    for old_values, new_values in (
        (source.graph.input, model.graph.input),
        (source.graph.output, model.graph.output),
    ):
        old = {v.name: v for v in old_values}
        for value in new_values:
            if value.name not in old:
                continue
            old_dims = old[value.name].type.tensor_type.shape.dim
            new_dims = value.type.tensor_type.shape.dim
            if len(old_dims) != len(new_dims):
                continue
            for before, after in zip(old_dims, new_dims, strict=True):
                if before.HasField("dim_param") and not after.HasField("dim_value"):
                    if after.dim_param != before.dim_param:
                        after.dim_param = before.dim_param
                        changed = True
    if changed:
        onnx.save(model, str(out))


def select_nodes(path: Path, config: NodeSelection, pass_name: str) -> dict[str, Any]:
    """The quantizer's node selection for the (pre-processed) model at `path`:
    `op_types_to_quantize` (None: ORT's default), `nodes_to_exclude` (named nodes plus every
    node of an excluded op type; unnamed nodes get a name in the file first) and warnings
    for op types named that the graph does not have. A node name the graph lacks is a
    UserError listing some that exist."""
    # lazy: onnx
    import onnx

    model = onnx.load(str(path))
    nodes = model.graph.node
    taken = {node.name for node in nodes}
    renamed = False
    for index, node in enumerate(nodes):
        if not node.name:
            node.name = f"{node.op_type}_wb{index}"
            while node.name in taken:
                node.name += "_"
            taken.add(node.name)
            renamed = True
    if renamed:
        onnx.save(model, str(path))
    present = {node.op_type for node in nodes}
    to_quantize = names_list(config.op_types_to_quantize)
    exclude_types = names_list(config.op_types_to_exclude)
    named = names_list(config.nodes_to_exclude)
    missing = [name for name in named if name not in taken]
    if missing:
        examples = ", ".join(sorted(taken)[:8])
        raise UserError(
            f"pass {pass_name!r}: nodes_to_exclude names {missing[0]!r}, which the "
            f"pre-processed graph does not have (it has e.g. {examples}): use names from "
            "that graph, or op_types_to_exclude"
        )
    absent = [op for op in [*to_quantize, *exclude_types] if op not in present]
    excluded = named + [
        node.name for node in nodes if node.op_type in exclude_types and node.name not in named
    ]
    return {
        "op_types_to_quantize": to_quantize or None,
        "nodes_to_exclude": excluded,
        "warnings": [
            f"op type(s) {', '.join(absent)} named in the node selection are not in this graph"
        ]
        if absent
        else [],
    }


# Ops that ORT's CPU provider still runs as an integer kernel when their DequantizeLinear
# inputs are kept but the QuantizeLinear on their output is dropped.
FLOAT_OUTPUT_FUSABLE = frozenset({"Gemm", "MatMul"})


def float_graph_outputs(model: Any) -> list[str]:
    """Remove the QuantizeLinear -> DequantizeLinear pair that QDQ quantization puts on a
    graph output when the output's producer is Gemm/MatMul, so the model returns its
    float result unclipped. Edits `model` in place; returns the outputs changed."""
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {value.name for value in graph.output}
    changed: list[str] = []
    for name in [value.name for value in graph.output]:
        dq = producer.get(name)
        if dq is None or dq.op_type != "DequantizeLinear" or consumers.get(name):
            continue
        q = producer.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear" or len(consumers.get(dq.input[0], [])) != 1:
            continue
        source = producer.get(q.input[0])
        if (
            source is None
            or source.op_type not in FLOAT_OUTPUT_FUSABLE
            or len(consumers.get(q.input[0], [])) != 1
            or q.input[0] in graph_outputs
        ):
            continue
        source.output[list(source.output).index(q.input[0])] = name
        graph.node.remove(dq)
        graph.node.remove(q)
        changed.append(name)
    if changed:
        used = {name for node in graph.node for name in node.input}
        unused = [init for init in graph.initializer if init.name not in used]
        for init in unused:
            graph.initializer.remove(init)
    return changed


def _is_integer_op(op_type: str) -> bool:
    return op_type in INTEGER_OPS or op_type.startswith("QLinear")


def _count_integer_ops(model: Any) -> int:
    return sum(_is_integer_op(node.op_type) for node in model.graph.node)


def cpu_runtime_graph(path: Path) -> Any:
    """The graph ONNX Runtime's CPU provider runs for the model at `path` on this machine,
    after all its graph optimizations (QDQ fusion included), as an onnx ModelProto."""
    # lazy: onnx, onnxruntime
    import onnx
    import onnxruntime

    with tempfile.TemporaryDirectory(prefix="wb-ort-opt-") as tmp:
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        options.log_severity_level = 3
        onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath)


def cpu_int8_kernels(path: Path) -> dict[str, int | None]:
    """How ORT's CPU provider runs an INT8 model here: `cpu_integer_nodes`, ops executed as
    integer kernels (QLinearConv, QGemm, MatMulInteger, DynamicQuantizeMatMul...), and
    `cpu_unfused_quantized_nodes`, Conv/MatMul/Gemm ops still computing in float on
    DequantizeLinear outputs (quantized in the file, not in the run)."""
    try:
        graph = cpu_runtime_graph(path).graph
    except Exception:  # noqa: BLE001 - the counts are informative, never fatal
        return {"cpu_integer_nodes": None, "cpu_unfused_quantized_nodes": None}
    dq_outputs = {
        out for node in graph.node if node.op_type == "DequantizeLinear" for out in node.output
    }
    return {
        "cpu_integer_nodes": sum(_is_integer_op(node.op_type) for node in graph.node),
        "cpu_unfused_quantized_nodes": sum(
            node.op_type in FLOAT_COMPUTE_OPS and any(i in dq_outputs for i in node.input)
            for node in graph.node
        ),
    }


def _int8_op_types(model: Any) -> list[str]:
    """Op types in a dynamically quantized graph that compute on 8-bit data: ops other than
    DequantizeLinear fed by an int8/uint8 initializer or a (Dynamic)QuantizeLinear output,
    e.g. ["Gather", "MatMulInteger"] (says whether an embedding lookup was quantized)."""
    # lazy: onnx
    import onnx

    eight_bit = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}
    tensors = {init.name for init in model.graph.initializer if init.data_type in eight_bit}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DynamicQuantizeLinear"):
            tensors.add(node.output[0])
    return sorted(
        {
            node.op_type
            for node in model.graph.node
            if node.op_type != "DequantizeLinear" and any(i in tensors for i in node.input)
        }
    )


def _count_qdq_ops(model: Any) -> int:
    dq_outputs = {
        out
        for node in model.graph.node
        if node.op_type == "DequantizeLinear"
        for out in node.output
    }
    return sum(
        node.op_type not in QDQ_OPS and any(i in dq_outputs for i in node.input)
        for node in model.graph.node
    )


def _count_fp16_ops(model: Any) -> int:
    # lazy: onnx
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    graph = inferred.graph
    types: dict[str, int] = {init.name: init.data_type for init in graph.initializer}
    for value in (*graph.input, *graph.value_info, *graph.output):
        types[value.name] = value.type.tensor_type.elem_type
    fp16 = onnx.TensorProto.FLOAT16
    return sum(
        node.op_type != "Cast" and any(types.get(o) == fp16 for o in node.output)
        for node in graph.node
    )


def int8_support() -> dict[str, bool]:
    """Which of the CPU's INT8 dot-product flags (INT8_FLAGS) this machine has."""
    flags = cpu_flags()
    return {name: bool(flags.get(name)) for name in INT8_FLAGS}


def int8_warnings(support: Mapping[str, bool], kernels: Mapping[str, int | None]) -> list[str]:
    """The warnings an INT8 artifact carries: no VNNI-class instructions, or quantized
    nodes that ORT's CPU provider leaves unfused (both make INT8 slow here)."""
    warnings = [] if any(support.values()) else [NO_VNNI_WARNING]
    unfused = kernels.get("cpu_unfused_quantized_nodes")
    if unfused:
        warnings.append(
            f"ONNX Runtime's CPU provider leaves {unfused} quantized Conv/MatMul/Gemm op(s) "
            "in float here (DequantizeLinear not fused into an integer kernel): expect this "
            "INT8 model to be slow; on x86 use activation_type=quint8"
        )
    return warnings


def _base_extras(exporter: str, params: Options, definition: str) -> dict[str, Any]:
    # lazy: onnxruntime
    import onnxruntime

    return {
        "exporter": exporter,
        "exporter_version": onnxruntime.__version__,
        "params": params.to_dict(),
        "node_count_definition": definition,
    }


def _finish(source: Any, out: Path, extras: dict[str, Any]) -> dict[str, Any]:
    _restore_io_dim_names(source, out)
    extras["opset"] = check_onnx(out)
    return extras


def search(
    ctx: ExportContext, config: AccuracySearch, make: Any, pre: Path, out: Path
) -> dict[str, Any]:
    """Quantize to `out` with `make(extra_excluded, path)`, accuracy-aware where the task
    has true labels (`exporters.int8_search`): its quality metric, and its parity metric
    (decision agreement) held to the precision's floor as the verdict holds it."""
    task = ctx.task
    slice_ = labelled_slice(ctx, config.search_items) if config.accuracy_aware else None

    def agreement(reference: list[np.ndarray], candidate: list[np.ndarray]) -> float | None:
        return task.parity(reference, candidate, model=ctx.model).get("metric_value")

    def quality(outputs: list[np.ndarray], labels: Any) -> float:
        return task.accuracy(task.scored_output(outputs), labels)

    return run_search(
        config,
        make,
        pre,
        out,
        slice_,
        quality if callable(getattr(task, "accuracy", None)) else None,
        agreement if callable(getattr(task, "parity", None)) else None,
        min_agreement(ctx.precision, getattr(task, "name", None)),
    )


# --------------------------------------------------------------------------- passes


class _OnnxTransform(Pass):
    source_frameworks = ("torch", "keras")
    format = "onnx"
    filename = "model.onnx"
    upstream = ("onnx", "fp32")

    def _upstream(self, ctx: ExportContext) -> Path:
        if ctx.upstream_path is None:
            raise RuntimeError(f"pass {self.name!r} needs the FP32 ONNX artifact to transform")
        return Path(ctx.upstream_path)


class OnnxInt8Dynamic(_OnnxTransform):
    name = "onnx_int8_dynamic"
    precisions = ("int8-dynamic",)
    Params = DynamicConfig

    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        # lazy: onnx, onnxruntime
        import onnx
        from onnxruntime.quantization import quantize_dynamic

        config = ctx.params
        source = self._upstream(ctx)
        with tempfile.TemporaryDirectory(prefix="wb-quant-") as tmp:
            pre = Path(tmp) / "preprocessed.onnx"
            preprocess_model(source, pre)
            selection = select_nodes(pre, config, self.name)
            fp32 = onnx.load(str(pre))

            def make(extra: list[str], path: Path) -> None:
                quantize_dynamic(
                    str(pre),
                    str(path),
                    per_channel=config.per_channel,
                    weight_type=_quant_type(config.weight_type),
                    op_types_to_quantize=selection["op_types_to_quantize"],
                    nodes_to_exclude=[*selection["nodes_to_exclude"], *extra],
                )

            searched = search(ctx, config, make, pre, out)
        result = onnx.load(str(out))
        support = int8_support()
        kernels = cpu_int8_kernels(out)
        warnings = int8_warnings(support, kernels)
        if any(node.op_type == "Conv" for node in fp32.graph.node):
            warnings.insert(0, CONV_DYNAMIC_WARNING)
        warnings.extend(selection["warnings"])
        extras = _base_extras(
            "onnxruntime.quantization.quantize_dynamic (after quant_pre_process)",
            ctx.params,
            "quantized_nodes: integer-arithmetic ops (MatMulInteger, ConvInteger, "
            "DynamicQuantizeMatMul, QLinear*...) in the output; total_nodes: nodes of the "
            "pre-processed FP32 graph",
        )
        extras.update(
            quantized_nodes=_count_integer_ops(result),
            total_nodes=len(fp32.graph.node),
            excluded_nodes=len(selection["nodes_to_exclude"])
            + searched.get("int8_excluded_count", 0),
            int8_op_types=_int8_op_types(result),
            **searched,
            **kernels,
            cpu_int8_support=support,
            warnings=warnings,
        )
        return _finish(onnx.load(str(source)), out, extras)


class OnnxInt8Static(_OnnxTransform):
    name = "onnx_int8_static"
    precisions = ("int8-static",)
    Params = StaticConfig

    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        # lazy: onnx, onnxruntime
        import onnx
        from onnxruntime.quantization import QuantFormat, quantize_static

        config = ctx.params
        source = self._upstream(ctx)
        original = onnx.load(str(source))
        expected = onnx_inputs(original)
        feed = ctx.calibration_inputs(config.calibration_size)
        count = validate_calibration_inputs(feed, expected)  # before any calibration
        fixed = _fixed_batch(expected)
        batch = fixed or CALIBRATION_BATCH
        if fixed and count < fixed:
            raise CalibrationSetError(
                f"the model's batch axis is fixed at {batch} but the calibration set has "
                f"only {count} items: raise calibration_size"
            )
        with tempfile.TemporaryDirectory(prefix="wb-quant-") as tmp:
            pre = Path(tmp) / "preprocessed.onnx"
            preprocess_model(source, pre)
            selection = select_nodes(pre, config, self.name)
            fp32 = onnx.load(str(pre))
            cache = calibrate(
                pre, feed, count, fixed, config.calibration_method, Path(tmp) / "calibration.json"
            )
            changed_outputs: dict[str, list[str]] = {}
            workarounds: list[str] = []

            def make(extra: list[str], path: Path) -> None:
                settings: dict[str, Any] = dict(
                    quant_format=QuantFormat.QDQ,
                    per_channel=config.per_channel,
                    activation_type=_quant_type(config.activation_type),
                    weight_type=_quant_type(config.weight_type),
                    reduce_range=config.reduce_range,
                    calibrate_method=_calibration_method(config.calibration_method),
                    calibration_cache_path=str(cache),
                    op_types_to_quantize=selection["op_types_to_quantize"],
                    nodes_to_exclude=[*selection["nodes_to_exclude"], *extra],
                )
                if workarounds:
                    settings["extra_options"] = {INT32_BIAS_OPTION: True}
                try:
                    quantize_static(str(pre), str(path), None, **settings)
                except ValueError as exc:
                    if workarounds or "truth value of an array" not in str(exc):
                        raise
                    # onnxruntime#24815: the int32-bias weight-scale adjustment fails on a
                    # Gemm whose bias has a singleton axis (e.g. skl2onnx classifiers); the
                    # documented switch skips that adjustment, and the manifest says so
                    workarounds.append(INT32_BIAS_WORKAROUND)
                    settings["extra_options"] = {INT32_BIAS_OPTION: True}
                    quantize_static(str(pre), str(path), None, **settings)
                made = onnx.load(str(path))
                changed = float_graph_outputs(made) if config.float_outputs else []
                changed_outputs[str(path)] = changed
                if changed:
                    onnx.save(made, str(path))

            searched = search(ctx, config, make, pre, out)
        if workarounds:
            searched["ort_workarounds"] = workarounds
        result = onnx.load(str(out))
        float_outputs = changed_outputs[str(out)]
        support = int8_support()
        kernels = cpu_int8_kernels(out)
        warnings = int8_warnings(support, kernels)
        if (
            config.activation_type == "quint8"
            and not any(support.values())
            and not config.reduce_range
        ):
            warnings.append(U8S8_NO_VNNI_WARNING)
        warnings.extend(selection["warnings"])
        extras = _base_extras(
            "onnxruntime.quantization.quantize_static (QDQ, after quant_pre_process)",
            ctx.params,
            "quantized_nodes: ops other than QuantizeLinear/DequantizeLinear fed by a "
            "DequantizeLinear in the output; total_nodes: nodes of the pre-processed FP32 "
            "graph (Relu-like ops folded into QuantizeLinear count in total only)",
        )
        extras.update(
            quantized_nodes=_count_qdq_ops(result),
            total_nodes=len(fp32.graph.node),
            qdq_nodes=sum(node.op_type in QDQ_OPS for node in result.graph.node),
            excluded_nodes=len(selection["nodes_to_exclude"])
            + searched.get("int8_excluded_count", 0),
            float_outputs=float_outputs,
            **searched,
            calibrator_options=CALIBRATOR_OPTIONS[config.calibration_method],
            calibration_items=count,
            calibration_batch=batch,
            **kernels,
            cpu_int8_support=support,
            warnings=warnings,
        )
        return _finish(original, out, extras)


class OnnxFp16(_OnnxTransform):
    name = "onnx_fp16"
    precisions = ("fp16",)
    Params = Fp16Config

    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        # lazy: onnx, onnxruntime
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16
        from onnxruntime.transformers.onnx_model import OnnxModel

        config = ctx.params
        original = onnx.load(str(self._upstream(ctx)))
        source = onnx.load(str(self._upstream(ctx)))
        # Exporters leave float32 value_info for intermediate tensors; stale after the
        # conversion, it makes the converted graph fail type checks. Shapes are re-inferred.
        del source.graph.value_info[:]
        converted = OnnxModel(convert_float_to_float16(source, keep_io_types=config.keep_io_types))
        # The converter appends the float32<->float16 Casts of keep_io_types at the end of
        # the node list; onnx.checker requires topological order.
        converted.topological_sort()
        converted = converted.model
        onnx.save(converted, str(out))
        extras = _base_extras(
            "onnxruntime.transformers.float16.convert_float_to_float16",
            ctx.params,
            "quantized_nodes: ops other than Cast with a float16 output; total_nodes: "
            "nodes of the FP32 graph",
        )
        extras.update(
            quantized_nodes=_count_fp16_ops(converted),
            total_nodes=len(original.graph.node),
            cpu_int8_support=int8_support(),
            warnings=[FP16_CPU_WARNING],
        )
        return _finish(original, out, extras)


# ------------------------------------------------------- on ORT's transformer-optimized graph


class OnnxFusedInt8Dynamic(OnnxInt8Dynamic):
    """Dynamic INT8 of the `onnx-fused` artifact (exporters.onnx_optimize): ORT quantizes
    the fused Attention (QAttention) and the MatMuls around it."""

    name = "onnx_fused_int8_dynamic"
    format = "onnx-fused"
    upstream = ("onnx-fused", "fp32")


class OnnxFusedInt8Static(OnnxInt8Static):
    """Static INT8 (QDQ) of the `onnx-fused` artifact."""

    name = "onnx_fused_int8_static"
    format = "onnx-fused"
    upstream = ("onnx-fused", "fp32")
