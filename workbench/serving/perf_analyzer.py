"""Triton's load generator, perf_analyzer, fetched at set-up to drive `workbench serve`.

PyPI's `perf-analyzer` is an empty placeholder; the binary ships inside the manylinux
`tritonclient` wheels up to 2.60.0, and those from 2.52.0 on are built against glibc 2.38
(Ubuntu 24.04), which Debian 12 (glibc 2.36) cannot load. The newest that runs here is
2.51.0's (Ubuntu 22.04 build). It needs two shared libraries the host lacks: `libb64.so.0d`
(Debian's public-domain `libb64-0d`) and `libcudart.so.12` (NVIDIA's
`nvidia-cuda-runtime-cu12` wheel; only linked, no GPU is needed for HTTP/gRPC load).

The lock keeps tritonclient 2.69 (its Python clients), so 2.51.0 cannot be installed
beside it: `fetch()` (`python -m workbench.serving.perf_analyzer fetch`, run by `make
setup`) downloads both wheels into the wheel cache and the .deb through a private apt list,
checks each sha256 and unpacks the binary and the two libraries into
~/.cache/workbench/native/perf_analyzer-2.51.0. The venv is untouched and `pip check`
stays clean. Nothing is downloaded at run time; where the tool is missing or cannot run,
`binary()` raises UnavailableError with the reason.

Licences: perf_analyzer and tritonclient BSD-3-Clause (NVIDIA); libb64 public domain;
the CUDA runtime library under NVIDIA's CUDA EULA (redistributable runtime component).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import UnavailableError
from workbench.packaged_data import wheels_dir
from workbench.runtimes.compiled.headers import Deb, apt_download, native_dir, unpack

VERSION = "2.51.0"


@dataclass(frozen=True)
class PinnedWheel:
    """One pinned platform wheel and the member we take out of it."""

    requirement: str
    filename: str
    sha256: str
    member: str  # path inside the wheel
    target: str  # path under the tool folder
    licence: str


WHEELS = (
    PinnedWheel(
        f"tritonclient=={VERSION}",
        f"tritonclient-{VERSION}-py3-none-manylinux1_x86_64.whl",
        "c485bb0123bdf310f90bc8b03d3489b28df2ffed55b30c7eee0b795b48113d52",
        f"tritonclient-{VERSION}.data/data/bin/perf_analyzer",
        "bin/perf_analyzer",
        "BSD-3-Clause (NVIDIA)",
    ),
    PinnedWheel(
        "nvidia-cuda-runtime-cu12==12.4.127",
        "nvidia_cuda_runtime_cu12-12.4.127-py3-none-manylinux2014_x86_64.whl",
        "64403288fa2136ee8e467cdc9c9427e0434110899d07c779f25b5c068934faa5",
        "nvidia/cuda_runtime/lib/libcudart.so.12",
        "lib/libcudart.so.12",
        "NVIDIA CUDA EULA (redistributable runtime)",
    ),
)
LIBB64 = Deb(
    "libb64-0d",
    "1.2-5+b3",
    "2eef02f6402a649d692181afe0eb26fce7b00b64092348284f7018420f8fbcde",
    "usr/lib/x86_64-linux-gnu",
)


def tool_dir() -> Path:
    """Where the binary and its libraries are unpacked (shared by every clone)."""
    return native_dir() / f"perf_analyzer-{VERSION}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_platform() -> None:
    if sys.platform != "linux" or platform.machine() != "x86_64":
        raise UnavailableError(
            f"perf_analyzer {VERSION} is a Linux x86_64 binary; this host is "
            f"{sys.platform}/{platform.machine()} (use Triton's SDK container instead)"
        )


def _verified(path: Path, sha256: str) -> bool:
    return path.is_file() and _sha256(path) == sha256


def _fetch_wheel(wheel: PinnedWheel) -> Path:
    target = wheels_dir()
    target.mkdir(parents=True, exist_ok=True)
    path = target / wheel.filename
    if not _verified(path, wheel.sha256):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--platform", wheel.filename.rsplit("-", 1)[1][:-4],
             "--dest", str(target), wheel.requirement],
            check=True,
        )  # fmt: skip
    if not _verified(path, wheel.sha256):
        raise UnavailableError(f"{path} is missing or not the pinned file ({wheel.sha256})")
    return path


def fetch() -> Path:
    """Download (once), verify and unpack perf_analyzer and its libraries; the set-up
    step, never called at run time. Returns the binary."""
    _check_platform()
    root = tool_dir()
    if not (root / ".complete").is_file():
        shutil.rmtree(root, ignore_errors=True)
        (root / "bin").mkdir(parents=True)
        (root / "lib").mkdir()
        for wheel in WHEELS:
            with zipfile.ZipFile(_fetch_wheel(wheel)) as archive:
                (root / wheel.target).write_bytes(archive.read(wheel.member))
        debs = native_dir() / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        deb = debs / LIBB64.filename
        if not _verified(deb, LIBB64.sha256):
            apt_download([LIBB64], debs)
        if not _verified(deb, LIBB64.sha256):
            raise UnavailableError(f"{deb} is missing or not the pinned file ({LIBB64.sha256})")
        unpack(deb, root / "deb", prefix=LIBB64.include)
        shutil.copy(root / "deb" / LIBB64.include / "libb64.so.0d", root / "lib")
        shutil.rmtree(root / "deb")
        (root / "bin" / "perf_analyzer").chmod(0o755)
        (root / ".complete").touch()
    return binary()


def environment() -> dict[str, str]:
    """The environment perf_analyzer runs in: its own libraries first on the loader path."""
    env = dict(os.environ)
    lib = str(tool_dir() / "lib")
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [lib, env.get("LD_LIBRARY_PATH")]))
    return env


def binary() -> Path:
    """The fetched binary, checked to load here; UnavailableError saying why not."""
    _check_platform()
    path = tool_dir() / "bin" / "perf_analyzer"
    if not (tool_dir() / ".complete").is_file():
        raise UnavailableError(
            f"perf_analyzer {VERSION} is not in {tool_dir()}: run `make setup` (or `python "
            "-m workbench.serving.perf_analyzer fetch`) while PyPI and Debian are reachable"
        )
    probe = subprocess.run(
        [str(path), "--version"], env=environment(), capture_output=True, text=True
    )
    if probe.returncode != 0:
        reason = (probe.stderr or probe.stdout).strip().splitlines()
        raise UnavailableError(f"{path} does not run here: {reason[0] if reason else '?'}")
    return path


def run(args: list[str], timeout_s: float | None = None) -> subprocess.CompletedProcess[str]:
    """perf_analyzer with `args`, its output captured."""
    return subprocess.run(
        [str(binary()), *args],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def read_csv(path: Path) -> list[dict[str, float]]:
    """The rows of perf_analyzer's `-f` CSV (one per concurrency or request rate; latency
    columns in microseconds), numbers as floats."""
    with path.open(newline="") as handle:
        return [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(handle)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workbench.serving.perf_analyzer",
        description="fetch: download and unpack perf_analyzer (set-up); path: print the "
        "binary; run ARGS...: run it with its libraries on the loader path",
    )
    parser.add_argument("command", choices=["fetch", "path", "run"])
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    try:
        path = fetch() if ns.command == "fetch" else binary()
    except (UnavailableError, subprocess.CalledProcessError) as exc:
        print(f"perf_analyzer: unavailable ({exc})", file=sys.stderr)
        return 1
    if ns.command == "run":
        args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
        os.execve(path, [str(path), *args], environment())
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
