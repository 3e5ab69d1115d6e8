"""How much of the host's matrix-multiply peak ResNet-50 (fp32, ONNX Runtime CPU) reaches.

1. The ONNX artifact: exported by the workbench itself, through
   `python -m workbench.cli export --task image_classification --model resnet50
   --frameworks torch --formats onnx --precisions fp32 --output json` in a child process
   (torchvision resnet50, weights=None; cached under .workbench/artifacts after the first
   run), unless --model gives a file.
2. Its FLOPs per batch from `workbench.flops.count_flops` (8.18 GFLOPs per image).
3. The fp32 MatMul peak at the same thread count, measured in this run by
   `matmul_peak.py`'s `measure_peaks` (ONNX Runtime one-MatMul model and NumPy sgemm),
   before and again after timing the model; the higher of the two is the reference, so
   a neighbour that slowed one of them does not inflate the fraction.
4. The model timed by the workbench harness (`workbench.harness.runner.run_config`,
   onnxruntime, CPU, --threads) per batch: p50 latency, images/s = batch / p50,
   GFLOP/s = FLOPs(batch) / p50, and that as a fraction of each peak.

Run:  .venv/bin/python benchmarks/resnet50_efficiency.py [--threads 2] [--batches 1,32]
It prints a table and writes every figure as JSON to --json. No torch in this process:
the export runs in its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(1, str(REPO))

from harness_overhead import HostLoad, add_wait_quiet_argument, loadavg, wait_quiet  # noqa: E402
from matmul_peak import environment, measure_peaks  # noqa: E402

from workbench.flops import count_flops  # noqa: E402
from workbench.harness.runner import BenchConfig, run_config  # noqa: E402
from workbench.harness.timing import StopRule  # noqa: E402
from workbench.procs import child_env  # noqa: E402

EXPORT_ARGS = [
    "export",
    "--task", "image_classification",
    "--model", "resnet50",
    "--frameworks", "torch",
    "--formats", "onnx",
    "--precisions", "fp32",
    "--output", "json",
]  # fmt: skip


def export_resnet50(timeout_s: float = 900) -> dict[str, Any]:
    """Run the workbench's export CLI (cwd: the repository, so the artifact lands in its
    .workbench/) and return the fp32 ONNX manifest it prints."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "workbench.cli", *EXPORT_ARGS],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    manifests = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            manifests.append(json.loads(line))
    ok = [m for m in manifests if m.get("status") == "ok" and m.get("format") == "onnx"]
    if proc.returncode != 0 or not ok:
        detail = proc.stderr.strip().splitlines()[-5:] + [
            str(m.get("error")) for m in manifests if m.get("status") != "ok"
        ]
        raise SystemExit("workbench export failed:\n  " + "\n  ".join(detail))
    return {**ok[0], "cli_wall_s": time.perf_counter() - started}


def time_batch(
    path: Path, threads: int, batch: int, min_iters: int, min_time_s: float, quiet_s: float
) -> dict[str, Any]:
    """One batch size through the workbench harness; returns its result row."""
    rows: list[dict[str, Any]] = []
    rule = StopRule(
        warmup_iters=2,
        warmup_time_s=0.0,
        min_iters=min_iters,
        min_time_s=min_time_s,
        max_time_s=max(120.0, min_time_s),
    )
    config = BenchConfig(
        runtime="onnxruntime",
        format="onnx",
        path=str(path),
        device="cpu",
        threads=threads,
        batch_sizes=[batch],
        rule=rule,
    )
    waited = wait_quiet(quiet_s)
    host = HostLoad()
    run_config(config, rows.append)
    row = rows[0]
    if row.get("status") != "ok":
        raise SystemExit(f"batch {batch}: {row.get('status')}: {row.get('error')}")
    row.pop("latencies_ms", None)
    return {
        **row,
        "other_processes_cores": host.other_cores(),
        "steal_cores": host.steal_cores(),
        "waited_for_quiet_s": waited,
    }


def print_table(res: dict[str, Any]) -> None:
    env = res["environment"]
    print(f"CPU: {env['cpu']} ({env['cpu_count']} logical CPUs), onnxruntime {env['ort']}; "
          f"ORT intra-op threads {res['threads']}")  # fmt: skip
    print(f"load average before/after: {env['loadavg_before']} / {env['loadavg_after']}")
    a = res["artifact"]
    print(f"model: {a['path']} ({a.get('exporter', '?')}, cache hit: {a.get('cache_hit')})")
    t = str(res["threads"])
    print(f"\nfp32 MatMul peak at {t} thread(s), measured in this run (before / after the "
          "model; the higher one is the reference):")  # fmt: skip
    for engine, best in res["peak_reference"].items():
        cells = " / ".join(
            f"{run['peaks'][engine][t]['gflops']:.1f} (n={run['peaks'][engine][t]['n']}, "
            f"other {run['peaks'][engine][t]['other_processes_cores']} cores)"
            for run in res["peak_runs"]
        )
        print(f"  {engine:<12} {cells} -> {best:.1f} GFLOP/s")
    print()
    head = (f"{'batch':>5} {'GFLOP/batch':>11} {'p50 ms':>9} {'p50 CI ms':>17} {'iters':>5} "
            f"{'images/s':>9} {'GFLOP/s':>8} {'of ORT peak':>11} {'of numpy peak':>13} "
            f"{'other cores':>11}")  # fmt: skip
    print(head)
    for r in res["batches"]:
        ci = (
            f"{r['p50_ci_low_ms']:.1f}-{r['p50_ci_high_ms']:.1f}"
            if r["p50_ci_low_ms"] is not None
            else "-"
        )
        f_ort = r["fraction_of_peak"].get("onnxruntime")
        f_np = r["fraction_of_peak"].get("numpy")
        print(f"{r['batch_size']:>5} {r['gflops_per_batch']:>11.1f} {r['p50_ms']:>9.2f} "
              f"{ci:>17} {r['n_iterations']:>5} {r['images_per_s']:>9.1f} "
              f"{r['gflops_per_s']:>8.1f} {f_ort if f_ort is None else f'{f_ort:.1%}':>11} "
              f"{f_np if f_np is None else f'{f_np:.1%}':>13} "
              f"{r['other_processes_cores']!s:>11}")  # fmt: skip
    unstable = [r for r in res["batches"] if not r["stable"]]
    for r in unstable:
        print(f"  batch {r['batch_size']}: unstable ({r['stability_note']})")
    busy = [
        r["other_processes_cores"]
        for r in res["batches"]
        if (r["other_processes_cores"] or 0) > 0.2
    ] + [
        p[t]["other_processes_cores"]
        for run in res["peak_runs"]
        for p in run["peaks"].values()
        if (p[t]["other_processes_cores"] or 0) > 0.2
    ]
    if busy:
        print(f"  host busy: other processes used up to {max(busy)} cores during some "
              "measurements; on 2 cores that slows 2-thread figures a lot (--wait-quiet S)")  # fmt: skip
    f = res["flops"]
    counted = ", ".join(f"{k} {v / 1e9:.3f}" for k, v in f["per_op_type"].items())
    print(f"\nGFLOPs per image (workbench.flops): {f['gflops']:.3f} = {counted}; "
          f"not counted: {', '.join(f['not_counted']) or 'none'}")  # fmt: skip
    print(f"(took {res['elapsed_s']:.0f} s; JSON: {res['out']})")


