"""A test-only export pass whose converter aborts the interpreter, like a TF converter can."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from exporters.base import Pass, register


@register
class CrashingPass(Pass):
    name = "crashing"
    source_framework = "torch"
    format = "crashformat"
    filename = "model.crash"

    def export(
        self,
        source_model: Any,
        task: Any,
        model: str,
        out: Path,
        precision: str,
        params: dict[str, Any],
    ) -> dict[str, Any]:
        os.abort()
