"""The `litert` runtime: .tflite files on the LiteRT (TensorFlow Lite) interpreter.

The interpreter holds fixed input shapes; a dynamic axis shows as -1 in
`shape_signature`. Changing the batch size means `resize_tensor_input` plus
`allocate_tensors`, which is far too slow for the timed region, so `prepare`
does it and `run` only sets tensors and invokes (it resizes again only when
the prepared feeds in one pool have different shapes).

XNNPACK is applied lazily by `allocate_tensors`; the provider reported is what
was actually applied (a DELEGATE node in the execution plan), not what was asked.

The interpreter comes from ai-edge-litert, else from TensorFlow's `tf.lite`; with
neither installed, `unavailable_reason` is `LITERT_MISSING` ("ai-edge-litert is not
installed") for every device.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.deps import installed
from workbench.devices import Device, host_gpu_reason
from workbench.errors import UnavailableError, UserError
from workbench.options import Options, option
from workbench.runtimes.base import LoadedModel, Runtime, RuntimeOptions
from workbench.runtimes.tf_runtime import import_tensorflow
from workbench.signature import Dim, TensorSpec, normalize_dtype

GPU_REASON = "the LiteRT interpreter runs on the CPU only (GPU delegates are for mobile)"
LITERT_MISSING = "ai-edge-litert is not installed"


def litert_missing() -> str | None:
    """`LITERT_MISSING` when no interpreter can be had here (neither ai-edge-litert nor
    TensorFlow's tf.lite), else None; nothing is imported."""
    if installed("ai_edge_litert") or installed("tensorflow"):
        return None
    return LITERT_MISSING


def _spec(detail: dict[str, Any]) -> TensorSpec:
    signature = detail.get("shape_signature")
    if signature is None or len(signature) == 0:
        signature = detail["shape"]
    dims: list[Dim] = []
    for axis, dim in enumerate(int(d) for d in signature):
        if dim >= 0:
            dims.append(dim)
        else:
            dims.append("batch" if axis == 0 else None)
    return TensorSpec(detail["name"], normalize_dtype(np.dtype(detail["dtype"]).name), tuple(dims))


def _output_spec(detail: dict[str, Any]) -> TensorSpec:
    try:
        return _spec(detail)
    except UserError:
        return TensorSpec(detail["name"], np.dtype(detail["dtype"]).name, tuple(detail["shape"]))


def _delegated(interpreter: Any) -> bool | None:
    """Whether a delegate (XNNPACK on the CPU) took over nodes; None if it cannot tell."""
    try:
        count = interpreter._interpreter.NumNodes()
        return any(interpreter._get_op_details(i)["op_name"] == "DELEGATE" for i in range(count))
    except Exception:  # private API: never let introspection break a load
        return None


class LiteRTModel(LoadedModel):
    """An allocated interpreter; `run` = set_tensor for each input, invoke, get_tensor."""

    def __init__(self, interpreter: Any, provider: str) -> None:
        self.interpreter = interpreter
        self.provider = provider
        input_details = interpreter.get_input_details()
        output_details = interpreter.get_output_details()
        self.inputs = [_spec(d) for d in input_details]
        self.outputs = [_output_spec(d) for d in output_details]
        self._input_indices = [int(d["index"]) for d in input_details]
        self._output_indices = [int(d["index"]) for d in output_details]
        self._shapes = tuple(tuple(int(s) for s in d["shape"]) for d in input_details)
        self._set_tensor = interpreter.set_tensor
        self._invoke = interpreter.invoke
        self._get_tensor = interpreter.get_tensor

    def _resize(self, shapes: tuple[tuple[int, ...], ...]) -> None:
        for index, current, wanted in zip(self._input_indices, self._shapes, shapes, strict=True):
            if current != wanted:
                self.interpreter.resize_tensor_input(index, list(wanted))
        self.interpreter.allocate_tensors()
        self._shapes = shapes

    def prepare(self, feed: dict[str, np.ndarray]) -> tuple[Any, list[tuple[int, np.ndarray]]]:
        arrays = [
            (index, value)
            for index, (_, value) in zip(self._input_indices, self.checked_feed(feed), strict=True)
        ]
        shapes = tuple(a.shape for _, a in arrays)
        if shapes != self._shapes:
            try:
                self._resize(shapes)
            except (ValueError, RuntimeError) as exc:
                raise UserError(
                    f"cannot resize the LiteRT inputs to {list(shapes)}: {exc}"
                ) from exc
        return shapes, arrays

    def run(self, prepared: tuple[Any, list[tuple[int, np.ndarray]]]) -> list[np.ndarray]:
        shapes, arrays = prepared
        if shapes != self._shapes:  # only when a pool mixes shapes
            self._resize(shapes)
        for index, array in arrays:
            self._set_tensor(index, array)
        self._invoke()
        return [self._get_tensor(index) for index in self._output_indices]

    def close(self) -> None:
        self.interpreter = None
        self._set_tensor = self._invoke = self._get_tensor = None  # type: ignore[assignment]


@dataclass(frozen=True)
class LiteRTSettings(Options):
    """Settings of the litert runtime."""

    xnnpack: bool = option(
        True, "apply LiteRT's default XNNPACK delegate (false: the built-in kernels only)"
    )


class LiteRTRuntime(Runtime):
    """The TFLite interpreter on the CPU, with or without the XNNPACK delegate."""

    name = "litert"
    formats = ("tflite",)
    Settings = LiteRTSettings

    def unavailable_reason(self, device: Device) -> str | None:
        missing = litert_missing()
        if missing:
            return missing
        host = host_gpu_reason(device)
        if host:
            return f"{host}; also, {GPU_REASON}"
        if device.is_gpu:
            return GPU_REASON
        return None

    def load(self, path: Path | None, options: RuntimeOptions, model: Any = None) -> LoadedModel:
        reason = self.unavailable_reason(options.device)
        if reason:
            raise UnavailableError(reason)
        if path is None:
            raise UserError("the litert runtime needs a .tflite file path")
        path = Path(path)
        if not path.is_file():
            raise UserError(f"cannot load {path} as TFLite: no such file")
        module, source = _load_interpreter_module()
        xnnpack = self.settings(options).xnnpack
        kwargs: dict[str, Any] = {"model_path": str(path)}
        if options.threads is not None:
            kwargs["num_threads"] = options.threads
        if not xnnpack:
            kwargs["experimental_op_resolver_type"] = (
                module.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
                if source == "tf.lite"
                else module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            )
        interpreter_cls = module.Interpreter
        try:
            interpreter = interpreter_cls(**kwargs)
            interpreter.allocate_tensors()  # also applies XNNPACK when enabled
        except (ValueError, RuntimeError) as exc:
            text = str(exc).strip().splitlines()
            raise UserError(
                f"cannot load {path} as TFLite: {text[0] if text else type(exc).__name__}; "
                "check the file is a complete .tflite model"
            ) from exc
        delegated = _delegated(interpreter)
        provider = "XNNPACK" if (delegated if delegated is not None else xnnpack) else "builtin"
        if source != "ai_edge_litert":
            provider += f" ({source})"
        return LiteRTModel(interpreter, provider)

    def version(self) -> str:
        for dist in ("ai-edge-litert", "tensorflow"):
            try:
                return f"{dist} {importlib.metadata.version(dist)}"
            except importlib.metadata.PackageNotFoundError:
                continue
        return ""


def _load_interpreter_module() -> tuple[Any, str]:
    """(module with Interpreter/OpResolverType, source name)."""
    try:
        # lazy: ai_edge_litert
        from ai_edge_litert import interpreter

        return interpreter, "ai_edge_litert"
    except ImportError:
        pass

    try:
        tf = import_tensorflow()
    except ImportError as exc:
        raise UnavailableError(LITERT_MISSING) from exc
    return tf.lite, "tf.lite"
