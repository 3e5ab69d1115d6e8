"""Run the `workbench` command as a user runs it: a fresh process with its own workspace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Timing options that keep a CLI benchmark to a fraction of a second.
FAST = ["--min-iters", "20", "--min-time", "0.05", "--warmup", "2"]


def run_cli(
    args: list[str], cwd: Path, home: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m workbench.cli ARGS` in `cwd`, with this checkout on PYTHONPATH and the
    workspace `home` (default `cwd/ws`)."""
    env = {
        **os.environ,
        "WORKBENCH_HOME": str(home or cwd / "ws"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
