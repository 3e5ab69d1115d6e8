"""Files that readers never see half-written: JSON replaced atomically, lines appended whole.

Benchmarks get killed (OOM, Ctrl-C, CI timeouts, crashing runtimes), and a
manifest, a status file or a result row must survive that intact. Every JSON
file the workbench writes goes through `write_json_atomic`; every result row
through `append_line`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def json_default(value: Any) -> Any:
    """Make numpy scalars/arrays, paths, sets and similar JSON-serializable."""
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def dumps(obj: Any, **kwargs: Any) -> str:
    """json.dumps that accepts numpy values and paths."""
    return json.dumps(obj, default=json_default, **kwargs)


def fsync_dir(path: Path) -> None:
    """Make a new or renamed directory entry durable (best effort off POSIX)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: Path, obj: Any, sort_keys: bool = False, indent: int = 2) -> None:
    """Write JSON to `path` so readers see either the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(dumps(obj, indent=indent, sort_keys=sort_keys))
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def append_line(path: Path, data: bytes) -> None:
    """Append one complete line with O_APPEND and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:  # a regular-file write is whole in practice; loop in case it is not
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
