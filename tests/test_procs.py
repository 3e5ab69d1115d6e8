"""Child processes import this checkout's workbench, whatever the venv's editable
install points at."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from workbench.procs import CODE_ROOT, child_env


def test_code_root_is_this_checkout():
    assert CODE_ROOT == Path(__file__).resolve().parents[1]


def test_child_env_puts_this_checkout_first(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = child_env(EXTRA="1")
    assert env["PYTHONPATH"].split(":")[:2] == [str(CODE_ROOT), "/elsewhere"]
    assert env["EXTRA"] == "1"


def test_a_child_imports_workbench_from_here(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", "import workbench; print(workbench.__file__)"],
        env=child_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(out).resolve().parent.parent == CODE_ROOT
