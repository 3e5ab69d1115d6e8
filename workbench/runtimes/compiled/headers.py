"""Headers the compiled callers need, from pinned Debian packages.

The onnxruntime-gpu wheel ships `libonnxruntime.so` but no headers. Debian's
`libonnxruntime-dev` 1.21 carries `onnxruntime_c_api.h`; its C API is versioned
(`GetApi(ORT_API_VERSION)` asks the newer library for the older table, which ONNX
Runtime keeps append-only), so the 1.21 header drives the wheel's 1.31 library. The
server's JSON parsing uses Debian's header-only `nlohmann-json3-dev`.

`fetch()` runs at set-up (`python -m workbench.runtimes.compiled.headers fetch`): apt-get
downloads each .deb from Debian's trixie suite with a private package list (the host's
apt state is untouched), its sha256 is checked, and the headers are unpacked into
~/.cache/workbench/native/include. Nothing is downloaded at run time.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import UnavailableError

CACHE_ENV_VAR = "WORKBENCH_NATIVE"
SUITE = "trixie"


@dataclass(frozen=True)
class Deb:
    """One pinned Debian package: name, exact version, the .deb's sha256, the folder
    under usr/include the compiler is pointed at."""

    package: str
    version: str
    sha256: str
    include: str

    @property
    def filename(self) -> str:
        return f"{self.package}_{self.version.replace(':', '%3a')}_{'all' if self.arch_all else 'amd64'}.deb"

    @property
    def arch_all(self) -> bool:
        return self.package == "nlohmann-json3-dev"


DEBS: dict[str, Deb] = {
    "onnxruntime": Deb(
        "libonnxruntime-dev",
        "1.21.0+dfsg-1",
        "14f7d959d5deacbcf1504830d4189f91fc67382b399ed9ae9d3aa9c4050ced08",
        "usr/include/onnxruntime",
    ),
    "json": Deb(
        "nlohmann-json3-dev",
        "3.11.3-2.1",
        "741a6a32f61a14eaf9560ba1814b27da8e78fa3b9bed9e8867ab46316ddf3793",
        "usr/include",
    ),
}


def native_dir() -> Path:
    """$WORKBENCH_NATIVE, else ~/.cache/workbench/native: shared by every clone."""
    default = Path.home() / ".cache" / "workbench" / "native"
    return Path(os.environ.get(CACHE_ENV_VAR, default)).expanduser()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def include_dir(name: str) -> Path:
    """The unpacked include folder of pinned package `name`; UnavailableError (with the
    set-up command) when it was never fetched."""
    deb = DEBS[name]
    root = native_dir() / "include" / f"{deb.package}_{deb.version}"
    if not (root / ".complete").is_file():
        raise UnavailableError(
            f"the {deb.package} {deb.version} headers are not in {root.parent}: run "
            "`make setup` (or `python -m workbench.runtimes.compiled.headers fetch`) while "
            "Debian's archive is reachable"
        )
    return root / deb.include


def _members(deb_bytes: bytes) -> dict[str, bytes]:
    """The members of an ar archive (a .deb)."""
    if not deb_bytes.startswith(b"!<arch>\n"):
        raise ValueError("not a .deb (ar) archive")
    members, pos = {}, 8
    while pos + 60 <= len(deb_bytes):
        header = deb_bytes[pos : pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        members[name] = deb_bytes[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
    return members


def unpack(deb_path: Path, target: Path, prefix: str = "usr/include") -> None:
    """Extract the `prefix` tree (usr/include by default) of the .deb's data archive into
    `target`."""
    members = _members(deb_path.read_bytes())
    name = next(m for m in members if m.startswith("data.tar"))
    data = members[name]
    if name.endswith(".xz"):
        data = lzma.decompress(data)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        wanted = [m for m in archive.getmembers() if m.name.lstrip("./").startswith(prefix)]
        archive.extractall(target, members=wanted, filter="data")


def apt_download(debs: list[Deb], dest: Path) -> None:
    """apt-get download with a private source list and state (the host's apt config and
    package lists are left as they are); also used for perf_analyzer's libb64."""
    if shutil.which("apt-get") is None:
        names = ", ".join(deb.package for deb in debs)
        raise UnavailableError(
            f"apt-get is not on this host: {names} come(s) from Debian's {SUITE} archive; "
            f"install them by hand (headers go in {native_dir() / 'include'})"
        )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "lists" / "partial").mkdir(parents=True)
        (root / "cache" / "archives" / "partial").mkdir(parents=True)
        (root / "sources.list").write_text(
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
            f"http://deb.debian.org/debian {SUITE} main\n"
        )
        config = [
            "-o", f"Dir::Etc::SourceList={root / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={root / 'lists'}",
            "-o", f"Dir::Cache={root / 'cache'}",
            "-o", "APT::Sandbox::User=root",
        ]  # fmt: skip
        subprocess.run(["apt-get", *config, "-qq", "update"], check=True)
        wanted = [f"{deb.package}={deb.version}" for deb in debs]
        subprocess.run(["apt-get", *config, "-qq", "download", *wanted], check=True, cwd=dest)


def fetch() -> list[Path]:
    """Download (once), verify and unpack every pinned package; the set-up step."""
    debs_dir = native_dir() / "debs"
    debs_dir.mkdir(parents=True, exist_ok=True)
    missing = [
        deb
        for deb in DEBS.values()
        if not (
            (debs_dir / deb.filename).is_file() and _sha256(debs_dir / deb.filename) == deb.sha256
        )
    ]
    if missing:
        apt_download(missing, debs_dir)
    paths = []
    for name, deb in DEBS.items():
        path = debs_dir / deb.filename
        actual = _sha256(path) if path.is_file() else "missing"
        if actual != deb.sha256:
            raise UnavailableError(f"{path} has sha256 {actual}, expected {deb.sha256}")
        root = native_dir() / "include" / f"{deb.package}_{deb.version}"
        if not (root / ".complete").is_file():
            shutil.rmtree(root, ignore_errors=True)
            unpack(path, root)
            (root / ".complete").touch()
        paths.append(include_dir(name))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.runtimes.compiled.headers")
    parser.add_argument("command", choices=["fetch"])
    parser.parse_args(argv)
    try:
        for path in fetch():
            print(f"compiled headers: {path}")
    except (UnavailableError, subprocess.CalledProcessError) as exc:
        # Set-up goes on: the compiled runtimes then report `unavailable` with this reason.
        print(f"compiled headers: not fetched ({exc})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
