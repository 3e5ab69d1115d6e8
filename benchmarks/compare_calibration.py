"""Issue #16: what an A/A calibration (`compare --noise-from`) does to false verdicts on
stored pairs of identical runs, and whether a 10 % slowdown is still seen.

Give the stored runs as identical pairs: A0 A1 B0 B1 C0 C1 ... For each pair used as the
calibration (and for all-but-one pairs together), every other pair is compared before and
after calibrating: the false "slower"/"faster" count, and how many configurations are
judged "slower" once B's per-call latencies are scaled by 1.10 (a synthetic 10 % slowdown
on the real noise of that pair; the real-runtime 10 % check is compare_noise.py's).

Run:  WORKBENCH_HOME=... .venv/bin/python benchmarks/compare_calibration.py RUN ...
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.analysis.compare import calibrate, compare, load_run  # noqa: E402


def _false(result) -> int:
    counts = result.counts()
    return counts.get("slower", 0) + counts.get("faster", 0)


def _slowed(frame, factor: float):
    out = frame.copy()
    out["latencies_ms"] = [
        [x * factor for x in v] if isinstance(v, (list, np.ndarray)) else v
        for v in out["latencies_ms"]
    ]
    out["latency_ms_p50"] = out["latency_ms_p50"] * factor
    return out


def main() -> int:
    ids = sys.argv[1:]
    if len(ids) < 4 or len(ids) % 2:
        print("give at least two pairs of identical runs: A0 A1 B0 B1 ...", file=sys.stderr)
        return 2
    runs = {r: load_run(r) for r in ids}
    pairs = [(ids[i], ids[i + 1]) for i in range(0, len(ids), 2)]
    schemes = [[p] for p in pairs] + [[p for p in pairs if p != q] for q in pairs]
    for cal_pairs in schemes:
        calibration = calibrate(
            [(runs[a][1], runs[b][1]) for a, b in cal_pairs],
            [f"{a[-6:]}/{b[-6:]}" for a, b in cal_pairs],
        )
        print(
            f"calibrated on {', '.join(calibration.sources)}: run-wide p95 floor "
            f"{np.expm1(calibration.run_wide):.0%}"
        )
        for a, b in (p for p in pairs if p not in cal_pairs):
            (ma, fa), (mb, fb) = runs[a], runs[b]
            before = compare(fa, fb, ma, mb)
            after = compare(fa, fb, ma, mb, calibration=calibration)
            hit = compare(fa, _slowed(fb, 1.10), ma, mb, calibration=calibration)
            hit0 = compare(fa, _slowed(fb, 1.10), ma, mb)
            n = len(after.table)
            print(
                f"  {a[-6:]}/{b[-6:]}: false verdicts {_false(before)} -> {_false(after)} of {n}; "
                f"10 % slowdown judged slower in {int((hit0.table['verdict'] == 'slower').sum())}"
                f" -> {int((hit.table['verdict'] == 'slower').sum())} of {n}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
