"""Compile the C++ callers and server on first use, into a cache keyed by their inputs.

The key is a digest of the sources, the headers' package versions, the library the binary
links and the compiler command, so an edit to any of them builds afresh and an unchanged
tree reuses the binary (compiling the libtorch caller takes about a minute). Builds are
serialised with a file lock and land by rename, so concurrent workers never run a
half-written binary. No binary is ever committed.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import UnavailableError
from workbench.runtimes.compiled.headers import DEBS, include_dir, native_dir

logger = logging.getLogger(__name__)

SRC = Path(__file__).parent / "src"
ORT_LIBRARY_GLOB = "libonnxruntime.so.*"
CXX_ENV_VAR = "CXX"


@dataclass(frozen=True)
class Target:
    """One binary: its main source, the framework it links and the headers it needs."""

    name: str
    source: str
    framework: str  # "onnxruntime" or "torch"
    headers: tuple[str, ...]  # keys of headers.DEBS
    std: str = "c++17"  # libtorch's headers need C++20


TARGETS: dict[str, Target] = {
    "ort_caller": Target("ort_caller", "ort_caller.cpp", "onnxruntime", ("onnxruntime",)),
    "ort_server": Target("ort_server", "ort_server.cpp", "onnxruntime", ("onnxruntime", "json")),
    "torch_caller": Target("torch_caller", "torch_caller.cpp", "torch", (), "c++20"),
}


def compiler() -> str:
    """The C++ compiler ($CXX, else g++ or c++); UnavailableError when there is none."""
    for name in (os.environ.get(CXX_ENV_VAR), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return name
    raise UnavailableError(
        "no C++ compiler on this host (looked for $CXX, g++, c++, clang++): install "
        "Debian's build-essential (or any C++17 compiler) to build the compiled callers"
    )


def _package_dir(name: str) -> Path:
    """An installed package's folder, found without importing it (no framework start-up)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise UnavailableError(f"the Python package {name!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def ort_library() -> Path:
    """The libonnxruntime.so inside the installed onnxruntime(-gpu) wheel."""
    capi = _package_dir("onnxruntime") / "capi"
    found = sorted(capi.glob(ORT_LIBRARY_GLOB))
    if not found:
        raise UnavailableError(f"no {ORT_LIBRARY_GLOB} in {capi}: the wheel ships no C library")
    return found[-1]


def _torch_abi() -> int:
    # lazy: torch
    import torch

    return int(torch._C._GLIBCXX_USE_CXX11_ABI)


def _flags(target: Target) -> list[str]:
    """Include, link and rpath flags for `target`'s framework and headers."""
    flags = [f"-I{include_dir(name)}" for name in target.headers]
    if target.framework == "onnxruntime":
        # The wheel ships libonnxruntime.so.1.31.1 but not the libonnxruntime.so.1 its
        # soname asks for: the binary finds it through a link beside itself ($ORIGIN).
        flags += [str(ort_library()), "-Wl,-rpath,$ORIGIN"]
    else:
        torch_dir = _package_dir("torch")
        lib = torch_dir / "lib"
        flags += [
            f"-D_GLIBCXX_USE_CXX11_ABI={_torch_abi()}",
            f"-I{torch_dir / 'include'}",
            f"-I{torch_dir / 'include' / 'torch' / 'csrc' / 'api' / 'include'}",
            f"-L{lib}",
            "-Wl,--no-as-needed",
            "-ltorch",
            "-ltorch_cpu",
            "-lc10",
            "-Wl,--as-needed",
            f"-Wl,-rpath,{lib}",
            "-pthread",
        ]
    return flags


def _command(target: Target, output: Path) -> list[str]:
    return [
        compiler(), "-O2", f"-std={target.std}", "-DNDEBUG", f"-I{SRC}", str(SRC / target.source),
        "-o", str(output), *_flags(target),
    ]  # fmt: skip


def _digest(target: Target, command: list[str]) -> str:
    digest = hashlib.sha256()
    for path in sorted(SRC.iterdir()):  # its own source and every shared header
        if path.suffix == ".h" or path.name == target.source:
            digest.update(path.name.encode() + path.read_bytes())
    for name in target.headers:
        digest.update(f"{DEBS[name].package}={DEBS[name].version}".encode())
    digest.update("\0".join(command).encode())
    try:
        version = subprocess.run([command[0], "--version"], capture_output=True, text=True).stdout
    except OSError:
        version = ""
    digest.update(version.encode())
    return digest.hexdigest()[:16]


def _soname_link(folder: Path) -> None:
    """libonnxruntime.so.1 in `folder`, pointing at the wheel's library."""
    link = folder / "libonnxruntime.so.1"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(ort_library())


def binary(name: str) -> Path:
    """The built binary `name` (see TARGETS), compiling it first when the cache has none
    for these inputs. UnavailableError says what is missing (compiler, headers, library);
    a compile error is an UnavailableError with the compiler's first lines."""
    target = TARGETS[name]
    placeholder = Path("OUTPUT")
    command = _command(target, placeholder)
    folder = native_dir() / "build" / f"{name}-{_digest(target, command)}"
    path = folder / name
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.is_file():
            return path
        partial = folder / f"{name}.partial"
        command = _command(target, partial)
        logger.info("compiling %s (%s): %s", name, target.framework, " ".join(command))
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            errors = [line for line in lines if "error" in line] or lines
            raise UnavailableError(
                f"compiling {target.source} failed: {' | '.join(errors[:3])[:600]}"
            )
        if target.framework == "onnxruntime":
            _soname_link(folder)
        partial.rename(path)
    return path


def main(argv: list[str] | None = None) -> int:
    """`python -m workbench.runtimes.compiled.build [TARGET...]`: the set-up step (the ONNX
    Runtime binaries by default; the libtorch caller is built on first use, it is slow)."""
    parser = argparse.ArgumentParser(prog="python -m workbench.runtimes.compiled.build")
    parser.add_argument("targets", nargs="*", default=["ort_caller", "ort_server"])
    args = parser.parse_args(argv)
    status = 0
    for name in args.targets:
        try:
            logger.warning("compiled: %s", binary(name))
        except (UnavailableError, KeyError) as exc:
            logger.warning("compiled: %s not built (%s)", name, exc)
            status = 1
    return status


if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(main())
