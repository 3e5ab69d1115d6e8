"""Fixtures shared by the tests: a private workspace per test or per module, and test-only
plugins loaded for one test.

The workspace (`$WORKBENCH_HOME`) holds exported artifacts and result runs; a test
that exports or stores rows gets a fresh one so tests never see each other's files.
Trained weights stay in the machine-wide cache (`workspace.weights_dir`), so a fresh
workspace does not train again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.support.plugins import plugin_hooks
from workbench import logs, progress
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


@pytest.fixture(autouse=True)
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts and ends with the library's default: no handlers, no renderer. A test
    that runs `workbench.cli.main` or a notebook's first cell in process configures logging
    on a stream that pytest closes afterwards; nothing of that reaches the next test."""
    monkeypatch.delenv(logs.LEVEL_VAR, raising=False)
    monkeypatch.delenv(progress.ENV_VAR, raising=False)
    saved = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).level,
               logging.getLogger(name).propagate)
        for name in logs.LOGGERS
    }  # fmt: skip
    previous = progress.set_renderer(None)
    yield
    progress.set_renderer(previous)
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate
    os.environ.pop(logs.LEVEL_VAR, None)
    os.environ.pop(progress.ENV_VAR, None)
