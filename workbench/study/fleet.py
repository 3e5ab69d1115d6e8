"""Fleet sweeps from a notebook: the same study over a Dask cluster's benchmark hosts,
then the hosts side by side (what `workbench bench --cluster` does on the command line)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from workbench import results
from workbench.fleet.sweep import FleetOptions, run_stored_fleet
from workbench.report.fleet import cross_host_plot, cross_host_table, hosts_table
from workbench.sweep import TaskSweep


def run_on_cluster(
    sweep: TaskSweep,
    cluster: str,
    hosts: str | None = None,
    each_host: bool = False,
    host_threads: bool = False,
    note: str = "notebook",
    quiet: bool = False,
) -> pd.DataFrame:
    """Run `sweep` over the cluster at `cluster` (tcp://HOST:8786) into a new stored run;
    its rows. `hosts` picks hosts as `--hosts` does; `each_host` measures on every host
    even identical ones; `host_threads` runs each host at its own core count."""

    def progress(done: int, total: int, label: str) -> None:
        if not quiet:
            print(f"[{done}/{total}] {label}", flush=True)

    options = FleetOptions(cluster, hosts, each_host, host_threads)
    store = run_stored_fleet(sweep, options, command=note, on_progress=progress)
    return results.load(run_ids=[store.run_id])


def cross_host(frame: pd.DataFrame, value: str = "latency_ms_p50") -> pd.DataFrame:
    """A fleet run's rows as configurations x host groups (see workbench.report.fleet),
    lined up the way the run was made (its manifest's fleet options)."""
    run_ids = frame["run_id"].dropna().unique().tolist() if "run_id" in frame else []
    fleet: dict[str, Any] = {}
    for m in results.load_manifests():
        if m.get("run_id") in run_ids:
            fleet = m.get("config", {}).get("fleet") or {}
    return cross_host_table(
        frame,
        value,
        by_threads=not fleet.get("host_threads"),
        each_host=bool(fleet.get("each_host")),
    )


__all__ = ["cross_host", "cross_host_plot", "hosts_table", "run_on_cluster"]
