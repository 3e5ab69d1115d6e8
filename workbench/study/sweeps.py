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
from workbench.formats import PRECISIONS
from workbench.harness.timing import StopRule
from workbench.profiles import get_profile
from workbench.registry import get_task
from workbench.sweep import TaskSweep, formats_for, from_profile, plan, run_stored


def check_profile(profile: str) -> str:
    """`profile` if it names one (workbench.profiles), else a UserError listing them."""
    return get_profile(profile).name


def stop_rule(profile: str, **overrides: Any) -> StopRule:
    """The profile's measurement rule, with fields overridden (e.g. min_iters=3)."""
    return replace(get_profile(profile).rule, **overrides)


def describe(sweep: TaskSweep) -> str:
    """One line saying what a sweep measures (for the notebook's output)."""
    return (
        f"task {sweep.task}: models {sweep.models}, frameworks {sweep.frameworks}, "
        f"formats {sweep.formats or 'all'}, precisions {sweep.precisions}, batches "
        f"{sweep.batch_sizes}, devices {sweep.devices}, threads {sweep.threads}; "
        f"{len(plan(sweep))} jobs"
    )


def run(sweep: TaskSweep, note: str = "notebook", quiet: bool = False) -> pd.DataFrame:
    """Export what is missing and benchmark `sweep` into a new stored run; its rows."""

    def progress(done: int, total: int, label: str) -> None:
        if not quiet:
            print(f"[{done}/{total}] {label}", flush=True)

    store = run_stored(sweep, command=note, on_progress=progress)
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
# quick: the ci set plus the CPU's own fast paths (eager bf16 autocast, OpenVINO f32/bf16/
# NNCF INT8); full: every format (onnx-fused is opt-in per task and left out here).
QUANTIZATION_PRESETS["quick"] = {
    **QUANTIZATION_PRESETS["ci"],
    "formats": ["eager", "onnx", "openvino"],
}
QUANTIZATION_PRESETS["full"]["formats"] = [
    "eager",
    "inductor",
    "keras",
    "onnx",
    "torchscript",
    "pt2",
    "tflite",
    "savedmodel",
    "openvino",
]
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
CPU_GPU_PRESETS["quick"] = CPU_GPU_PRESETS["ci"]


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
    return from_profile(
        task or p["task"],
        profile,
        models=[model or p["model"]],
        frameworks=list(frameworks) or p["frameworks"],
        formats=list(formats) or p["formats"],
        precisions=list(PRECISIONS),
        batch_sizes=list(batch_sizes) or p["batch_sizes"],
        devices=["cpu"],
        # every framework and format the model has, unless the preset names some
        unset_means_all=True,
    )


def cpu_fast_sweep(profile: str, sweep: TaskSweep) -> TaskSweep | None:
    """The CPU's fastest paths for `sweep`'s model and batch sizes, beside its ONNX Runtime
    rows: OpenVINO bf16 (AMX or AVX512-BF16; `unavailable` without) and NNCF INT8. None in
    the ci profile, which stays cheap."""
    if check_profile(profile) == "ci":
        return None
    return replace(
        sweep,
        formats=["openvino"],
        precisions=["bf16", "int8-static"],
        devices=["cpu"],
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
    frameworks = [fw for fw in get_task(task).frameworks_for(model) if fmt in formats_for(fw)][:1]
    return from_profile(
        task,
        profile,
        models=[model],
        frameworks=frameworks,
        formats=[fmt],
        precisions=[precision or p["precision"]],
        batch_sizes=list(batch_sizes) or p["batch_sizes"],
        devices=list(devices) or ["cpu", "cuda"],
    )
