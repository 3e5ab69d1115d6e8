"""`workbench bench --task ... --cluster ADDR [--hosts ...]`: a task sweep over a Dask
cluster's benchmark hosts, and `--resume` of such a run (see workbench.fleet)."""

from __future__ import annotations

import argparse
from typing import Any

from workbench.commands.bench.flags import SweepFlags
from workbench.commands.progress import Progress
from workbench.errors import UserError


def add_arguments(bench: argparse.ArgumentParser, sweep: SweepFlags) -> None:
    """The fleet flags of `workbench bench` (all of them say what a run measures)."""
    add = sweep.on(bench.add_argument_group("fleet sweeps (Dask)"))
    add(
        "--cluster",
        metavar="tcp://HOST:8786",
        help="spread a task sweep over a Dask cluster's benchmark hosts (workers started with "
        "--resources bench_host=1); rows land in one run here",
    )
    add(
        "--hosts",
        help="--cluster: hosts by name, or fingerprint fields that must all hold, e.g. "
        "avx512_vnni=true,gpu=H100 (default: every benchmark host)",
    )
    add(
        "--each-host",
        action="store_true",
        help="--cluster: measure every configuration on every host, even identical ones "
        "(default: once per host class, shared among that class's hosts)",
    )


def check_args(args: argparse.Namespace) -> None:
    """Fleet flags only where they mean something."""
    if args.cluster is None and (args.hosts or args.each_host):
        raise UserError("--hosts and --each-host pick hosts of a cluster: add --cluster ADDR")
    if args.cluster and (args.model_file or args.scenario):
        raise UserError(
            "--cluster runs task sweeps: give --task NAME (model files and --scenario run here)"
        )


def run_on_cluster(sweep: Any, args: argparse.Namespace, progress: Progress) -> Any:
    """Run a task sweep over the cluster into a new run; the store."""
    from workbench.fleet.sweep import FleetOptions, run_stored_fleet  # lazy: pandas

    options = FleetOptions(
        cluster=args.cluster,
        hosts=args.hosts,
        each_host=args.each_host,
        host_threads=not args.threads,
    )
    return run_stored_fleet(sweep, options, on_progress=progress)


def is_fleet_run(run_id: str) -> bool:
    """Whether a stored run was a fleet sweep (its manifest keeps fleet options)."""
    from workbench.results import load_manifests  # lazy: pandas

    manifest = next((m for m in load_manifests() if m.get("run_id") == run_id), None)
    return bool(manifest and isinstance(manifest.get("config", {}).get("fleet"), dict))


def resume(args: argparse.Namespace, progress: Progress) -> tuple[Any, list[Any]]:
    """Finish a stored fleet run over its cluster (or `--cluster`, where the scheduler
    moved); the store and the (row, host group) pairs it measured."""
    from workbench.fleet.sweep import resume_fleet  # lazy: pandas

    return resume_fleet(args.resume, cluster=args.cluster, on_progress=progress)
