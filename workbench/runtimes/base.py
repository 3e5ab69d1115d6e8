"""The Runtime interface: load an artifact on a device, run it on prepared inputs.

A runtime never silently moves to another device: when it cannot use the
requested one, `unavailable_reason` says why and the harness records an
`unavailable` row instead of measuring anything.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from workbench.devices import Device
from workbench.errors import UserError
from workbench.options import NoOptions, Options
from workbench.signature import TensorSpec

if TYPE_CHECKING:
    # Hints only: importing the harness here would make runtimes and harness a cycle.
    from workbench.harness.timing import Measurement, StopRule


@dataclass
class RuntimeOptions:
    """How to load a model, for any runtime.

    `threads` is the intra-op thread count (None: the runtime's default). `format` is
    the artifact's format, given by the caller (never guessed again from a suffix when
    known). `inputs` overrides the artifact's own input signature (TorchScript files
    carry none). `settings` is the runtime's own typed settings (`Runtime.Settings`);
    None means its defaults."""

    device: Device
    threads: int | None = None
    inter_op_threads: int | None = None
    format: str | None = None
    inputs: list[TensorSpec] | None = None
    settings: Options | None = None

    def __post_init__(self) -> None:
        for name in ("threads", "inter_op_threads"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UserError(f"{name} must be a positive integer, got {value}")


class LoadedModel(ABC):
    """A model ready to run. The harness calls `prepare` outside the timed region and
    `run` (+ `synchronize` on a GPU) inside it."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    provider: str = ""  # what actually executes: e.g. CPUExecutionProvider, XNNPACK

    def prepare(self, feed: dict[str, np.ndarray]) -> Any:
        """Convert a numpy feed to what `run` takes (device tensors, ordered lists...)."""
        return feed

    def checked_feed(self, feed: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
        """The feed's arrays in input order, contiguous, each checked against its input's
        name and dtype: a UserError names the missing input or the wrong dtype."""
        arrays = []
        for spec in self.inputs:
            if spec.name not in feed:
                names = ", ".join(s.name for s in self.inputs)
                raise UserError(f"feed has no input {spec.name!r}: the model takes {names}")
            value = np.asarray(feed[spec.name])
            expected = np.dtype(spec.dtype)
            if value.dtype != expected:
                raise UserError(
                    f"input {spec.name!r} was given dtype {value.dtype} "
                    f"but the model expects {expected}"
                )
            arrays.append((spec.name, np.ascontiguousarray(value)))
        return arrays

    @abstractmethod
    def run(self, prepared: Any) -> Any:
        """One inference on prepared inputs; returns the runtime's native outputs."""

    def run_fn(self) -> Callable[[Any], Any]:
        """The callable the timed loop calls with a prepared feed. Defaults to `run`;
        runtimes override it with a direct binding (e.g. a partial of the C-level
        `session.run`) so the loop adds no extra Python frame per call."""
        return self.run

    def measure(self, pool: list[Any], rule: StopRule) -> Measurement | None:
        """The timed loop run by the runtime itself, or None (the default): the harness
        times `run_fn` in Python. A compiled caller times its own calls in its own
        process, with the same `rule`, and returns the same kind of measurement."""
        return None

    def synchronize(self) -> None:  # noqa: B027 - optional hook
        """Wait for queued device work (CUDA); a no-op on the CPU."""

    def to_numpy(self, outputs: Any) -> list[np.ndarray]:
        """Native outputs as numpy arrays, in output order (used for parity checks)."""
        if isinstance(outputs, dict):
            outputs = list(outputs.values())
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        return [np.asarray(o) for o in outputs]

    def gpu_memory_bytes(self) -> int | None:
        """Peak device memory used since load, where the runtime can tell; else None."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model's resources."""


def by_input_name(loaded: LoadedModel, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A task's feed keyed by the artifact's own input names. Converters rename inputs
    (a Keras model's "input" becomes "serving_default_input:0" in TFLite); when the names
    differ but the counts match, inputs are matched by position, as the parity check does."""
    names = [spec.name for spec in loaded.inputs]
    if set(names) <= set(feed) or len(names) != len(feed):
        return feed
    return {name: feed[key] for name, key in zip(names, feed_keys(names, list(feed)), strict=True)}


def _undecorated(name: str) -> str:
    """An input name without a converter's decoration: TFLite's signature runner names a
    Keras input "serving_default_<name>:0"."""
    name = name.removeprefix("serving_default_")
    head, sep, tail = name.rpartition(":")
    return head if sep and tail.isdigit() else name


def feed_keys(artifact_names: list[str], feed_names: list[str]) -> list[str]:
    """For each artifact input, the feed entry it takes: the same name, else the same name
    once the converter's decoration is removed (TFLite orders a Keras model's inputs by
    name, so position alone would swap input_ids and attention_mask), else by position."""
    plain = {_undecorated(name): name for name in artifact_names}
    if set(plain) == set(feed_names) and len(plain) == len(artifact_names):
        return [_undecorated(name) for name in artifact_names]
    return list(feed_names)


def run_in_batches(loaded: LoadedModel, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Outputs for the whole feed. An artifact with a fixed batch axis (e.g. a TFLite
    file exported at batch 1) runs it chunk by chunk, the last chunk padded by repeating
    its final item, and the padding is cut from the outputs."""
    total = len(next(iter(feed.values())))
    fixed = loaded.inputs[0].shape[0] if loaded.inputs and loaded.inputs[0].shape else None
    if not isinstance(fixed, int) or fixed in (total, 0):
        return loaded.to_numpy(loaded.run(loaded.prepare(by_input_name(loaded, feed))))
    chunks: list[list[np.ndarray]] = []
    for start in range(0, total, fixed):
        part = {k: v[start : start + fixed] for k, v in feed.items()}
        short = fixed - len(next(iter(part.values())))
        if short:
            part = {
                k: np.concatenate([v, np.repeat(v[-1:], short, axis=0)]) for k, v in part.items()
            }
        outputs = loaded.to_numpy(loaded.run(loaded.prepare(by_input_name(loaded, part))))
        chunks.append([o[: fixed - short] for o in outputs])
    return [np.concatenate(parts, axis=0) for parts in zip(*chunks, strict=True)]


class Runtime(ABC):
    """One inference engine, registered by name in `workbench.registry.RUNTIMES`."""

    name: ClassVar[str]
    formats: ClassVar[tuple[str, ...]]  # artifact formats this runtime loads
    # The runtime's own settings, typed and with their defaults (an `Options` dataclass).
    Settings: ClassVar[type[Options]] = NoOptions
    # Settings a sweep row of a precision forces on this runtime, over the sweep's own,
    # e.g. {"bf16": {"autocast": "bf16"}}: a precision that is the runtime's arithmetic
    # rather than a file's (an eager model has no bf16 artifact).
    precision_settings: ClassVar[dict[str, dict[str, Any]]] = {}

    def parse_settings(self, values: dict[str, Any] | None) -> Options:
        """Typed settings from a loose mapping (CLI, JSON job); a UserError names an
        unknown or ill-typed setting and lists the valid ones."""
        return self.Settings.parse(values, owner=f"runtime {self.name!r}", noun="setting")

    def settings(self, options: RuntimeOptions) -> Any:
        """`options.settings` checked to be this runtime's kind, or the defaults."""
        if options.settings is None:
            return self.Settings()
        if not isinstance(options.settings, self.Settings):
            raise UserError(
                f"runtime {self.name!r} got settings of type {type(options.settings).__name__}; "
                f"it takes {self.Settings.describe()}"
            )
        return options.settings

    @abstractmethod
    def unavailable_reason(self, device: Device) -> str | None:
        """Why this runtime cannot use `device` on this host, or None if it can."""

    @abstractmethod
    def load(self, path: Path | None, options: RuntimeOptions, model: Any = None) -> LoadedModel:
        """Load the artifact at `path` (or the in-memory framework `model` for eager formats)."""

    def load_served(
        self, path: Path | None, options: RuntimeOptions, instances: int
    ) -> list[LoadedModel]:
        """The model copies a scenario or server runs concurrently, one per batcher worker
        (`options.threads` intra-op threads each): `instances` separate loads. A runtime
        that serves concurrent requests from one compiled model (OpenVINO's streams)
        overrides this and may return more than `instances` (its own optimal count)."""
        return [self.load(path, options) for _ in range(instances)]

    def version(self) -> str:
        """The version of the underlying library (for result rows)."""
        return ""

    def configure_process(self, options: RuntimeOptions) -> None:  # noqa: B027 - optional
        """Apply process-wide settings (thread pools) before anything else touches the
        framework, e.g. before a task builds its in-memory model in a worker."""
