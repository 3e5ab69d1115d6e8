"""The `torch` runtime: eager nn.Modules, TorchScript files and torch.export (.pt2) programs.

PyTorch model files do not reliably say what they take: a TorchScript graph
has untyped `Tensor` inputs, only an ExportedProgram records dtypes and
shapes. Input specs therefore come, in order, from the `inputs` option, a
`<file>.signature.json` sidecar written by our exporters, or the file itself
(pt2 graph placeholders; TorchScript graph types when they are complete).

Nothing here runs the model at load time: the harness times the first
inference separately, and a dry run would hide it.

Settings (`TorchSettings`, `--setting torch.NAME=VALUE`):

- `autocast` ("off", "fp16", "bf16"): every call runs under
  `torch.autocast(device_type, dtype)`, so the ops on autocast's lower-precision list
  (matmuls, convolutions, ...) compute in that dtype and the rest stay float32. It works
  for eager, TorchScript and pt2 modules alike (autocast acts on the dispatched aten
  ops). bf16 on a GPU without bfloat16 support is `unavailable`; an op without a
  reduced-precision kernel on the device fails the row with a message that says so
  (fp16 on the CPU is the usual case: use bf16 there).
- The `inductor` format is the eager model compiled (`compile` "default" unless the
  settings name another mode): a sweep's row of PyTorch's own compiled CPU path beside
  the eager one. Both take bf16 rows (autocast bf16, `precision_settings`).
- `quantize` ("off", "int8-dynamic"): torchao's `Int8DynamicActivationInt8WeightConfig`
  applied to a copy of the eager model's linear layers, compiled with inductor freezing
  and `torchao.quantization.pt2e.quantizer.x86_inductor_quantizer` imported: that import
  registers the fusion of torchao's int8 linears into oneDNN `qlinear_pointwise` (without
  it inductor emits plain `aten._int_mm`). It is the `inductor` format's `int8-dynamic`
  row, CPU only (on CUDA: `unavailable`), and needs compile "default".
- `compile` ("off", "default", "reduce-overhead", "max-autotune"): eager modules and pt2
  programs (through `ExportedProgram.module()`) are wrapped in
  `torch.compile(mode=..., dynamic=False)`. Compilation is lazy: it happens at the first
  call with each input shape (one static graph per batch size), which the harness makes
  untimed before its warm-up (`first_inference_ms` includes the compilation), and
  "reduce-overhead" records its CUDA graphs during the warm-up calls; the timed
  iterations then run the compiled code only (same shapes, dtypes and device: no
  recompilation). Give "reduce-overhead" a few warm-up calls (--warmup 3 or more).
  A TorchScript module cannot be compiled (torch.compile would silently run it
  uncompiled), so that combination is refused.

The row's `provider` says what ran, e.g. "cuda:0 (autocast bf16, compile max-autotune)".
"""

from __future__ import annotations

import copy
import importlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from workbench.atomic import write_json_atomic
from workbench.deps import installed
from workbench.devices import Device, host_gpu_reason
from workbench.errors import UnavailableError, UserError
from workbench.options import Options, option
from workbench.runtimes.base import LoadedModel, Runtime, RuntimeOptions
from workbench.signature import Dim, TensorSpec, normalize_dtype
from workbench.trust import refuse_pickled_objects, weights_only_torch_loads

SIDECAR_SUFFIX = ".signature.json"
TORCH_MISSING = "torch is not installed"
TORCHAO_MISSING = "torchao is not installed (pip install torchao)"
# Importing this module registers torchao's CPU int8 fusion patterns in inductor.
X86_QUANTIZER_MODULE = "torchao.quantization.pt2e.quantizer.x86_inductor_quantizer"
INT8_DYNAMIC_PROVIDER = "torchao int8 dynamic, x86 quantizer"
AUTOCAST_DTYPES = {"fp16": "float16", "bf16": "bfloat16"}


