"""Which benchmark hosts a cluster has: each worker's environment fingerprint, its class
(hosts of one class are interchangeable), and how it differs from the client's.

Fingerprints are gathered with `Client.run`, which runs beside the task system and so
never waits behind a benchmark; it happens once, before anything is submitted.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from workbench import env
from workbench.errors import UserError

RESOURCE = "bench_host"


def host_report() -> dict[str, Any]:
    """This process's fingerprint and id (runs on each worker through `Client.run`)."""
    fp = env.fingerprint()
    return {"fingerprint": fp, "fingerprint_id": env.fingerprint_id(fp)}


def host_class(fp: dict[str, Any]) -> str:
    """A short hash of what makes two hosts' numbers comparable: architecture, CPU model
    and flags, usable cores, GPUs, Python, library versions and the workbench commit.
    The hostname is left out, so identical machines share a class."""
    cpu, gpu = fp.get("cpu", {}), fp.get("gpu", {})
    key = {
        "arch": fp.get("os", {}).get("machine"),
        "cpu": cpu.get("model"),
        "flags": cpu.get("flags"),
        "cores": cpu.get("affinity_cores"),
        "gpus": [g.get("name") for g in gpu.get("gpus", [])],
        "python": fp.get("python", {}).get("version"),
        "libraries": fp.get("libraries"),
        "commit": fp.get("git", {}).get("commit"),
    }
    blob = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def differences(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """How a host's software differs from the client's (library versions, Python, the
    workbench commit): each item one readable phrase; empty when they agree."""
    out = []
    libs_a, libs_b = mine.get("libraries", {}), theirs.get("libraries", {})
    for name in sorted(set(libs_a) | set(libs_b)):
        a, b = libs_a.get(name), libs_b.get(name)
        if a != b:
            out.append(f"{name} {b or 'absent'} (client {a or 'absent'})")
    py_a, py_b = mine.get("python", {}).get("version"), theirs.get("python", {}).get("version")
    if py_a != py_b:
        out.append(f"python {py_b} (client {py_a})")
    git_a, git_b = mine.get("git", {}).get("commit"), theirs.get("git", {}).get("commit")
    if git_a != git_b:
        out.append(f"workbench commit {str(git_b)[:10]} (client {str(git_a)[:10]})")
    return out


@dataclass
class Host:
    """One benchmark worker: its address, a readable name, and its fingerprint."""

    address: str
    name: str
    fingerprint: dict[str, Any]
    fingerprint_id: str
    warnings: list[str] = field(default_factory=list)
    worker_name: str | None = None  # the Dask worker's name: how a restarted one is known

    @property
    def host_class(self) -> str:
        return host_class(self.fingerprint)

    @property
    def arch(self) -> str:
        return str(self.fingerprint.get("os", {}).get("machine"))

    @property
    def cores(self) -> int:
        cpu = self.fingerprint.get("cpu", {})
        return int(cpu.get("affinity_cores") or cpu.get("logical_cores") or 1)

    @property
    def warning(self) -> str | None:
        """One line flagging a software mismatch with the client, or None."""
        if not self.warnings:
            return None
        return "differs from the client: " + "; ".join(self.warnings)

    def summary(self) -> dict[str, Any]:
        """A flat description for tables and the run manifest."""
        fp = self.fingerprint
        flags = [k for k, on in fp.get("cpu", {}).get("flags", {}).items() if on]
        gpus = [g.get("name") for g in fp.get("gpu", {}).get("gpus", [])]
        return {
            "host": self.name,
            "address": self.address,
            "host_class": self.host_class,
            "arch": self.arch,
            "cpu": fp.get("cpu", {}).get("model"),
            "cores": self.cores,
            "flags": ",".join(flags),
            "gpus": ",".join(str(g) for g in gpus) or None,
            "fingerprint_id": self.fingerprint_id,
            "warning": self.warning,
        }


def _name(address: str, info: dict[str, Any], fp: dict[str, Any]) -> str:
    name = info.get("name")
    if name is not None and str(name) != address:
        return str(name)
    return str(fp.get("hostname") or address)


def inventory(client: Any, timeout_s: float = 60) -> tuple[list[Host], list[str]]:
    """The cluster's benchmark hosts (workers offering the `bench_host` resource), and a
    note for each worker left out because it does not offer it."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    bench = {a: w for a, w in workers.items() if w.get("resources", {}).get(RESOURCE)}
    skipped = [
        f"{w.get('name', a)} ({a}): no {RESOURCE} resource, so no benchmark goes there"
        for a, w in workers.items()
        if a not in bench
    ]
    if not bench:
        raise UserError(
            f"the cluster has no benchmark hosts: start each worker with `--nworkers 1 "
            f"--nthreads 1 --resources {RESOURCE}=1` ({len(workers)} worker(s) without it)"
        )
    reports = client.run(host_report, workers=list(bench), wait=True)
    mine = env.fingerprint()
    hosts = []
    for address in sorted(reports):
        rep = reports[address]
        fp = rep["fingerprint"]
        hosts.append(
            Host(
                address,
                _name(address, bench[address], fp),
                fp,
                rep["fingerprint_id"],
                differences(mine, fp),
                None if bench[address].get("name") is None else str(bench[address]["name"]),
            )
        )
    _unique_names(hosts)
    return hosts, skipped


def _unique_names(hosts: list[Host]) -> None:
    """Several workers on one machine share a hostname: tell them apart by port."""
    seen: dict[str, int] = {}
    for h in hosts:
        seen[h.name] = seen.get(h.name, 0) + 1
    for h in hosts:
        if seen[h.name] > 1:
            h.name = f"{h.name}:{h.address.rsplit(':', 1)[-1]}"


def local_cores() -> int:
    return len(os.sched_getaffinity(0))
