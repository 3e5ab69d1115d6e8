"""The `openvino` runtime: ONNX files and OpenVINO IR (`model.xml` + `model.bin`) on the CPU.

OpenVINO's CPU plugin picks its arithmetic precision itself: on a CPU with AMX it runs
bf16 by default (`execution_mode=PERFORMANCE`) even when nobody asked for it. A row
labelled fp32 that silently ran bf16 would be a false result, so this runtime always
states the precision (`INFERENCE_PRECISION_HINT`): f32 unless the settings, or the IR's
own `runtime_options` (written by the `openvino_bf16` pass), ask for bf16; and bf16 only
on a CPU with AMX-BF16 or AVX512-BF16 instructions, otherwise the row is `unavailable`
with the reason. After compiling, the precision and devices are read back from the
compiled model; a mismatch is refused rather than measured.

Settings (`OpenVinoSettings`, `--setting openvino.NAME=VALUE`): the precision hint, the
performance hint, the stream count and a model cache directory. The performance hint's
default (`auto`) follows what is measured: the timed loop (`load`) compiles for latency
(one stream, one synchronous infer request); the offline and server scenarios and
`serve` (`load_served`) compile ONE model for throughput, with streams sharing the
threads every instance was given, and serve from several infer requests (at least one
per instance, else the plugin's OPTIMAL_NUMBER_OF_INFER_REQUESTS), each driven by its own
batcher worker thread (OpenVINO releases the GIL in `infer`, so the requests run
concurrently: what its AsyncInferQueue does, with the batcher's threads as the queue).
The row's provider then names the mode, e.g. "CPU (f32, AVX-512; throughput: 2 streams,
2 requests)". The thread count is the harness's (`INFERENCE_NUM_THREADS`).

OpenVINO's conversion API and NNCF send anonymous usage telemetry unless the user opted
out; `opt_out_of_telemetry` opts out the documented way before either is imported.

The row's `provider` names what ran, e.g. "CPU (bf16, AMX)" or "CPU (int8 + f32, AMX)".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from workbench.devices import Device, host_gpu_reason
from workbench.env import cpu_flags
from workbench.errors import UnavailableError, UserError
from workbench.options import Options, option
from workbench.runtimes.base import LoadedModel, Runtime, RuntimeOptions
from workbench.signature import Dim, TensorSpec, normalize_dtype

log = logging.getLogger(__name__)

OPENVINO_MISSING = "openvino is not installed (pip install openvino)"
# Where an IR keeps the compile settings OpenVINO applies by itself (rt_info).
RUNTIME_OPTIONS = "runtime_options"
PRECISION_KEY = "INFERENCE_PRECISION_HINT"
# The CPU flags (workbench.env.cpu_flags names) that give OpenVINO native bf16 kernels.
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
NO_BF16_REASON = (
    "this CPU has no bf16 instructions (neither AMX-BF16 nor AVX512-BF16): OpenVINO would "
    "emulate or silently run f32, so bf16 is not measured here"
)
OV_PRECISION = {"f32": "f32", "bf16": "bf16"}
# Ops that mark a quantized IR: NNCF inserts FakeQuantize, OpenVINO runs them as int8.
QUANTIZED_OPS = frozenset({"FakeQuantize", "FakeConvert"})


@dataclass(frozen=True)
class OpenVinoSettings(Options):
    """Settings of the openvino runtime (see the module doc)."""

    inference_precision: Literal["auto", "f32", "bf16"] = option(
        "auto",
        "the CPU's arithmetic precision (INFERENCE_PRECISION_HINT); auto: the IR's own "
        "runtime_options, else f32 (never OpenVINO's silent bf16 default)",
    )
    performance_hint: Literal["auto", "latency", "throughput"] = option(
        "auto",
        "PERFORMANCE_HINT: latency (one stream, synchronous calls) or throughput (streams, "
        "one infer request per concurrent caller); auto: latency in the timed loop, "
        "throughput in the offline and server scenarios and `serve`",
    )
    streams: int = option(
        0, "NUM_STREAMS (0: the hint's choice: 1 for latency, the plugin's for throughput)"
    )
    cache_dir: str = option(
        "", "CACHE_DIR for compiled blobs, so a second load skips compilation (empty: none)"
    )
    cpu_pinning: Literal["auto", "on", "off"] = option(
        "auto",
        "ENABLE_CPU_PINNING: on pins each stream's threads to cores, off lets the OS move "
        "them (a host shared with busy neighbours); auto: OpenVINO's choice (on, on Linux)",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.streams < 0:
            raise UserError(
                f"runtime 'openvino': streams must be 0 (the hint's choice) or positive, "
                f"got {self.streams}"
            )


def bf16_reason(flags: Mapping[str, bool] | None = None) -> str | None:
    """Why bf16 cannot run on a CPU with `flags` (default: this host's), or None."""
    flags = cpu_flags() if flags is None else flags
    return None if any(flags.get(name) for name in BF16_FLAGS) else NO_BF16_REASON


def isa_label(precision: str, quantized: bool, flags: Mapping[str, bool]) -> str:
    """The instruction set OpenVINO's CPU kernels use for `precision` on `flags`: what the
    provider names (AMX, AVX512-BF16, AVX512-VNNI, AVX-512, AVX2)."""
    if precision == "bf16":
        return "AMX" if flags.get("amx_bf16") else "AVX512-BF16"
    if quantized:
        if flags.get("amx_int8"):
            return "AMX"
        if flags.get("avx512_vnni") or flags.get("avx_vnni"):
            return "VNNI"
    if flags.get("avx512f"):
        return "AVX-512"
    return "AVX2" if flags.get("avx2") else "SSE"


def choose_precision(
    setting: str, ir_hint: str | None, flags: Mapping[str, bool] | None = None
) -> str:
    """The precision to compile with: the setting, else the IR's hint, else f32; bf16 on a
    CPU without bf16 instructions raises UnavailableError with the reason."""
    precision = setting if setting != "auto" else (ir_hint or "f32")
    if precision not in OV_PRECISION:
        raise UserError(
            f"the OpenVINO IR asks for inference precision {precision!r}: the workbench runs "
            f"{', '.join(OV_PRECISION)}"
        )
    if precision == "bf16":
        reason = bf16_reason(flags)
        if reason:
            raise UnavailableError(reason)
    return precision


def opt_out_of_telemetry() -> None:
    """Opt out of OpenVINO's and NNCF's usage telemetry the documented way (what
    `opt_in_out --opt_out` does: the consent file ~/intel/openvino_telemetry says 0), when
    the user has made no choice yet. Without the file both tools send usage data."""
    try:
        # lazy: openvino
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
    except ImportError:
        return
    checker = OptInChecker()
    try:
        if checker.consent_file_base_dir() is None:
            return
        path = Path(checker.consent_file())
        if path.is_file() and path.read_text().strip() in ("0", "1"):
            return  # the user's own choice stands
        if checker.update_result(ConsentCheckResult.DECLINED):
            log.info("opted out of OpenVINO telemetry (%s says 0)", path)
    except OSError as exc:
        log.warning("could not write the OpenVINO telemetry opt-out: %s", exc)


def _shape(partial: Any) -> tuple[Dim, ...]:
    dims: list[Dim] = []
    for i, dim in enumerate(partial):
        if dim.is_static:
            dims.append(dim.get_length())
        else:
            dims.append("batch" if i == 0 else None)
    return tuple(dims)


def _spec(port: Any, index: int) -> TensorSpec:
    names = port.get_names()
    name = port.get_any_name() if names else f"output_{index}"
    dtype = normalize_dtype(port.get_element_type().to_dtype().name)
    return TensorSpec(name, dtype, _shape(port.get_partial_shape()))


class OpenVinoModel(LoadedModel):
    """A compiled model and one infer request; `run` is a synchronous `infer`."""

    def __init__(self, compiled: Any, provider: str) -> None:
        self.compiled = compiled
        self.provider = provider
        self.request = compiled.create_infer_request()
        self.inputs = [_spec(port, i) for i, port in enumerate(compiled.inputs)]
        self.outputs = [_spec(port, i) for i, port in enumerate(compiled.outputs)]

    def prepare(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(self.checked_feed(feed))

    def run(self, prepared: dict[str, np.ndarray]) -> Any:
        return self.request.infer(prepared)

    def run_fn(self) -> Any:
        return self.request.infer

    def to_numpy(self, outputs: Any) -> list[np.ndarray]:
        # OVDict: values in output order; copy out of the request's own buffers.
        return [np.array(value) for value in outputs.to_tuple()]

    def close(self) -> None:
        self.request = None
        self.compiled = None


def is_quantized(model: Any) -> bool:
    """Whether the ov.Model holds int8 quantization (NNCF's FakeQuantize ops)."""
    return any(op.get_type_name() in QUANTIZED_OPS for op in model.get_ops())


def ir_precision_hint(model: Any) -> str | None:
    """The INFERENCE_PRECISION_HINT the IR's runtime_options carry, or None."""
    try:
        if model.has_rt_info([RUNTIME_OPTIONS, PRECISION_KEY]):
            return str(model.get_rt_info([RUNTIME_OPTIONS, PRECISION_KEY]).astype(str))
    except (RuntimeError, AttributeError):
        return None
    return None


def compiled_precision(element_type: Any) -> str:
    """ "f32" or "bf16" from the compiled model's INFERENCE_PRECISION_HINT (an ov.Type)."""
    name = getattr(element_type, "get_type_name", lambda: str(element_type))()
    return {"f32": "f32", "float32": "f32", "bf16": "bf16", "bfloat16": "bf16"}.get(name, name)


def ir_file(path: Path) -> Path:
    """The model file to read: `path` itself, or the one IR `.xml` in a directory."""
    if path.is_dir():
        found = sorted(path.glob("*.xml"))
        if len(found) != 1:
            raise UserError(f"{path} holds {len(found)} .xml files: pass the IR's .xml file")
        return found[0]
    if not path.is_file():
        raise UserError(f"cannot load {path}: no such file")
    return path


class OpenVinoRuntime(Runtime):
    """OpenVINO's CPU plugin, precision stated, never OpenVINO's own choice."""

    name = "openvino"
    formats = ("openvino", "onnx")
    Settings = OpenVinoSettings
    # Settings a row of a precision forces (the sweep merges them over the user's):
    # an fp32 row is f32 whatever the sweep's settings say, a bf16 row bf16.
    precision_settings: ClassVar[dict[str, dict[str, Any]]] = {
        "fp32": {"inference_precision": "f32"},
        "bf16": {"inference_precision": "bf16"},
    }

    def unavailable_reason(self, device: Device) -> str | None:
        host = host_gpu_reason(device)
        if host:
            return host
        if device.is_gpu:
            return "the openvino runtime runs on the CPU here (its GPU plugin is for Intel GPUs)"
        try:
            # lazy: openvino
            import openvino  # noqa: F401
        except ImportError:
            return OPENVINO_MISSING
        return None

    def load(self, path: Path | None, options: RuntimeOptions, model: Any = None) -> LoadedModel:
        """One compiled model and one synchronous infer request: the timed loop's latency
        mode unless the settings ask for throughput."""
        settings: OpenVinoSettings = self.settings(options)
        hint = "latency" if settings.performance_hint == "auto" else settings.performance_hint
        compiled, provider = self._compile(path, options, hint, options.threads)
        if hint == "throughput":
            provider = f"{provider[:-1]}; {served_mode(compiled, 1)})"
        return OpenVinoModel(compiled, provider)

    def load_served(
        self, path: Path | None, options: RuntimeOptions, instances: int
    ) -> list[LoadedModel]:
        """One compiled model for the scenarios and `serve` (throughput unless the
        settings say latency), with one infer request per concurrent caller: the
        threads all `instances` were given, shared by the streams."""
        settings: OpenVinoSettings = self.settings(options)
        hint = "throughput" if settings.performance_hint == "auto" else settings.performance_hint
        threads = options.threads * instances if options.threads else None
        compiled, provider = self._compile(path, options, hint, threads)
        requests = instances
        if hint == "throughput":
            requests = max(
                instances, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            )
        provider = f"{provider[:-1]}; {served_mode(compiled, requests)})"
        return [OpenVinoModel(compiled, provider) for _ in range(requests)]

    def _compile(
        self, path: Path | None, options: RuntimeOptions, hint: str, threads: int | None
    ) -> tuple[Any, str]:
        """The compiled model and its provider text, precision stated and checked."""
        reason = self.unavailable_reason(options.device)
        if reason:
            raise UnavailableError(reason)
        if path is None:
            raise UserError("the openvino runtime needs a .onnx or OpenVINO IR .xml file")
        settings: OpenVinoSettings = self.settings(options)
        # lazy: openvino
        import openvino as ov

        core = ov.Core()
        source = ir_file(Path(path))
        try:
            ov_model = core.read_model(str(source))
        except RuntimeError as exc:
            raise UserError(
                f"cannot load {source} with OpenVINO: {_first_line(exc)}; check the file is a "
                "complete .onnx model or IR (.xml with its .bin beside it)"
            ) from exc
        flags = cpu_flags()
        precision = choose_precision(
            settings.inference_precision, ir_precision_hint(ov_model), flags
        )
        config = compile_config(precision, hint, settings.streams, threads, settings.cache_dir)
        if settings.cpu_pinning != "auto":
            config["ENABLE_CPU_PINNING"] = settings.cpu_pinning == "on"
        try:
            compiled = core.compile_model(ov_model, "CPU", config)
        except RuntimeError as exc:
            raise UserError(f"OpenVINO could not compile {source}: {_first_line(exc)}") from exc
        ran = compiled_precision(compiled.get_property("INFERENCE_PRECISION_HINT"))
        if ran != precision:
            raise UnavailableError(
                f"OpenVINO compiled with inference precision {ran} instead of {precision}"
            )
        devices = ", ".join(compiled.get_property("EXECUTION_DEVICES")) or "CPU"
        quantized = is_quantized(ov_model)
        label = f"int8 + {precision}" if quantized else precision
        return compiled, f"{devices} ({label}, {isa_label(precision, quantized, flags)})"

    def version(self) -> str:
        # lazy: openvino
        import openvino

        return openvino.get_version()


def compile_config(
    precision: str, hint: str, streams: int, threads: int | None, cache_dir: str
) -> dict[str, Any]:
    """The CPU plugin's compile properties: the precision always stated, the hint, the
    streams (latency: 1 unless set; throughput: the plugin's choice unless set)."""
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": OV_PRECISION[precision],
        "PERFORMANCE_HINT": hint.upper(),
    }
    if streams:
        config["NUM_STREAMS"] = str(streams)
    elif hint == "latency":
        config["NUM_STREAMS"] = "1"
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = threads
    if cache_dir:
        config["CACHE_DIR"] = cache_dir
    return config


def served_mode(compiled: Any, requests: int) -> str:
    """What a compiled model serves with, read back from it: "throughput: 2 streams,
    2 requests" (the provider's mode part)."""
    hint = str(compiled.get_property("PERFORMANCE_HINT")).rpartition(".")[2].lower()
    streams = int(compiled.get_property("NUM_STREAMS"))
    plural = "s" if requests != 1 else ""
    return f"{hint}: {streams} stream{'s' if streams != 1 else ''}, {requests} request{plural}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
