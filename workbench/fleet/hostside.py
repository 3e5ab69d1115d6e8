"""What runs on a benchmark host, inside its Dask worker (one task at a time there,
since every task carries the `bench_host` resource).

Artifacts are kept by content hash under the host's workspace
(`artifacts/by-sha256/<sha256>/`): either the files themselves, sent by the client or
another host, or a `.link` to a verified copy already on this host (the same
filesystem as the client, or this host's own export). A benchmark runs in the
harness's worker process, as on one machine, into a scratch run whose rows are
returned to the client.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from exporters.base import ArtifactRequest, export
from workbench import workspace
from workbench.harness.runner import BenchConfig, outcome_rows
from workbench.manifests import artifact_files, sha256_of

LINK = ".link"
COMPLETE = ".complete"


def _cache_dir(sha256: str) -> Path:
    return workspace.artifacts_dir() / "by-sha256" / sha256


def local_artifact(sha256: str, name: str, hint: str | None = None) -> str | None:
    """The path of the artifact with this hash on this host, or None. `hint` is where the
    exporter put it; used (and remembered) when it is here with the same hash."""
    cache = _cache_dir(sha256)
    if (cache / COMPLETE).exists() and (cache / name).exists():
        return str(cache / name)
    if (cache / LINK).exists():
        linked = Path((cache / LINK).read_text().strip())
        if linked.exists():
            return str(linked)
    if hint and Path(hint).exists() and sha256_of(Path(hint)) == sha256:
        cache.mkdir(parents=True, exist_ok=True)
        (cache / LINK).write_text(str(Path(hint).resolve()))
        return str(Path(hint).resolve())
    return None


def read_artifact(path: str) -> dict[str, bytes]:
    """An artifact's files as {path relative to its parent folder: bytes}."""
    root = Path(path)
    return {str(f.relative_to(root.parent)): f.read_bytes() for f in artifact_files(root)}


def store_artifact(sha256: str, name: str, files: dict[str, bytes]) -> str:
    """Write sent files into this host's hash cache, check their hash, and return the
    artifact's path; a ValueError when the bytes do not hash to `sha256`."""
    cache = _cache_dir(sha256)
    if (cache / COMPLETE).exists() and (cache / name).exists():
        return str(cache / name)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{sha256[:12]}-", dir=cache.parent))
    try:
        for rel, data in files.items():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        got = sha256_of(tmp / name)
        if got != sha256:
            raise ValueError(f"artifact {name} arrived with sha256 {got[:12]}, not {sha256[:12]}")
        (tmp / COMPLETE).touch()
        shutil.rmtree(cache, ignore_errors=True)
        tmp.rename(cache)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(cache / name)


def ensure_artifact(sha256: str, name: str, hint: str | None) -> str | None:
    """`local_artifact`, as a task: the client sends bytes only when this says None."""
    return local_artifact(sha256, name, hint)


def export_here(
    request: dict[str, Any], timeout_s: float, memory_limit_bytes: int | None = None
) -> dict[str, Any]:
    """Export an artifact on this host (its architecture differs from the client's) and
    put it in the hash cache; its manifest."""
    manifest = export(
        ArtifactRequest(**request), timeout_s=timeout_s, memory_limit_bytes=memory_limit_bytes
    )
    if manifest.get("status") == "ok":
        local_artifact(manifest["sha256"], Path(manifest["path"]).name, manifest["path"])
    return manifest


def whoami() -> str:
    # lazy: distributed
    from distributed import get_worker

    return str(get_worker().address)


def bench(payload: dict[str, Any]) -> dict[str, Any]:
    """Measure one configuration here: find its artifact by hash, run the harness worker
    process into a scratch run, and return the rows with this host's address and
    fingerprint."""
    # lazy: pandas (via workbench.results, workbench.sweep)
    from workbench.results import RunStore
    from workbench.sweep import WORKER_TIMEOUT_S, run_worker

    config = BenchConfig(**payload["config"])
    scratch = workspace.workspace_dir() / "fleet-scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(dir=scratch))
    try:
        store = RunStore.create({"command": "fleet-bench", "key": payload.get("key")}, root=root)
        artifact = payload.get("artifact")
        path = None
        if artifact:
            path = local_artifact(artifact["sha256"], artifact["name"], artifact.get("hint"))
        if artifact and path is None:
            reason = f"artifact {artifact['sha256'][:12]} is not on this host (staging failed)"
            for row in outcome_rows(config, "failed", reason):
                store.append(row)
        else:
            config.path = path
            run_worker(
                store,
                config,
                payload.get("extra", {}),
                payload.get("timeout_s", WORKER_TIMEOUT_S),
                payload.get("memory_limit_bytes"),
            )
        rows = store.rows()
        return {
            "address": whoami(),
            "rows": rows,
            "fingerprint": store.manifest["fingerprint"],
            "fingerprint_id": store.manifest["fingerprint_id"],
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
