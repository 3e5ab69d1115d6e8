"""Run a task sweep over a fleet: plan per host group, submit tagged tasks, store rows as
each configuration finishes, handle lost hosts, and resume a run cut short.

A *group* is a set of interchangeable hosts (one host class, or one host with
`each_host`): every configuration is measured once per group, on whichever of its
hosts is free. When a host leaves, Dask hands its configurations to the group's other
hosts; when a group has no host left, its unfinished configurations become `failed`
rows saying so. Rows carry `host`, `host_class` and, where a host's libraries differ
from the client's, `host_warning`; the run's manifest keeps every host's fingerprint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from workbench import workspace
from workbench.atomic import write_json_atomic
from workbench.errors import UserError
from workbench.fleet import hostside
from workbench.fleet.artifacts import ArtifactKey, export_all, stage
from workbench.fleet.cluster import connect
from workbench.fleet.inventory import RESOURCE, Host, inventory
from workbench.fleet.select import select
from workbench.harness.runner import BenchConfig, outcome_rows
from workbench.results import MANIFEST, RunStore
from workbench.sweep import ConfigKey, Job, TaskSweep, config_key, job_labels, plan, row_key

Progress = Callable[[int, int, str], None]
log = logging.getLogger(__name__)


@dataclass
class FleetOptions:
    """How a sweep uses the cluster (stored in the run's manifest for --resume)."""

    cluster: str
    hosts: str | None = None  # the --hosts selection (None: every benchmark host)
    each_host: bool = False  # every host its own group, even identical ones
    host_threads: bool = False  # thread count = each host's own usable cores
    poll_s: float = 0.5  # how often lost hosts are looked for
    # How long a group with no live host waits for one to come back (a nanny restarts a
    # dead worker in seconds) before its unfinished configurations become failed rows.
    rejoin_grace_s: float = 30.0
    # A host that sees the client's export at the same path (a shared filesystem, or the
    # same machine) uses it in place; False sends every host the bytes by hash instead.
    share_paths: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Group:
    key: str
    hosts: list[Host]

    @property
    def addresses(self) -> list[str]:
        return [h.address for h in self.hosts]

    @property
    def arch(self) -> str:
        return self.hosts[0].arch

    @property
    def cores(self) -> int:
        return self.hosts[0].cores

    @property
    def names(self) -> str:
        return ", ".join(h.name for h in self.hosts)


@dataclass
class Item:
    """One configuration (all its batch sizes) for one group."""

    group: Group
    job: Job
    seq_len: int | None
    config: BenchConfig
    artifact: dict[str, Any] | None
    extra: dict[str, Any] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)  # what the host's task gets

    @property
    def label(self) -> str:
        j = self.job
        return f"{j.model}/{j.format}/{j.precision}/{j.device}/t{j.threads} @ {self.group.names}"


def groups_of(hosts: list[Host], each_host: bool) -> list[Group]:
    """Hosts grouped by class (or one group per host), in a stable order."""
    by_key: dict[str, list[Host]] = {}
    for h in hosts:
        by_key.setdefault(h.name if each_host else h.host_class, []).append(h)
    return [Group(k, v) for k, v in by_key.items()]


def group_of_row(row: dict[str, Any], each_host: bool) -> Any:
    return row.get("host") if each_host else row.get("host_class")


def _jobs_for(sweep: TaskSweep, group: Group, options: FleetOptions) -> list[Job]:
    jobs = plan(sweep)
    if options.host_threads:
        jobs = [replace(j, threads=group.cores) for j in jobs]
    seen, out = set(), []
    for j in jobs:
        k = (j.model, j.source_framework, j.format, j.precision, j.device, j.threads)
        if k not in seen:
            seen.add(k)
            out.append(j)
    return out


def planned(sweep: TaskSweep, groups: list[Group], options: FleetOptions) -> set[tuple[Any, Any]]:
    """Every (row identity, group key) the sweep makes on these groups."""
    return {
        (config_key(j, s, b), g.key)
        for g in groups
        for j in _jobs_for(sweep, g, options)
        for s in sweep.seq_lens or [None]
        for b in sweep.batch_sizes
    }


