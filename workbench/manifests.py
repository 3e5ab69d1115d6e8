"""The artifact manifest: the JSON file an export writes beside its artifact, and the
artifact's files, digest and size.

The exporters write manifests; sweeps, fleets, tasks and the export memory budget read
them. Keeping the format here, below all of them, lets each read a manifest without
importing the export machinery.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from workbench.atomic import write_json_atomic

MANIFEST = "manifest.json"


def artifact_files(path: Path) -> list[Path]:
    """Every file of the artifact at `path`: a directory's files, or the file plus its
    external-data file (`model.onnx.data`, written beside an ONNX model over 2 GiB or by
    the dynamo exporter with external_data=True) or its IR weights (`model.bin` beside
    an OpenVINO `model.xml`), which must travel with it."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    weights = path.with_suffix(".bin")  # an OpenVINO IR: model.xml + model.bin
    if path.suffix == ".xml" and weights.is_file():
        return [path, weights]
    data = path.with_name(path.name + ".data")
    return [path, data] if data.is_file() else [path]


def sha256_of(path: Path) -> str:
    """SHA-256 of every file of the artifact at `path`, in order."""
    digest = hashlib.sha256()
    for file in artifact_files(path):
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def size_of(path: Path) -> int:
    """Bytes of every file of the artifact at `path`."""
    return sum(p.stat().st_size for p in artifact_files(path))


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Atomically replace `directory/manifest.json`."""
    write_json_atomic(directory / MANIFEST, manifest, sort_keys=True)


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """`directory/manifest.json`, or None when it is missing or unreadable."""
    try:
        return json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
