"""A test-only export pass whose converter aborts the interpreter, like a TF converter can."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from exporters.base import ExportContext, Pass
from workbench.registry import PASSES


@PASSES.register
class CrashingPass(Pass):
    name = "crashing"
    source_frameworks = ("torch",)
    format = "crashformat"
    filename = "model.crash"

    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        os.abort()
