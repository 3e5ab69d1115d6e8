"""Python against compiled callers and servers on ONNX Runtime (issue 24; guide §1.1 and
its summary: a compiled server has 5-10x lower latency, 3-5x higher throughput and 2-3x
less memory than a Python one).

1. Per call: each model's ONNX file through the `onnxruntime` runtime (Python API) and
   the `onnxruntime-c` runtime (a C++ caller on ONNX Runtime's C API), both through
   `workbench.harness.runner.run_config`: the same threads, the same input pool, the same
   StopRule; the two are interleaved `--rounds` times and the median p50 kept. With
   --torch also the TorchScript export through `torch` and `torch-cpp` (libtorch).
   Models: the tabular MLP, ResNet-50 (torchvision, random weights) and MiniLM
   (text_classification's minilm_classifier, sequence 128), exported by `workbench
   export` in a child process, at batch 1 and --big-batch.
2. Sizes: MLPs of growing width (built here with onnx.helper), batch 1: what Python adds
   per call (absolute us) against the model's own time, the seed_claims figure.
3. Serving: `workbench.serving.fronts.compare_fronts` on each model's ONNX file: the
   Python front (`workbench serve --no-batcher`) and the compiled front (`workbench serve
   --front compiled`) under the same KServe v2 HTTP client and LoadGen: single_stream
   p50/p99, the max QPS with p99 under --bound-ms, and each server's resident memory.

--quick: the sizes, the tabular MLP (both parts) and the ci scenario profile: minutes.
Writes everything as JSON to --out, which the seed_claims notebook reads and judges.

Quiet-machine run (the lead's):
  flock /tmp/wb-timing.lock .venv/bin/python benchmarks/compiled_vs_python.py --torch
Timings taken while other jobs share the cores are noise: the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from workbench.harness.runner import BenchConfig, run_config  # noqa: E402
from workbench.harness.timing import StopRule  # noqa: E402
from workbench.procs import child_env  # noqa: E402
from workbench.study.compiled import SIZES, mlp_onnx  # noqa: E402

MODELS = {  # name -> (task, model, sequence dims)
    "tabular_mlp": ("tabular", "mlp", {}),
    "resnet50": ("image_classification", "resnet50", {}),
    "minilm": ("text_classification", "minilm_classifier", {"sequence": 128}),
}
PAIRS = {"onnx": ("onnxruntime", "onnxruntime-c"), "torchscript": ("torch", "torch-cpp")}


def export(task: str, model: str, formats: list[str], timeout_s: float = 1800) -> dict[str, str]:
    """`workbench export` in a child process (cached under .workbench/ after the first
    run): the artifact path of each format."""
    argv = [
        sys.executable, "-m", "workbench.cli", "export", "--task", task, "--model", model,
        "--frameworks", "torch", "--formats", ",".join(formats), "--precisions", "fp32",
        "--output", "json",
    ]  # fmt: skip
    proc = subprocess.run(
        argv, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=timeout_s
    )
    paths = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            manifest = json.loads(line)
            if manifest.get("status") == "ok":
                paths[manifest["format"]] = manifest["path"]
    missing = [f for f in formats if f not in paths]
    if missing:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"export of {task}/{model} gave no {missing}: {tail}")
    return paths


def per_call(
    path: str, fmt: str, batches: list[int], threads: int, rule: StopRule, rounds: int,
    dims: dict[str, int], labels: dict[str, Any],
) -> list[dict[str, Any]]:  # fmt: skip
    """Python and compiled runtime on one artifact, interleaved `rounds` times; one row
    per (runtime, batch) with the median of the rounds' p50s."""
    python, compiled = PAIRS[fmt]
    found: dict[tuple[str, int], list[dict]] = {}
    for _ in range(rounds):
        for runtime in (python, compiled):
            config = BenchConfig(
                runtime=runtime, format=fmt, path=path, threads=threads, inter_op_threads=1,
                batch_sizes=batches, dims=dims, rule=rule, labels=labels,
            )  # fmt: skip
            rows: list[dict] = []
            run_config(config, rows.append)
            for row in rows:
                found.setdefault((runtime, row["batch_size"]), []).append(row)
    out = []
    for rows in found.values():
        ok = [r for r in rows if r["status"] == "ok"]
        row = {k: v for k, v in (ok or rows)[0].items() if k != "latencies_ms"}
        if ok:
            row["latency_ms_p50"] = statistics.median(r["latency_ms_p50"] for r in ok)
            row["round_p50s_ms"] = [r["latency_ms_p50"] for r in ok]
        out.append(row)
    return out