@dataclass(frozen=True)
class TorchSettings(Options):
    """Settings of the torch runtime (see the module doc)."""

    autocast: Literal["off", "fp16", "bf16"] = option(
        "off", "run each call under torch.autocast in this dtype (off: the model's own dtypes)"
    )
    compile: Literal["off", "default", "reduce-overhead", "max-autotune"] = option(
        "off", "the torch.compile mode for eager and pt2 modules (off: not compiled)"
    )
    quantize: Literal["off", "int8-dynamic"] = option(
        "off",
        "torchao int8 dynamic-activation quantization of an eager model compiled by inductor "
        "(CPU only)",
    )

    def describe_run(self) -> str:
        """What the settings add to the provider: "autocast bf16, compile default"."""
        parts = []
        if self.autocast != "off":
            parts.append(f"autocast {self.autocast}")
        if self.compile != "off":
            parts.append(f"compile {self.compile}")
        if self.quantize == "int8-dynamic":
            parts.append(INT8_DYNAMIC_PROVIDER)
        return ", ".join(parts)


def sidecar_path(model_path: Path | str) -> Path:
    """Where the signature sidecar of `model_path` lives: `<file>.signature.json`."""
    return Path(str(model_path) + SIDECAR_SUFFIX)


def write_signature_sidecar(
    model_path: Path | str,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec] = (),
) -> Path:
    """Write the sidecar next to `model_path` (a JSON list of {name, dtype, shape} when
    there are no outputs, else {"inputs": [...], "outputs": [...]})."""

    def encode(specs: Sequence[TensorSpec]) -> list[dict[str, Any]]:
        return [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in specs]

    payload: Any = encode(inputs)
    if outputs:
        payload = {"inputs": encode(inputs), "outputs": encode(outputs)}
    path = sidecar_path(model_path)
    write_json_atomic(path, payload, indent=1)
    return path


def read_signature_sidecar(
    model_path: Path | str,
) -> tuple[list[TensorSpec], list[TensorSpec]] | None:
    """(inputs, outputs) from the sidecar next to `model_path`, or None when there is none."""
    path = sidecar_path(model_path)
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text())
        if isinstance(payload, list):
            payload = {"inputs": payload}

        def decode(items: list[dict[str, Any]]) -> list[TensorSpec]:
            return [
                TensorSpec(
                    str(item["name"]), normalize_dtype(str(item["dtype"])), tuple(item["shape"])
                )
                for item in items
            ]

        return decode(payload["inputs"]), decode(payload.get("outputs", []))
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(
            f"signature sidecar {path} is not a JSON list of {{name, dtype, shape}}: {exc}"
        ) from exc


def torch_device_name(device: Device) -> str:
    """PyTorch's name for `device`."""
    return "cpu" if not device.is_gpu else f"cuda:{device.index}"


def _spec_from_value(name: str, value: Any, batch_symbol: list[str]) -> TensorSpec:
    """A TensorSpec from a placeholder's fake tensor; symbolic dims keep their symbol
    name, the symbol first seen on axis 0 is called "batch" everywhere."""
    dims: list[Dim] = []
    for axis, dim in enumerate(value.shape):
        if isinstance(dim, int):
            dims.append(dim)
            continue
        symbol = str(dim)
        if axis == 0 and not batch_symbol:
            batch_symbol.append(symbol)
        dims.append("batch" if batch_symbol and symbol == batch_symbol[0] else symbol)
    return TensorSpec(name, normalize_dtype(str(value.dtype)), tuple(dims))


def _pt2_signature(program: Any) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Input and output specs from an ExportedProgram's graph."""
    signature = program.graph_signature
    user_inputs = set(signature.user_inputs)
    batch_symbol: list[str] = []
    inputs: list[TensorSpec] = []
    outputs: list[TensorSpec] = []
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            value = node.meta.get("val")
            if value is None or not hasattr(value, "dtype"):
                raise UserError(
                    f"pt2 input {node.name!r} is not a tensor; pass the inputs explicitly"
                )
            inputs.append(_spec_from_value(node.name, value, batch_symbol))
        elif node.op == "output":
            values = node.args[0]
            names = list(signature.user_outputs)
            for index, arg in enumerate(values[-len(names) :] if names else ()):
                value = getattr(arg, "meta", {}).get("val")
                if value is not None and hasattr(value, "dtype"):
                    try:
                        outputs.append(_spec_from_value(names[index], value, batch_symbol))
                    except UserError:
                        pass  # output dtypes numpy cannot generate are still fine to return
    return inputs, outputs


