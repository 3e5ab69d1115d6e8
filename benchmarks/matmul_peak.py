"""The host's measured fp32 matrix-multiply peak, in GFLOP/s, per thread count.

Two engines, square n x n x n products (2 n^3 FLOPs each):
  (a) NumPy's BLAS sgemm (`np.matmul(a, b, out=c)`, float32), its thread pool limited with
      threadpoolctl (or, without it, OPENBLAS/OMP/MKL_NUM_THREADS set in a child process
      per thread count, before NumPy is imported);
  (b) ONNX Runtime, CPUExecutionProvider, a one-node MatMul model (A an input, B a constant
      initializer, as weights are), intra_op_num_threads = the thread count.
Per size: warm-up calls, then timed calls (>= --reps and >= --min-time); GFLOP/s of the
median call. The peak of an engine is its best size. The figures feed
`resnet50_efficiency.py`, which imports `measure_peaks` to get them in the same run.

Run:  .venv/bin/python benchmarks/matmul_peak.py [--threads 1,2] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(1, str(REPO))

from harness_overhead import (  # noqa: E402
    HostLoad,
    add_wait_quiet_argument,
    cpu_model,
    loadavg,
    wait_quiet,
    write_result,
)

DEFAULT_SIZES = (1024, 2048, 3072, 4096)
QUICK_SIZES = (1024, 2048)
ENGINES = ("numpy", "onnxruntime")
THREAD_ENV_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


# --------------------------------------------------------------------------- timing


def time_calls(fn: Any, warmup: int, reps: int, min_time_s: float) -> list[float]:
    """Seconds per call of `fn()`: `warmup` untimed calls, then at least `reps` timed calls
    and at least `min_time_s` of them (at most 200 calls)."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < reps or (time.perf_counter() - started < min_time_s and len(times) < 200):
        t0 = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - t0) / 1e9)
    return times


def _row(engine: str, threads: int, n: int, times: list[float], host: HostLoad) -> dict[str, Any]:
    flops = 2.0 * n**3
    s = sorted(times)
    median = s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2
    return {
        "engine": engine,
        "threads": threads,
        "n": n,
        "reps": len(times),
        "median_ms": median * 1e3,
        "min_ms": s[0] * 1e3,
        "gflops_median": flops / median / 1e9,
        "gflops_best_call": flops / s[0] / 1e9,
        "spread": (s[-1] - s[0]) / median,  # (max - min) / median of the timed calls
        "other_processes_cores": host.other_cores(),
        "steal_cores": host.steal_cores(),
    }


# --------------------------------------------------------------------------- numpy


def _numpy_sizes(
    threads: int, sizes: list[int], warmup: int, reps: int, min_time_s: float, quiet_s: float
) -> list[dict[str, Any]]:
    """In this process; the caller has limited BLAS to `threads` threads."""
    import numpy as np

    rows = []
    rng = np.random.default_rng(0)
    for n in sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        c = np.empty((n, n), dtype=np.float32)
        waited = wait_quiet(quiet_s)
        host = HostLoad()
        times = time_calls(lambda a=a, b=b, c=c: np.matmul(a, b, out=c), warmup, reps, min_time_s)
        rows.append({**_row("numpy", threads, n, times, host), "waited_for_quiet_s": waited})
    return rows


def blas_info() -> dict[str, Any]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {"threadpoolctl": None}
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    keep = ("internal_api", "version", "architecture", "threading_layer", "num_threads")
    return {"threadpoolctl": True, "libraries": [{k: i.get(k) for k in keep} for i in blas]}


