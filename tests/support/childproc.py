"""Run test code in a fresh interpreter, so PyTorch and TensorFlow never share the test
process (importing both in one process crashes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap


def run_child(code: str, timeout: float = 300) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON object last, returned here."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
