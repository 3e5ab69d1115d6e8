"""Progress of long work (training epochs and steps, long exports) through a neutral hook.

Library code wraps its loop in `progress(...)` and never decides how progress looks: by
default nothing is shown. An interface (the CLI's main, a notebook) installs a renderer
with `set_renderer`, e.g. `tqdm_renderer` (usually through
`workbench.logs.configure_logging`). The choice is also written to $WORKBENCH_PROGRESS so
that child processes, where the workbench trains its models
(`workbench.procs.cached_npz`), render the same way after `workbench.logs.inherit()`.

    for epoch in progress(range(EPOCHS), "train deepfm", unit="epoch"):
        ...
    with progress(plan.steps, "train minilm", unit="step") as work:
        for step in range(plan.steps):
            ...
            work.advance(note=f"loss {loss:.3f}")
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sized
from types import TracebackType
from typing import Generic, Protocol, TypeVar

ENV_VAR = "WORKBENCH_PROGRESS"
T = TypeVar("T")


class Bar(Protocol):
    """What a renderer returns for one piece of work (a tqdm bar is one as it is)."""

    def update(self, n: int = 1) -> object: ...
    def set_postfix_str(self, s: str = "", refresh: bool = True) -> object: ...
    def close(self) -> object: ...


# (total or None when unknown, description, unit) -> a bar
Renderer = Callable[[int | None, str, str], Bar]


class _Silent:
    """The default bar: shows nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def _silent(total: int | None, description: str, unit: str) -> Bar:
    return _Silent()


def tqdm_renderer(total: int | None, description: str, unit: str) -> Bar:
    """A tqdm bar on stderr, shown only on a terminal (tqdm's `disable=None`) and removed
    when done (the log says what finished); silent where tqdm is not installed (a host
    with only PyTorch's stack)."""
    try:
        from tqdm import tqdm  # lazy: tqdm is optional, and only an interface wants it
    except ModuleNotFoundError:
        return _Silent()
    return tqdm(
        total=total, desc=description, unit=unit, file=sys.stderr, disable=None, leave=False
    )


RENDERERS: dict[str, Renderer] = {"none": _silent, "tqdm": tqdm_renderer}
_renderer: Renderer = _silent


def set_renderer(renderer: Renderer | None) -> Renderer:
    """Install `renderer` (None: show nothing) for every later `progress`; returns the
    previous one, so a caller can put it back."""
    global _renderer
    previous, _renderer = _renderer, renderer or _silent
    return previous


def use(name: str) -> None:
    """Install a renderer by name ("tqdm", "none") here and in child processes started
    from now on ($WORKBENCH_PROGRESS)."""
    if name not in RENDERERS:
        raise ValueError(f"unknown progress renderer {name!r}: one of {', '.join(RENDERERS)}")
    set_renderer(RENDERERS[name])
    os.environ[ENV_VAR] = name


def inherit() -> None:
    """In a child process: the renderer its parent chose ($WORKBENCH_PROGRESS), if any."""
    set_renderer(RENDERERS.get(os.environ.get(ENV_VAR, "none"), _silent))


class Progress(Generic[T]):
    """One long piece of work: iterate it (made from an iterable) or call `advance`.
    Closes its bar when the iteration ends or the `with` block exits."""

    def __init__(self, items: Iterable[T] | None, total: int | None, bar: Bar) -> None:
        self._items, self.total, self._bar = items, total, bar

    def __iter__(self) -> Iterator[T]:
        if self._items is None:
            raise TypeError("progress over a count is advanced, not iterated")
        try:
            for item in self._items:
                yield item
                self._bar.update(1)
        finally:
            self.close()

    def advance(self, n: int = 1, note: str | None = None) -> None:
        """`n` more units done; `note` (e.g. "loss 0.31") is shown beside the bar."""
        if note is not None:
            self._bar.set_postfix_str(note, refresh=False)
        self._bar.update(n)

    def note(self, text: str) -> None:
        self._bar.set_postfix_str(text)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> Progress[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def progress(work: Iterable[T] | int, description: str, unit: str = "it") -> Progress[T]:
    """Report progress over `work`: an iterable (iterate the result) or a count of units
    (call `advance`). Shows whatever the installed renderer shows: nothing by default."""
    if isinstance(work, int):
        return Progress(None, work, _renderer(work, description, unit))
    total = len(work) if isinstance(work, Sized) else None
    return Progress(work, total, _renderer(total, description, unit))
