"""Environment and locks for the workbench's own child processes (exporters, benchmark workers,
training, notebook kernels).

Children must run the same workbench code as their parent. The package is installed
editable into a venv that several clones may share, so a child that relied on the
installation could import another clone's code; putting this checkout's root first on
PYTHONPATH pins it.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

import workbench

CODE_ROOT = Path(workbench.__file__).resolve().parents[1]


def child_env(**extra: str) -> dict[str, str]:
    """os.environ with this checkout first on PYTHONPATH, plus `extra` variables."""
    env = {**os.environ, **extra}
    paths = [str(CODE_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


PARENT_PID_VAR = "WORKBENCH_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def worker_env(**extra: str) -> dict[str, str]:
    """`child_env` for a worker that must not outlive this process (`die_with_parent`)."""
    return child_env(**{PARENT_PID_VAR: str(os.getpid()), **extra})


def die_with_parent(parent_pid: int | None = None) -> None:
    """In a worker started with `worker_env` (or told its parent's pid): have the kernel
    kill this process when its parent dies (Linux PR_SET_PDEATHSIG), so that a `kill -9`
    of the CLI leaves no orphan exporting an artifact or appending rows that a resume
    would measure again. Exits at once if the parent is already gone. A no-op elsewhere."""
    parent = str(parent_pid) if parent_pid is not None else os.environ.get(PARENT_PID_VAR)
    if not parent:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):  # the parent died before prctl took effect
        os._exit(1)


MEMORY_LIMIT_VAR = "WORKBENCH_MEMORY_LIMIT"


def apply_memory_limit() -> int | None:
    """In a worker: cap this process's address space (RLIMIT_AS) at $WORKBENCH_MEMORY_LIMIT
    bytes when set, so that a converter or runtime that runs away fails with a
    MemoryError (or dies) alone instead of taking the machine. The limit, or None."""
    value = os.environ.get(MEMORY_LIMIT_VAR)
    if not value:
        return None
    limit = int(value)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    return limit


def memory_limit_env(limit_bytes: int | None) -> dict[str, str]:
    """The environment entry that gives a worker an address-space limit (none: {})."""
    return {MEMORY_LIMIT_VAR: str(int(limit_bytes))} if limit_bytes else {}


def describe_memory_error(exc: BaseException) -> str:
    """A one-line reason for a MemoryError, naming the limit it ran into."""
    value = os.environ.get(MEMORY_LIMIT_VAR)
    limit = f" under the {int(value) / 2**30:.1f} GiB address-space limit" if value else ""
    return f"out of memory{limit} (MemoryError{': ' + str(exc) if str(exc) else ''})"


def pin_code_root() -> None:
    """Apply `child_env` to this process's environment, for children it does not start
    itself (papermill's kernels inherit os.environ)."""
    os.environ["PYTHONPATH"] = child_env()["PYTHONPATH"]


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) across threads and processes,
    e.g. so that only one process trains or exports a given thing at a time."""
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cached_npz(path: Path, producer: str, *args: str) -> dict[str, Any]:
    """The arrays of the .npz at `path`, made first if missing by `producer`
    ("package.module:function", called as function(path, *args)) in a child process --
    weights come from PyTorch, which must not load into a Keras process -- under a file
    lock, so that concurrent callers make it once; then read from the cache."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        module, function = producer.split(":")
        with file_lock(path.with_suffix(".lock")):
            if not path.exists():
                subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        # the logging and progress bars the parent's interface chose
                        "import sys; from workbench.logs import inherit; inherit(); "
                        f"from {module} import {function}; {function}(*sys.argv[1:])",
                        str(path),
                        *args,
                    ],
                    check=True,
                    env=child_env(),
                )
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


@contextlib.contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """Within the block SIGTERM raises KeyboardInterrupt in the main thread, as Ctrl-C
    does, so a long-running command's clean-up (stopping the children it started) runs
    when a service manager or `kill` stops it; a second signal during that clean-up is
    ignored rather than cutting it short."""

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
