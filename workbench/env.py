"""Environment fingerprint: what a benchmark number depends on besides the model.

A latency is only meaningful next to the host that produced it: CPU model and
vector extensions (AVX2, AVX-512, VNNI, AMX decide which int8/fp16 kernels run),
cores and thread settings, GPU and driver, Python and library versions, and the
code's own git commit. Every run stores a fingerprint in its manifest and every
result row carries `fingerprint_id`, a short hash of the stable parts, so rows
from different hosts or library versions are never silently compared.

Library versions come from package metadata (`importlib.metadata`), never from
importing the library: importing TensorFlow or torch costs seconds, may grab a
GPU, and would change the very process we are about to measure.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from workbench import devices

# Distribution names (as pip knows them) whose versions change measurements.
LIBRARIES = (
    "numpy",
    "onnx",
    "onnxruntime-gpu",
    "onnxruntime",  # the CPU-only package: must be absent beside onnxruntime-gpu
    "torch",
    "torchvision",
    "tensorflow",
    "keras",
    "ai-edge-litert",
    "litert-torch",
    "tf2onnx",
    "onnxscript",
    "openvino",
    "nncf",
    "pandas",
)

THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "OPENBLAS_CORETYPE",
)

# Reported flag name -> /proc/cpuinfo spellings that imply it.
CPU_FLAGS: dict[str, tuple[str, ...]] = {
    "avx2": ("avx2",),
    "avx512f": ("avx512f",),
    "avx512_vnni": ("avx512_vnni", "avx512vnni"),
    "avx_vnni": ("avx_vnni",),
    "amx_tile": ("amx_tile",),
    "amx_int8": ("amx_int8",),
    "amx_bf16": ("amx_bf16",),
    "avx512_bf16": ("avx512_bf16",),
    "f16c": ("f16c",),
    "fma": ("fma",),
}

# Keys that change from call to call and so stay out of fingerprint_id.
VOLATILE_KEYS = ("timestamp",)

_CPUINFO = Path("/proc/cpuinfo")
_MEMINFO = Path("/proc/meminfo")


def _run(cmd: list[str], cwd: Path | None = None, timeout: float = 20) -> str | None:
    """stdout of `cmd`, or None when it is missing, fails or times out."""
    try:
        done = subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout


def _cpuinfo_field(name: str) -> str | None:
    """The first value of `name` in /proc/cpuinfo, or None."""
    try:
        text = _CPUINFO.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def cpu_flags(flags_line: str | None = None) -> dict[str, bool]:
    """The flags that matter, as booleans, parsed from a cpuinfo `flags` line."""
    if flags_line is None:
        flags_line = _cpuinfo_field("flags") or ""
    present = set(flags_line.split())
    return {name: any(s in present for s in spellings) for name, spellings in CPU_FLAGS.items()}


def _physical_cores() -> int | None:
    try:
        # lazy: psutil (optional: the torch-only install lacks it)
        import psutil
    except ImportError:
        return None
    return psutil.cpu_count(logical=False)


def cpu_info() -> dict[str, Any]:
    """CPU model, relevant flags and core counts."""
    model = _cpuinfo_field("model name") or platform.processor() or None
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "model": model,
        "flags": cpu_flags(),
        "logical_cores": os.cpu_count(),
        "affinity_cores": affinity,
        "physical_cores": _physical_cores(),
    }


def memory_bytes() -> int | None:
    """Total physical memory in bytes (psutil, else /proc/meminfo)."""
    try:
        # lazy: psutil (optional: the torch-only install lacks it)
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:
        pass
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def os_info() -> dict[str, str]:
    """Operating system, kernel and machine architecture."""
    return {
        "system": platform.system(),
        "release": platform.release(),
        "version": platform.version(),
        "machine": platform.machine(),
        "platform": platform.platform(),
    }


def _cuda_version() -> str | None:
    """The CUDA version the driver supports, from the `nvidia-smi` banner."""
    out = _run(["nvidia-smi"])
    match = re.search(r"CUDA Version:\s*([\d.]+)", out or "")
    return match.group(1) if match else None


def gpu_info() -> dict[str, Any]:
    """GPUs with driver and memory; an empty list plus the reason when there is none."""
    if not devices.nvidia_gpus():
        return {"gpus": [], "gpu_reason": devices.NO_GPU_REASON}
    query = "--query-gpu=name,driver_version,memory.total"
    out = _run(["nvidia-smi", query, "--format=csv,noheader"]) or ""
    gpus = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "driver_version": parts[1], "memory_total": parts[2]})
    if not gpus:  # query failed: keep at least the names
        gpus = [{"name": name} for name in devices.nvidia_gpus()]
    return {"gpus": gpus, "cuda_version": _cuda_version(), "gpu_reason": None}


def python_info() -> dict[str, str]:
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
    }


def library_versions() -> dict[str, str | None]:
    """Installed version of each library in LIBRARIES (None when absent), without importing."""
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def thread_settings() -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in THREAD_ENV_VARS}


def git_info(path: Path | None = None) -> dict[str, Any]:
    """Commit and dirty state of the checkout holding `path` (default: this package)."""
    cwd = path or Path(__file__).resolve().parent
    if shutil.which("git") is None:
        return {"commit": None, "dirty": None}
    commit = _run(["git", "rev-parse", "HEAD"], cwd=cwd)
    if commit is None:
        return {"commit": None, "dirty": None}
    status = _run(["git", "status", "--porcelain"], cwd=cwd)
    return {
        "commit": commit.strip(),
        "dirty": None if status is None else bool(status.strip()),
    }


def fingerprint() -> dict[str, Any]:
    """The environment fingerprint as a JSON-serializable dict."""
    return {
        "timestamp": datetime.now(UTC).isoformat(),
        "hostname": socket.gethostname(),
        "os": os_info(),
        "cpu": cpu_info(),
        "memory_bytes": memory_bytes(),
        "gpu": gpu_info(),
        "python": python_info(),
        "libraries": library_versions(),
        "threads": thread_settings(),
        "git": git_info(),
    }


def fingerprint_id(fp: dict[str, Any]) -> str:
    """Short sha256 of the canonical JSON of the fingerprint's stable parts."""
    stable = {k: v for k, v in fp.items() if k not in VOLATILE_KEYS}
    canonical = json.dumps(stable, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _format_value(value: Any) -> str:
    return "-" if value is None else str(value)


def _format_memory(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**30:.1f} GiB ({n} bytes)"


def _format_cores(cpu: dict[str, Any]) -> str:
    return (
        f"cores        logical {cpu['logical_cores']}, affinity {cpu['affinity_cores']}, "
        f"physical {_format_value(cpu['physical_cores'])}"
    )


def format_fingerprint(fp: dict[str, Any]) -> str:
    """Readable multi-line text of a fingerprint (for `workbench env`)."""
    cpu, py, git, gpu = fp["cpu"], fp["python"], fp["git"], fp["gpu"]
    flags = [name for name, on in cpu["flags"].items() if on]
    lines = [
        f"fingerprint  {fingerprint_id(fp)}   ({fp['timestamp']})",
        f"host         {fp['hostname']}",
        f"os           {fp['os']['platform']}",
        f"cpu          {_format_value(cpu['model'])}",
        f"cpu flags    {', '.join(flags) or '-'}",
        _format_cores(cpu),
        f"memory       {_format_memory(fp['memory_bytes'])}",
    ]
    if gpu["gpus"]:
        for i, g in enumerate(gpu["gpus"]):
            lines.append(
                f"gpu {i}        {g.get('name')}  driver {_format_value(g.get('driver_version'))}"
                f"  memory {_format_value(g.get('memory_total'))}"
            )
        lines.append(f"cuda         {_format_value(gpu.get('cuda_version'))}")
    else:
        lines.append(f"gpu          none: {gpu['gpu_reason']}")
    lines.append(f"python       {py['implementation']} {py['version']} ({py['executable']})")
    dirty = {True: " (dirty)", False: "", None: ""}[git["dirty"]]
    lines.append(f"git          {_format_value(git['commit'])}{dirty}")
    lines.append("libraries")
    lines += [f"  {name:<16} {_format_value(v)}" for name, v in fp["libraries"].items()]
    lines.append("threads")
    lines += [f"  {name:<24} {_format_value(v)}" for name, v in fp["threads"].items()]
    return "\n".join(lines)
