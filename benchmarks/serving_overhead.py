"""What `workbench serve`'s fronts add per request, and max QPS under a p99 bound through
each front (issue 13). Goals: at p50 on the null model, gRPC adds <= 0.3 ms and HTTP
<= 0.5 ms over in-process, client cost subtracted through a baseline.

LoadGen runs in this process and drives the server in its own process over loopback
(workbench.serving.measure); client and server are pinned to different cores where the
host has two or more. Overhead: LoadGen single_stream on the null model through each
path; peak: LoadGen server scenario (Poisson arrivals, latency from the scheduled time),
a bounded peak search per front, with and without the server's dynamic batcher.

Run:  .venv/bin/python benchmarks/serving_overhead.py [--profile ci|quick] [--model SOURCE]
        [--bound-ms 100] [--skip-peak] [--out PATH]
(run it under `flock /tmp/wb-timing.lock` on a shared host; the load average is recorded)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from workbench.serving.measure import overhead, peak  # noqa: E402

GOALS_MS = {"grpc": 0.3, "http": 0.5}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=("ci", "quick"))
    parser.add_argument("--model", default="task:image_classification/efficientnet_lite0")
    parser.add_argument("--bound-ms", type=float, default=100.0)
    parser.add_argument("--max-probes", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--skip-peak", action="store_true")
    parser.add_argument("--out", default=".workbench/benchmarks/serving_overhead.json")
    args = parser.parse_args()

    out: dict[str, object] = {"profile": args.profile, "load_average_before": os.getloadavg()}
    result = overhead(args.profile)
    out["overhead"] = result
    print(
        f"overhead, null model, LoadGen single_stream ({args.profile}); "
        f"client cores {result['client_cores']}, server cores {result['server_cores']}"
    )
    for row in result["rows"]:
        print(
            f"  {row['path']:>14}: p50 {row['p50_ms']:.3f} ms  p99 {row['p99_ms']:.3f} ms  "
            f"({row['queries']} queries)"
        )
    ok = True
    for front, goal in GOALS_MS.items():
        p50 = result["added"][f"{front}_added_p50_ms"]
        p99 = result["added"][f"{front}_added_p99_ms"]
        passed = p50 <= goal
        ok &= passed
        print(
            f"  {front} adds {p50:.3f} ms at p50, {p99:+.3f} ms at p99 "
            f"[{'PASS' if passed else 'FAIL'} <= {goal} ms at p50]"
        )
    if not args.skip_peak:
        rows = peak(
            args.model,
            args.bound_ms,
            args.profile,
            max_probes=args.max_probes,
            concurrency=args.concurrency,
        )
        out["peak"] = {"model": args.model, "bound_ms": args.bound_ms, "rows": rows}
        print(f"max QPS with p99 <= {args.bound_ms:g} ms, {args.model}:")
        for r in rows:
            label = "batcher max 8, 2 ms" if r["batcher"] else "no batcher"
            peak_qps = f"{r['peak_qps']:.1f}" if r["peak_qps"] else "none"
            print(f"  {r['front']:>10} {label:>20}: {peak_qps} QPS")
            for p in r["probes"]:
                print(
                    f"      target {p['target_qps']:>8.1f}  achieved {p['achieved_qps'] or 0:>8.1f}"
                    f"  p99 {p['p99_ms'] or float('nan'):.2f} ms"
                )
    out["load_average_after"] = os.getloadavg()
    print(f"load average before {out['load_average_before']}, after {out['load_average_after']}")
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=str))
    print(f"written: {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
