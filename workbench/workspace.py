"""Where generated artifacts and result runs live (outside version control)."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "WORKBENCH_HOME"
WEIGHTS_ENV_VAR = "WORKBENCH_WEIGHTS"


def workspace_dir() -> Path:
    """The workspace root: $WORKBENCH_HOME, else `.workbench/` in the current directory."""
    root = Path(os.environ.get(ENV_VAR, ".workbench")).expanduser().resolve()
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


def weights_dir() -> Path:
    """Where locally trained task weights are cached: $WORKBENCH_WEIGHTS, else
    ~/.cache/workbench/weights. Shared by every workspace and clone on the machine, since
    training is deterministic and keyed by version: a fresh clone (or a test's temporary
    workspace) reuses weights trained once instead of training again."""
    default = Path.home() / ".cache" / "workbench" / "weights"
    path = Path(os.environ.get(WEIGHTS_ENV_VAR, default)).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path
