"""The dynamic batcher's gain under load (issue 12): EfficientNet-Lite0 (ONNX, FP32) on
ONNX Runtime on the CPU, the highest server QPS whose p99 stays under 100 ms, with and
without the batcher, and the ratio (seed claim 9.2 under the server scenario).

Every probe is a real LoadGen server run through `workbench.scenarios`; inputs are the
task's real photographs. Without the batcher every request runs alone at batch 1 on the
same worker thread(s).

Run:  .venv/bin/python benchmarks/scenario_batcher.py [--profile quick|full|ci]
          [--instances N] [--max-batch 8] [--max-queue-delay-ms 5] [--out PATH]
      (quick: 5 s probes, 8 per search; full: LoadGen's 600 s probes, hours; ci: a smoke check)
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
from workbench.scenarios.models import load_task  # noqa: E402
from workbench.scenarios.peak import find_peak  # noqa: E402
from workbench.scenarios.settings import for_profile  # noqa: E402

BOUND_MS = 100.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=("ci", "quick", "full"))
    parser.add_argument("--task", default="image_classification")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--threads", type=int, help="intra-op threads per instance")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-queue-delay-ms", type=float, default=5.0)
    parser.add_argument("--max-probes", type=int, default=8)
    parser.add_argument("--out", default=".workbench/benchmarks/scenario_batcher.json")
    args = parser.parse_args()

    settings = for_profile(args.profile, "server", target_qps=1.0, latency_bound_ms=BOUND_MS)
    served = load_task(
        args.task,
        args.model,
        instances=args.instances,
        threads=args.threads,
        sample_count=settings.sample_count,
    )
    setups = {
        "no batcher": None,
        f"batcher max {args.max_batch}, {args.max_queue_delay_ms:g} ms": BatcherConfig(
            max_batch_size=args.max_batch,
            max_queue_delay_ms=args.max_queue_delay_ms,
            instances=args.instances,
        ),
    }
    out: dict[str, object] = {
        "profile": args.profile,
        "bound_ms": BOUND_MS,
        "model": served.labels,
        "setups": {},
    }
    peaks = []
    for label, batcher in setups.items():
        peak, rows = find_peak(served, settings, batcher, max_probes=args.max_probes)
        peaks.append(peak)
        print(
            f"{label:>24}: peak {peak or 0:,.1f} QPS with p99 < {BOUND_MS:g} ms "
            f"({settings.pass_rule})"
        )
        for r in rows:
            print(
                f"    target {r['scenario_settings']['target_qps']:>8,.1f}  achieved "
                f"{r['throughput_items_per_s'] or 0:>8,.1f}/s  p99 {r['latency_ms_p99']:.1f} ms"
                f"  batches {r['batch_histogram']}  {r['verdict']}"
            )
        out["setups"][label] = {"peak_qps": peak, "probes": rows}
    served.close()
    gain = peaks[1] / peaks[0] if all(peaks) else None
    out["gain"] = gain
    print(f"batcher gain: {gain:.2f}x" if gain else "batcher gain: not measurable (no peak)")
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=str))
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