def added(rows: list[dict[str, Any]], fmt: str) -> list[dict[str, Any]]:
    """What Python adds per call: p50(python) - p50(compiled), by model and batch."""
    python, compiled = PAIRS[fmt]
    by = {(r["model"], r["batch_size"], r["runtime"]): r for r in rows if r["status"] == "ok"}
    out = []
    for (model, batch, runtime), row in by.items():
        other = by.get((model, batch, compiled))
        if runtime != python or other is None:
            continue
        py, c = row["latency_ms_p50"] * 1000, other["latency_ms_p50"] * 1000
        out.append({
            "model": model, "format": fmt, "batch_size": batch, "python_us": py,
            "compiled_us": c, "python_adds_us": py - c, "ratio": py / c if c else None,
        })  # fmt: skip
    return out


def parity(path: str, fmt: str, dims: dict[str, int]) -> dict[str, Any]:
    """The Python and the compiled runtime's outputs on one batch-2 feed: max abs error."""
    from workbench.devices import parse_device
    from workbench.registry import get_runtime
    from workbench.runtimes.base import RuntimeOptions
    from workbench.signature import make_input_pool

    options = RuntimeOptions(parse_device("cpu"), 1)
    loaded = [get_runtime(name).load(Path(path), options) for name in PAIRS[fmt]]
    try:
        feed = make_input_pool(loaded[0].inputs, 2, dims, pool_size=1)[0]
        outs = [m.to_numpy(m.run(m.prepare(feed))) for m in loaded]
    finally:
        for m in loaded:
            m.close()
    errors = [float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(*outs, strict=True)]
    return {"path": path, "format": fmt, "max_abs_error": max(errors, default=0.0)}