class RowWriter:
    """Appends rows to the client's run exactly once per (row identity, group), labelled
    with their host, and keeps each host's fingerprint in the run's manifest."""

    def __init__(self, store: RunStore, each_host: bool) -> None:
        self.store = store
        self.each_host = each_host
        self.done = {(row_key(r), group_of_row(r, each_host)) for r in store.rows()}
        self.store.manifest.setdefault("hosts", {})

    def write(self, rows: list[dict[str, Any]], host: Host, group: Group, fp: dict | None) -> int:
        fid = None
        if rows:
            fid = rows[0].get("fingerprint_id") or host.fingerprint_id
        self._remember(host, fid or host.fingerprint_id, fp or host.fingerprint)
        n = 0
        for row in rows:
            labelled = {
                **row,
                "host": host.name,
                "host_class": host.host_class,
                "host_warning": host.warning,
                "fingerprint_id": row.get("fingerprint_id") or host.fingerprint_id,
            }
            key = (row_key(labelled), group_of_row(labelled, self.each_host))
            if key in self.done:
                continue
            self.store.append(labelled)
            self.done.add(key)
            n += 1
        return n

    def _remember(self, host: Host, fid: str, fp: dict[str, Any]) -> None:
        """Keep each (host, fingerprint) once in the manifest, as `name/fingerprint_id`
        (identical hosts share a fingerprint id, so the name is part of the key)."""
        hosts = self.store.manifest["hosts"]
        key = f"{host.name}/{fid}"
        if key in hosts:
            return
        hosts[key] = {**host.summary(), "fingerprint_id": fid, "fingerprint": fp}
        write_json_atomic(self.store.path / MANIFEST, self.store.manifest)


def _items(
    sweep: TaskSweep,
    groups: list[Group],
    options: FleetOptions,
    manifests: dict[str, dict[ArtifactKey, dict[str, Any]]],
    only: set[tuple[Any, Any]] | None,
) -> list[Item]:
    items = []
    for g in groups:
        for job in _jobs_for(sweep, g, options):
            manifest = None
            if job.request is not None:
                manifest = manifests[g.arch][
                    (job.model, job.source_framework, job.format, job.precision)
                ]
            for seq_len in sweep.seq_lens or [None]:
                sizes = [
                    b
                    for b in sweep.batch_sizes
                    if only is None or (config_key(job, seq_len, b), g.key) in only
                ]
                if not sizes:
                    continue
                labels = job_labels(sweep, job, manifest)
                if seq_len is not None:
                    labels["seq_len"] = seq_len
                runtime = job.runtime_name()
                config = BenchConfig(
                    runtime=runtime,
                    format=job.format,
                    path=manifest["path"] if manifest else None,
                    device=job.device,
                    threads=job.threads,
                    batch_sizes=sizes,
                    rule=sweep.rule,
                    runtime_settings=dict(sweep.runtime_settings.get(runtime, {})),
                    repeats=sweep.repeats,
                    labels=labels,
                    end_to_end=sweep.end_to_end,
                    dims={"sequence": seq_len} if seq_len is not None else {},
                )
                artifact = None
                if manifest is not None:
                    artifact = {
                        "sha256": manifest.get("sha256"),
                        "name": (manifest.get("path") or "").rsplit("/", 1)[-1],
                        "status": manifest.get("status", "failed"),
                        "error": manifest.get("error"),
                    }
                extra = {
                    "task": sweep.task,
                    "model": job.model,
                    "source_framework": job.source_framework,
                }
                items.append(Item(g, job, seq_len, config, artifact, extra))
    return items


