"""The `null` runtime: loads nothing and runs nothing.

Timing it measures what the harness itself costs per call (the Python loop,
the clock reads, the pool rotation), so that cost can be subtracted from, or at
least compared with, every real runtime's numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.devices import Device, host_gpu_reason
from workbench.errors import UnavailableError, UserError
from workbench.runtimes.base import LoadedModel, Runtime, RuntimeOptions
from workbench.signature import TensorSpec

DEFAULT_INPUTS = [TensorSpec("x", "float32", ("batch", 1))]


class NullModel(LoadedModel):
    """A model whose `run` returns None immediately."""

    def __init__(self, inputs: list[TensorSpec], device: Device) -> None:
        self.inputs = inputs
        self.outputs = []
        self.provider = "null"
        self.device = device

    def run(self, prepared: Any) -> None:
        return None

    def to_numpy(self, outputs: Any) -> list:
        return []


class NullRuntime(Runtime):
    """Does nothing, on any device the host has, so the harness overhead can be measured."""

    name = "null"
    formats = ("null",)

    def unavailable_reason(self, device: Device) -> str | None:
        # Nothing runs on the device, but a cuda row on a host without that GPU would lie.
        return host_gpu_reason(device)

    def load(self, path: Path | None, options: RuntimeOptions, model: Any = None) -> LoadedModel:
        reason = self.unavailable_reason(options.device)
        if reason:
            raise UnavailableError(reason)
        inputs = options.inputs or DEFAULT_INPUTS
        if not all(isinstance(spec, TensorSpec) for spec in inputs):
            raise UserError("the null runtime's 'inputs' option must be a list of TensorSpec")
        return NullModel(list(inputs), options.device)

    def version(self) -> str:
        return "0"
