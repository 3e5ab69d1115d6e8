"""`workbench cluster up|hosts`: a local Dask cluster for trying fleet sweeps, or the
benchmark hosts of a cluster (see workbench.fleet)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from workbench.commands.args import Subparsers, add_subcommands
from workbench.errors import UserError
from workbench.fleet.cluster import connect, start_local
from workbench.procs import interrupt_on_sigterm


def add_parser(subparsers: Subparsers) -> None:
    cluster = subparsers.add_parser(
        "cluster", help="start a local Dask cluster or list a cluster's hosts"
    )
    csub = add_subcommands(cluster, "cluster_command")
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


def run(args: argparse.Namespace) -> int:
    if args.cluster_command == "hosts":
        return _hosts(args)
    return _up(args)


def _hosts(args: argparse.Namespace) -> int:
    from workbench.fleet.sweep import hosts_for  # lazy: pandas, dask

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


def _up(args: argparse.Namespace) -> int:
    """Run the cluster until --for runs out, Ctrl-C or SIGTERM; then stop its processes."""
    with interrupt_on_sigterm():
        try:
            cluster = start_local(args.local, port=args.port, host=args.host)
        except KeyboardInterrupt:  # start_local stopped what it had started
            print("cluster stopped", file=sys.stderr)
            return 0
        return _run_until_stopped(cluster, args)


def _run_until_stopped(cluster: Any, args: argparse.Namespace) -> int:
    # Everything after start_local is inside the try: a SIGTERM that lands while the
    # announcement is written (a caller that waits for it signals at once) must still
    # stop the cluster; outside the try it left the scheduler, nanny and worker running.
    try:
        print(
            f"scheduler {cluster.address} with {args.local} benchmark worker(s) (logs in "
            f"{cluster.workdir}).\nCorrectness only: these workers share this machine's "
            "cores, so their timings are not to be compared.\n"
            f"Try: workbench bench --task tabular --profile ci --cluster {cluster.address}",
            flush=True,
        )
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
