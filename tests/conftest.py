"""Fixtures shared by the tests: a private workspace per test or per module, and test-only
plugins loaded for one test.

The workspace (`$WORKBENCH_HOME`) holds exported artifacts and result runs; a test
that exports or stores rows gets a fresh one so tests never see each other's files.
Trained weights stay in the machine-wide cache (`workspace.weights_dir`), so a fresh
workspace does not train again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.support.plugins import plugin_hooks
from workbench.registry import Registry
from workbench.workspace import ENV_VAR


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh workspace for one test."""
    home = tmp_path / "ws"
    monkeypatch.setenv(ENV_VAR, str(home))
    return home


@pytest.fixture(scope="module")
def module_workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One workspace for a whole test module (its exports are reused across tests)."""
    with pytest.MonkeyPatch.context() as patch:
        home = tmp_path_factory.mktemp("ws")
        patch.setenv(ENV_VAR, str(home))
        yield home


@pytest.fixture
def load_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """`load_plugin(module, *registries)`: the module's plugins for this test only (this
    process and its workers); they are unregistered when the test ends."""
    with ExitStack() as stack:

        def load(module: str, *registries: Registry[Any]) -> None:
            stack.enter_context(plugin_hooks(monkeypatch, module, *registries))

        yield load
