"""The `tensorflow` runtime: SavedModel signatures and in-memory Keras models, CPU or GPU.

TensorFlow fixes its thread pools when its context starts (the first op, or
loading a model), so thread settings are applied before anything else and a
later, different setting is a user error that needs a fresh process. GPU ops
run asynchronously; `synchronize` waits for them so the timed region covers
the device work.

Importing TensorFlow before Triton's native library (which torch.export and
torch.compile load) crashes the process with a segfault (TF 2.21, torch 2.14);
the other order works, so `import_tensorflow` loads Triton first when it is
installed.

Nothing imports TensorFlow at the top: on a host without it, this module still
loads, `unavailable_reason` is `TF_MISSING` ("tensorflow is not installed") for
every device, and the Keras model builders of the tasks raise a ModuleNotFoundError
that says so (`require_keras`).
"""

from __future__ import annotations

import importlib.metadata
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.deps import installed, require
from workbench.devices import Device, host_gpu_reason
from workbench.errors import UnavailableError, UserError
from workbench.options import Options, option
from workbench.runtimes.base import LoadedModel, Runtime, RuntimeOptions
from workbench.signature import Dim, TensorSpec, normalize_dtype

TF_MISSING = "tensorflow is not installed"
KERAS_MISSING = "keras is not installed"


def tensorflow_missing() -> str | None:
    """`TF_MISSING` when TensorFlow is not installed, else None (TensorFlow not imported)."""
    return None if installed("tensorflow") else TF_MISSING


def require_keras(what: str) -> None:
    """Raise a ModuleNotFoundError saying that `what` (e.g. "the Keras model 'mlp' of task
    'tabular'") needs TensorFlow and Keras, when either is not installed."""
    for module, missing in (("tensorflow", TF_MISSING), ("keras", KERAS_MISSING)):
        require(
            module, f"{missing}: {what} needs TensorFlow and Keras (pip install tensorflow keras)"
        )


def import_tensorflow() -> Any:
    """`import tensorflow`, after Triton when Triton is installed (see the module doc); a
    ModuleNotFoundError reading `TF_MISSING` where it is not installed."""
    if "tensorflow" not in sys.modules and installed("triton"):
        try:
            # lazy: triton (only to load it before TensorFlow)
            import triton  # noqa: F401
        except Exception:  # a broken Triton must not stop TensorFlow
            pass
    try:
        # lazy: tensorflow
        import tensorflow
    except ModuleNotFoundError as exc:
        if exc.name != "tensorflow":
            raise  # TensorFlow is there but one of its own dependencies is not
        raise ModuleNotFoundError(TF_MISSING, name="tensorflow") from None

    return tensorflow


def tf_device_name(device: Device) -> str:
    """TensorFlow's name for `device`."""
    return "/CPU:0" if not device.is_gpu else f"/GPU:{device.index}"


def _dims(shape: Any) -> tuple[Dim, ...]:
    """A TensorShape (or tuple) as spec dims: unknown axis 0 is "batch", others None."""
    dims = shape.as_list() if hasattr(shape, "as_list") else list(shape)
    return tuple(
        d if d is not None and d >= 0 else ("batch" if axis == 0 else None)
        for axis, d in enumerate(dims)
    )


def _tensor_spec(name: str, spec: Any) -> TensorSpec:
    if spec.shape.rank is None:
        raise UserError(f"input {name!r} has unknown rank; export the model with a fixed rank")
    return TensorSpec(name, normalize_dtype(spec.dtype.name), _dims(spec.shape))


def set_threads(threads: int | None, inter_op_threads: int | None) -> None:
    """Set TensorFlow's intra-/inter-op threads; a change after TensorFlow has started is
    a UserError, since TensorFlow would refuse it."""
    tf = import_tensorflow()

    settings = (
        ("intra-op", threads, tf.config.threading.get_intra_op_parallelism_threads,
         tf.config.threading.set_intra_op_parallelism_threads),
        ("inter-op", inter_op_threads, tf.config.threading.get_inter_op_parallelism_threads,
         tf.config.threading.set_inter_op_parallelism_threads),
    )  # fmt: skip
    for label, value, get, set_ in settings:
        if value is None or get() == value:
            continue
        try:
            set_(value)
        except RuntimeError as exc:
            raise UserError(
                f"TensorFlow {label} threads cannot change to {value} after TensorFlow has "
                f"started in this process (currently {get() or 'default'}): "
                "run with this setting in a fresh process"
            ) from exc


