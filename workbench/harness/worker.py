"""Benchmark worker process: runs one BenchConfig and appends its rows to a run.

A task sweep starts one worker per (artifact, runtime, device, threads) so each
measurement gets a clean process: thread settings that can only be set once
take effect, PyTorch and TensorFlow never share a process, and a runtime that
crashes the interpreter costs only its own rows (the parent records them as
failed). Each stored row is announced on stdout as `ROW <batch_size>`. Why one process
per configuration: docs/method.md §8.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from workbench.devices import parse_device
from workbench.errors import UnavailableError, UserError
from workbench.formats import SOURCE_FRAMEWORK_OF_NATIVE
from workbench.harness.runner import BenchConfig, outcome_rows, run_config
from workbench.manifests import sha256_of
from workbench.procs import apply_memory_limit, die_with_parent
from workbench.registry import get_runtime, get_task
from workbench.results import RunStore
from workbench.runtimes.base import RuntimeOptions
from workbench.signature import TensorSpec


def run_job(job: dict[str, Any]) -> None:
    store = RunStore.open(job["run_dir"])
    config = BenchConfig(**job["config"])

    done: set[int] = set()

    def emit(row: dict[str, Any]) -> None:
        store.append(row)
        done.add(row["batch_size"])
        print(f"ROW {row['batch_size']}", flush=True)

    # An artifact whose bytes changed since its export (flipped, truncated) is never measured.
    expected = config.labels.get("artifact_sha256")
    if config.path and expected:
        try:
            actual = sha256_of(Path(config.path))
        except OSError as exc:
            actual = f"unreadable ({exc.strerror})"
        if actual != expected:
            reason = (
                f"artifact changed on disk since its export (sha256 {actual[:12]}, manifest "
                f"{expected[:12]}): not measured; run again to export it afresh"
            )
            for row in outcome_rows(config, "failed", reason):
                emit(row)
            return
    # A runtime that cannot run here (no GPU, framework not installed) costs no model build.
    reason = get_runtime(config.runtime).unavailable_reason(parse_device(config.device))
    if reason:
        for row in outcome_rows(config, "unavailable", reason):
            emit(row)
        return
    model = None
    specs = None
    pipeline = None
    if job.get("task"):
        task = get_task(job["task"])
        specs = task.input_specs(job["model"], job["source_framework"])
        if config.end_to_end:
            pipeline = task.pipeline(job["model"], job["source_framework"])
        if config.format in SOURCE_FRAMEWORK_OF_NATIVE:
            # Thread pools first: TensorFlow fixes them when the model is built.
            get_runtime(config.runtime).configure_process(
                RuntimeOptions(
                    parse_device(config.device),
                    config.threads,
                    config.inter_op_threads,
                    format=config.format,
                )
            )
            try:
                model = task.build(job["source_framework"], job["model"])
            except (ModuleNotFoundError, UnavailableError) as exc:
                # a package the model needs is missing here (its message names it)
                for row in outcome_rows(config, "unavailable", str(exc)):
                    emit(row)
                return
    elif job.get("inputs"):
        specs = [TensorSpec(s["name"], s["dtype"], tuple(s["shape"])) for s in job["inputs"]]
    feeds = None
    seq_len = config.dims.get("sequence")
    if job.get("task"):
        # the task's own inputs where it has them (real texts at the row's sequence length,
        # real users and candidates), not random ids drawn from the signature
        def feeds(batch_size: int) -> list[dict[str, Any]] | None:
            return task.bench_feeds(
                job["model"], batch_size, seq_len, config.pool_size, job["source_framework"]
            )

    try:
        run_config(config, emit, model=model, input_specs=specs, pipeline=pipeline, feeds=feeds)
    except UserError as exc:
        missing = [b for b in config.batch_sizes if b not in done]
        for row in outcome_rows(config, "failed", str(exc), missing):
            emit(row)
        # a model-file bench turns this into the CLI's one-line error (exit code 2)
        print("USER_ERROR " + " ".join(str(exc).split()), flush=True)


def main() -> int:
    die_with_parent()
    apply_memory_limit()
    run_job(json.loads(sys.stdin.read()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
