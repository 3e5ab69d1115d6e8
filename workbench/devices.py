"""Device names (`cpu`, `cuda`, `cuda:N`) and whether this host has a GPU at all.

Each runtime decides for itself whether it can use a device (see
`Runtime.unavailable_reason`); this module only parses names and answers the
host-level question so that every "unavailable" row can say *why*.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from workbench.errors import UserError

_DEVICE_RE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")
NO_GPU_REASON = "no GPU on this host (no NVIDIA driver or device found)"


@dataclass(frozen=True)
class Device:
    """A parsed device: kind is `cpu` or `cuda`; index is the GPU ordinal."""

    kind: str
    index: int = 0

    @property
    def is_gpu(self) -> bool:
        return self.kind == "cuda"

    def __str__(self) -> str:
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"


def parse_device(text: str) -> Device:
    """Parse `cpu`, `cuda`, `cuda:N` (also accepts `gpu` as an alias for `cuda`)."""
    name = text.strip().lower().replace("gpu", "cuda")
    match = _DEVICE_RE.match(name)
    if not match:
        raise UserError(f"unknown device {text!r}: use cpu, cuda or cuda:N")
    kind, index = match.group(1), match.group(2)
    if kind == "cpu" and index is not None:
        raise UserError(f"unknown device {text!r}: the CPU takes no index, use cpu")
    return Device(kind, int(index or 0))


@lru_cache(maxsize=1)
def nvidia_gpus() -> tuple[str, ...]:
    """Names of the NVIDIA GPUs the driver reports; empty when there is none."""
    if not Path("/proc/driver/nvidia").exists() and shutil.which("nvidia-smi") is None:
        return ()
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(line.strip() for line in out.splitlines() if line.strip())


def host_gpu_reason(device: Device) -> str | None:
    """Why `device` cannot exist on this host, or None when the host has that GPU."""
    if not device.is_gpu:
        return None
    gpus = nvidia_gpus()
    if not gpus:
        return NO_GPU_REASON
    if device.index >= len(gpus):
        return f"{device} requested but this host has {len(gpus)} GPU(s)"
    return None
