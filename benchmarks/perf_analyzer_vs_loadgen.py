"""Max QPS under a p99 bound through the same front, measured by Triton's perf_analyzer and
by the workbench's own LoadGen server scenario (issue 27): they should agree within 15 %.

One `workbench serve` (the model under the batcher, max batch 8, 2 ms delay) runs pinned
to the server cores; the clients run on the other cores, one after the other, against the
same port. Both searches are the same bounded search (workbench.scenarios.peak's: start
just under one-at-a-time capacity, double or halve to bracket, bisect to `--tolerance`)
with the same pass rule: Poisson arrivals at the target rate, p99 under the bound, at
least 95 % of the offered rate achieved, no failed request. Only the load tool differs:
- LoadGen: workbench.serving.clients' gRPC / HTTP client (binary tensors), the model's own
  samples, latency from LoadGen's scheduled issue time;
- perf_analyzer: `--request-rate-range R --request-distribution poisson`, random inputs of
  the model's shape, latency from its send time, over three `--measurement-interval`
  windows; its exact command is printed for each probe.

Run:  flock /tmp/wb-timing.lock .venv/bin/python benchmarks/perf_analyzer_vs_loadgen.py \
        [--model SOURCE] [--bound-ms 100] [--front grpc --front http] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from workbench.scenarios.driver import passes  # noqa: E402
from workbench.scenarios.peak import find_peak  # noqa: E402
from workbench.scenarios.settings import for_profile  # noqa: E402
from workbench.serving import clients, perf_analyzer  # noqa: E402
from workbench.serving.measure import Process, serve_argv, split_cores  # noqa: E402
from workbench.serving.registry import load_source  # noqa: E402

HEALTH = "http://127.0.0.1:{http_port}/v2/health/ready"


def one_at_a_time_qps(served: Any) -> float:
    """Requests per second with one in flight: where both searches start (x0.8)."""
    one = served.run_batches[0]
    one(served.samples[0])
    began = time.perf_counter()
    for i in range(5):
        one(served.samples[i % len(served.samples)])
    return 5 / (time.perf_counter() - began)


def loadgen_peak(served: Any, bound_ms: float, start: float, args: Any) -> dict[str, Any]:
    settings = for_profile(args.profile, "server", target_qps=1.0, latency_bound_ms=bound_ms)
    best, rows = find_peak(
        served,
        settings,
        None,
        max_probes=args.max_probes,
        start_qps=start,
        tolerance=args.tolerance,
    )
    probes = [
        {
            "target_qps": r["scenario_settings"]["target_qps"],
            "achieved_qps": r["throughput_items_per_s"],
            "p99_ms": r["latency_ms_p99"],
            "passed": passes(r, settings.with_(target_qps=r["scenario_settings"]["target_qps"])),
        }
        for r in rows
    ]
    return {"peak_target_qps": best, "peak_qps": _achieved_at(probes, best), "probes": probes}


def pa_probe(front: str, port: int, rate: float, args: Any, tmp: Path) -> dict[str, Any]:
    """One perf_analyzer run at `rate` requests/s (Poisson); its row and verdict."""
    out = tmp / f"{front}_{rate:.2f}.csv"
    argv = [
        "-m", "m", "-u", f"127.0.0.1:{port}", "-i", front,
        "--request-rate-range", f"{rate:.2f}", "--request-distribution", "poisson",
        "--measurement-interval", str(args.pa_interval_ms), "--stability-percentage", "1000",
        "--max-trials", "3", "--percentile", "99", "-f", str(out),
    ]  # fmt: skip
    proc = perf_analyzer.run(argv, timeout_s=120)
    text = proc.stdout + proc.stderr
    row = perf_analyzer.read_csv(out)[0] if proc.returncode == 0 and out.is_file() else {}
    p99 = row.get("p99 latency", float("nan")) / 1000.0
    achieved = row.get("Inferences/Second", 0.0)
    # Its Poisson schedule completes ~20 % fewer requests than the rate asked for even far
    # below capacity (10/s asked: 7.8/s done at 30 % load), so "kept up" is its own verdict
    # (no "Failed to maintain requested inference load"), and the QPS compared is achieved.
    ok = (
        bool(row)
        and p99 <= args.bound_ms
        and "error" not in text.lower()
        and "failed to maintain" not in text.lower()
    )
    return {
        "command": "perf_analyzer " + " ".join(argv),
        "target_qps": rate,
        "achieved_qps": achieved,
        "p99_ms": p99,
        "passed": ok,
        "note": "" if row else text.strip().splitlines()[-1:],
    }


def pa_peak(front: str, port: int, start: float, args: Any, tmp: Path) -> dict[str, Any]:
    """find_peak's search (bracket, then bisect to the tolerance) with perf_analyzer probes."""
    lo = hi = None
    target, probes = start, []
    for _ in range(args.max_probes):
        probe = pa_probe(front, port, round(target, 2), args, tmp)
        probes.append(probe)
        if probe["passed"]:
            lo = target if lo is None else max(lo, target)
        else:
            hi = target if hi is None else min(hi, target)
        if lo is not None and hi is not None:
            if hi - lo <= args.tolerance * lo:
                break
            target = (lo + hi) / 2
        elif lo is not None:
            target = lo * 2
        else:
            target = max((hi or target) / 2, 0.01)
    return {"peak_target_qps": lo, "peak_qps": _achieved_at(probes, lo), "probes": probes}


