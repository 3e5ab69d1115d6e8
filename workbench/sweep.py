"""Task sweeps: export what is missing, then benchmark every artifact x runtime x device x
thread count over the batch sizes, one worker process per combination.

Rows are stored by the workers as each configuration finishes; if a worker
dies, the configurations it did not finish become `failed` rows here, and the
sweep goes on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from exporters.base import ArtifactRequest, export_many, find_pass
from workbench.errors import UserError
from workbench.formats import DEFAULT_RUNTIME, PRECISIONS, SOURCE_FRAMEWORK_OF_NATIVE
from workbench.harness.runner import BenchConfig
from workbench.harness.timing import StopRule
from workbench.procs import child_env
from workbench.results import RunStore
from workbench.tasks.base import get_task

# Formats each source framework can yield (native first). A (format, precision) pair is
# planned only where an exporter pass makes it (`exporters.base.find_pass`).
FORMATS_BY_FRAMEWORK = {
    "torch": ("eager", "onnx", "torchscript", "pt2", "tflite"),
    "keras": ("keras", "savedmodel", "tflite", "onnx"),
}
WORKER_TIMEOUT_S = 1800


@dataclass
class TaskSweep:
    """What to measure for one task. None means every applicable value."""

    task: str
    models: list[str] | None = None
    frameworks: list[str] | None = None
    formats: list[str] | None = None
    precisions: list[str] = field(default_factory=lambda: list(PRECISIONS))
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 64])
    threads: list[int | None] = field(default_factory=lambda: [len(os.sched_getaffinity(0))])
    devices: list[str] = field(default_factory=lambda: ["cpu"])
    rule: StopRule = field(default_factory=StopRule)
    runtime_extra: dict[str, Any] = field(default_factory=dict)  # e.g. {"tensorrt": True}
    repeats: int = 1
    end_to_end: bool = True  # also time pre + model + post where the task has a pipeline

    def __post_init__(self) -> None:
        task = get_task(self.task)
        self.models = [task.check_model(m) for m in (self.models or task.models)]
        self.frameworks = self.frameworks or list(task.frameworks)
        for fw in self.frameworks:
            if fw not in task.frameworks:
                raise UserError(
                    f"task {self.task!r} has no {fw!r} model: "
                    f"choose from {', '.join(task.frameworks)}"
                )
        known = {f for fmts in FORMATS_BY_FRAMEWORK.values() for f in fmts}
        for fmt in self.formats or []:
            if fmt not in known:
                raise UserError(f"unknown format {fmt!r}: choose from {', '.join(sorted(known))}")
        for p in self.precisions:
            if p not in PRECISIONS:
                raise UserError(f"unknown precision {p!r}: choose from {', '.join(PRECISIONS)}")


@dataclass
class Job:
    """One worker's work: an artifact (or the native model) on one runtime setting."""

    model: str
    source_framework: str
    format: str
    precision: str
    device: str
    threads: int | None
    request: ArtifactRequest | None  # None for the framework's own (eager/keras) model


def plan(sweep: TaskSweep) -> list[Job]:
    """Every (model, framework, format, precision, device, threads) the sweep asks for that an
    exporter can make."""
    task = get_task(sweep.task)
    jobs = []
    for model in sweep.models or []:
        for fw in [f for f in sweep.frameworks or [] if f in task.frameworks_for(model)]:
            for fmt in FORMATS_BY_FRAMEWORK[fw]:
                if sweep.formats and fmt not in sweep.formats:
                    continue
                for precision in sweep.precisions:
                    native = fmt in SOURCE_FRAMEWORK_OF_NATIVE
                    if native and precision != "fp32":
                        continue
                    if not native and not _has_pass(fw, fmt, precision):
                        continue
                    request = (
                        None if native else ArtifactRequest(sweep.task, model, fw, fmt, precision)
                    )
                    for device in sweep.devices:
                        for threads in sweep.threads:
                            jobs.append(Job(model, fw, fmt, precision, device, threads, request))
    return jobs


