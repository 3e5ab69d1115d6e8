"""Harness check of the scenario layer (issue 12): the server scenario on the `null`
runtime, the highest QPS whose p99 stays under 1 ms (target: >= 5,000 QPS), so LoadGen,
the batcher and its worker threads are not the bottleneck of a real model's figures.

Each probe is a real LoadGen server run (Poisson arrivals, latency from the scheduled
issue time) through `workbench.scenarios`: the bounded peak search of
`workbench.scenarios.peak.find_peak`, once with the dynamic batcher (max batch 8, no
queue delay) and once with every request alone.

Run:  .venv/bin/python benchmarks/scenario_null.py [--profile ci|quick|full] [--out PATH]
      (--profile quick: 5 s probes, the figure to report; ci: 1 s probes, a smoke check)
It prints the peak per setting with PASS/FAIL and writes every probe row as JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from workbench.batching import BatcherConfig  # noqa: E402
from workbench.scenarios.models import load_null  # noqa: E402
from workbench.scenarios.peak import find_peak  # noqa: E402
from workbench.scenarios.settings import for_profile  # noqa: E402

TARGET_QPS = 5000.0
BOUND_MS = 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=("ci", "quick", "full"))
    parser.add_argument("--start-qps", type=float, default=TARGET_QPS)
    parser.add_argument("--max-probes", type=int, default=8)
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--out", default=".workbench/benchmarks/scenario_null.json")
    args = parser.parse_args()

    settings = for_profile(args.profile, "server", target_qps=1.0, latency_bound_ms=BOUND_MS)
    settings = settings.with_(pass_rule="p99_under_bound")  # the figure is p99 < 1 ms
    served = load_null(instances=args.instances, sample_count=settings.sample_count)
    setups = {
        "batcher max 8, 0 ms": BatcherConfig(
            max_batch_size=8, max_queue_delay_ms=0, instances=args.instances, max_queue_size=4096
        ),
        "no batcher": None,
    }
    out: dict[str, object] = {"profile": args.profile, "bound_ms": BOUND_MS, "setups": {}}
    ok = True
    for label, batcher in setups.items():
        peak, rows = find_peak(
            served, settings, batcher, max_probes=args.max_probes, start_qps=args.start_qps
        )
        passed = peak is not None and peak >= TARGET_QPS
        ok &= passed
        print(
            f"{label:>22}: peak {peak or 0:,.0f} QPS with p99 < {BOUND_MS:g} ms "
            f"[{'PASS' if passed else 'FAIL'} >= {TARGET_QPS:,.0f}]"
        )
        for r in rows:
            print(
                f"    target {r['scenario_settings']['target_qps']:>9,.0f}  achieved "
                f"{r['throughput_items_per_s'] or 0:>9,.0f}/s  p99 {r['latency_ms_p99']:.3f} ms  "
                f"{r['verdict']}  {'; '.join(r['verdict_reasons'])[:90]}"
            )
        out["setups"][label] = {"peak_qps": peak, "passed": passed, "probes": rows}
    served.close()
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=str))
    print(f"written: {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
