"""The artifact cache as a whole: list it, verify every file against its manifest, and
prune what can never be served again (`workbench cache ls|verify|gc`).

An entry is `artifacts/<task>-<model>/<key>/` with the artifact and its manifest. Its
state, worst first:
- `no-manifest`: an export that was killed before it finished (never served);
- `corrupt`: the file is missing or its sha256 differs from the manifest (never served:
  the next request exports it again);
- `failed`: the export failed, the manifest says why;
- `stale`: its key is not the one today's code and libraries give the same request
  (unreachable: a request today makes a new entry);
- `ok`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporters.base import (
    ArtifactRequest,
    NoPassError,
    find_pass,
    read_manifest,
    sha256_of,
)
from workbench.errors import UserError
from workbench.parity_thresholds import current_verdict
from workbench.procs import file_lock
from workbench.registry import get_task
from workbench.workspace import artifacts_dir

STATES = ("no-manifest", "corrupt", "failed", "stale", "ok")


@dataclass
class Entry:
    directory: Path
    manifest: dict[str, Any] | None
    state: str = "ok"
    reason: str = ""

    def row(self) -> dict[str, Any]:
        m = self.manifest or {}
        return {
            "entry": f"{self.directory.parent.name}/{self.directory.name}",
            "state": self.state,
            "format": m.get("format"),
            "precision": m.get("precision"),
            "size_bytes": m.get("size_bytes"),
            "export_time_s": m.get("export_time_s"),
            "peak_rss_bytes": m.get("peak_rss_bytes"),
            "parity_pass": current_verdict(m) if m else None,
            "reason": self.reason or (m.get("error") or ""),
        }


def entries(root: Path | None = None) -> list[Entry]:
    """Every entry of the cache, by name, with the state its manifest alone gives."""
    root = root or artifacts_dir()
    found = []
    for directory in sorted(p for p in root.glob("*/*") if p.is_dir()):
        manifest = read_manifest(directory)
        entry = Entry(directory, manifest)
        if manifest is None:
            entry.state, entry.reason = "no-manifest", "an export that never finished"
        elif manifest.get("status") != "ok":
            entry.state = "failed"
        found.append(entry)
    return found


def check(entry: Entry, hashes: bool = True, keys: bool = True) -> Entry:
    """Refine an ok entry's state: its files against the manifest's sha256 (`hashes`),
    and its key against today's key for the same request (`keys`)."""
    if entry.state != "ok" or entry.manifest is None:
        return entry
    m = entry.manifest
    path = Path(m.get("path", ""))
    if hashes:
        if not path.exists():
            entry.state, entry.reason = "corrupt", f"{path.name} is missing"
            return entry
        actual = sha256_of(path)
        if actual != m.get("sha256"):
            entry.state = "corrupt"
            entry.reason = (
                f"sha256 {actual[:12]} differs from the manifest's {m.get('sha256', '')[:12]}"
            )
            return entry
    if keys:
        current = current_key(m)
        if current != entry.directory.name:
            entry.state = "stale"
            entry.reason = (
                f"today's key is {current}: the code or libraries that made it changed"
                if current
                else "its task or pass is no longer registered"
            )
    return entry


def current_key(manifest: dict[str, Any]) -> str | None:
    """The key today's code gives the request that made `manifest` (None: it cannot be
    made any more)."""
    try:
        task = get_task(manifest["task"])
        pass_ = find_pass(manifest["source_framework"], manifest["format"], manifest["precision"])
        request = ArtifactRequest(
            manifest["task"],
            manifest["model"],
            manifest["source_framework"],
            manifest["format"],
            manifest["precision"],
            dict(manifest.get("params") or {}),
        )
        return request.key(pass_, task)
    except (KeyError, NoPassError, UserError):
        return None


def gc(dry_run: bool = False, keep_failed: bool = False) -> list[Entry]:
    """Remove every entry that can never be served: unfinished, corrupt, stale (and
    failed, unless `keep_failed`). Each under its export lock, so a running export is
    never pulled from under it. Returns what was (or, dry, would be) removed."""
    doomed = {"no-manifest", "corrupt", "stale"} | (set() if keep_failed else {"failed"})
    removed = []
    for entry in entries():
        lock = entry.directory / ".lock"
        with file_lock(lock):
            entry = check(Entry(entry.directory, read_manifest(entry.directory), entry.state))
            if entry.state not in doomed:
                continue
            removed.append(entry)
            if not dry_run:
                for child in entry.directory.iterdir():
                    if child.name == ".lock":
                        continue
                    if child.is_dir():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
        if not dry_run:
            lock.unlink(missing_ok=True)
            try:
                entry.directory.rmdir()
            except OSError:
                pass  # another process created a file meanwhile: leave it
    return removed
