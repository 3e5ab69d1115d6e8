"""Run exports side by side within the machine's memory, not a fixed count of them.

Each export has an estimated peak resident memory: what the same conversion (task, model,
framework, format, precision) peaked at last time, from the `peak_rss_bytes` its manifest
records, with a margin; a conversion never seen before gets a conservative default. An
export starts when its estimate fits in what the running ones leave of the budget (by
default 80% of the memory available when the batch starts); one that alone exceeds the
budget runs by itself.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

from workbench.manifests import read_manifest
from workbench.workspace import artifacts_dir

UNKNOWN_PEAK_BYTES = 3 * 2**30  # a first export: converters of the existing tasks stay below
MARGIN = 1.25  # a peak measured once varies with the data and the allocator
BUDGET_FRACTION = 0.8  # of the memory available now; the rest for the host and the CLI


def default_budget() -> int:
    return int(_available_bytes() * BUDGET_FRACTION)


def _available_bytes() -> int:
    """Memory available now: psutil where installed, else the kernel's MemAvailable, else
    the machine's physical pages (psutil is optional: the torch-only install lacks it)."""
    try:
        # lazy: psutil (optional: the torch-only install lacks it)
        import psutil
    except ImportError:
        pass
    else:
        return int(psutil.virtual_memory().available)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def estimate_peak(request: Any) -> int:
    """The estimated peak RSS of exporting `request` (an ArtifactRequest), in bytes."""
    peaks = []
    folder = artifacts_dir() / f"{request.task}-{request.model}"
    for manifest_file in folder.glob("*/manifest.json"):
        m = read_manifest(manifest_file.parent) or {}
        same = all(
            m.get(k) == getattr(request, k) for k in ("source_framework", "format", "precision")
        )
        if same and isinstance(m.get("peak_rss_bytes"), int):
            peaks.append(m["peak_rss_bytes"])
    return int(max(peaks) * MARGIN) if peaks else UNKNOWN_PEAK_BYTES


class MemoryGate:
    """Admits holders while the sum of their estimates fits the budget (one at a time
    when a single estimate exceeds it)."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self.in_use = 0
        self.running = 0
        self.peak_running = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, estimate: int) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: self.running == 0 or self.in_use + estimate <= self.budget)
            self.in_use += estimate
            self.running += 1
            self.peak_running = max(self.peak_running, self.running)
        try:
            yield
        finally:
            with self._cond:
                self.in_use -= estimate
                self.running -= 1
                self._cond.notify_all()
