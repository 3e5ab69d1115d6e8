"""Peak resident memory of each export (issue 15, memory): every request exported in its
own child process (forced, so never a cache hit), its process tree's RSS sampled every
50 ms, and the kernel's high-water mark of the child (wait4's ru_maxrss) read when it
ends. Prints one table row per export; the goal is no export above 4 GB.

Upstream artifacts (the FP32 ONNX file a quantization pass transforms) are exported first
and measured as their own rows, so a row is one converter's memory, not its upstream's.

`--code-root` runs the exports with another checkout's code (e.g. /work/main, for the
"before" column); the script itself only starts processes and samples them.
A safety valve kills an export whose tree passes `--kill-above` GB (reported as killed).

Run:  flock /tmp/wb-timing.lock .venv/bin/python benchmarks/export_memory.py
          [--requests object_detection/yolov8n_640/torch/onnx/int8-static,...]
          [--code-root PATH] [--workspace DIR] [--kill-above 12] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
DEFAULT = [
    "object_detection/yolov8n_640/torch/onnx/fp32",
    "object_detection/yolov8n_640/torch/onnx/int8-static",
    "object_detection/yolov8n_640/torch/onnx/int8-dynamic",
    "object_detection/yolov8n_320/torch/onnx/int8-static",
]
CHILD = (
    "import json, sys; from exporters.base import ArtifactRequest, export; "
    "t, m, f, fmt, p = sys.argv[1].split('/'); "
    "r = export(ArtifactRequest(t, m, f, fmt, p), force=sys.argv[2] == '1'); "
    "print(json.dumps({k: r.get(k) for k in ('status', 'error', 'peak_rss_bytes', "
    "'export_time_s')}))"
)


def tree_rss(proc: psutil.Process) -> tuple[int, int]:
    """(largest single process RSS, sum over the tree) in bytes."""
    rss = []
    try:
        for p in [proc, *proc.children(recursive=True)]:
            try:
                rss.append(p.memory_info().rss)
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return (max(rss, default=0), sum(rss))


def measure(request: str, code_root: Path, env: dict[str, str], kill_above: float) -> dict:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, request, "1"],
        cwd=code_root,
        env={**env, "PYTHONPATH": str(code_root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    ps = psutil.Process(proc.pid)
    peak_one = peak_tree = 0
    killed = False
    started = time.monotonic()
    usage = None
    while True:
        # wait4 (not poll) reaps the child itself, to read the kernel's high-water mark of
        # its tree (ru_maxrss: the largest process, its waited-for children included)
        pid, _, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        one, tree = tree_rss(ps)
        peak_one, peak_tree = max(peak_one, one), max(peak_tree, tree)
        if tree > kill_above * 2**30 and not killed:
            for p in [*ps.children(recursive=True), ps]:
                try:
                    p.kill()
                except psutil.Error:
                    pass
            killed = True
        time.sleep(0.05)
    proc.returncode = 0
    out = proc.stdout.read() if proc.stdout else ""
    result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    return {
        "request": request,
        "status": "killed" if killed else result.get("status", "no result"),
        "error": result.get("error"),
        "seconds": round(time.monotonic() - started, 1),
        "sampled_peak_process_gb": round(peak_one / 2**30, 2),
        "sampled_peak_tree_gb": round(peak_tree / 2**30, 2),
        "kernel_peak_gb": round(usage.ru_maxrss * 1024 / 2**30, 2) if usage else None,
        "manifest_peak_gb": round(result["peak_rss_bytes"] / 2**30, 2)
        if result.get("peak_rss_bytes")
        else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", default=",".join(DEFAULT))
    parser.add_argument("--code-root", type=Path, default=REPO)
    parser.add_argument("--workspace", type=Path)
    parser.add_argument("--kill-above", type=float, default=12.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    home = args.workspace or Path(tempfile.mkdtemp(prefix="wb-export-memory-"))
    env = {**os.environ, "WORKBENCH_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "3"}
    print(f"code: {args.code_root}  workspace: {home}  load: {os.getloadavg()}", file=sys.stderr)
    rows = []
    for request in args.requests.split(","):
        row = measure(request, args.code_root.resolve(), env, args.kill_above)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    print(f"\n{'request':58} {'status':8} {'s':>6} {'peak GB':>8} {'tree GB':>8} {'kernel GB':>9}")
    for r in rows:
        print(
            f"{r['request']:58} {r['status']:8} {r['seconds']:>6} "
            f"{r['sampled_peak_process_gb']:>8} {r['sampled_peak_tree_gb']:>8} "
            f"{str(r['kernel_peak_gb']):>9}"
        )
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
