"""`workbench bench --task ... --cluster ADDR [--hosts ...]`, `workbench bench --resume
RUN_ID` of a fleet run, and `workbench cluster up|hosts`."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from workbench.errors import UserError


def add_bench_arguments(bench: argparse.ArgumentParser) -> None:
    """The fleet flags of `workbench bench`."""
    group = bench.add_argument_group("fleet sweeps (Dask)")
    group.add_argument(
        "--cluster",
        metavar="tcp://HOST:8786",
        help="spread a task sweep over a Dask cluster's benchmark hosts (workers started with "
        "--resources bench_host=1); rows land in one run here",
    )
    group.add_argument(
        "--hosts",
        help="--cluster: hosts by name, or fingerprint fields that must all hold, e.g. "
        "avx512_vnni=true,gpu=H100 (default: every benchmark host)",
    )
    group.add_argument(
        "--each-host",
        action="store_true",
        help="--cluster: measure every configuration on every host, even identical ones "
        "(default: once per host class, shared among that class's hosts)",
    )


def add_cluster_parser(sub: Any, parser_class: Any) -> None:
    cluster = sub.add_parser("cluster", help="start a local Dask cluster or list a cluster's hosts")
    csub = cluster.add_subparsers(dest="cluster_command", required=True, parser_class=parser_class)
    up = csub.add_parser(
        "up",
        help="start a scheduler and N benchmark workers here (correctness only: they share "
        "this machine's cores, so their timings are not to be compared)",
    )
    up.add_argument("--local", type=int, required=True, metavar="N", help="number of workers")
    up.add_argument("--port", type=int, default=8786, help="scheduler port (default 8786)")
    up.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    up.add_argument(
        "--for", dest="seconds", type=float, help="stop after this many seconds (default: Ctrl-C)"
    )
    hosts = csub.add_parser("hosts", help="list a cluster's benchmark hosts and their fingerprints")
    hosts.add_argument("--cluster", required=True, metavar="tcp://HOST:8786")
    hosts.add_argument("--hosts", help="only the hosts this selection picks")


def cmd_cluster(args: argparse.Namespace) -> int:
    if args.cluster_command == "hosts":
        from workbench.fleet.cluster import connect
        from workbench.fleet.sweep import hosts_for

        with connect(args.cluster) as client:
            hosts = hosts_for(client, args.hosts)
        for h in hosts:
            s = h.summary()
            print(
                f"{s['host']:<20} {s['address']:<24} class {s['host_class']}  {s['arch']}  "
                f"{s['cpu']}  {s['cores']} cores  gpus {s['gpus'] or '-'}  flags {s['flags'] or '-'}"
                + (f"  WARNING {s['warning']}" if s["warning"] else "")
            )
        return 0
    from workbench.fleet.cluster import start_local

    cluster = start_local(args.local, port=args.port, host=args.host)
    print(
        f"scheduler {cluster.address} with {args.local} benchmark worker(s) (logs in "
        f"{cluster.workdir}).\nCorrectness only: these workers share this machine's cores, so "
        "their timings are not to be compared.\n"
        f"Try: workbench bench --task tabular --profile ci --cluster {cluster.address}",
        flush=True,
    )
    try:
        deadline = time.monotonic() + args.seconds if args.seconds else None
        while deadline is None or time.monotonic() < deadline:
            if cluster.scheduler.poll() is not None:
                raise UserError(f"the scheduler exited: see {cluster.workdir}/scheduler.log")
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.close()
        print("cluster stopped", file=sys.stderr)
    return 0


def check_bench_args(args: argparse.Namespace) -> None:
    """Fleet flags only where they mean something."""
    if args.cluster is None and (args.hosts or args.each_host):
        raise UserError("--hosts and --each-host pick hosts of a cluster: add --cluster ADDR")
    if args.cluster and (args.model_file or args.scenario):
        raise UserError(
            "--cluster runs task sweeps: give --task NAME (model files and --scenario run here)"
        )


def run_on_cluster(sweep: Any, args: argparse.Namespace, progress: Any) -> Any:
    """Run a task sweep over the cluster into a new run; the store."""
    from workbench.fleet.sweep import FleetOptions, run_stored_fleet

    options = FleetOptions(
        cluster=args.cluster,
        hosts=args.hosts,
        each_host=args.each_host,
        host_threads=not args.threads,
    )
    return run_stored_fleet(sweep, options, on_progress=progress)


def is_fleet_run(run_id: str) -> bool:
    """Whether a stored run was a fleet sweep (its manifest keeps fleet options)."""
    from workbench.results import load_manifests

    manifest = next((m for m in load_manifests() if m.get("run_id") == run_id), None)
    return bool(manifest and isinstance(manifest.get("config", {}).get("fleet"), dict))


def resume(args: argparse.Namespace, progress: Any) -> tuple[Any, list[Any]]:
    """Finish a stored fleet run over its cluster (or `--cluster`, where the scheduler
    moved); the store and the (row, host group) pairs it measured."""
    from workbench.fleet.sweep import resume_fleet

    return resume_fleet(args.resume, cluster=args.cluster, on_progress=progress)
