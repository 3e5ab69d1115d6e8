"""How often `workbench compare` cries wolf, and whether it sees a real 10 % slowdown
(issue #16's figures).

1. False verdicts: compare two stored runs of the same sweep taken back to back (e.g.
   `workbench bench --task tabular --quick` twice): every "slower" / "faster" verdict is
   false, since nothing changed but the host.
2. Detection: `--trials` pairs of real runs of the `null` runtime busy-waiting 1.0 ms vs
   1.1 ms per call (batch 1 and 4, 300 timed calls each): how many of the 2 x trials
   configurations are judged "slower" (detected), and how many A/A pairs (1.0 vs 1.0 ms)
   are judged changed.

3. With `--noise-from A0 A1` (an earlier A/A pair of the same sweep), the stored pair is
   also compared with that calibration, and each null-runtime trial is also judged with a
   calibration from one more null A/A pair of its own.

Run:  WORKBENCH_HOME=... .venv/bin/python benchmarks/compare_noise.py [RUN_A RUN_B]
          [--trials 5] [--noise-floor 5%] [--noise-from A0 A1]
Prints the load average before and after: the host is shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workbench.analysis.compare import (  # noqa: E402
    calibrate,
    compare,
    load_calibration,
    load_run,
    parse_threshold,
)
from workbench.harness.runner import BenchConfig, run_config  # noqa: E402
from workbench.harness.timing import StopRule  # noqa: E402
from workbench.results import RunStore  # noqa: E402

RULE = StopRule(warmup_iters=10, warmup_time_s=0.0, min_iters=300, min_time_s=0.0, max_time_s=10)


def _null_run(delay_ms: float, root: Path):
    store = RunStore.create({"task": "null-delay"}, root=root)
    labels = {"task": "null-delay", "model": "busy-wait", "source_framework": "none"}
    config = BenchConfig(
        "null",
        "null",
        batch_sizes=[1, 4],
        rule=RULE,
        runtime_settings={"delay_ms": delay_ms},
        labels={**labels, "precision": "fp32"},
    )
    run_config(config, store.append)
    store.finish("ok")
    return store


def _load(store: RunStore):
    from workbench import results

    return store.manifest, results.load(store.path.parent, [store.run_id])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="two run ids of the same sweep (A/A)")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--noise-floor", default="5%")
    parser.add_argument("--noise-from", nargs="+", metavar="RUN", help="A/A pair(s) of runs")
    args = parser.parse_args()
    floor = parse_threshold(args.noise_floor)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if len(args.runs) == 2:
        (ma, fa), (mb, fb) = load_run(args.runs[0]), load_run(args.runs[1])
        result = compare(fa, fb, ma, mb, floor=floor)
        counts = result.counts()
        false = counts.get("slower", 0) + counts.get("faster", 0)
        print(f"A/A stored runs {args.runs[0]} vs {args.runs[1]}: {result.summary()}")
        print(f"  false 'changed' verdicts: {false} of {len(result.table)}")
        if args.noise_from:
            calibration = load_calibration(args.noise_from)
            calibrated = compare(fa, fb, ma, mb, floor=floor, calibration=calibration)
            counts = calibrated.counts()
            false = counts.get("slower", 0) + counts.get("faster", 0)
            print(
                f"  calibrated on {'; '.join(calibration.sources)} (run-wide floor "
                f"{calibration.run_wide:.3f} in |log ratio|): {calibrated.summary()}"
            )
            print(f"  false 'changed' verdicts once calibrated: {false} of {len(calibrated.table)}")
        for run, m in (("A", ma), ("B", mb)):
            print(f"  run {run} load average: {m.get('load_avg')}")
    detected = total = false_aa = total_aa = detected_cal = false_cal = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for _ in range(args.trials):
            a, same, slow = _null_run(1.0, root), _null_run(1.0, root), _null_run(1.1, root)
            (ma, fa), (ms, fs), (mw, fw) = _load(a), _load(same), _load(slow)
            if args.noise_from:
                c0, c1 = _load(_null_run(1.0, root))[1], _load(_null_run(1.0, root))[1]
                cal = calibrate([(c0, c1)], ["null A/A"])
                cal_hit = compare(fa, fw, ma, mw, floor=floor, calibration=cal).table
                cal_aa = compare(fa, fs, ma, ms, floor=floor, calibration=cal).table
                detected_cal += int((cal_hit["verdict"] == "slower").sum())
                false_cal += int(cal_aa["verdict"].isin(["slower", "faster"]).sum())
            hit = compare(fa, fw, ma, mw, floor=floor).table
            aa = compare(fa, fs, ma, ms, floor=floor).table
            detected += int((hit["verdict"] == "slower").sum())
            total += len(hit)
            false_aa += int(aa["verdict"].isin(["slower", "faster"]).sum())
            total_aa += len(aa)
            print(
                f"  trial: 10 % injected -> {list(hit['verdict'])} "
                f"(p50 change {', '.join(f'{c:+.1%}' for c in hit['p50 change'])}); "
                f"A/A -> {list(aa['verdict'])}"
            )
    print(f"injected 10 % slowdown detected in {detected} of {total} configurations")
    print(f"null-runtime A/A false 'changed' verdicts: {false_aa} of {total_aa}")
    if args.noise_from:
        print(
            f"calibrated on a null A/A pair: 10 % detected in {detected_cal} of {total}, "
            f"A/A false verdicts {false_cal} of {total_aa}"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
