"""The sweeps the notebooks measure: a profile's presets, the notebook's own parameters
on top, and running them into the result store.

An empty notebook parameter means "the profile's preset"; `describe` says in one line
what a sweep will measure before it runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import pandas as pd

from workbench import results
from workbench.errors import UserError
from workbench.formats import PRECISIONS
from workbench.harness.timing import StopRule
from workbench.study.notebook_params import PROFILES
from workbench.sweep import FORMATS_BY_FRAMEWORK, TaskSweep, plan, run_sweep
from workbench.tasks.base import get_task

FULL_BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256]

# How long each configuration is measured. ci: short, bounded by max_time so a slow
# artifact (e.g. an int8-dynamic CNN on a small CPU) cannot eat the CI budget.
STOP_RULES: dict[str, StopRule] = {
    "ci": StopRule(warmup_iters=2, warmup_time_s=0.1, min_iters=20, min_time_s=0.3, max_time_s=2.0),
    "full": StopRule(),
}

# Sweep presets per task and profile. A task without an entry gets GENERIC_PRESETS
# (its first model and framework, ONNX FP32 in ci; everything in full), so a newly
# registered task's notebook works before anyone tunes its presets.
TASK_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "tabular": {
        "ci": {
            "models": ["mlp"],
            "frameworks": ["torch"],
            "formats": ["eager", "onnx"],
            "precisions": ["fp32", "int8-dynamic"],
            "batch_sizes": [1, 8, 64],
            "devices": ["cpu"],
        },
        "full": {"batch_sizes": FULL_BATCHES, "devices": ["cpu", "cuda"]},
    },
    "image_classification": {
        # ci: ONNX from PyTorch only (the ResNet-50 exports are reused by seed_claims);
        # eager torch and the Keras models would cost minutes on 2 cores. EfficientNet-Lite0
        # (real weights) and the digits CNN (real labels) make the INT8 rows meaningful.
        "ci": {
            "models": ["resnet50", "efficientnet_lite0", "digits_cnn"],
            "frameworks": ["torch"],
            "formats": ["onnx"],
            "precisions": ["fp32", "fp16", "int8-dynamic", "int8-static"],
            "batch_sizes": [1, 4],
            "devices": ["cpu"],
        },
        "full": {"batch_sizes": [1, 2, 4, 8, 16, 32, 64], "devices": ["cpu", "cuda"]},
    },
    "object_detection": {
        "ci": {
            "models": ["yolov8n_320"],
            "frameworks": ["torch"],
            "formats": ["onnx"],
            "precisions": ["fp32", "int8-static"],
            "batch_sizes": [1, 4],
            "devices": ["cpu"],
        },
        "full": {
            "models": ["yolov8n_640"],
            "batch_sizes": [1, 2, 4, 8, 16, 32, 64],
            "devices": ["cpu", "cuda"],
        },
    },
}
GENERIC_PRESETS: dict[str, dict[str, Any]] = {
    "ci": {"formats": ["onnx"], "precisions": ["fp32"], "batch_sizes": [1, 4], "devices": ["cpu"]},
    "full": {"batch_sizes": [1, 8, 32], "devices": ["cpu", "cuda"]},
}


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise UserError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    return profile


def stop_rule(profile: str, **overrides: Any) -> StopRule:
    """The profile's measurement rule, with fields overridden (e.g. min_iters=3)."""
    return replace(STOP_RULES[check_profile(profile)], **overrides)


def presets(task: str, profile: str) -> dict[str, Any]:
    """The sweep settings `profile` uses for `task` when the notebook leaves them empty."""
    check_profile(profile)
    task_obj = get_task(task)
    if task in TASK_PRESETS:
        return dict(TASK_PRESETS[task][profile])
    chosen = dict(GENERIC_PRESETS[profile])
    if profile == "ci":
        model = task_obj.models[0]
        chosen["models"] = [model]
        chosen["frameworks"] = [task_obj.frameworks_for(model)[0]]
    return chosen


def sweep_for(
    task: str,
    profile: str,
    *,
    models: Iterable[str] = (),
    frameworks: Iterable[str] = (),
    formats: Iterable[str] = (),
    precisions: Iterable[str] = (),
    batch_sizes: Iterable[int] = (),
    devices: Iterable[str] = (),
    threads: Iterable[int] = (),
    rule: StopRule | None = None,
) -> TaskSweep:
    """A TaskSweep: each empty argument takes the profile's preset (or the sweep default)."""
    chosen = presets(task, profile)
    given = {
        "models": list(models),
        "frameworks": list(frameworks),
        "formats": list(formats),
        "precisions": list(precisions),
        "batch_sizes": list(batch_sizes),
        "devices": list(devices),
        "threads": list(threads),
    }
    settings = {k: v for k, v in chosen.items()}
    settings.update({k: v for k, v in given.items() if v})
    settings.setdefault("precisions", list(PRECISIONS))
    return TaskSweep(task=task, rule=rule or stop_rule(profile), **settings)


