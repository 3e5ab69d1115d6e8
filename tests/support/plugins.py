"""Test-only plugins for the length of one test (or one module): loaded through the
registries' environment hooks, so that worker processes load them too, and removed
afterwards, so that a later sweep asking for every format never meets `crashformat`."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from workbench.registry import Registry

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def plugin_hooks(
    patch: pytest.MonkeyPatch, module: str, *registries: Registry[Any]
) -> Iterator[None]:
    """Name `module` in each registry's $plugin_env (and put this checkout on PYTHONPATH for
    child processes) inside the block. On leaving it, the variables are unset again and
    every name the module added is unregistered; the module is dropped from sys.modules,
    so that loading it again registers its classes afresh."""
    before = {registry: set(registry.names()) for registry in registries}
    for registry in registries:
        assert registry.plugin_env, f"the {registry.kind} registry has no plugin hook"
        patch.setenv(registry.plugin_env, module)
    patch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )
    try:
        yield
    finally:
        for registry in registries:
            patch.delenv(registry.plugin_env or "", raising=False)
        for registry in registries:
            for name in set(registry.names()) - before[registry]:
                registry.unregister(name)
        sys.modules.pop(module, None)
