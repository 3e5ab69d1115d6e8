"""Test-only faults for sweeps (issue 15): export passes and a runtime that raise,
segfault, hang or exhaust memory, loaded through the plugin hooks
$WORKBENCH_EXTRA_PASSES and $WORKBENCH_EXTRA_RUNTIMES = tests.support.fault_plugin.

- Passes `fault_<kind>` make torch models into format `fault-<kind>` and do the fault
  instead of exporting.
- Pass `fault_copy` makes format `faultonnx`: a copy of the task's FP32 ONNX file, run by
  the runtime `fault`, which is ONNX Runtime with a fault injected: setting `fault`
  (raise, segv, hang, oom) at load (`at_call` 0) or on the Nth run call since load.

The memory fault refuses to start without an address-space limit (RLIMIT_AS), so that it
can never take the machine's memory.
"""

from __future__ import annotations

import ctypes
import dataclasses
import resource
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporters.base import ExportContext, Pass
from workbench.devices import Device
from workbench.options import Options
from workbench.registry import PASSES, RUNTIMES, get_runtime
from workbench.runtimes.base import LoadedModel, Runtime, RuntimeOptions

KINDS = ("raise", "segv", "hang", "oom")


def do_fault(kind: str) -> None:
    """Raise, segfault, hang or run out of memory, as a broken converter or runtime does."""
    if kind == "raise":
        raise RuntimeError("injected fault: it gave up")
    if kind == "segv":
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file from a deliberate crash
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    if kind == "hang":
        while True:
            time.sleep(0.1)
    if kind == "oom":
        if resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY:
            raise RuntimeError("the oom fault needs an address-space limit (RLIMIT_AS)")
        import numpy as np

        hog = []
        while True:
            # Address space only (np.empty touches no page), so the fault costs the machine
            # no real memory: MemoryError once the limit is reached.
            hog.append(np.empty(256 << 20, dtype=np.uint8))
    raise ValueError(f"unknown fault {kind!r}")


def _fault_pass(kind: str) -> type[Pass]:
    class FaultPass(Pass):
        name = f"fault_{kind}"
        source_frameworks = ("torch",)
        format = f"fault-{kind}"
        filename = "model.fault"

        def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
            do_fault(kind)
            return {}

    FaultPass.__name__ = FaultPass.__qualname__ = f"FaultPass_{kind}"
    return FaultPass


for _kind in KINDS:
    PASSES.register(_fault_pass(_kind))


@PASSES.register
class FaultCopyPass(Pass):
    name = "fault_copy"
    source_frameworks = ("torch",)
    format = "faultonnx"
    filename = "model.onnx"
    upstream = ("onnx", "fp32")

    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        assert ctx.upstream_path is not None
        shutil.copyfile(ctx.upstream_path, out)
        return {"exporter": "copy"}


@dataclass(frozen=True)
class FaultSettings(Options):
    fault: str | None = None
    at_call: int = 0


class FaultModel(LoadedModel):
    """ONNX Runtime's loaded model, with a fault on its Nth run call."""

    def __init__(self, inner: LoadedModel, fault: str | None, at_call: int) -> None:
        self.inner = inner
        self.inputs = inner.inputs
        self.outputs = inner.outputs
        self.provider = inner.provider
        self.fault = fault
        self.at_call = at_call
        self.calls = 0

    def prepare(self, feed: Any) -> Any:
        return self.inner.prepare(feed)

    def run(self, prepared: Any) -> Any:
        self.calls += 1
        if self.fault and self.calls == self.at_call:
            do_fault(self.fault)
        return self.inner.run(prepared)

    def to_numpy(self, outputs: Any) -> Any:
        return self.inner.to_numpy(outputs)

    def close(self) -> None:
        self.inner.close()


@RUNTIMES.register
class FaultRuntime(Runtime):
    name = "fault"
    formats = ("faultonnx", *(f"fault-{k}" for k in KINDS))
    Settings = FaultSettings

    def unavailable_reason(self, device: Device) -> str | None:
        return get_runtime("onnxruntime").unavailable_reason(device)

    def version(self) -> str:
        return get_runtime("onnxruntime").version()

    def load(self, path: Path | None, options: RuntimeOptions, model: Any = None) -> LoadedModel:
        settings = self.settings(options)
        if settings.fault and settings.at_call == 0:
            do_fault(settings.fault)
        ort = get_runtime("onnxruntime")
        inner = ort.load(path, dataclasses.replace(options, format="onnx", settings=None))
        return FaultModel(inner, settings.fault, settings.at_call)