def torchscript_signature(module: Any) -> list[TensorSpec]:
    """Input specs from a TorchScript graph when every input is fully typed; else a
    UserError saying how to provide them."""
    # lazy: torch
    import torch

    names = [arg.name for arg in module.forward.schema.arguments[1:]]
    specs: list[TensorSpec] = []
    for name, value in zip(names, list(module.graph.inputs())[1:], strict=False):
        kind = value.type()
        dtype = kind.dtype() if isinstance(kind, torch.TensorType) else None
        sizes = kind.sizes() if isinstance(kind, torch.TensorType) else None
        if dtype is None or sizes is None:
            raise UserError(
                f"the TorchScript file has no input signature (input {name!r} is an untyped "
                f"Tensor): write a signature sidecar <file>{SIDECAR_SUFFIX} "
                '([{"name": ..., "dtype": ..., "shape": ["batch", ...]}]) '
                "or, on the command line, --shape NAME=AXES[:DTYPE] for every input in "
                "forward's order"
            )
        specs.append(TensorSpec(name, normalize_dtype(str(dtype)), tuple(sizes)))
    return specs


def _set_threads(threads: int | None, inter_op_threads: int | None) -> None:
    # lazy: torch
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    if inter_op_threads is not None and torch.get_num_interop_threads() != inter_op_threads:
        try:
            torch.set_num_interop_threads(inter_op_threads)
        except RuntimeError as exc:
            raise UserError(
                f"torch inter-op threads are already {torch.get_num_interop_threads()} in this "
                f"process and cannot change to {inter_op_threads} (PyTorch allows setting them "
                "once, before any parallel work): run with this setting in a fresh process"
            ) from exc


def _detect_format(path: Path | None, model: Any, fmt: str | None) -> str:
    """The caller's format; without one (a direct call), a given model is eager, a `.pt2`
    file is pt2, any other file TorchScript."""
    if fmt is None:
        if model is not None:
            fmt = "eager"
        elif path is not None and Path(path).suffix == ".pt2":
            fmt = "pt2"
        else:
            fmt = "torchscript"
    if fmt not in TorchRuntime.formats:
        raise UserError(
            f"the torch runtime cannot load format {fmt!r}: "
            f"choose one of {', '.join(TorchRuntime.formats)}"
        )
    return fmt


def _check_quantize(settings: TorchSettings, fmt: str, device: Device) -> None:
    """torchao int8-dynamic needs an eager model compiled in the default mode on the CPU,
    with torchao installed."""
    if fmt != "eager" or settings.compile != "default":
        raise UserError(
            f"torch quantize={settings.quantize!r} needs the inductor format (an eager model "
            f"with compile=default), not format {fmt!r} with compile={settings.compile!r}"
        )
    if device.is_gpu:
        raise UnavailableError(
            f"torchao int8 dynamic with the x86 inductor quantizer's oneDNN fusion is a CPU "
            f"path; {device} is not a CPU (use the ORT or TensorRT INT8 rows on a GPU)"
        )
    if not installed("torchao"):
        raise UnavailableError(TORCHAO_MISSING)


def quantize_int8_dynamic(module: Any) -> Any:
    """`module` (modified in place) with torchao int8 dynamic-activation, int8-weight
    linears, and the x86 inductor quantizer imported so inductor fuses them into oneDNN
    `qlinear_pointwise` calls (torchao registers the patterns on that import)."""
    # lazy: torchao
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    importlib.import_module(X86_QUANTIZER_MODULE)
    quantize_(module, Int8DynamicActivationInt8WeightConfig())
    return module


class FreezingCompiled:
    """A compiled module called with inductor's `freezing` on. Freezing folds the int8
    weights into constants, which the oneDNN int8 fusion passes need; passed through
    `torch.compile(options=...)` the passes do not match (torch 2.x: plain `_int_mm`
    results), so the global config is patched around each call (compilation happens at
    the first call) and other compiles in the process are left as they were."""

    def __init__(self, compiled: Any) -> None:
        # lazy: torch
        import torch._inductor.config as inductor_config

        self.compiled = compiled
        self._config = inductor_config

    def __call__(self, *args: Any) -> Any:
        with self._config.patch(freezing=True):
            return self.compiled(*args)


