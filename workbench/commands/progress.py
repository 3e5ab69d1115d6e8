"""The progress bar of long commands, on stderr so that stdout keeps only rows."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

Progress = Callable[[int, int, str], None]  # (done, total, label of the job just done)


def progress_bar(**kwargs: Any) -> Any:
    """A tqdm bar on stderr, or a silent stand-in where tqdm is not installed (a host
    with only PyTorch's stack)."""
    try:
        from tqdm import tqdm  # lazy: tqdm (optional: a PyTorch-only host may lack it)
    except ImportError:
        return NoBar(kwargs.get("iterable"))
    return tqdm(disable=None, file=sys.stderr, **kwargs)


def job_progress(bar: Any) -> Progress:
    """A sweep's progress callback that moves `bar` one job on and shows the job's label."""

    def progress(done: int, total: int, label: str) -> None:
        bar.total = total
        bar.set_postfix_str(label)
        bar.update(1)

    return progress


class NoBar:
    """tqdm's interface, showing nothing."""

    total: int | None = None

    def __init__(self, iterable: Iterable[Any] | None = None) -> None:
        self.iterable = iterable or ()

    def __iter__(self) -> Any:
        return iter(self.iterable)

    def set_postfix_str(self, text: str) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass
