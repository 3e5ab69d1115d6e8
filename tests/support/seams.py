"""Find uses of another module's `_private` names, with `ast`: the seams between modules
are their public names, so a private one used elsewhere is a seam nobody agreed on.

Counted as a use, in any module of the project (and in code a test runs in a child
interpreter, given as a string):
- `from workbench.sweep import _run_worker` (relative imports too);
- `sweep._run_worker`, `workbench.sweep._run_worker`, `PASSES._targets`: a private
  attribute of a name imported from another project module;
- `monkeypatch.setattr(oq, "_helper", ...)` (or getattr/delattr/hasattr) on such a name,
  and `monkeypatch.setattr("workbench.x._helper", ...)`.
A module's use of its own private names, `self._x`, dunders (`__version__`) and the
namedtuple methods (`_replace`, `_asdict`, ...) are not uses.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

# The project's top-level folders: imports from anything else are third-party.
PROJECT = ("workbench", "exporters", "tests", "benchmarks", "scripts", "notebooks")
# Public API of namedtuples, spelled with one underscore so as not to clash with fields.
NAMEDTUPLE_API = frozenset({"_asdict", "_replace", "_make", "_fields", "_field_defaults"})
ATTRIBUTE_CALLS = frozenset({"setattr", "getattr", "delattr", "hasattr"})


@dataclass(frozen=True, order=True)
class Use:
    """One use of a private name: where, whose (the module that defines it), what."""

    path: str
    line: int
    home: str
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def is_private(name: str) -> bool:
    """`_name`, but not `__dunder__` nor a namedtuple method."""
    dunder = name.startswith("__") and name.endswith("__")
    return name.startswith("_") and not dunder and name not in NAMEDTUPLE_API


def module_name(path: Path, root: Path) -> str:
    """The dotted module name of `path` under `root` (`pkg/__init__.py` is `pkg`)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def private_uses(root: Path, folders: Iterable[str] = PROJECT) -> list[Use]:
    """Every use of another module's private name in the .py files under `root/folder`,
    sorted by place."""
    files = [
        path
        for folder in folders
        for path in sorted((root / folder).rglob("*.py"))
        if not {".venv", ".ipynb_checkpoints"} & set(path.parts)
    ]
    modules = {module_name(path, root) for path in files}
    found: set[Use] = set()
    for path in files:
        where = path.relative_to(root).as_posix()
        scan = _ModuleScan(module_name(path, root), path.name == "__init__.py", modules)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=where)
        found.update(Use(where, line, home, what) for line, home, what in scan.uses(tree))
    return sorted(found)


@dataclass
class _ModuleScan:
    """The private uses in one module's tree."""

    module: str
    is_package: bool
    modules: set[str]  # every project module, to tell `from pkg import mod` from an object
    imported: dict[str, str] = field(default_factory=dict)  # local name -> project module

    def uses(self, tree: ast.AST) -> Iterator[tuple[int, str, str]]:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom | ast.Import):
                yield from self._import(node)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and is_private(node.attr):
                home = self._home(node.value)
                if home is not None:
                    yield node.lineno, home, f"{ast.unparse(node.value)}.{node.attr}"
            elif isinstance(node, ast.Call):
                yield from self._attribute_call(node)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                yield from self._child_code(node)

    def _import(self, node: ast.ImportFrom | ast.Import) -> Iterator[tuple[int, str, str]]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PROJECT:
                    local = alias.asname or alias.name.split(".")[0]
                    self.imported[local] = alias.name if alias.asname else local
            return
        source = self._resolve(node)
        if source.split(".")[0] not in PROJECT:
            return
        for alias in node.names:
            if is_private(alias.name) and source != self.module:
                yield node.lineno, source, f"from {source} import {alias.name}"
            submodule = f"{source}.{alias.name}"
            self.imported[alias.asname or alias.name] = (
                submodule if submodule in self.modules else source
            )

    def _resolve(self, node: ast.ImportFrom) -> str:
        """The absolute module an ImportFrom reads from."""
        if not node.level:
            return node.module or ""
        parts = self.module.split(".")
        keep = len(parts) - node.level + (1 if self.is_package else 0)
        return ".".join(parts[: max(keep, 0)] + ([node.module] if node.module else []))

    def _home(self, node: ast.expr) -> str | None:
        """The project module an attribute chain (`a.b.c`) reaches from an imported name,
        or None when it does not start at one."""
        chain: list[str] = []
        while isinstance(node, ast.Attribute):
            chain.insert(0, node.attr)
            node = node.value
        if not isinstance(node, ast.Name) or node.id not in self.imported:
            return None
        home = self.imported[node.id]
        for part in chain:
            if f"{home}.{part}" not in self.modules:
                break
            home = f"{home}.{part}"
        return home

    def _attribute_call(self, node: ast.Call) -> Iterator[tuple[int, str, str]]:
        """setattr(module, "_name", ...) and its kin, and monkeypatch's dotted form."""
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name not in ATTRIBUTE_CALLS or not node.args:
            return
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            dotted = first.value.split(".")
            private = [i for i, part in enumerate(dotted) if is_private(part)]
            if dotted[0] in PROJECT and private and private[0] > 0:
                yield node.lineno, ".".join(dotted[: private[0]]), f"{name}({first.value!r})"
            return
        home = self._home(first)
        second = node.args[1] if len(node.args) > 1 else None
        if home is None or not isinstance(second, ast.Constant):
            return
        if isinstance(second.value, str) and is_private(second.value):
            yield node.lineno, home, f"{name}({ast.unparse(first)}, {second.value!r})"

    def _child_code(self, node: ast.Constant) -> Iterator[tuple[int, str, str]]:
        """A string that is a Python program importing the project (code a test runs in a
        child interpreter) is scanned like a module."""
        text = str(node.value)
        if "import" not in text or not any(name in text for name in PROJECT):
            return
        try:
            child = ast.parse(textwrap.dedent(text))
        except SyntaxError:
            return
        scan = _ModuleScan(self.module, self.is_package, self.modules)
        for line, home, what in scan.uses(child):
            yield node.lineno + line - 1, home, f"{what} (in code run as a string)"
