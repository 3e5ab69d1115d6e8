"""Where generated artifacts and result runs live (outside version control)."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "WORKBENCH_HOME"


def workspace_dir() -> Path:
    """The workspace root: $WORKBENCH_HOME, else `.workbench/` in the current directory."""
    root = Path(os.environ.get(ENV_VAR, ".workbench")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def runs_dir() -> Path:
    path = workspace_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def artifacts_dir() -> Path:
    path = workspace_dir() / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path
