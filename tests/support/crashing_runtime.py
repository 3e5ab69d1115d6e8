"""A test-only runtime, `crash`, that kills its own interpreter with SIGABRT (os.abort),
as a native runtime bug would. Loaded into benchmark workers through the plugin hook
$WORKBENCH_EXTRA_RUNTIMES=tests.support.crashing_runtime.

The setting `crash_at_batch` = N: load works and batch N aborts on its first call;
without it, `load` aborts.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.devices import Device
from workbench.options import Options
from workbench.registry import RUNTIMES
from workbench.runtimes.base import LoadedModel, Runtime, RuntimeOptions
from workbench.signature import TensorSpec


def _abort() -> None:
    # No core file from a deliberate crash.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.abort()


class CrashingModel(LoadedModel):
    def __init__(self, crash_at_batch: int) -> None:
        self.inputs = [TensorSpec("x", "float32", ("batch", 4))]
        self.outputs = []
        self.provider = "crash"
        self.crash_at_batch = crash_at_batch

    def run(self, prepared: Any) -> None:
        if len(prepared["x"]) == self.crash_at_batch:
            _abort()


@dataclass(frozen=True)
class CrashSettings(Options):
    crash_at_batch: int | None = None


@RUNTIMES.register
class CrashingRuntime(Runtime):
    name = "crash"
    formats = ("onnx",)
    Settings = CrashSettings

    def unavailable_reason(self, device: Device) -> str | None:
        return None

    def load(self, path: Path | None, options: RuntimeOptions, model: Any = None) -> LoadedModel:
        crash_at = self.settings(options).crash_at_batch
        if crash_at is None:
            _abort()
        return CrashingModel(int(crash_at))
