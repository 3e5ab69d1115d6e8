"""The repository's example models (`examples/`), loaded as the tests need them."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example_module(name: str) -> ModuleType:
    """`examples/NAME.py` as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def examples_manifest() -> dict[str, dict[str, Any]]:
    """The built examples by name (built on first use, under a lock: a minute once)."""
    return example_module("make_examples").manifest()
