"""Kill and resume (issue 15): start a task sweep with the CLI, `kill -9` it after a random
delay (during an export, between rows, inside a worker), then `workbench bench --resume`
it, and count rows lost (finished before the kill, missing after) and duplicates (two
rows for one configuration) after the resume. Goal: 0 and 0 at every kill point.

Each trial uses a fresh workspace so that some kills land during the ONNX export.

Run:  .venv/bin/python benchmarks/kill_resume.py [--trials 10] [--max-delay 14] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SWEEP = (
    "bench --task tabular --model linear --frameworks torch --formats eager,onnx "
    "--precisions fp32 --batch 1,2,4 --threads 1 --profile ci --warmup 2 --min-iters 20 "
    "--min-time 0.2 --max-time 2 --no-end-to-end --output json"
).split()
KEY = ("model", "source_framework", "format", "precision", "device", "threads", "seq_len")


def rows(run_dir: Path) -> list[dict]:
    out = []
    for line in (run_dir / "rows.jsonl").read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # a torn last line: not a finished row
    return out


def exporter_running(home: Path) -> bool:
    """An exporter process of this trial's workspace is alive."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if b"exporters.worker" in cmd and str(home).encode() in env:
            return True
    return False


def trial(delay: float) -> dict:
    home = Path(tempfile.mkdtemp(prefix="wb-kill-"))
    env = {**os.environ, "WORKBENCH_HOME": str(home), "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "workbench.cli"]
    proc = subprocess.Popen(
        [*cli, *SWEEP], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(delay)
    finished = proc.poll() is not None
    exporting = not finished and exporter_running(home)
    if not finished:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run_dir = next((home / "runs").glob("*"))
    before = {r["row_id"] for r in rows(run_dir)}
    time.sleep(0.5)  # let the workers that die with the CLI go
    resumed = subprocess.run(
        [*cli, "bench", "--resume", run_dir.name, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
    )
    after = rows(run_dir)
    counts = Counter(tuple(r.get(k) for k in KEY) + (r["batch_size"],) for r in after)
    return {
        "delay_s": round(delay, 2),
        "killed": not finished,
        "during_export": exporting,
        "rows_before_kill": len(before),
        "rows_after_resume": len(after),
        "rows_lost": len(before - {r["row_id"] for r in after}),
        "duplicates": sum(n - 1 for n in counts.values()),
        "all_ok": all(r["status"] == "ok" for r in after),
        "resume_rc": resumed.returncode,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--max-delay", type=float, default=14.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    results = []
    for _ in range(args.trials):
        results.append(trial(rng.uniform(1.0, args.max_delay)))
        print(json.dumps(results[-1]), flush=True)
    killed = [r for r in results if r["killed"]]
    print(
        f"kills: {len(killed)} (during export: {sum(r['during_export'] for r in killed)}), "
        f"rows lost: {sum(r['rows_lost'] for r in results)}, duplicates after resume: "
        f"{sum(r['duplicates'] for r in results)}, complete runs after resume: "
        f"{sum(r['rows_after_resume'] == 6 and r['all_ok'] for r in results)}/{len(results)}; "
        f"load average {os.getloadavg()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
