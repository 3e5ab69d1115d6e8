"""Where the workbench's few-percent gap to a bare `sess.run` loop on a ~5 us model comes
from: the extra Python frame of `OrtModel.run`, and how `time_calls()` stores each latency.

Times one tiny ONNX Runtime session (Linear 10->2, batch 1) in interleaved blocks with:
- `time_calls()` as shipped (latencies stored into a numpy int64 array, element by element),
- a copy of `time_calls()` that appends to a Python list and converts once at the end,
- each of those calling `functools.partial(sess.run, names)` instead of `OrtModel.run`,
- a bare loop calling `OrtModel.run` (the frame, no harness), and the bare `sess.run` loop.
Everything else in the timed region is identical; the numpy store happens *outside* it,
yet shows up inside, presumably through cache/branch-predictor effects on a slow vCPU.

Run:  .venv/bin/python benchmarks/measure_loop_variants.py [--blocks 10] [--iters 40000]
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import harness_overhead as ho  # noqa: E402

from workbench.harness.timing import Measurement, StopRule  # noqa: E402
from workbench.harness.timing import time_calls as measure  # noqa: E402


def measure_list(run, pool, rule, synchronize=None, clock=time.perf_counter_ns):
    """`timing.time_calls` with the latencies kept in a Python list (the proposed fix)."""
    n_pool = len(pool)
    max_ns = int(rule.max_time_s * 1e9)
    warm_start = clock()
    warm_min_ns = int(rule.warmup_time_s * 1e9)
    n_warm = 0
    while n_warm < rule.warmup_iters or clock() - warm_start < warm_min_ns:
        run(pool[n_warm % n_pool])
        if synchronize is not None:
            synchronize()
        n_warm += 1
        if clock() - warm_start >= max_ns:
            break
    warmup_s = (clock() - warm_start) / 1e9
    latencies: list[int] = []
    append = latencies.append
    min_ns = int(rule.min_time_s * 1e9)
    n = 0
    stopped_by = "min_reached"
    start = clock()
    while True:
        feed = pool[n % n_pool]
        if synchronize is None:
            t0 = clock()
            run(feed)
            t1 = clock()
        else:
            t0 = clock()
            run(feed)
            synchronize()
            t1 = clock()
        append(t1 - t0)
        n += 1
        elapsed = t1 - start
        if n >= rule.min_iters and elapsed >= min_ns:
            break
        if elapsed >= max_ns:
            stopped_by = "max_time"
            break
        if n >= rule.max_iters:
            stopped_by = "max_iters"
            break
    duration_s = (clock() - start) / 1e9
    lat = np.array(latencies, dtype=np.int64)
    return Measurement(lat, n_warm, warmup_s, duration_s, stopped_by)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--iters", type=int, default=40_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiny.onnx"
        ho.build_tiny(path)
        loaded = ho.load_ort(path, None)
    sess = loaded.session
    names = [o.name for o in sess.get_outputs()]
    pool = ho.prepared_pool(loaded, 1)
    part = functools.partial(sess.run, names)

    def wb(fn_measure, run, n):
        rule = StopRule(warmup_iters=1, warmup_time_s=0, min_iters=n, min_time_s=0, max_iters=n)
        return fn_measure(run, pool, rule).latencies_ns

    def bare_wrapped(n):
        clock, run, feed, lat = time.perf_counter_ns, loaded.run, pool[0], []
        for _ in range(n):
            t0 = clock()
            run(feed)
            t1 = clock()
            lat.append(t1 - t0)
        return np.array(lat)

    variants = {
        "time_calls() as shipped, OrtModel.run": lambda n: wb(measure, loaded.run, n),
        "time_calls() list store, OrtModel.run": lambda n: wb(measure_list, loaded.run, n),
        "time_calls() as shipped, partial(sess.run)": lambda n: wb(measure, part, n),
        "time_calls() list store, partial(sess.run)": lambda n: wb(measure_list, part, n),
        "bare loop, OrtModel.run": bare_wrapped,
        "bare loop, sess.run(names, feed)": lambda n: ho.bare_block(sess, pool[0], n, names),
    }
    lat: dict[str, list[np.ndarray]] = {k: [] for k in variants}
    host = ho.HostLoad()
    keys = list(variants)
    for i in range(args.blocks):
        for k in keys if i % 2 == 0 else keys[::-1]:
            lat[k].append(variants[k](args.iters))
    base = ho.p50_ms(np.concatenate(lat[keys[-1]]))
    print(f"{args.blocks} blocks x {args.iters} iters; other processes: {host.other_cores()} cores")
    for k in keys:
        p = ho.p50_ms(np.concatenate(lat[k]))
        print(f"  {k:42s} p50 {p * 1e3:7.3f} us  {(p - base) / base:+6.2%} vs bare sess.run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
