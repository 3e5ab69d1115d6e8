"""The import layers (`[tool.importlinter]` in pyproject.toml) hold, every module sits in
one, and an import inside a function says which framework it keeps unloaded (`lazy:`)."""

from __future__ import annotations

import ast
import io
import os
import shutil
import subprocess
import sys
import tokenize
import tomllib
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("workbench", "exporters")


# ---------------------------------------------------------------------- lint-imports


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the checkout at `root`, with its own pyproject.toml."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command; "
            "sys.exit(lint_imports_command())",
            "--no-cache",
            "--no-logo",
        ],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_import_contracts_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_contracts(tmp_path: Path) -> None:
    """The same contracts on a copy of the code in which a core module imports the CLI
    (inside a function, as a hidden cycle would): both contracts break."""
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / "workbench" / "errors.py").open("a") as fh:
        fh.write("\n\ndef _planted() -> None:\n    import workbench.cli  # noqa: F401\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "workbench layers, top to bottom BROKEN" in result.stdout
    assert "no import cycle between sibling modules or packages BROKEN" in result.stdout
    assert "workbench.errors -> workbench.cli" in result.stdout


def layer_modules(pyproject: Path = ROOT / "pyproject.toml") -> set[str]:
    """Every module named in the layers contract (optional ones without parentheses)."""
    config = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["type"] == "layers"]
    names = set()
    for layer in layers["layers"]:
        for part in layer.replace("|", ":").split(":"):
            names.add(part.strip().strip("()"))
    return names


def modules(root: Path = ROOT) -> Iterable[str]:
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_module_is_in_a_layer() -> None:
    """A new module or package must be placed in the picture, not left unchecked; a
    package split across layers (workbench.harness) may only hold its docstring."""
    named = layer_modules()
    unplaced = [
        m
        for m in modules()
        if not any(m == n or m.startswith(n + ".") for n in named)
        and not any(n.startswith(m + ".") for n in named)  # a root or a split package
    ]
    assert unplaced == []


# ---------------------------------------------------------------------- lazy imports


def _comment_lines(source: str) -> dict[int, str]:
    """Line number -> the text of the comment on that line."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {t.start[0]: t.string for t in tokens if t.type == tokenize.COMMENT}


def _function_import_blocks(tree: ast.AST) -> Iterable[list[ast.stmt]]:
    """Runs of consecutive import statements in the bodies of functions (at any depth)."""

    def bodies(node: ast.AST, in_function: bool) -> Iterable[list[ast.stmt]]:
        inside = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            block = getattr(node, field, None)
            if not isinstance(block, list):
                continue
            if inside and block and isinstance(block[0], ast.stmt):
                yield block
            for child in block:
                yield from bodies(child, inside)

    for body in bodies(tree, False):
        run: list[ast.stmt] = []
        for statement in [*body, None]:
            if isinstance(statement, ast.Import | ast.ImportFrom):
                run.append(statement)
            elif run:
                yield run
                run = []


def unexplained_imports(source: str) -> list[int]:
    """Lines of function-level imports with no `lazy:` comment: on one of the import's
    own lines, or on the comment line directly above the first import of its block."""
    comments = _comment_lines(source)
    found = []
    for block in _function_import_blocks(ast.parse(source)):
        if "lazy:" in comments.get(block[0].lineno - 1, ""):
            continue
        for node in block:
            lines = range(node.lineno, (node.end_lineno or node.lineno) + 1)
            if not any("lazy:" in comments.get(line, "") for line in lines):
                found.append(node.lineno)
    return found


def test_function_level_imports_say_what_they_keep_unloaded() -> None:
    """An import inside a function is there only to keep a heavy framework (or a module
    that imports one) unloaded, and says which; any other import goes at the top."""
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            offenders += [f"{rel}:{line}" for line in unexplained_imports(path.read_text())]
    assert offenders == [], "move these imports to the top, or say `# lazy: <framework>`"


@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ("def f():\n    import json\n", [2]),
        ("def f():\n    if x:\n        from a import b\n", [3]),
        ("class C:\n    def m(self):\n        import json\n", [3]),
        ("def f():\n    import torch  # lazy: torch\n", []),
        ("def f():\n    # lazy: torch, onnx\n    import torch\n\n    import onnx\n", []),
        ("def f():\n    # lazy: torch\n    import torch\n    x = 1\n    import json\n", [5]),
        ("def f():\n    # why\n    import json\n", [3]),
        ("import json\n\n\ndef f():\n    return json\n", []),
    ],
)
def test_the_lazy_check_flags_unexplained_imports(source: str, flagged: list[int]) -> None:
    assert unexplained_imports(source) == flagged


# ---------------------------------------------------------------------- startup


def test_listing_loads_no_framework() -> None:
    """The registry and `workbench list` import no framework (the layers keep it so)."""
    code = (
        "import contextlib, io, sys\n"
        "import workbench.registry\n"
        "from workbench.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['list']) == 0\n"
        "print(sorted(m for m in ('torch', 'tensorflow', 'onnxruntime') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