class TorchModel(LoadedModel):
    """A callable torch module on one device; `run` calls it under inference_mode (and
    autocast when the settings ask for it)."""

    def __init__(
        self,
        module: Any,
        device: Device,
        inputs: list[TensorSpec],
        outputs: list[TensorSpec],
        provider: str,
        autocast: str = "off",
    ) -> None:
        # lazy: torch
        import torch

        self.module = module
        self.device = device
        self.inputs = inputs
        self.outputs = outputs
        self.provider = provider
        self._torch_device = torch.device(torch_device_name(device))
        self._inference_mode = torch.inference_mode
        self._autocast_name = autocast
        self._autocast = (
            torch.autocast(self._torch_device.type, dtype=getattr(torch, AUTOCAST_DTYPES[autocast]))
            if autocast != "off"
            else None
        )

    def prepare(self, feed: dict[str, np.ndarray]) -> tuple[Any, ...]:
        # lazy: torch
        import torch

        tensors = [
            torch.from_numpy(value).to(self._torch_device) for _, value in self.checked_feed(feed)
        ]
        if self.device.is_gpu:
            torch.cuda.synchronize(self._torch_device)  # copies done before timing starts
        return tuple(tensors)

    def run(self, prepared: tuple[Any, ...]) -> Any:
        if self._autocast is None:
            with self._inference_mode():
                return self.module(*prepared)
        try:
            with self._inference_mode(), self._autocast:
                return self.module(*prepared)
        except (RuntimeError, NotImplementedError) as exc:
            text = str(exc).strip().splitlines()
            hint = " (use autocast=bf16 on the CPU)" if not self.device.is_gpu else ""
            raise RuntimeError(
                f"the model fails under {self._autocast_name} autocast on {self.device}: "
                f"{text[0] if text else type(exc).__name__}{hint}"
            ) from exc

    def synchronize(self) -> None:
        if self.device.is_gpu:
            # lazy: torch
            import torch

            torch.cuda.synchronize(self._torch_device)

    def to_numpy(self, outputs: Any) -> list[np.ndarray]:
        # lazy: torch
        import torch

        flat: list[np.ndarray] = []

        def visit(value: Any) -> None:
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu()
                if value.dtype == torch.bfloat16:
                    value = value.float()  # numpy has no bfloat16
                flat.append(value.numpy())
            elif isinstance(value, dict):
                for item in value.values():
                    visit(item)
            elif isinstance(value, (list, tuple)):
                for item in value:
                    visit(item)
            elif value is not None:
                flat.append(np.asarray(value))

        visit(outputs)
        return flat

    def gpu_memory_bytes(self) -> int | None:
        if not self.device.is_gpu:
            return None
        # lazy: torch
        import torch

        return int(torch.cuda.max_memory_allocated(self._torch_device))

    def close(self) -> None:
        self.module = None
        if self.device.is_gpu:
            # lazy: torch
            import torch

            torch.cuda.empty_cache()


