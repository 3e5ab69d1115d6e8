"""environment.yml, requirements/base.txt and requirements/lock.txt must agree, and the
set-up must install the lock exactly (so the CPU-only onnxruntime can never slip in)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert match, f"not an exact pin: {line!r}"
        pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def _file_pins(name: str) -> dict[str, str]:
    return _pins((ROOT / name).read_text().splitlines())


def _environment_yml_pins() -> tuple[str, dict[str, str]]:
    spec = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = spec["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    return python, _pins(pip_section)


def test_environment_yml_declares_the_base_pins():
    _, yml = _environment_yml_pins()
    assert yml == _file_pins("requirements/base.txt")


def test_every_base_pin_is_in_the_lock_at_the_same_version():
    lock = _file_pins("requirements/lock.txt")
    for name, version in _file_pins("requirements/base.txt").items():
        assert lock.get(name) == version, f"{name}: base {version}, lock {lock.get(name)}"


def test_python_version_matches_pyproject():
    python, _ = _environment_yml_pins()
    assert python == "python=3.11"
    assert 'requires-python = ">=3.11,<3.12"' in (ROOT / "pyproject.toml").read_text()


def test_lock_has_gpu_onnxruntime_and_never_the_cpu_only_package():
    lock = _file_pins("requirements/lock.txt")
    assert "onnxruntime-gpu" in lock
    assert "onnxruntime" not in lock
    assert "tensorflow" in lock and "tensorflow-cpu" not in lock


def test_setup_installs_exactly_the_lock():
    script = (ROOT / "scripts/setup-venv.sh").read_text()
    assert "--no-deps -r requirements/lock.txt" in script
    assert "pip show onnxruntime" in script  # refuses a venv with the CPU-only package
    makefile = (ROOT / "Makefile").read_text()
    assert "scripts/setup-venv.sh" in makefile


def test_installed_versions_match_the_lock():
    """The venv running the tests is the one the set-up built from the lock."""
    from importlib import metadata

    for name, version in _file_pins("requirements/base.txt").items():
        assert metadata.version(name) == version, name


def test_workbench_kernel_is_registered_in_the_venv():
    """papermill and JupyterLab find the venv's kernel by the name `workbench`."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "jupyter", "kernelspec", "list", "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    specs = json.loads(out)["kernelspecs"]
    assert "workbench" in specs
    argv0 = specs["workbench"]["spec"]["argv"][0]
    assert Path(argv0).resolve() == Path(sys.executable).resolve()