class TFModel(LoadedModel):
    """A callable (SavedModel signature or Keras model) pinned to one TF device."""

    def __init__(
        self,
        call: Any,
        device: Device,
        inputs: list[TensorSpec],
        outputs: list[TensorSpec],
        provider: str,
        *,
        keyword_inputs: bool,
        keepalive: Any = None,
    ) -> None:
        tf = import_tensorflow()

        self.device = device
        self.inputs = inputs
        self.outputs = outputs
        self.provider = provider
        self._call = call
        self._keepalive = keepalive  # the loaded SavedModel owns the signature's variables
        self._keyword_inputs = keyword_inputs
        self._device_name = tf_device_name(device)
        self._tf_device_scope = tf.device
        self._sync = getattr(tf.test.experimental, "sync_devices", None)

    def prepare(self, feed: dict[str, np.ndarray]) -> Any:
        tf = import_tensorflow()

        tensors: dict[str, Any] = {}
        with tf.device(self._device_name):
            for name, value in self.checked_feed(feed):
                # identity places the tensor on the device (constants start on the host)
                tensors[name] = tf.identity(tf.convert_to_tensor(value))
        if self._keyword_inputs:
            return tensors
        values = list(tensors.values())
        return values[0] if len(values) == 1 else values

    def run(self, prepared: Any) -> Any:
        with self._tf_device_scope(self._device_name):
            if self._keyword_inputs:
                return self._call(**prepared)
            return self._call(prepared)

    def synchronize(self) -> None:
        if self.device.is_gpu and self._sync is not None:
            self._sync()

    def to_numpy(self, outputs: Any) -> list[np.ndarray]:
        if isinstance(outputs, dict):
            names = [spec.name for spec in self.outputs if spec.name in outputs]
            values = [outputs[name] for name in names] or list(outputs.values())
        elif isinstance(outputs, (list, tuple)):
            values = list(outputs)
        else:
            values = [outputs]
        return [np.asarray(v.numpy() if hasattr(v, "numpy") else v) for v in values]

    def gpu_memory_bytes(self) -> int | None:
        if not self.device.is_gpu:
            return None
        tf = import_tensorflow()

        return int(tf.config.experimental.get_memory_info(f"GPU:{self.device.index}")["peak"])

    def close(self) -> None:
        self._call = self._keepalive = None


@dataclass(frozen=True)
class TFSettings(Options):
    """Settings of the tensorflow runtime."""

    signature: str | None = option(
        None, "the SavedModel signature to call (null: serving_default, else the first one)"
    )
    tf_function: bool = option(
        True, "call Keras models through tf.function, in graph mode as serving does (false: eager)"
    )


