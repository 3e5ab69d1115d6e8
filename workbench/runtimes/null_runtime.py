"""The `null` runtime: loads nothing and runs nothing.

Timing it measures what the harness itself costs per call (the Python loop,
the clock reads, the pool rotation), so that cost can be subtracted from, or at
least compared with, every real runtime's numbers. Its `delay_ms` setting makes each
call take that long, a known slowdown that `workbench compare` must detect.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.devices import Device, host_gpu_reason
from workbench.errors import UnavailableError, UserError
from workbench.options import Options, option
from workbench.runtimes.base import LoadedModel, Runtime, RuntimeOptions
from workbench.signature import TensorSpec

DEFAULT_INPUTS = [TensorSpec("x", "float32", ("batch", 1))]


@dataclass(frozen=True)
class NullSettings(Options):
    """Settings of the null runtime."""

    delay_ms: float = option(
        0.0, "milliseconds each call busy-waits: a known slowdown to inject (0: none)"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.delay_ms < 0:
            raise UserError(f"the null runtime's delay_ms must be >= 0, got {self.delay_ms}")


class NullModel(LoadedModel):
    """A model whose `run` returns None immediately (or after `delay_ms`)."""

    def __init__(self, inputs: list[TensorSpec], device: Device, delay_ms: float = 0.0) -> None:
        self.inputs = inputs
        self.outputs = []
        self.provider = "null"
        self.device = device
        self.delay_s = delay_ms / 1000.0

    def run(self, prepared: Any) -> None:
        if self.delay_s:
            # Busy-wait, not sleep: a sleep's wake-up jitter (tens of microseconds, more on
            # a loaded host) would blur the very slowdown the delay is there to inject.
            end = time.perf_counter() + self.delay_s
            while time.perf_counter() < end:
                pass
        return None

    def to_numpy(self, outputs: Any) -> list:
        return []


class NullRuntime(Runtime):
    """Does nothing, on any device the host has, so the harness overhead can be measured."""

    name = "null"
    formats = ("null",)
    Settings = NullSettings

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
        return NullModel(list(inputs), options.device, self.settings(options).delay_ms)

    def version(self) -> str:
        return "0"
