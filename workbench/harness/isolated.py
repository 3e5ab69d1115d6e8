"""Benchmark a model file's configuration in a worker process, as a task sweep does.

A user's model file is untrusted input for native code: a runtime that segfaults,
aborts or hangs on it must cost that configuration's rows, never the CLI. The worker
(`workbench.harness.worker`) stores each row in the run as it is measured; when it
dies or runs out of time, the batch sizes it did not report become failed rows with
the reason (the signal, the last lines it wrote to stderr).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from workbench.harness.runner import BenchConfig, outcome_rows
from workbench.procs import child_env
from workbench.results import RunStore

LOAD_ALLOWANCE_S = 300.0  # importing a framework and loading the model, per worker


def timeout_for(config: BenchConfig) -> float:
    """A bound on the worker's wall time: load, then per batch size and repeat the rule's
    longest measurement plus warm-up and input making."""
    per_batch = config.rule.max_time_s + config.rule.warmup_time_s + 60.0
    return LOAD_ALLOWANCE_S + len(config.batch_sizes) * config.repeats * per_batch


def run_isolated(
    store: RunStore, config: BenchConfig, inputs: list[dict[str, Any]] | None = None
) -> str | None:
    """Measure `config` in a worker that appends its rows to `store`; rows it could not
    produce are stored as failed with the reason. Returns the worker's user error (bad
    input that would fail every row alike, e.g. an unset dimension), else None."""
    job = {"run_dir": str(store.path), "config": config.to_json(), "inputs": inputs}
    timeout = timeout_for(config)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "workbench.harness.worker"],
            input=json.dumps(job),
            text=True,
            capture_output=True,
            timeout=timeout,
            env=child_env(TF_CPP_MIN_LOG_LEVEL="3"),
        )
        stdout, code = proc.stdout, proc.returncode
        tail = " | ".join([ln.strip() for ln in proc.stderr.splitlines() if ln.strip()][-2:])
        died = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        reason = f"benchmark worker died ({died})" + (f": {tail}" if tail else "")
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        code, reason = -9, f"benchmark worker timed out after {timeout:.0f} s"
    lines = stdout.splitlines()
    done = {int(ln.split()[1]) for ln in lines if ln.startswith("ROW ") and _is_int(ln)}
    user_error = next(
        (ln[len("USER_ERROR ") :] for ln in lines if ln.startswith("USER_ERROR ")), None
    )
    if code != 0 or not done >= set(config.batch_sizes):
        missing = [b for b in config.batch_sizes if b not in done]
        for row in outcome_rows(config, "failed", reason, missing):
            store.append(row)
    return user_error


def _is_int(line: str) -> bool:
    parts = line.split()
    return len(parts) == 2 and parts[1].isdigit()
