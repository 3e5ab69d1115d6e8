"""Does the interleaved A/B gate see a real 10 % slowdown on a busy host, and stay quiet on A/A?
(issue #25's figures: detected in >= 9 of 10 tabular configurations, 0 false verdicts in an
A/A pair of the tabular quick sweep.)

Every configuration of the tabular task's sweep (its artifacts: ONNX, TorchScript, ... at
each batch size; the native eager model is left out) is timed interleaved in this process
(`workbench.harness.runner.run_interleaved`: A, B, then B, A, ... for `--rounds` rounds (16),
both loaded once) and judged by `workbench.analysis.compare.compare_interleaved`:

1. Detection: on `--configs` configurations spread over the sweep, B is the same artifact
   with `inject_slowdown=0.10`: each timed call spins 10 % of its own duration more (a real
   slowdown of the measured call). Counted: configurations judged "slower".
2. A/A: on every configuration, B is identical to A. Counted: any "slower"/"faster".

A background process spins on one core for the whole run (`--no-load` to leave it out),
so the figures hold on a busy host. Bounded: `--max-minutes` (default 20) stops the A/A
part early and says how many configurations it covered. `--quick`: the ci sweep, 5
configurations, 10 rounds, short blocks (a smoke test, a minute or two).

Run (quiet machine, the issue's figures):
    WORKBENCH_HOME=/tmp/wb-gate .venv/bin/python benchmarks/compare_interleaved.py
Prints the host's CPU, the load average before and after, and one line per figure; writes
a JSON summary with `--json FILE`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from exporters.base import export_many  # noqa: E402
from workbench import results  # noqa: E402
from workbench.analysis.compare import compare_interleaved, parse_threshold  # noqa: E402
from workbench.env import fingerprint  # noqa: E402
from workbench.formats import runtime_for  # noqa: E402
from workbench.harness.runner import BenchConfig, run_interleaved  # noqa: E402
from workbench.harness.timing import StopRule  # noqa: E402
from workbench.registry import get_task  # noqa: E402
from workbench.results import RunStore  # noqa: E402
from workbench.sweep import from_profile, plan  # noqa: E402

# One timed block per arm and round: long enough for a stable p50 of a sub-millisecond call,
# short enough that 10 rounds x 2 arms of ~150 configurations fit in minutes.
BLOCK = StopRule(warmup_iters=3, warmup_time_s=0.0, min_iters=30, min_time_s=0.05, max_time_s=1)
QUICK_BLOCK = StopRule(
    warmup_iters=2, warmup_time_s=0.0, min_iters=20, min_time_s=0.02, max_time_s=0.5
)


def _configs(profile: str) -> list[tuple[Any, dict[str, Any], int]]:
    """(job, artifact manifest, batch size) for every artifact configuration of the
    tabular sweep of `profile` (exported first; the native model is left out)."""
    sweep = from_profile("tabular", profile)
    jobs = [j for j in plan(sweep) if j.request is not None]
    requests = {(j.model, j.source_framework, j.format, j.precision): j.request for j in jobs}
    manifests = dict(zip(requests, export_many(list(requests.values())), strict=True))
    out = []
    for job in jobs:
        manifest = manifests[(job.model, job.source_framework, job.format, job.precision)]
        if manifest.get("status") != "ok":
            print(f"  skipped (export {manifest.get('status')}): {job.format}/{job.precision}")
            continue
        out.extend((job, manifest, b) for b in sweep.batch_sizes)
    return out


def _measure(
    store: RunStore,
    job: Any,
    manifest: dict[str, Any],
    batch: int,
    slowdown: float,
    rounds: int,
    rule: StopRule,
) -> None:
    task = get_task("tabular")

    def config(extra: float) -> BenchConfig:
        return BenchConfig(
            runtime_for(job.format),
            job.format,
            path=manifest["path"],
            threads=job.threads,
            batch_sizes=[batch],
            rule=rule,
            labels={
                "task": "tabular",
                "model": job.model,
                "source_framework": job.source_framework,
                "precision": job.precision,
            },
            inject_slowdown=extra,
        )

    run_interleaved(
        config(0.0),
        config(slowdown),
        rounds,
        store.append,
        input_specs=task.input_specs(job.model, job.source_framework),
        feeds=lambda b: task.bench_feeds(job.model, b, None, 8, job.source_framework),
    )


def _judge(store: RunStore, floor: float) -> Any:
    store.finish("ok")
    frame = results.load(run_ids=[store.run_id])
    return compare_interleaved(frame, store.manifest, floor=floor)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="ci sweep, 5 configs, 10 rounds")
    parser.add_argument("--rounds", type=int, help="rounds per configuration (default 16)")
    parser.add_argument("--configs", type=int, help="configurations slowed down (default 10)")
    parser.add_argument("--slowdown", type=float, default=0.10)
    parser.add_argument("--noise-floor", default="5%")
    parser.add_argument("--max-minutes", type=float, default=20.0)
    parser.add_argument("--no-load", action="store_true", help="no background load")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    rounds = args.rounds or (10 if args.quick else 16)
    n_slow = args.configs or (5 if args.quick else 10)
    rule = QUICK_BLOCK if args.quick else BLOCK
    floor = parse_threshold(args.noise_floor)
    deadline = time.monotonic() + 60 * args.max_minutes
    cpu = fingerprint().get("cpu", {})
    print(f"host: {cpu.get('model')}, {cpu.get('logical_cores')} cores")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    configs = _configs("ci" if args.quick else "quick")
    load = None
    if not args.no_load:  # one core kept busy for the whole measurement
        load = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        step = max(1, len(configs) // n_slow)
        picked = configs[::step][:n_slow]
        slow_store = RunStore.create({"task": "tabular", "command": "interleaved 10% slowdown"})
        for job, manifest, batch in picked:
            _measure(slow_store, job, manifest, batch, args.slowdown, rounds, rule)
        slow = _judge(slow_store, floor).table
        detected = int((slow["verdict"] == "slower").sum())
        for r in slow.to_dict(orient="records"):
            print(
                f"  {args.slowdown:.0%} injected: {r['verdict']:>12} ratio {r['p50 ratio']:.3f} "
                f"[{r.get('ratio CI low', float('nan')):.3f}, "
                f"{r.get('ratio CI high', float('nan')):.3f}] {r['config']}"
            )
        aa_store = RunStore.create({"task": "tabular", "command": "interleaved A/A"})
        covered = 0
        for job, manifest, batch in configs:
            if time.monotonic() > deadline:
                break
            _measure(aa_store, job, manifest, batch, 0.0, rounds, rule)
            covered += 1
        if covered:
            aa = _judge(aa_store, floor).table
            false = aa[aa["verdict"].isin(["slower", "faster"])]
        else:  # the time limit left no A/A configuration
            aa = false = slow.iloc[0:0]
        for r in false.to_dict(orient="records"):
            print(f"  A/A false verdict: {r['verdict']} ratio {r['p50 ratio']:.3f} {r['config']}")
    finally:
        if load is not None:
            load.kill()
            load.wait()
    print(
        f"injected {args.slowdown:.0%} slowdown detected in {detected} of {len(slow)} "
        f"configurations ({rounds} rounds, floor {floor:.0%}, run {slow_store.run_id})"
    )
    print(
        f"A/A false verdicts: {len(false)} of {len(aa)} configurations "
        f"({covered} of {len(configs)} covered before the time limit; run {aa_store.run_id})"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "detected": detected,
                    "slowed": len(slow),
                    "aa_false": len(false),
                    "aa_configs": len(aa),
                    "aa_planned": len(configs),
                    "rounds": rounds,
                    "floor": floor,
                    "background_load": not args.no_load,
                    "cpu": cpu.get("model"),
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