def numpy_peak_rows(
    threads: int, sizes: list[int], warmup: int, reps: int, min_time_s: float, quiet_s: float
) -> tuple[list[dict[str, Any]], str]:
    """NumPy sgemm rows at `threads` BLAS threads, and how the thread count was set."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        import numpy  # noqa: F401 - load BLAS so that threadpoolctl sees it

        with threadpool_limits(limits=threads, user_api="blas"):
            rows = _numpy_sizes(threads, sizes, warmup, reps, min_time_s, quiet_s)
        return rows, "threadpoolctl"
    # No threadpoolctl: a child per thread count, the env vars set before NumPy loads.
    env = {**os.environ, **{v: str(threads) for v in THREAD_ENV_VARS}}
    args = {
        "threads": threads,
        "sizes": sizes,
        "warmup": warmup,
        "reps": reps,
        "min_time_s": min_time_s,
        "quiet_s": quiet_s,
    }
    proc = subprocess.run(
        [sys.executable, __file__, "--_numpy-child", json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1]), "env vars in a child process"


# --------------------------------------------------------------------------- onnxruntime


def build_matmul(path: Path, n: int) -> None:
    """y = x @ W, x an input [n, n], W a constant [n, n] (ORT pre-packs it, as weights)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        f"matmul_{n}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])],
        [numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def ort_peak_rows(
    threads: int,
    sizes: list[int],
    warmup: int,
    reps: int,
    min_time_s: float,
    quiet_s: float,
    workdir: Path,
) -> list[dict[str, Any]]:
    import numpy as np
    import onnxruntime as ort

    rows = []
    for n in sizes:
        path = workdir / f"matmul_{n}.onnx"
        if not path.exists():
            build_matmul(path, n)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        feed = {"x": np.random.default_rng(2).standard_normal((n, n), dtype=np.float32)}
        run = sess.run
        waited = wait_quiet(quiet_s)
        host = HostLoad()
        times = time_calls(functools.partial(run, ["y"], feed), warmup, reps, min_time_s)
        rows.append({**_row("onnxruntime", threads, n, times, host), "waited_for_quiet_s": waited})
        del sess
    return rows


# --------------------------------------------------------------------------- driver


def measure_peaks(
    threads_list: list[int],
    sizes: list[int],
    engines: tuple[str, ...] = ENGINES,
    warmup: int = 2,
    reps: int = 5,
    min_time_s: float = 1.0,
    quiet_s: float = 0.0,
    progress: Any = None,
) -> dict[str, Any]:
    """Every (engine, threads, size) row and, per engine and thread count, the peak: the
    size with the highest median GFLOP/s."""
    rows: list[dict[str, Any]] = []
    how = None
    with tempfile.TemporaryDirectory(prefix="wb-matmul-") as tmp:
        for threads in threads_list:
            for engine in engines:
                if progress:
                    progress(f"{engine}, {threads} thread(s)")
                if engine == "numpy":
                    new, how = numpy_peak_rows(threads, sizes, warmup, reps, min_time_s, quiet_s)
                else:
                    new = ort_peak_rows(
                        threads, sizes, warmup, reps, min_time_s, quiet_s, Path(tmp)
                    )
                rows.extend(new)
    peaks: dict[str, dict[str, Any]] = {}
    for engine in engines:
        for threads in threads_list:
            mine = [r for r in rows if r["engine"] == engine and r["threads"] == threads]
            best = max(mine, key=lambda r: r["gflops_median"])
            peaks.setdefault(engine, {})[str(threads)] = {
                "gflops": best["gflops_median"],
                "n": best["n"],
                "other_processes_cores": best["other_processes_cores"],
            }
    return {"rows": rows, "peaks": peaks, "numpy_threads_set_by": how, "blas": blas_info()}


def environment(threads_list: list[int]) -> dict[str, Any]:
    import numpy as np
    import onnxruntime

    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "ort": onnxruntime.__version__,
        "threads": threads_list,
        "loadavg_before": loadavg(),
    }


def print_table(res: dict[str, Any]) -> None:
    print(f"{'engine':<12} {'thr':>3} {'n':>5} {'reps':>4} {'median ms':>10} "
          f"{'GFLOP/s':>8} {'best call':>9} {'spread':>7} {'other cores':>11}")  # fmt: skip
    for r in res["rows"]:
        print(f"{r['engine']:<12} {r['threads']:>3} {r['n']:>5} {r['reps']:>4} "
              f"{r['median_ms']:>10.2f} {r['gflops_median']:>8.1f} "
              f"{r['gflops_best_call']:>9.1f} {r['spread']:>7.1%} "
              f"{r['other_processes_cores']!s:>11}")  # fmt: skip
    print("\nPeak (best size, GFLOP/s of the median call):")
    for engine, per_thread in res["peaks"].items():
        cells = ", ".join(
            f"{t} thread(s): {p['gflops']:.1f} (n={p['n']})" for t, p in per_thread.items()
        )
        print(f"  {engine:<12} {cells}")


def _csv_ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_numpy-child"]:  # internal: one thread count, env vars already set
        a = json.loads(argv[1])
        print(json.dumps(_numpy_sizes(a["threads"], a["sizes"], a["warmup"], a["reps"],
                                      a["min_time_s"], a["quiet_s"])))  # fmt: skip
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    ap.add_argument("--sizes", default=None, help="matrix sizes n (default 1024,2048,3072,4096)")
    ap.add_argument("--engines", default=",".join(ENGINES), help="numpy,onnxruntime")
    ap.add_argument("--reps", type=int, default=5, help="timed calls per size, at least")
    ap.add_argument("--min-time", type=float, default=1.0, help="timed seconds per size, at least")
    ap.add_argument("--warmup", type=int, default=2, help="untimed calls per size")
    ap.add_argument("--quick", action="store_true", help="sizes 1024,2048, 3 reps: a smoke test")
    add_wait_quiet_argument(ap, "each size")
    ap.add_argument("--json", default=".workbench/benchmarks/matmul_peak.json", help="JSON out")
    args = ap.parse_args(argv)

    threads_list = _csv_ints(args.threads)
    sizes = (
        _csv_ints(args.sizes) if args.sizes else list(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    )
    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    if bad := set(engines) - set(ENGINES):
        ap.error(f"unknown engine(s) {', '.join(sorted(bad))}: choose from {', '.join(ENGINES)}")
    reps, min_time = (3, 0.3) if args.quick else (args.reps, args.min_time)
    started = time.perf_counter()
    env = environment(threads_list)
    res: dict[str, Any] = {"environment": env}
    res.update(
        measure_peaks(
            threads_list,
            sizes,
            engines,
            args.warmup,
            reps,
            min_time,
            args.wait_quiet,
            progress=lambda s: print(f"  measuring {s} ...", file=sys.stderr, flush=True),
        )  # fmt: skip
    )
    env["loadavg_after"] = loadavg()
    res["elapsed_s"] = time.perf_counter() - started
    write_result(res, args.json)
    print(f"CPU: {env['cpu']} ({env['cpu_count']} logical CPUs); numpy {env['numpy']} "
          f"(BLAS threads set by {res['numpy_threads_set_by']}), onnxruntime {env['ort']}")  # fmt: skip
    print(f"load average before/after: {env['loadavg_before']} / {env['loadavg_after']}\n")
    print_table(res)
    print(f"\n(took {res['elapsed_s']:.0f} s; JSON: {res['out']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