class TFRuntime(Runtime):
    """TensorFlow on the CPU or a GPU.

    Formats: `savedmodel` (a directory) and `keras` (the in-memory Keras model passed
    as `model`, called with training=False). The format comes from `options.format`,
    else from whether a model object was given.
    """

    name = "tensorflow"
    formats = ("savedmodel", "keras")
    Settings = TFSettings

    def unavailable_reason(self, device: Device) -> str | None:
        missing = tensorflow_missing()
        if missing:
            return missing
        host = host_gpu_reason(device)
        if host or not device.is_gpu:
            return host
        tf = import_tensorflow()

        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            built = tf.test.is_built_with_cuda()
            return "TensorFlow sees no GPU (" + (
                "CUDA libraries missing or not loadable)" if built else "CPU-only build)"
            )
        if device.index >= len(gpus):
            return f"{device} requested but TensorFlow sees {len(gpus)} GPU(s)"
        return None

    def configure_process(self, options: RuntimeOptions) -> None:
        if tensorflow_missing():
            return  # nothing to configure; the rows say why they cannot run
        set_threads(options.threads, options.inter_op_threads)

    def load(self, path: Path | None, options: RuntimeOptions, model: Any = None) -> LoadedModel:
        fmt = options.format or ("keras" if model is not None else "savedmodel")
        if fmt not in self.formats:
            raise UserError(
                f"the tensorflow runtime cannot load format {fmt!r}: "
                f"choose one of {', '.join(self.formats)}"
            )
        reason = self.unavailable_reason(options.device)
        if reason:
            raise UnavailableError(reason)
        set_threads(options.threads, options.inter_op_threads)
        tf = import_tensorflow()

        device = options.device
        if device.is_gpu:
            tf.config.experimental.reset_memory_stats(f"GPU:{device.index}")
        provider = "GPU" if device.is_gpu else "CPU"
        if fmt == "keras":
            return self._load_keras(model, options, provider)

        if path is None:
            raise UserError("the savedmodel format needs the SavedModel directory path")
        path = Path(path)
        if not path.exists():
            raise UserError(f"cannot load {path} as a SavedModel: no such file or directory")
        try:
            with tf.device(tf_device_name(device)):
                loaded = tf.saved_model.load(str(path))
        except Exception as exc:  # OSError, ValueError, TF's own errors
            text = str(exc).strip().splitlines()
            raise UserError(
                f"cannot load {path} as a SavedModel: {text[0] if text else type(exc).__name__}; "
                "check it is a complete SavedModel directory"
            ) from exc
        signatures = dict(loaded.signatures)
        if not signatures:
            raise UserError(f"SavedModel {path} has no signatures to call")
        chosen = self.settings(options).signature
        key = chosen or "serving_default"
        if key not in signatures:
            if chosen is not None:
                raise UserError(
                    f"SavedModel {path} has no signature {key!r}: "
                    f"choose one of {', '.join(signatures)}"
                )
            key = next(iter(signatures))
        function = signatures[key]
        args, kwargs = function.structured_input_signature
        if args:
            raise UserError(f"signature {key!r} takes positional inputs; re-export with names")
        inputs = [_tensor_spec(name, spec) for name, spec in kwargs.items()]
        outputs = []
        structured = function.structured_outputs
        if isinstance(structured, dict):
            for name, spec in structured.items():
                try:
                    outputs.append(_tensor_spec(name, spec))
                except UserError:
                    outputs.append(TensorSpec(name, spec.dtype.name, _dims(spec.shape)))
        return TFModel(
            function, device, inputs, outputs, provider, keyword_inputs=True, keepalive=loaded
        )

    def _load_keras(self, model: Any, options: RuntimeOptions, provider: str) -> LoadedModel:
        tf = import_tensorflow()
        require_keras("the keras format")
        # lazy: keras
        import keras

        if model is None:
            raise UserError("the keras format needs the Keras model itself (model=...)")
        if keras.backend.backend() != "tensorflow":
            raise UserError(
                f"the tensorflow runtime needs the Keras TensorFlow backend, "
                f"not {keras.backend.backend()!r} (set KERAS_BACKEND=tensorflow)"
            )
        inputs = options.inputs
        if inputs is None:
            try:
                keras_inputs = list(model.inputs)
            except (AttributeError, ValueError):
                keras_inputs = []
            if not keras_inputs:
                raise UserError(
                    "this Keras model has no input signature (subclassed?): "
                    "pass inputs=[TensorSpec...]"
                )
            inputs = [
                TensorSpec(t.name, normalize_dtype(str(t.dtype)), _dims(tuple(t.shape)))
                for t in keras_inputs
            ]
        outputs: list[TensorSpec] = []
        try:
            for t in model.outputs or []:
                outputs.append(TensorSpec(t.name, str(t.dtype), _dims(tuple(t.shape))))
        except (AttributeError, ValueError):
            outputs = []

        def call(x: Any) -> Any:
            return model(x, training=False)

        # Graph mode by default, as model.predict and serving run it; eager calls cost
        # milliseconds of Python per call and would dwarf the model itself.
        if self.settings(options).tf_function:
            call = tf.function(call, reduce_retracing=True)
            provider += " (tf.function)"
        else:
            provider += " (eager)"
        return TFModel(call, options.device, list(inputs), outputs, provider, keyword_inputs=False)

    def version(self) -> str:
        if "tensorflow" in sys.modules:
            return sys.modules["tensorflow"].__version__
        if tensorflow_missing():
            return ""
        try:  # importing TensorFlow only to name its version costs seconds
            return importlib.metadata.version("tensorflow")
        except importlib.metadata.PackageNotFoundError:
            return import_tensorflow().__version__