def _artifact_key(job: Job) -> tuple[str, str, str, str]:
    return (job.model, job.source_framework, job.format, job.precision)


def _has_pass(framework: str, fmt: str, precision: str) -> bool:
    try:
        find_pass(framework, fmt, precision)
    except UserError:
        return False
    return True


def _labels(sweep: TaskSweep, job: Job, manifest: dict[str, Any] | None) -> dict[str, Any]:
    labels: dict[str, Any] = {
        "task": sweep.task,
        "model": job.model,
        "source_framework": job.source_framework,
        "precision": job.precision,
    }
    if manifest:
        for key in (
            "parity_max_abs_error",
            "parity_max_rel_error",
            "parity_metric_name",
            "parity_metric_value",
            "parity_pass",
        ):
            labels[key] = manifest.get(key)
        labels["accuracy"] = manifest.get("accuracy_artifact")
        labels["artifact_sha256"] = manifest.get("sha256")
    return labels


def run_sweep(
    sweep: TaskSweep, store: RunStore, on_progress: Callable[[str], None] | None = None
) -> None:
    """Export everything `sweep` asks for (in parallel; exports never overlap a timed
    run), then benchmark each job in its own worker, storing rows in `store`."""
    jobs = plan(sweep)
    requests = {_artifact_key(j): j.request for j in jobs if j.request is not None}
    manifests = dict(zip(requests, export_many(list(requests.values())), strict=True))
    for job in jobs:
        label = (
            f"{job.model}/{job.source_framework}/{job.format}/{job.precision}/"
            f"{job.device}/t{job.threads or 'default'}"
        )
        if on_progress:
            on_progress(label)
        manifest = manifests[_artifact_key(job)] if job.request is not None else None
        labels = _labels(sweep, job, manifest)
        config = BenchConfig(
            runtime=DEFAULT_RUNTIME[job.format],
            format=job.format,
            path=manifest["path"] if manifest else None,
            device=job.device,
            threads=job.threads,
            batch_sizes=list(sweep.batch_sizes),
            rule=sweep.rule,
            runtime_extra=dict(sweep.runtime_extra),
            repeats=sweep.repeats,
            labels=labels,
            end_to_end=sweep.end_to_end,
        )
        if manifest is not None and manifest.get("status") != "ok":
            for b in sweep.batch_sizes:
                store.append(
                    {
                        **labels,
                        "runtime": config.runtime,
                        "format": job.format,
                        "device": job.device,
                        "threads": job.threads,
                        "batch_size": b,
                        "status": manifest.get("status", "failed"),
                        "error": f"export failed: {manifest.get('error')}",
                    }
                )
            continue
        _run_worker(
            store,
            config,
            {"task": sweep.task, "model": job.model, "source_framework": job.source_framework},
        )


def _run_worker(store: RunStore, config: BenchConfig, extra: dict[str, Any]) -> None:
    job = {"run_dir": str(store.path), "config": config.to_json(), **extra}
    env = child_env(TF_CPP_MIN_LOG_LEVEL="3")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "workbench.harness.worker"],
            input=json.dumps(job),
            text=True,
            capture_output=True,
            timeout=WORKER_TIMEOUT_S,
            env=env,
        )
        stdout, code = proc.stdout, proc.returncode
        tail = " | ".join([ln for ln in proc.stderr.splitlines() if ln.strip()][-2:])
        reason = f"benchmark worker died ({_describe(code)})" + (f": {tail}" if tail else "")
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        code, reason = -9, f"benchmark worker timed out after {WORKER_TIMEOUT_S} s"
    done = {int(line.split()[1]) for line in stdout.splitlines() if line.startswith("ROW ")}
    if code == 0 and done >= set(config.batch_sizes):
        return
    for b in config.batch_sizes:
        if b not in done:
            store.append(
                {
                    **config.labels,
                    "runtime": config.runtime,
                    "format": config.format,
                    "device": config.device,
                    "threads": config.threads,
                    "batch_size": b,
                    "artifact_path": config.path,
                    "status": "failed",
                    "error": reason,
                }
            )


def _describe(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"
