"""Served text classification, OpenVINO vs ONNX Runtime (issue 26): the highest server
QPS whose p99 stays under 100 ms, each runtime behind the same dynamic batcher.

The MiniLM classifier's FP32 ONNX artifact on onnxruntime and the same file on openvino
(f32 forced), plus the OpenVINO bf16 IR where the CPU has bf16 instructions (else that
setup is reported unavailable with the reason). Every probe is a real LoadGen server run
through `workbench.scenarios` (Poisson arrivals, latency from each query's scheduled
issue time); samples are the task's own texts. OpenVINO serves in its throughput mode
(streams over the threads, one infer request per batcher worker: the mode is in
`provider`); ONNX Runtime serves `--instances` sessions of cores/instances threads
(`ort-2x`: two sessions, whatever --instances says).

Run:  .venv/bin/python benchmarks/served_openvino_vs_ort.py [--profile ci|quick|full]
          [--instances N] [--max-batch 8] [--max-queue-delay-ms 5] [--max-probes 6]
          [--setups ort,ort-2x,ov-f32,ov-bf16,ov-bf16-unpinned] [--out PATH]
      (ci: 1 s probes, a smoke check; quick: 5 s probes; full: LoadGen's 600 s, hours)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from workbench.batching import BatcherConfig  # noqa: E402
from workbench.errors import UnavailableError  # noqa: E402
from workbench.scenarios.models import load_task  # noqa: E402
from workbench.scenarios.peak import find_peak  # noqa: E402
from workbench.scenarios.settings import for_profile  # noqa: E402

BOUND_MS = 100.0
TASK, MODEL = "text_classification", "minilm_classifier"
# name -> (artifact format, precision, runtime, runtime settings, instances or None for
# --instances). "ort-2x" is ONNX Runtime's analogue of OpenVINO's two streams: two
# sessions of half the cores each.
SETUPS: dict[str, tuple[str, str, str, dict[str, Any], int | None]] = {
    "ort": ("onnx", "fp32", "onnxruntime", {}, None),
    "ort-2x": ("onnx", "fp32", "onnxruntime", {}, 2),
    "ov-f32": ("onnx", "fp32", "openvino", {"inference_precision": "f32"}, None),
    "ov-bf16": ("openvino", "bf16", "openvino", {}, None),
    # OpenVINO pins stream threads to cores by default: on a shared host a pinned thread
    # waits for its busy core instead of moving.
    "ov-bf16-unpinned": ("openvino", "bf16", "openvino", {"cpu_pinning": "off"}, None),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=("ci", "quick", "full"))
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-queue-delay-ms", type=float, default=5.0)
    parser.add_argument("--max-probes", type=int, default=6)
    parser.add_argument("--setups", default="ort,ort-2x,ov-f32,ov-bf16")
    parser.add_argument("--out", default=".workbench/benchmarks/served_openvino_vs_ort.json")
    args = parser.parse_args()
    names = [s for s in args.setups.split(",") if s]
    unknown = sorted(set(names) - set(SETUPS))
    if unknown:
        parser.error(f"unknown setup(s) {', '.join(unknown)}: choose from {', '.join(SETUPS)}")

    settings = for_profile(args.profile, "server", target_qps=1.0, latency_bound_ms=BOUND_MS)
    out: dict[str, Any] = {
        "profile": args.profile,
        "bound_ms": BOUND_MS,
        "load_average": os.getloadavg(),
        "setups": {},
    }
    for name in names:
        fmt, precision, runtime, runtime_settings, instances = SETUPS[name]
        try:
            served = load_task(
                TASK,
                MODEL,
                fmt=fmt,
                precision=precision,
                instances=instances or args.instances,
                settings=runtime_settings,
                sample_count=settings.sample_count,
                runtime=runtime,
            )
        except UnavailableError as exc:
            print(f"{name:>8}: unavailable: {exc}")
            out["setups"][name] = {"status": "unavailable", "reason": str(exc)}
            continue
        batcher = BatcherConfig(
            max_batch_size=args.max_batch,
            max_queue_delay_ms=args.max_queue_delay_ms,
            instances=len(served.run_batches),
        )
        try:
            peak, rows = find_peak(served, settings, batcher, max_probes=args.max_probes)
        finally:
            served.close()
        provider = served.labels.get("provider")
        print(f"{name:>8}: peak {peak or 0:,.1f} QPS with p99 < {BOUND_MS:g} ms  [{provider}]")
        for r in rows:
            print(
                f"    target {r['scenario_settings']['target_qps']:>8,.1f}  achieved "
                f"{r['throughput_items_per_s'] or 0:>8,.1f}/s  p99 {r['latency_ms_p99']:.1f} ms"
                f"  batches {r['batch_histogram']}  {r['verdict']}"
            )
        out["setups"][name] = {"peak_qps": peak, "labels": served.labels, "probes": rows}
    peaks = {n: s.get("peak_qps") for n, s in out["setups"].items()}
    if peaks.get("ort"):
        for n, p in peaks.items():
            if n != "ort" and p:
                print(f"{n} / ort: {p / peaks['ort']:.2f}x")
    out["load_average_after"] = os.getloadavg()
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=str))
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
