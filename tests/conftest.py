"""Fixtures shared by the tests: a private workspace per test or per module.

The workspace (`$WORKBENCH_HOME`) holds exported artifacts and result runs; a test
that exports or stores rows gets a fresh one so tests never see each other's files.
Trained weights stay in the machine-wide cache (`workspace.weights_dir`), so a fresh
workspace does not train again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
