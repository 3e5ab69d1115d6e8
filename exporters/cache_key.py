"""What an artifact's cache key covers besides the request itself: the code that shapes
the file (every in-repo module the task, the pass and the export worker import, found by
walking their imports) and the versions of the libraries that convert and run it.

The key must be the same in every process and clone of the same code, so it hashes
module names (never paths) and file bytes (never mtimes). The parity thresholds are left
out on purpose: verdicts are recomputed from the stored numbers when they change
(`workbench.parity_thresholds`), so a threshold edit does not invalidate every export.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from workbench.procs import CODE_ROOT

# Judged from stored numbers at read time, so not part of what made the file.
EXCLUDED = frozenset({"workbench.parity_thresholds"})
# Libraries whose version can change an exported file or its parity numbers. ONNX
# Runtime is named twice: the GPU wheel (what the workbench installs) and the CPU one
# have different distribution names, and each runs the ORT quantization and parity.
# OpenVINO converts the IR and runs its parity; NNCF makes the INT8 IR.
LIBRARIES = (
    "numpy",
    "torch",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxscript",
    "onnxslim",
    "tensorflow",
    "tf-keras",
    "keras",
    "tf2onnx",
    "ai-edge-litert",
    "ai-edge-torch",
    "litert-torch",
    "openvino",
    "nncf",
)


def module_file(name: str) -> Path | None:
    """The source file of in-repo module `name` (a package's __init__.py), or None."""
    base = CODE_ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _imports(name: str) -> tuple[str, ...]:
    """The in-repo modules that module `name` imports (at any depth of its code), plus its
    parent packages (importing a module runs their __init__)."""
    path = module_file(name)
    if path is None:
        return ()
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    parts = name.split(".")
    found.update(".".join(parts[:i]) for i in range(1, len(parts)))
    for node in ast.walk(ast.parse(path.read_bytes(), filename=name)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return tuple(sorted(m for m in found if m and m != name and module_file(m) is not None))


def module_closure(roots: Iterable[str]) -> list[str]:
    """Every in-repo module reachable from `roots` by imports (roots included), sorted."""
    seen: set[str] = set()
    todo = [r for r in roots if r not in EXCLUDED]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(m for m in _imports(name) if m not in seen and m not in EXCLUDED)
    return sorted(seen)


@functools.cache
def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def code_digest(roots: Iterable[str]) -> str:
    """One hash of the code of `roots` and everything in the repo they import: module
    names and file bytes. A root outside the repo (a plugin installed elsewhere) counts
    by its own file."""
    digest = hashlib.sha256()
    roots = list(roots)
    for name in module_closure(roots):
        path = module_file(name)
        if path is not None:
            digest.update(f"{name}\0{_file_digest(path)}\n".encode())
    for name in roots:
        if module_file(name) is None:
            file = getattr(sys.modules.get(name), "__file__", None)
            content = _file_digest(Path(file)) if file else "unknown"
            digest.update(f"{name}\0{content}\n".encode())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, str | None]:
    """The installed version of each converter library (None: not installed)."""
    versions: dict[str, str | None] = {}
    for dist in LIBRARIES:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions
