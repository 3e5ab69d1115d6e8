"""What a fleet sweep costs on top of a local one: the same tiny sweep run locally
(`workbench.sweep.run_stored`) and through a one-worker Dask cluster on this machine
(`workbench.fleet.sweep.run_stored_fleet`), exports already cached, so the difference is
the fleet's own work per configuration (submission, the host's scratch run, returning
and storing rows; the artifact is sent once by hash to the worker's own workspace).

It also prints both runs' p50s side by side: the fleet runs the same benchmark worker
process, so on a quiet host they should agree within noise. One machine, co-located
scheduler and worker: a statement about overhead, not about any real fleet's speed.

Run:  .venv/bin/python benchmarks/fleet_overhead.py [--configs N] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from workbench.fleet.cluster import start_local  # noqa: E402
from workbench.fleet.sweep import FleetOptions, run_stored_fleet  # noqa: E402
from workbench.harness.timing import StopRule  # noqa: E402
from workbench.results import load  # noqa: E402
from workbench.sweep import TaskSweep, run_stored  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=4, help="configurations (thread counts)")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fleet-overhead-"))
    os.environ.setdefault("WORKBENCH_HOME", str(work / "client"))
    sweep = TaskSweep(
        task="tabular",
        models=["linear"],
        frameworks=["torch"],
        formats=["onnx"],
        precisions=["fp32"],
        batch_sizes=[1, 8],
        threads=list(range(1, args.configs + 1)),
        rule=StopRule(warmup_iters=5, min_iters=200, min_time_s=0.2, max_time_s=2),
        end_to_end=False,
    )
    run_stored(TaskSweep(**{**sweep.__dict__, "threads": [1]}))  # export once, cached
    t0 = time.perf_counter()
    local = run_stored(sweep)
    local_s = time.perf_counter() - t0
    home = {"WORKBENCH_HOME": str(work / "host-0")}
    with start_local(1, port=0, worker_env=[home], workdir=work / "cluster") as cluster:
        options = FleetOptions(cluster.address, share_paths=False)
        t0 = time.perf_counter()
        fleet = run_stored_fleet(sweep, options)
        fleet_s = time.perf_counter() - t0
    rows = {
        name: load(run_ids=[store.run_id]).sort_values(["threads", "batch_size"])
        for name, store in (("local", local), ("fleet", fleet))
    }
    n = args.configs
    figures = {
        "configurations": n,
        "local_s": round(local_s, 2),
        "fleet_s": round(fleet_s, 2),
        "local_s_per_config": round(local_s / n, 3),
        "fleet_s_per_config": round(fleet_s / n, 3),
        "overhead_s_per_config": round((fleet_s - local_s) / n, 3),
        "fleet_includes": "connect, inventory, staging one artifact, per-config submission",
        "p50_ms": {
            f"t{t}/b{b}": [round(a, 5), round(f, 5)]
            for t, b, a, f in zip(
                rows["local"]["threads"],
                rows["local"]["batch_size"],
                rows["local"]["latency_ms_p50"],
                rows["fleet"]["latency_ms_p50"],
                strict=True,
            )
        },
        "load_average": os.getloadavg(),
    }
    print(json.dumps(figures, indent=2))
    statuses = {s for r in rows.values() for s in r["status"]}
    if statuses != {"ok"}:
        print(f"not every row is ok: {statuses}", file=sys.stderr)
        return 1
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
