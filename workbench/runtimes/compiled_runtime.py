"""Compiled callers as runtimes: `onnxruntime-c` (ONNX Runtime's C API) and `torch-cpp`
(libtorch running a TorchScript file).

Each loads the model in a C++ process built from `workbench/runtimes/compiled/src` and
times its own loop there, with the same thread settings, the same input pool (written
to files before timing) and the same stop rule as the Python harness; the harness reads
the per-call latencies it writes. The rows sit beside the `onnxruntime` and `torch`
rows, so the difference is what Python adds per call. CPU only: a GPU device is
`unavailable` rather than run on the CPU under a GPU label.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from workbench.devices import Device, host_gpu_reason
from workbench.errors import UnavailableError, UserError
from workbench.options import Options, option
from workbench.runtimes.base import LoadedModel, Runtime, RuntimeOptions
from workbench.runtimes.compiled.build import binary, compiler, ort_library
from workbench.runtimes.compiled.headers import include_dir
from workbench.runtimes.compiled.process import CallerMeasurement, CallerProcess
from workbench.runtimes.torch_runtime import (
    TorchRuntime,
    read_signature_sidecar,
    torchscript_signature,
)
from workbench.signature import TensorSpec

GPU_REASON = "the compiled callers run on the CPU only (no GPU provider is built in)"


class CompiledModel(LoadedModel):
    """A model loaded in a compiled caller process. `prepare` writes the feed to a file
    (outside timing); `run` is one call through the process (for parity and the first
    call); `measure` is the caller's own timed loop."""

    def __init__(self, process: CallerProcess, inputs: list[TensorSpec], provider: str) -> None:
        self.process = process
        self.inputs = inputs
        self.outputs = process.outputs
        self.provider = provider

    def prepare(self, feed: dict[str, np.ndarray]) -> Path:
        return self.process.write_feed(self.checked_feed(feed))

    def run(self, prepared: Path) -> list[np.ndarray]:
        return self.process.run(prepared)

    def to_numpy(self, outputs: Any) -> list[np.ndarray]:
        return list(outputs)

    def measure(self, pool: list[Any], rule: Any) -> CallerMeasurement:
        return self.process.bench(pool, rule)

    def close(self) -> None:
        self.process.close()


def _reason(check: Any) -> str | None:
    try:
        check()
    except UnavailableError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class OrtCSettings(Options):
    """Settings of the onnxruntime-c runtime (the same as onnxruntime's on the CPU)."""

    graph_optimization_level: Literal["disable", "basic", "extended", "all"] = option(
        "all", "the graph optimizations ORT applies when it creates the session"
    )
    allow_spinning: bool | None = option(
        None, "whether idle intra-op threads spin (true) or sleep (false), null: ORT's default"
    )


class OrtCRuntime(Runtime):
    """ONNX files through ONNX Runtime's C API (CPU provider) from a C++ caller."""

    name = "onnxruntime-c"
    formats = ("onnx", "onnx-fused")
    Settings = OrtCSettings

    def unavailable_reason(self, device: Device) -> str | None:
        if device.is_gpu:
            return host_gpu_reason(device) or GPU_REASON
        return (
            _reason(compiler) or _reason(ort_library) or _reason(lambda: include_dir("onnxruntime"))
        )

    def load(self, path: Path | None, options: RuntimeOptions, model: Any = None) -> LoadedModel:
        reason = self.unavailable_reason(options.device)
        if reason:
            raise UnavailableError(reason)
        if path is None or not Path(path).is_file():
            raise UserError(f"cannot load {path} as ONNX: no such file")
        settings: OrtCSettings = self.settings(options)
        spinning = -1 if settings.allow_spinning is None else int(settings.allow_spinning)
        argv = [
            str(binary("ort_caller")), str(path), str(options.threads or 0),
            str(options.inter_op_threads or 0), settings.graph_optimization_level, str(spinning),
        ]  # fmt: skip
        process = CallerProcess(argv)
        return CompiledModel(process, process.inputs, "CPUExecutionProvider (C API)")

    def version(self) -> str:
        try:
            return ort_library().name.removeprefix("libonnxruntime.so.")
        except UnavailableError:
            return ""


class TorchCppRuntime(Runtime):
    """TorchScript files through libtorch (the torch wheel's C++ library) from a C++
    caller. The input signature comes from the options, the file's sidecar, or the
    TorchScript graph read by Python's torch, exactly as the `torch` runtime gets it."""

    name = "torch-cpp"
    formats = ("torchscript",)

    def unavailable_reason(self, device: Device) -> str | None:
        if device.is_gpu:
            return host_gpu_reason(device) or GPU_REASON
        return _reason(compiler) or TorchRuntime().unavailable_reason(device)

    def load(self, path: Path | None, options: RuntimeOptions, model: Any = None) -> LoadedModel:
        reason = self.unavailable_reason(options.device)
        if reason:
            raise UnavailableError(reason)
        if path is None or not Path(path).is_file():
            raise UserError(f"cannot load {path} as TorchScript: no such file")
        inputs = options.inputs or _torchscript_inputs(Path(path))
        argv = [
            str(binary("torch_caller")), str(path), str(options.threads or 0),
            str(options.inter_op_threads or 0),
        ]  # fmt: skip
        process = CallerProcess(argv)
        return CompiledModel(process, list(inputs), "libtorch cpu (C++)")

    def version(self) -> str:
        return TorchRuntime().version()


def _torchscript_inputs(path: Path) -> list[TensorSpec]:
    """The file's input signature as the torch runtime reads it (sidecar, else graph)."""
    sidecar = read_signature_sidecar(path)
    if sidecar is not None:
        return list(sidecar[0])
    # lazy: torch
    import torch

    return torchscript_signature(torch.jit.load(str(path), map_location="cpu"))