class TorchRuntime(Runtime):
    """PyTorch on the CPU or a CUDA GPU, for eager modules, TorchScript and pt2 files.

    The format comes from `options.format` when set, else: a given `model` is eager,
    a `.pt2` file is pt2, any other file TorchScript.
    """

    name = "torch"
    formats = ("eager", "inductor", "torchscript", "pt2")
    Settings = TorchSettings
    # A bf16 row of the eager model (the sweep's native bf16) runs under autocast bf16; an
    # int8-dynamic row of the `inductor` format is torchao-quantized (the sweep plans it for
    # the compiled format only).
    precision_settings: ClassVar[dict[str, dict[str, Any]]] = {
        "bf16": {"autocast": "bf16"},
        "int8-dynamic": {"quantize": "int8-dynamic"},
    }

    def unavailable_reason(self, device: Device) -> str | None:
        if not installed("torch"):
            return TORCH_MISSING
        host = host_gpu_reason(device)
        if host or not device.is_gpu:
            return host
        # lazy: torch
        import torch

        if not torch.cuda.is_available():
            build = torch.version.cuda
            return "torch cannot use CUDA: " + (
                f"built for CUDA {build} but no usable device" if build else "CPU-only build"
            )
        if device.index >= torch.cuda.device_count():
            return f"{device} requested but torch sees {torch.cuda.device_count()} GPU(s)"
        return None

    def load(self, path: Path | None, options: RuntimeOptions, model: Any = None) -> LoadedModel:
        fmt = _detect_format(path, model, options.format)
        settings: TorchSettings = self.settings(options)
        if fmt == "inductor":
            # The eager model compiled: the settings' mode, else torch.compile's default.
            if settings.compile == "off":
                settings = replace(settings, compile="default")
            fmt = "eager"
        if settings.compile != "off" and fmt == "torchscript":
            raise UserError(
                f"torch.compile cannot compile a TorchScript module (compile="
                f"{settings.compile!r}); it would run the TorchScript uncompiled: use the "
                "eager or pt2 format, or compile=off"
            )
        if settings.quantize != "off":
            _check_quantize(settings, fmt, options.device)
        reason = self.unavailable_reason(options.device)
        if reason:
            raise UnavailableError(reason)
        # lazy: torch
        import torch

        device = options.device
        if settings.autocast == "bf16" and device.is_gpu:
            if not torch.cuda.is_bf16_supported(including_emulation=False):
                name = torch.cuda.get_device_name(device.index)
                raise UnavailableError(
                    f"bf16 autocast needs a GPU with bfloat16 support (compute capability "
                    f"8.0+); {name} has none"
                )
        _set_threads(options.threads, options.inter_op_threads)
        target = torch.device(torch_device_name(device))
        if device.is_gpu:
            torch.cuda.reset_peak_memory_stats(target)

        inputs: list[TensorSpec] | None = options.inputs
        outputs: list[TensorSpec] = []
        if inputs is None and path is not None:
            sidecar = read_signature_sidecar(path)
            if sidecar is not None:
                inputs, outputs = sidecar

        if fmt == "eager":
            if model is None or not isinstance(model, torch.nn.Module):
                raise UserError("the eager format needs the torch.nn.Module itself (model=...)")
            if inputs is None:
                raise UserError(
                    "an eager torch model has no input signature: pass inputs=[TensorSpec...]"
                )
            module = model
            if any(t.device != target for t in list(model.parameters()) + list(model.buffers())):
                module = copy.deepcopy(model).to(target)  # leave the caller's model where it is
            module.eval()
        else:
            if path is None:
                raise UserError(f"the {fmt} format needs a model file path")
            path = Path(path)
            if not path.is_file():
                raise UserError(f"cannot load {path} as {fmt}: no such file")
            try:
                if fmt == "torchscript":
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", FutureWarning)  # jit is deprecated
                        module = torch.jit.load(str(path), map_location=target)
                    module.eval()
                    if inputs is None:
                        inputs = torchscript_signature(module)
                else:
                    refuse_pickled_objects(path)
                    with weights_only_torch_loads():
                        program = torch.export.load(str(path))
                    if device.is_gpu:
                        # lazy: torch
                        from torch.export.passes import move_to_device_pass

                        program = move_to_device_pass(program, str(target))
                    file_inputs, file_outputs = _pt2_signature(program)
                    inputs = inputs if inputs is not None else file_inputs
                    outputs = outputs or file_outputs
                    module = program.module()
            except UserError:
                raise
            except Exception as exc:
                text = str(exc).strip().splitlines()
                raise UserError(
                    f"cannot load {path} as {fmt}: {text[0] if text else type(exc).__name__}; "
                    f"check the file is a complete {fmt} model"
                ) from exc
        if settings.quantize == "int8-dynamic":
            module = quantize_int8_dynamic(module if module is not model else copy.deepcopy(model))
            module = FreezingCompiled(torch.compile(module, dynamic=False))
        elif settings.compile != "off":
            # Lazy: the first call at each input shape compiles (see the module doc).
            module = torch.compile(module, mode=settings.compile, dynamic=False)
        provider = str(target)
        if settings.describe_run():
            provider += f" ({settings.describe_run()})"
        return TorchModel(module, device, list(inputs), outputs, provider, settings.autocast)

    def version(self) -> str:
        # lazy: torch
        import torch

        return torch.__version__
