"""What a person sees of the library's logs and progress: decided by the interface.

Library code logs through `logging.getLogger(__name__)` and reports long work through
`workbench.progress`; it never prints or configures handlers. An interface calls
`configure_logging` once: the CLI's `main()`, or a notebook's first cell. The choice is
written to the environment so that child processes the workbench starts (training in
`workbench.procs.cached_npz`) show the same after calling `inherit()`.

The server keeps its own JSON-lines set-up (`workbench.serving.logs`) for the
`workbench.serving` loggers, which log shippers parse.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

from workbench import progress

LEVEL_VAR = "WORKBENCH_LOG_LEVEL"
LOGGERS = ("workbench", "exporters")  # the library's top-level packages


def level_for(verbosity: int) -> int:
    """-1 or less (quiet): warnings only; 0: info (what a long step is doing, e.g. which
    model is being trained); 1 or more: debug (per-epoch losses and such)."""
    if verbosity < 0:
        return logging.WARNING
    return logging.INFO if verbosity == 0 else logging.DEBUG


class _Formatter(logging.Formatter):
    """`workbench: message`, with the level for warnings and errors and the logger's name
    at debug level, as the CLI's own messages read."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"workbench: {record.levelname.lower()}: {text}"
        if record.levelno < logging.INFO:
            return f"workbench: [{record.name}] {text}"
        return f"workbench: {text}"


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `configure_logging` installs (told apart from anyone else's)."""


def configure_logging(
    verbosity: int = 0, progress_bars: bool = True, stream: TextIO | None = None
) -> None:
    """Show the library's records at `verbosity` (see `level_for`) on `stream` (default
    stderr), and progress bars (tqdm, on a terminal) when `progress_bars`. Calling it
    again replaces the earlier set-up; other handlers are left alone."""
    level = level_for(verbosity)
    handler = _Handler(stream or sys.stderr)
    handler.setFormatter(_Formatter("%(message)s"))
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, _Handler)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False  # shown once, here, whatever the root logger has
    os.environ[LEVEL_VAR] = logging.getLevelName(level)
    progress.use("tqdm" if progress_bars else "none")


def inherit() -> None:
    """In a child process the workbench started: the logging and progress its parent's
    interface chose (nothing when it chose none)."""
    level = os.environ.get(LEVEL_VAR)
    if level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        verbosity = {"DEBUG": 1, "INFO": 0}.get(level, -1)
        configure_logging(verbosity, progress_bars=os.environ.get(progress.ENV_VAR) == "tqdm")
    else:
        progress.inherit()