def run_fleet(
    sweep: TaskSweep,
    store: RunStore,
    client: Any,
    hosts: list[Host],
    options: FleetOptions,
    on_progress: Progress | None = None,
    only: set[tuple[Any, Any]] | None = None,
) -> None:
    """Measure `sweep` on `hosts` (once per group) into `store`; with `only`, just those
    (row identity, group) pairs (what a resume still lacks)."""
    # lazy: distributed
    from distributed import wait

    groups = groups_of(hosts, options.each_host)
    jobs = [j for g in groups for j in _jobs_for(sweep, g, options)]
    requests = {
        (j.model, j.source_framework, j.format, j.precision): j.request
        for j in jobs
        if j.request is not None
    }
    manifests = export_all(
        client, requests, hosts, sweep.export_timeout_s, sweep.memory_limit_bytes
    )
    for address, reason in stage(client, hosts, manifests, options.share_paths).items():
        log.warning("%s: %s", address, reason)
    writer = RowWriter(store, options.each_host)
    items = _items(sweep, groups, options, manifests, only)
    total, done = len(items), 0
    by_address = {h.address: h for h in hosts}
    pending: dict[Any, Item] = {}
    lost_since: dict[str, float] = {}  # group key -> when it was first seen without a host

    def progress(item: Item) -> None:
        nonlocal done
        done += 1
        if on_progress:
            on_progress(done, total, item.label)

    for n, item in enumerate(items):
        art = item.artifact
        if art is not None and art["status"] != "ok":
            rows = outcome_rows(item.config, art["status"], f"export failed: {art['error']}")
            writer.write(rows, item.group.hosts[0], item.group, None)
            progress(item)
            continue
        item.payload = {
            "key": f"{store.run_id}-{n}",
            "config": item.config.to_json(),
            "timeout_s": sweep.worker_timeout_s,
            "memory_limit_bytes": sweep.memory_limit_bytes,
            "extra": item.extra,
            "artifact": None if art is None else {"sha256": art["sha256"], "name": art["name"]},
        }
        pending[_submit(client, item)] = item
    while pending:
        try:
            with client.as_current():
                wait(list(pending), timeout=options.poll_s, return_when="FIRST_COMPLETED")
        except TimeoutError:
            pass
        for fut in [f for f in pending if f.done()]:
            item = pending.pop(fut)
            _collect(fut, item, writer, by_address)
            progress(item)
        for fut, item, rejoined in _lost(client, pending, groups, by_address, lost_since, options):
            pending.pop(fut)
            client.cancel([fut])
            if rejoined:
                pending[_submit(client, item)] = item
                continue
            reason = (
                f"host(s) {item.group.names} left the cluster before this configuration "
                "finished, and no other host of their kind is left to run it"
            )
            rows = outcome_rows(item.config, "failed", reason)
            writer.write(rows, item.group.hosts[0], item.group, None)
            progress(item)


def _submit(client: Any, item: Item) -> Any:
    """One configuration as a task: tagged, and only on its group's hosts."""
    return client.submit(
        hostside.bench,
        item.payload,
        key=f"workbench-bench-{item.payload['key']}-{time.monotonic_ns()}",
        workers=item.group.addresses,
        allow_other_workers=False,
        resources={RESOURCE: 1},
        pure=False,
    )