def serving_samples(path: str, dims: dict[str, int]) -> list[dict[str, np.ndarray]]:
    """Batch-1 feeds from the ONNX file's own signature."""
    from workbench.devices import parse_device
    from workbench.registry import get_runtime
    from workbench.runtimes.base import RuntimeOptions
    from workbench.signature import make_input_pool

    loaded = get_runtime("onnxruntime").load(Path(path), RuntimeOptions(parse_device("cpu"), 1))
    try:
        return make_input_pool(loaded.inputs, 1, dims, pool_size=16)
    finally:
        loaded.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes + tabular MLP, ci load")
    parser.add_argument("--models", default=",".join(MODELS), help="of " + ",".join(MODELS))
    parser.add_argument("--big-batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (both)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per pair")
    parser.add_argument("--torch", action="store_true", help="also torch vs torch-cpp")
    parser.add_argument("--skip-serving", action="store_true")
    parser.add_argument("--serving-models", default="tabular_mlp,resnet50,minilm")
    parser.add_argument("--bound-ms", type=float, default=100.0, help="p99 bound of the peak")
    parser.add_argument("--max-probes", type=int, default=5)
    parser.add_argument("--out", default=".workbench/benchmarks/compiled_vs_python.json")
    args = parser.parse_args(argv)

    quick = args.quick
    models = ["tabular_mlp"] if quick else [m for m in args.models.split(",") if m]
    serving_models = ["tabular_mlp"] if quick else args.serving_models.split(",")
    rule = (
        StopRule(warmup_iters=5, warmup_time_s=0.1, min_iters=100, min_time_s=0.3, max_time_s=5)
        if quick
        else StopRule(
            warmup_iters=10, warmup_time_s=0.5, min_iters=200, min_time_s=2.0, max_time_s=30
        )  # fmt: skip
    )
    rounds = 1 if quick else args.rounds
    formats = ["onnx", "torchscript"] if args.torch else ["onnx"]
    out: dict[str, Any] = {
        "quick": quick, "threads": args.threads, "rule": rule.__dict__, "rounds": rounds,
        "load_average_before": os.getloadavg(), "cpu_count": os.cpu_count(),
        "per_call": [], "added": [], "sizes": [], "serving": [], "parity": [],
    }  # fmt: skip
    started = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        print("sizes: synthetic MLPs, batch 1 ...", file=sys.stderr, flush=True)
        size_rows = []
        for width in SIZES:
            path = str(mlp_onnx(Path(tmp) / f"mlp{width}.onnx", width))
            labels = {"model": f"mlp_w{width}", "width": width}
            size_rows += per_call(path, "onnx", [1], args.threads, rule, rounds, {}, labels)
        out["sizes"] = added(size_rows, "onnx")
        out["size_rows"] = size_rows
        for r in out["sizes"]:
            print(f"  {r['model']:>10}: model {r['compiled_us']:9.1f} us, Python adds "
                  f"{r['python_adds_us']:6.1f} us ({r['ratio']:.2f}x)")  # fmt: skip

    paths: dict[str, dict[str, str]] = {}
    for name in dict.fromkeys(models + ([] if args.skip_serving else serving_models)):
        task, model, _ = MODELS[name]
        print(f"exporting {task}/{model} ...", file=sys.stderr, flush=True)
        paths[name] = export(task, model, formats)
    out["parity"] = []
    for name in models:
        dims = MODELS[name][2]
        for fmt in formats:
            out["parity"].append({"model": name, **parity(paths[name][fmt], fmt, dims)})
            print(f"  parity {name} {fmt}: max abs error {out['parity'][-1]['max_abs_error']:.3g}")
            rows = per_call(paths[name][fmt], fmt, [1, args.big_batch], args.threads, rule,
                            rounds, dims, {"model": name})  # fmt: skip
            out["per_call"] += rows
            out["added"] += added(rows, fmt)
    for r in out["added"]:
        print(f"  {r['model']:>12} {r['format']:>11} b{r['batch_size']:<3}: Python "
              f"{r['python_us']:10.1f} us, compiled {r['compiled_us']:10.1f} us, adds "
              f"{r['python_adds_us']:7.1f} us ({r['ratio']:.2f}x)")  # fmt: skip

    if not args.skip_serving:
        from workbench.serving.fronts import compare_fronts

        for name in serving_models:
            path = paths[name]["onnx"]
            print(f"serving {name} through each front ...", file=sys.stderr, flush=True)
            rows = compare_fronts(
                path, serving_samples(path, MODELS[name][2]), "ci" if quick else "quick",
                args.bound_ms, args.max_probes, labels={"model": name},
            )  # fmt: skip
            out["serving"] += rows
            for r in rows:
                if r["status"] != "ok":
                    print(f"  {name} {r['front']}: failed: {r['error']}")
                    continue
                print(f"  {name:>12} {r['front']:>8}: p50 {r['p50_ms']:.3f} ms, p99 "
                      f"{r['p99_ms']:.3f} ms, peak {r.get('peak_qps') or 0:.0f} QPS "
                      f"(p99 <= {args.bound_ms:g} ms), peak RSS "
                      f"{r['peak_rss_bytes'] / 2**20:.0f} MiB")  # fmt: skip

    out["load_average_after"] = os.getloadavg()
    out["wall_s"] = time.perf_counter() - started
    target = Path(args.out)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=1, default=str))
    print(f"wrote {target} ({out['wall_s']:.0f} s; load average {out['load_average_after']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
