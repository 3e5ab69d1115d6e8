"""Your own model (#23): time from `model init` to the first rows, and the spec path's
overhead over an equivalent built-in task sweep.

A tiny PyTorch MLP factory (the shape of the `tabular` task's model input) goes through
`workbench model init` + `workbench bench model.yaml`, and the `tabular` task through
`workbench bench --task tabular`, each with the same formats, precisions, batch sizes
and the ci profile's timing rule, in a fresh workspace each (cold export caches). Prints
one JSON line. Bounded: every command has a timeout.

    python benchmarks/usermodel_overhead.py [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FACTORY = """
import torch
from torch import nn

def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(FEATURES, 64), nn.ReLU(), nn.Linear(64, 2)).eval()
"""
COMMON = ["--profile", "ci", "--formats", "onnx", "--precisions", "fp32", "--batch", "1,4"]
TIMEOUT_S = 900


def _cli(args: list[str], cwd: Path, home: Path) -> float:
    env = {"WORKBENCH_HOME": str(home), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=TIMEOUT_S,
        env={**__import__("os").environ, **env},
    )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    from workbench.registry import get_task

    features = get_task("tabular").input_specs("mlp")[0].shape[1]
    results = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="wb-own-") as tmp:
            root = Path(tmp)
            (root / "nets.py").write_text(FACTORY.replace("FEATURES", str(features)))
            rng = np.random.default_rng(0)
            np.savez(root / "batch.npz", x=rng.standard_normal((4, features)).astype("float32"))
            init = _cli(["model", "init", "nets.py:mlp", "--sample", "batch.npz"], root, root / "a")
            spec = _cli(["bench", "model.yaml", *COMMON], root, root / "a")
            task = _cli(
                ["bench", "--task", "tabular", "--model", "mlp", "--frameworks", "torch", *COMMON],
                root,
                root / "b",
            )
            results.append({"init_s": init, "spec_bench_s": spec, "task_bench_s": task})
    best = {k: min(r[k] for r in results) for k in results[0]}
    best["init_to_rows_s"] = best["init_s"] + best["spec_bench_s"]
    best["spec_overhead_s"] = best["spec_bench_s"] - best["task_bench_s"]
    print(json.dumps({"runs": results, "best": best}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