def describe(sweep: TaskSweep) -> str:
    """One line saying what a sweep measures (for the notebook's output)."""
    return (
        f"task {sweep.task}: models {sweep.models}, frameworks {sweep.frameworks}, "
        f"formats {sweep.formats or 'all'}, precisions {sweep.precisions}, batches "
        f"{sweep.batch_sizes}, devices {sweep.devices}, threads {sweep.threads}; "
        f"{len(plan(sweep))} jobs"
    )


def measure(sweep: TaskSweep, note: str = "notebook", quiet: bool = False) -> pd.DataFrame:
    """Export what is missing and benchmark `sweep` into a new run; return its rows."""
    jobs = plan(sweep)
    if not jobs:
        raise UserError("nothing to measure: the parameters exclude every format and precision")
    store = results.RunStore.create({"command": note, "task": sweep.task, "sweep": repr(sweep)})
    done = 0

    def progress(label: str) -> None:
        nonlocal done
        done += 1
        if not quiet:
            print(f"[{done}/{len(jobs)}] {label}", flush=True)

    status = "failed"
    try:
        run_sweep(sweep, store, progress)
        status = "ok"
    finally:
        store.finish(status)
    return results.load(run_ids=[store.run_id])


# Presets of the cross-task notebooks (empty notebook parameters take these).
QUANTIZATION_PRESETS: dict[str, dict[str, Any]] = {
    "ci": {
        "task": "tabular",
        "model": "mlp",
        "frameworks": ["torch"],
        "formats": ["onnx"],
        "batch_sizes": [1, 64],
    },
    "full": {
        "task": "tabular",
        "model": "mlp",
        "frameworks": [],
        "formats": [],
        "batch_sizes": [1, 64],
    },
}
CPU_GPU_PRESETS: dict[str, dict[str, Any]] = {
    "ci": {
        "task": "tabular",
        "model": "mlp",
        "format": "onnx",
        "precision": "fp32",
        "batch_sizes": [1, 8, 64, 256],
    },
    "full": {
        "task": "image_classification",
        "model": "resnet50",
        "format": "onnx",
        "precision": "fp32",
        "batch_sizes": [1, 2, 4, 8, 16, 32, 64],
    },
}


def quantization_sweep(
    profile: str,
    task: str = "",
    model: str = "",
    frameworks: Iterable[str] = (),
    formats: Iterable[str] = (),
    batch_sizes: Iterable[int] = (),
) -> TaskSweep:
    """Every precision of one model (empty arguments: the profile's preset)."""
    p = QUANTIZATION_PRESETS[check_profile(profile)]
    return TaskSweep(
        task=task or p["task"],
        models=[model or p["model"]],
        frameworks=list(frameworks) or p["frameworks"] or None,
        formats=list(formats) or p["formats"] or None,
        precisions=list(PRECISIONS),
        batch_sizes=list(batch_sizes) or p["batch_sizes"],
        devices=["cpu"],
        rule=stop_rule(profile),
    )


def cpu_gpu_sweep(
    profile: str,
    task: str = "",
    model: str = "",
    fmt: str = "",
    precision: str = "",
    batch_sizes: Iterable[int] = (),
    devices: Iterable[str] = (),
) -> TaskSweep:
    """One artifact over batch sizes on the CPU and the GPU(s) (empty: the preset)."""
    p = CPU_GPU_PRESETS[check_profile(profile)]
    task = task or p["task"]
    model = model or (p["model"] if task == p["task"] else get_task(task).models[0])
    fmt = fmt or p["format"]
    # One source framework: the first of the model's that can produce the format.
    frameworks = [
        fw for fw in get_task(task).frameworks_for(model) if fmt in FORMATS_BY_FRAMEWORK[fw]
    ][:1]
    return TaskSweep(
        task=task,
        models=[model],
        frameworks=frameworks or None,
        formats=[fmt],
        precisions=[precision or p["precision"]],
        batch_sizes=list(batch_sizes) or p["batch_sizes"],
        devices=list(devices) or ["cpu", "cuda"],
        rule=stop_rule(profile),
    )


