"""Resolve a user's `module:function` or `path/to/file.py:function` reference.

Calibration and evaluation readers and user metrics all name user code this way (as
Olive's `user_script` and optimum's `--trust-remote-code` do), so the grammar and its
errors live in one place. A missing module, file or attribute, or an attribute that is
not callable, is a one-line `UserError` naming the reference.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.errors import UserError


def is_callable_ref(text: str) -> bool:
    """True when `text` looks like `module:function` or `file.py:function` rather than a
    path: it holds a ':' that is not a Windows drive letter and names no existing file."""
    if ":" not in text or Path(text).exists():
        return False
    target, _, attr = text.rpartition(":")
    return bool(target) and bool(attr) and attr.isidentifier() and not (len(target) == 1)


def load_callable(ref: str, what: str = "function") -> Callable[..., Any]:
    """The callable `ref` names. `what` says what it is for in errors ("calibration
    function", "metric"). A `.py` path is imported under a name derived from its absolute
    path, with its directory put on `sys.path` so its own sibling imports work."""
    target, sep, attr = ref.rpartition(":")
    if not sep or not target or not attr:
        raise UserError(
            f"{what} {ref!r} is not MODULE:FUNCTION or path/to/file.py:FUNCTION, "
            "e.g. mypkg.data:batches"
        )
    module = (
        _import_file(target, ref, what) if target.endswith(".py") else _import(target, ref, what)
    )
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise UserError(f"{what} {ref!r}: {target} has no attribute {attr!r}") from None
    if not callable(obj):
        raise UserError(f"{what} {ref!r} is a {type(obj).__name__}, not a function")
    return obj


def _import(name: str, ref: str, what: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise UserError(
                f"{what} {ref!r}: no module named {name!r} (give an importable module or a "
                "path/to/file.py)"
            ) from None
        raise UserError(f"{what} {ref!r}: importing {name} failed: {exc}") from None
    except Exception as exc:  # the user's module raised while importing
        raise UserError(
            f"{what} {ref!r}: importing {name} raised {type(exc).__name__}: {exc}"
        ) from None


def _import_file(path_text: str, ref: str, what: str) -> Any:
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"{what} {ref!r}: no file {path_text}")
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    name = f"workbench_user_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"{what} {ref!r}: {path_text} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise UserError(
            f"{what} {ref!r}: importing {path_text} raised {type(exc).__name__}: {exc}"
        ) from None
    return module