def _achieved_at(probes: list[dict[str, Any]], target: float | None) -> float | None:
    """The achieved QPS of the passing probe at the peak target (None: no peak)."""
    if target is None:
        return None
    return max(
        p["achieved_qps"] for p in probes if p["passed"] and p["target_qps"] == round(target, 2)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="task:image_classification/efficientnet_lite0")
    parser.add_argument("--bound-ms", type=float, default=100.0)
    parser.add_argument("--front", action="append", choices=("grpc", "http"))
    parser.add_argument("--profile", default="quick", choices=("ci", "quick"))
    parser.add_argument("--max-probes", type=int, default=7)
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=8, help="LoadGen client instances")
    parser.add_argument("--pa-interval-ms", type=int, default=4000)
    parser.add_argument("--out", default=".workbench/benchmarks/perf_analyzer_vs_loadgen.json")
    args = parser.parse_args()
    args.bound_ms = float(args.bound_ms)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the server stops with us
    perf_analyzer.binary()  # UnavailableError (with the set-up command) before any work

    client_cores, server_cores = split_cores()
    os.sched_setaffinity(0, client_cores)  # perf_analyzer inherits it
    local = load_source(args.model)
    samples = local.samples[:8]
    local.close()
    out: dict[str, Any] = {
        "model": args.model,
        "bound_ms": args.bound_ms,
        "load_average_before": os.getloadavg(),
        "client_cores": sorted(client_cores),
        "server_cores": sorted(server_cores),
        "rows": [],
    }
    argv = serve_argv(args.model, True, 8, 2.0)
    print("server:", " ".join(argv[2:]), f"(cores {sorted(server_cores)})")
    with Process(argv, server_cores, HEALTH) as server, tempfile.TemporaryDirectory() as tmp:
        for front in args.front or ["grpc", "http"]:
            port = server.info[f"{front}_port"]
            make = clients.grpc_model if front == "grpc" else clients.http_model
            target = f"127.0.0.1:{port}" if front == "grpc" else f"http://127.0.0.1:{port}"
            served = make(target, "m", samples, args.concurrency)
            try:
                start = 0.8 * one_at_a_time_qps(served)
                loadgen = loadgen_peak(served, args.bound_ms, start, args)
            finally:
                served.close()
            pa = pa_peak(front, port, start, args, Path(tmp))
            row = {"front": front, "start_qps": start, "loadgen": loadgen, "perf_analyzer": pa}
            if loadgen["peak_qps"] and pa["peak_qps"]:
                row["ratio_pa_over_loadgen"] = pa["peak_qps"] / loadgen["peak_qps"]
            out["rows"].append(row)
            print(f"{front}: start {start:.1f} QPS")
            for tool in ("loadgen", "perf_analyzer"):
                peak_qps = row[tool]["peak_qps"]
                print(
                    f"  {tool:>13}: peak {peak_qps or 0:.1f} QPS with p99 <= {args.bound_ms:g} ms"
                )
                for p in row[tool]["probes"]:
                    print(
                        f"      target {p['target_qps']:>7.1f}  achieved {p['achieved_qps'] or 0:>7.1f}"
                        f"  p99 {p['p99_ms'] or float('nan'):>8.2f} ms  {'pass' if p['passed'] else 'fail'}"
                    )
            if "ratio_pa_over_loadgen" in row:
                print(f"  perf_analyzer / LoadGen = {row['ratio_pa_over_loadgen']:.3f}")
    out["load_average_after"] = os.getloadavg()
    print(f"load average before {out['load_average_before']}, after {out['load_average_after']}")
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=str))
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