def _lost(
    client: Any,
    pending: dict[Any, Item],
    groups: list[Group],
    by_address: dict[str, Host],
    lost_since: dict[str, float],
    options: FleetOptions,
) -> list[tuple[Any, Item, bool]]:
    """Pending configurations whose group has no live host left, each with whether the
    group's host came back under a new address (a nanny restarted its worker: the
    hosts are updated to it, and the caller resubmits). A group without a host is given
    `options.rejoin_grace_s` to come back before its configurations are reported."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    lost = []
    now = time.monotonic()
    for g in groups:
        if set(workers) & set(g.addresses):
            lost_since.pop(g.key, None)
            continue
        if not any(i.group is g for i in pending.values()):
            continue
        rejoined = False
        for h in g.hosts:
            for address, w in workers.items():
                same = h.worker_name is not None and str(w.get("name")) == h.worker_name
                if same and w.get("resources", {}).get(RESOURCE):
                    log.info("host %s is back at %s", h.name, address)
                    h.address, rejoined = address, True
                    by_address[address] = h
        since = lost_since.setdefault(g.key, now)
        if not rejoined and now - since < options.rejoin_grace_s:
            continue
        lost_since.pop(g.key, None)
        lost += [(f, i, rejoined) for f, i in pending.items() if i.group is g and not f.done()]
    return lost


def _collect(fut: Any, item: Item, writer: RowWriter, by_address: dict[str, Host]) -> None:
    """Store a finished configuration's rows, or failed rows with the task's error."""
    if fut.status == "finished":
        result = fut.result()
        host = by_address.get(result["address"]) or item.group.hosts[0]
        writer.write(result["rows"], host, item.group, result.get("fingerprint"))
        return
    exc = fut.exception() if fut.status == "error" else None
    reason = (
        f"fleet task {fut.status}: {type(exc).__name__}: {exc}"
        if exc
        else f"fleet task {fut.status}"
    )
    writer.write(outcome_rows(item.config, "failed", reason), item.group.hosts[0], item.group, None)


def hosts_for(client: Any, spec: str | None) -> list[Host]:
    """The chosen hosts; a warning is logged for each whose software differs."""
    hosts, skipped = inventory(client)
    for note in skipped:
        log.warning("%s", note)
    chosen = select(hosts, spec)
    for h in chosen:
        if h.warning:
            log.warning("host %s %s", h.name, h.warning)
    return chosen


def run_stored_fleet(
    sweep: TaskSweep,
    options: FleetOptions,
    client: Any = None,
    command: str = "bench",
    on_progress: Progress | None = None,
) -> RunStore:
    """Run `sweep` over the cluster into a new stored run (its manifest keeps the sweep
    and the fleet options, so `resume_fleet` can finish it); the finished store."""
    own = client is None
    client = client or connect(options.cluster)
    try:
        hosts = hosts_for(client, options.hosts)
        if not plan(sweep):
            raise UserError("nothing to measure: the filters exclude every format and precision")
        store = RunStore.create(
            {
                "command": command,
                "task": sweep.task,
                "sweep": sweep.to_json(),
                "fleet": options.to_json(),
                "fleet_hosts": [h.summary() for h in hosts],
            }
        )
        with store.exclusive():
            _finish_into(sweep, store, client, hosts, options, on_progress, None)
        return store
    finally:
        if own:
            client.close()


def _finish_into(
    sweep: TaskSweep,
    store: RunStore,
    client: Any,
    hosts: list[Host],
    options: FleetOptions,
    on_progress: Progress | None,
    only: set[tuple[Any, Any]] | None,
) -> None:
    status = "failed"
    try:
        run_fleet(sweep, store, client, hosts, options, on_progress, only)
        status = "ok"
    finally:
        store.finish(status)


def resume_fleet(
    run_id: str,
    cluster: str | None = None,
    client: Any = None,
    on_progress: Progress | None = None,
) -> tuple[RunStore, list[tuple[ConfigKey, str]]]:
    """Finish a fleet run cut short (the client was killed): measure, on the cluster's
    current hosts, exactly the (configuration, host group) pairs with no row yet.
    Returns the store and the (row identity, host group) pairs that were missing; fails
    with a UserError while another process still writes the run."""
    path = workspace.runs_dir() / run_id
    if not run_id or "/" in run_id or not path.is_dir():
        raise UserError(f"no run {run_id!r} in this workspace: `ls .workbench/runs` lists them")
    store = RunStore.open(path)
    config = store.manifest.get("config", {})
    if not isinstance(config.get("fleet"), dict) or not isinstance(config.get("sweep"), dict):
        raise UserError(
            f"run {run_id} was not a fleet sweep (no --cluster): resume it without --cluster"
        )
    options = FleetOptions(**{**config["fleet"], **({"cluster": cluster} if cluster else {})})
    sweep = TaskSweep.from_json(config["sweep"])
    own = client is None
    client = client or connect(options.cluster)
    try:
        with store.exclusive():
            store.repair()
            hosts = hosts_for(client, options.hosts)
            groups = groups_of(hosts, options.each_host)
            have = {(row_key(r), group_of_row(r, options.each_host)) for r in store.rows()}
            missing = sorted(planned(sweep, groups, options) - have, key=str)
            store.manifest.setdefault("resumed", []).append(
                {"at": datetime.now(UTC).isoformat(), "missing": len(missing)}
            )
            if missing:
                _finish_into(sweep, store, client, hosts, options, on_progress, set(missing))
            else:
                store.finish("ok")
        return store, missing
    finally:
        if own:
            client.close()
