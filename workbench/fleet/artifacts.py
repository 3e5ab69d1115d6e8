"""Exports for a fleet: once per (artifact, architecture), then each host gets the file
by content hash.

The client exports for its own architecture (its workspace cache makes repeats free);
for another architecture, the first chosen host of that architecture exports, as a
tagged task so it never overlaps a timed run there. Every host then checks its hash
cache, and only a host that lacks the hash is sent the bytes: from the client
(scattered straight to that worker), or from the exporting host (Dask moves the data
worker to worker).
"""

from __future__ import annotations

import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

from exporters.base import DEFAULT_TIMEOUT_S, ArtifactRequest, export_many
from workbench.fleet import hostside
from workbench.fleet.inventory import RESOURCE, Host

ArtifactKey = tuple[str, str, str, str]


SEND_TIMEOUT_S = 600  # sending one artifact's bytes to a host


def pinned(address: str) -> dict[str, Any]:
    """submit() options that run a task on that worker only, alone there."""
    return {"workers": [address], "allow_other_workers": False, "resources": {RESOURCE: 1}}


def export_all(
    client: Any,
    requests: dict[ArtifactKey, ArtifactRequest],
    hosts: list[Host],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_limit_bytes: int | None = None,
) -> dict[str, dict[ArtifactKey, dict[str, Any]]]:
    """Manifests by architecture, then by artifact: one export per (artifact, arch),
    each under the sweep's export time and memory limits."""
    here = platform.machine()
    by_arch: dict[str, dict[ArtifactKey, dict[str, Any]]] = {}
    arches = sorted({h.arch for h in hosts})
    for arch in arches:
        if arch == here:
            manifests = export_many(
                list(requests.values()),
                timeout_s=timeout_s,
                memory_limit_bytes=memory_limit_bytes,
            )
        else:
            exporter = next(h for h in hosts if h.arch == arch)
            futures = [
                client.submit(
                    hostside.export_here,
                    asdict(r),
                    timeout_s,
                    memory_limit_bytes,
                    pure=False,
                    **pinned(exporter.address),
                )
                for r in requests.values()
            ]
            settle(client, [(exporter.address, f) for f in futures])
            manifests = [
                _manifest(f, r, exporter) for f, r in zip(futures, requests.values(), strict=True)
            ]
        by_arch[arch] = dict(zip(requests, manifests, strict=True))
    return by_arch


def stage(
    client: Any,
    hosts: list[Host],
    manifests: dict[str, dict[ArtifactKey, dict[str, Any]]],
    share_paths: bool = True,
) -> dict[str, str]:
    """Put every ok artifact on every host that will run it; returns a reason per host
    address that failed to receive one (its configurations then fail with that). With
    `share_paths`, a host that sees the client's export at its path uses it in place."""
    here = platform.machine()
    checks = {}
    for h in hosts:
        for m in manifests.get(h.arch, {}).values():
            if m.get("status") != "ok":
                continue
            name = Path(m["path"]).name
            hint = m["path"] if h.arch == here and share_paths else None
            if m.get("exported_on") == h.address:
                hint = m["path"]
            fut = client.submit(
                hostside.ensure_artifact, m["sha256"], name, hint, pure=False, **pinned(h.address)
            )
            checks[(h.address, m["sha256"])] = (h, m, name, fut)
    settle(client, [(h.address, fut) for h, _, _, fut in checks.values()])
    stores = []
    for (_, _sha), (h, m, name, fut) in checks.items():
        if fut.status == "finished" and fut.result() is not None:
            continue
        if not fut.done() or fut.status != "finished":
            stores.append((h, None, (m.get("exported_on"),), _failure(fut, h.name)))
            continue
        if "exported_on" in m:
            files = client.submit(
                hostside.read_artifact, m["path"], pure=False, **pinned(m["exported_on"])
            )
        else:
            try:
                files = client.scatter(
                    hostside.read_artifact(m["path"]), workers=[h.address], timeout=SEND_TIMEOUT_S
                )
            except (OSError, TimeoutError) as exc:
                stores.append((h, None, (), f"{type(exc).__name__}: {exc}"))
                continue
        stores.append(
            (
                h,
                client.submit(
                    hostside.store_artifact,
                    m["sha256"],
                    name,
                    files,
                    pure=False,
                    **pinned(h.address),
                ),
                (m.get("exported_on"),),
                None,
            )
        )
    settle(client, [(h.address, f, *src) for h, f, src, _ in stores if f is not None])
    failed = {}
    for h, fut, _, error in stores:
        if fut is not None and fut.status != "finished":
            error = _failure(fut, h.name)
        if error:
            failed[h.address] = f"could not send the artifact to {h.name}: {error}"
    return failed


def settle(client: Any, pinned_futures: list[tuple[Any, ...]], poll_s: float = 1.0) -> None:
    """Wait until each future is done, or a host it needs has left the cluster (a task
    pinned to a lost worker, or waiting on data from one, would wait forever). Items are
    (address, future, other addresses it needs...); None addresses are ignored."""
    # lazy: distributed
    from distributed import wait

    while True:
        live = set(client.scheduler_info(n_workers=-1)["workers"])
        open_ = [
            f
            for address, f, *needs in pinned_futures
            if not f.done() and all(a in live for a in (address, *needs) if a is not None)
        ]
        if not open_:
            abandoned = [f for _, f, *_ in pinned_futures if not f.done()]
            if abandoned:
                client.cancel(abandoned)
            return
        try:
            with client.as_current():
                wait(open_, timeout=poll_s, return_when="FIRST_COMPLETED")
        except TimeoutError:
            pass


def _failure(fut: Any, host: str) -> str:
    """Why a settled future did not finish: its error, or its host having left."""
    if fut.status == "error":
        exc = fut.exception()
        return f"{type(exc).__name__}: {exc}"
    return f"host {host} left the cluster"


def _manifest(fut: Any, request: ArtifactRequest, exporter: Host) -> dict[str, Any]:
    """A remote export's manifest, or a failed one saying why there is none."""
    if fut.status == "finished":
        manifest = fut.result()
    else:
        manifest = {**asdict(request), "status": "failed", "error": _failure(fut, exporter.name)}
        manifest.update(path=None, sha256=None)
    manifest["exported_on"] = exporter.address
    return manifest