def _csv_ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="ORT intra-op (and BLAS) threads")
    ap.add_argument("--batches", default="32,1", help="batch sizes, comma-separated")
    ap.add_argument("--model", default=None, help="an ONNX file instead of the workbench export")
    ap.add_argument("--min-iters", type=int, default=7, help="timed iterations per batch, >= 5")
    ap.add_argument("--min-time", type=float, default=2.0, help="timed seconds per batch, at least")
    ap.add_argument(
        "--peak-sizes", default="1024,2048,3072", help="MatMul sizes n of the peak measurement"
    )
    ap.add_argument("--peak-engines", default="onnxruntime,numpy", help="onnxruntime,numpy")
    add_wait_quiet_argument(ap, "each peak size and each batch")
    ap.add_argument(
        "--json", default=".workbench/benchmarks/resnet50_efficiency.json", help="JSON output"
    )
    args = ap.parse_args(argv)
    if args.min_iters < 5:
        ap.error("--min-iters must be >= 5")
    started = time.perf_counter()
    threads = args.threads
    env = environment([threads])
    res: dict[str, Any] = {"environment": env, "threads": threads}

    if args.model:
        res["artifact"] = {"path": str(Path(args.model).resolve()), "source": "--model"}
    else:
        print("exporting resnet50 through the workbench CLI (cached after the first run) ...",
              file=sys.stderr, flush=True)  # fmt: skip
        res["artifact"] = export_resnet50()
    path = Path(res["artifact"]["path"])
    batches = _csv_ints(args.batches)
    flops = {b: count_flops(path, b) for b in {1, *batches}}
    res["flops"] = flops[1].to_json()  # per image; res["batches"] has each batch's total

    print(f"measuring the MatMul peak at {threads} thread(s) ...", file=sys.stderr, flush=True)
    engines = tuple(e.strip() for e in args.peak_engines.split(",") if e.strip())
    peak_sizes = _csv_ints(args.peak_sizes)
    res["peak_runs"] = [measure_peaks([threads], peak_sizes, engines, quiet_s=args.wait_quiet)]

    res["batches"] = []
    for b in batches:
        print(f"timing resnet50, batch {b} ...", file=sys.stderr, flush=True)
        row = time_batch(path, threads, b, args.min_iters, args.min_time, args.wait_quiet)
        p50_s = row["latency_ms_p50"] / 1e3
        gflops_s = flops[b].total_flops / p50_s / 1e9
        res["batches"].append(
            {
                "batch_size": b,
                "gflops_per_batch": flops[b].total_flops / 1e9,
                "p50_ms": row["latency_ms_p50"],
                "p50_ci_low_ms": row.get("latency_ms_p50_ci_low"),
                "p50_ci_high_ms": row.get("latency_ms_p50_ci_high"),
                "p99_ms": row.get("latency_ms_p99"),
                "n_iterations": row["n_iterations"],
                "images_per_s": b / p50_s,
                "gflops_per_s": gflops_s,
                "stable": row.get("stable"),
                "stability_note": row.get("stability_note"),
                "other_processes_cores": row["other_processes_cores"],
                "steal_cores": row["steal_cores"],
                "waited_for_quiet_s": row["waited_for_quiet_s"],
                "harness_row": row,
            }
        )
    print(f"measuring the MatMul peak again at {threads} thread(s) ...", file=sys.stderr,
          flush=True)  # fmt: skip
    res["peak_runs"].append(measure_peaks([threads], peak_sizes, engines, quiet_s=args.wait_quiet))
    peaks = {
        e: max(run["peaks"][e][str(threads)]["gflops"] for run in res["peak_runs"]) for e in engines
    }
    res["peak_reference"] = peaks
    for r in res["batches"]:
        r["fraction_of_peak"] = {e: r["gflops_per_s"] / g for e, g in peaks.items()}
    env["loadavg_after"] = loadavg()
    res["elapsed_s"] = time.perf_counter() - started
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    res["out"] = str(out)
    out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    print_table(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
