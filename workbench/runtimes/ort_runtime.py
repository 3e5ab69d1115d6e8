"""The `onnxruntime` runtime: ONNX files on the CPU, CUDA or TensorRT providers.

ONNX Runtime silently falls back to the CPU provider when a GPU provider cannot
start (no device, missing CUDA libraries). A benchmark that did the same would
label CPU numbers as GPU numbers, so this module refuses: a cuda device is
unavailable unless the host has the GPU and the provider is built in, and after
the session is created the first provider must be the requested one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from workbench.devices import Device, host_gpu_reason
from workbench.errors import UnavailableError, UserError
from workbench.options import Options, option
from workbench.runtimes.base import LoadedModel, Runtime, RuntimeOptions
from workbench.signature import Dim, TensorSpec, normalize_dtype

GRAPH_OPTIMIZATION_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


@dataclass(frozen=True)
class OrtSettings(Options):
    """Settings of the onnxruntime runtime."""

    graph_optimization_level: Literal["disable", "basic", "extended", "all"] = option(
        "all", "the graph optimizations ORT applies when it creates the session"
    )
    # False frees the cores for pre- and post-processing between calls, at some cost in
    # model latency.
    allow_spinning: bool | None = option(
        None, "whether idle intra-op threads spin (true) or sleep (false), null: ORT's default"
    )
    tensorrt: bool = option(False, "on cuda, put the TensorRT provider first, with CUDA after it")


def execution_providers(device: Device, tensorrt: bool) -> list[Any]:
    """The provider list for `device`, most preferred first (never a CPU fallback on cuda)."""
    if not device.is_gpu:
        return ["CPUExecutionProvider"]
    gpu_options = {"device_id": device.index}
    providers: list[Any] = []
    if tensorrt:
        providers.append(("TensorrtExecutionProvider", dict(gpu_options)))
    providers.append(("CUDAExecutionProvider", dict(gpu_options)))
    return providers


def provider_name(provider: Any) -> str:
    """The name of a provider entry, given bare or as (name, options)."""
    return provider[0] if isinstance(provider, tuple) else provider


def _shape(shape: Any) -> tuple[Dim, ...]:
    """ORT shapes hold ints, symbolic names (str) or None; keep names, drop negatives."""
    dims: list[Dim] = []
    for dim in shape or ():
        if isinstance(dim, int) and dim >= 0:
            dims.append(dim)
        elif isinstance(dim, str) and dim:
            dims.append(dim)
        else:
            dims.append(None)
    return tuple(dims)


def _spec(node: Any) -> TensorSpec:
    return TensorSpec(node.name, normalize_dtype(node.type), _shape(node.shape))


class OrtModel(LoadedModel):
    """An InferenceSession; `run` is a bare `session.run(None, feed)`."""

    def __init__(self, session: Any, provider: str) -> None:
        self.session = session
        self.provider = provider
        self.inputs = [_spec(node) for node in session.get_inputs()]
        self.outputs = [_output_spec(node) for node in session.get_outputs()]
        self._run = session.run
        self._output_names = [node.name for node in session.get_outputs()]

    def prepare(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(self.checked_feed(feed))

    def run(self, prepared: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._run(self._output_names, prepared)

    def run_fn(self) -> Callable[[dict[str, np.ndarray]], list[np.ndarray]]:
        # A partial of the C-level session.run: no Python frame between the clock reads.
        return functools.partial(self._run, self._output_names)

    def close(self) -> None:
        self.session = None
        self._run = None  # type: ignore[assignment]


def _output_spec(node: Any) -> TensorSpec:
    # Outputs may have types (sequences, maps) that inputs never get; keep them readable.
    try:
        return _spec(node)
    except UserError:
        return TensorSpec(node.name, node.type, _shape(node.shape))


class OrtRuntime(Runtime):
    """ONNX Runtime with CPUExecutionProvider, CUDAExecutionProvider or TensorRT."""

    name = "onnxruntime"
    formats = ("onnx", "onnx-fused")
    Settings = OrtSettings

    def unavailable_reason(self, device: Device) -> str | None:
        host = host_gpu_reason(device)
        if host:
            return host
        if not device.is_gpu:
            return None
        # lazy: onnxruntime
        import onnxruntime

        available = onnxruntime.get_available_providers()
        for provider in execution_providers(device, tensorrt=True):
            name = provider_name(provider)
            if name == "TensorrtExecutionProvider":
                continue  # only required when asked for; checked at load
            if name not in available:
                return f"{name} is not in this onnxruntime build ({', '.join(available)})"
        return None

    def load(self, path: Path | None, options: RuntimeOptions, model: Any = None) -> LoadedModel:
        reason = self.unavailable_reason(options.device)
        if reason:
            raise UnavailableError(reason)
        if path is None:
            raise UserError("the onnxruntime runtime needs a .onnx file path")
        settings: OrtSettings = self.settings(options)
        # lazy: onnxruntime
        import onnxruntime

        providers = execution_providers(options.device, settings.tensorrt)
        available = onnxruntime.get_available_providers()
        missing = [provider_name(p) for p in providers if provider_name(p) not in available]
        if missing:
            raise UnavailableError(
                f"{', '.join(missing)} not in this onnxruntime build ({', '.join(available)})"
            )

        so = onnxruntime.SessionOptions()
        so.graph_optimization_level = getattr(
            onnxruntime.GraphOptimizationLevel,
            GRAPH_OPTIMIZATION_LEVELS[settings.graph_optimization_level],
        )
        if options.threads is not None:
            so.intra_op_num_threads = options.threads
        if options.inter_op_threads is not None:
            so.inter_op_num_threads = options.inter_op_threads
        spinning = settings.allow_spinning
        if spinning is not None:
            # Idle intra-op threads spin by default, which keeps latency low but takes
            # cores from pre-/post-processing running between calls.
            so.add_session_config_entry("session.intra_op.allow_spinning", str(int(spinning)))

        path = Path(path)
        if not path.is_file():
            raise UserError(f"cannot load {path} as ONNX: no such file")
        try:
            session = onnxruntime.InferenceSession(str(path), so, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf/RuntimeException
            if options.device.is_gpu and _looks_like_provider_failure(exc):
                raise UnavailableError(
                    f"{provider_name(providers[0])} could not start: {_first_line(exc)}"
                ) from exc
            raise UserError(
                f"cannot load {path} as ONNX: {_first_line(exc)}; "
                "check the file is a complete .onnx model"
            ) from exc

        actual = session.get_providers()[0]
        requested = provider_name(providers[0])
        if actual != requested:
            # ORT fell back (e.g. CUDA libraries missing): never measure CPU under a cuda name.
            del session
            raise UnavailableError(
                f"onnxruntime fell back to {actual} instead of {requested} on {options.device} "
                "(the provider could not start: check the CUDA/cuDNN/TensorRT libraries)"
            )
        return OrtModel(session, actual)

    def version(self) -> str:
        # lazy: onnxruntime
        import onnxruntime

        return onnxruntime.__version__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _looks_like_provider_failure(exc: BaseException) -> bool:
    text = str(exc)
    return any(word in text for word in ("CUDA", "cuda", "TensorRT", "cudnn", "provider"))
