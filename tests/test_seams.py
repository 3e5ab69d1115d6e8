"""Public seams: no module uses another module's `_private` names, test files share
helpers through tests/support/ (never by importing one another), and a plugin a test
registers is gone when that test ends."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest

from tests.support.plugins import plugin_hooks
from tests.support.seams import PROJECT, private_uses
from workbench.errors import UserError
from workbench.registry import PASSES, Registry

REPO = Path(__file__).resolve().parents[1]
CRASHING_PASS = "tests.support.crashing_pass"


def test_no_module_uses_another_modules_private_names() -> None:
    uses = private_uses(REPO)
    assert not uses, "private names used outside their module (make them public):\n" + "\n".join(
        map(str, uses)
    )


def test_the_scan_finds_each_kind_of_private_use(tmp_path: Path) -> None:
    """The check can fail: every form below is planted in a small tree and found, and the
    same names used at home, on `self`, or as dunders are not. (The private name is filled
    in at run time, so that the whole-project scan does not find this test's plants.)"""
    files = {
        "workbench/__init__.py": "__version__ = '1'\n",
        "workbench/util.py": (
            "def {h}():\n    return 1\n\n"
            "class Box:\n    def _peek(self):\n        return self._value\n\n"
            "VALUE = {h}()\n"
        ),
        "workbench/pkg/__init__.py": "",
        "workbench/pkg/user.py": (
            "import workbench.util\n"
            "from workbench.util import {h}\n"  # line 2
            "from .. import util\n"
            "from ..util import Box\n"
            "from workbench import __version__\n"
            "a = util.{h}()\n"  # line 6
            "b = workbench.util.{h}\n"  # line 7
            "c = Box._peek\n"  # line 8
            "d = Box(); d._peek()\n"  # a local object's private: not an import
        ),
        "tests/test_planted.py": (
            "from workbench import util\n"
            "def test_it(monkeypatch):\n"
            "    monkeypatch.setattr(util, '{h}', lambda: 2)\n"  # line 3
            "    monkeypatch.setattr('workbench.util.{h}', lambda: 2)\n"  # line 4
            "CHILD = '''\n"
            "from workbench.util import {h}\n"  # line 6
            "'''\n"
        ),
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text.format(h="_hidden"))
    found = {(use.path, use.line, use.home) for use in private_uses(tmp_path)}
    assert found == {
        ("workbench/pkg/user.py", 2, "workbench.util"),
        ("workbench/pkg/user.py", 6, "workbench.util"),
        ("workbench/pkg/user.py", 7, "workbench.util"),
        ("workbench/pkg/user.py", 8, "workbench.util"),
        ("tests/test_planted.py", 3, "workbench.util"),
        ("tests/test_planted.py", 4, "workbench.util"),
        ("tests/test_planted.py", 6, "workbench.util"),
    }


def test_test_files_import_no_other_test_file() -> None:
    """Helpers two test files share live in tests/support/ (or in conftest.py fixtures)."""
    found = []
    for folder in PROJECT:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else []
                )
                if any(n.startswith("tests.test_") or n == "tests.conftest" for n in names):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not found, "imports of a test file (move the helper to tests/support/):\n" + "\n".join(
        found
    )


# ---------------------------------------------------------------- plugins for one test


def test_unregister_removes_a_name_that_may_come_back() -> None:
    registry: Registry[object] = Registry("thing", "workbench.test-things", {"a": "m:A"})
    registry.unregister("a")
    assert registry.names() == []
    with pytest.raises(UserError, match="unknown thing 'a'"):
        registry.unregister("a")
    with pytest.raises(UserError, match="unknown thing 'a'"):
        registry.get("a")


def test_plugin_hooks_unload_the_plugin_on_leaving() -> None:
    env = PASSES.plugin_env or ""
    for _ in range(2):  # and it loads again afresh
        with pytest.MonkeyPatch.context() as patch:
            with plugin_hooks(patch, CRASHING_PASS, PASSES):
                assert PASSES.get("crashing").format == "crashformat"
                assert os.environ[env] == CRASHING_PASS
        assert "crashing" not in PASSES.names()
        assert env not in os.environ
        assert CRASHING_PASS not in sys.modules


_LOADED: list[str] = []


def test_load_plugin_registers_for_this_test(load_plugin) -> None:
    load_plugin(CRASHING_PASS, PASSES)
    assert "crashing" in PASSES.names()
    _LOADED.append("crashing")


def test_and_the_next_test_no_longer_sees_it() -> None:
    if not _LOADED:
        pytest.skip("runs after test_load_plugin_registers_for_this_test")
    assert "crashing" not in PASSES.names()
    assert (PASSES.plugin_env or "") not in os.environ
