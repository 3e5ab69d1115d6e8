"""What the notebooks call: profiles, sweeps as DataFrames, and the derived tables.

Notebooks stay thin (parameters, calls into here, plots, a short reading); every
computation a notebook shows lives here so it is tested and reusable:

- `sweep_for(task, profile, ...)`: a TaskSweep from a profile's presets, with the
  notebook's explicit parameters taking precedence (an empty value = the preset).
- `measure(sweep)`: run it into a fresh run of the result store; the rows as a
  DataFrame (only this run's rows).
- `table`, `export_matrix`, `speedup_over_fp32`, `pareto`, `crossover`,
  `headline_numbers`: tidy tables derived from result rows.
- `caption(frame)`: host and date, printed under every figure.
- `record_headline(notebook, values)`: a few numbers for `reports/index.html` and the
  summary notebook.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench import results
from workbench.errors import UserError
from workbench.formats import PRECISIONS
from workbench.harness.timing import StopRule
from workbench.notebook_params import PROFILES
from workbench.sweep import FORMATS_BY_FRAMEWORK, TaskSweep, plan, run_sweep
from workbench.tasks.base import get_task

REPORTS_ENV = "WORKBENCH_REPORTS"
HEADLINES = "headlines"
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


# ------------------------------------------------------------------ derived tables

KEY_COLUMNS = ["model", "source_framework", "format", "precision", "runtime", "device"]


def label(row: pd.Series | dict[str, Any]) -> str:
    """`torch/onnx/int8-dynamic on onnxruntime (cpu)`."""
    return (
        f"{row['source_framework']}/{row['format']}/{row['precision']} on {row['runtime']} "
        f"({row['device']})"
    )


def _mb(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value) / 1e6


def table(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows a reader wants to see, with units in the column names."""
    out = pd.DataFrame(
        {
            "status": frame["status"],
            "model": frame["model"],
            "src": frame["source_framework"],
            "format": frame["format"],
            "precision": frame["precision"],
            "runtime": frame["runtime"],
            "device": frame["device"],
            "batch": frame["batch_size"],
            "p50 (ms)": frame["latency_ms_p50"],
            "p99 (ms)": frame["latency_ms_p99"],
            "throughput (items/s)": frame["throughput_items_per_s"],
            "size (MB)": frame["model_size_bytes"].map(_mb),
            "peak RSS (MB)": frame["peak_rss_bytes"].map(_mb),
            "parity": frame["parity_pass"],
            "stable": frame["stable"],
            "error": frame["error"],
        }
    )
    return out.reset_index(drop=True)


def export_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (model, framework, format, precision, device): the rows' statuses and the
    parity verdict. Deterministic for a given host and code (nbval checks it)."""
    if frame.empty:
        return pd.DataFrame(columns=[*KEY_COLUMNS, "status", "parity_pass"])
    keys = ["model", "source_framework", "format", "precision", "device"]
    rows = []
    for key, group in frame.groupby(keys, sort=True, dropna=False):
        statuses = sorted(set(group["status"].dropna()))
        parity = group["parity_pass"].dropna()
        row = {
            **dict(zip(keys, key, strict=True)),
            "status": "/".join(statuses),
            "parity_pass": "-" if parity.empty else bool(parity.all()),
        }
        if "accuracy" in frame and frame["accuracy"].notna().any():
            accuracy = group["accuracy"].dropna()
            row["accuracy"] = "-" if accuracy.empty else round(float(accuracy.iloc[0]), 4)
        rows.append(row)
    return pd.DataFrame(rows)


E2E_COLUMNS = {
    "pre_ms_p50": "pre (ms)",
    "e2e_model_ms_p50": "model (ms)",
    "post_ms_p50": "post (ms)",
    "e2e_ms_p50": "end-to-end (ms)",
}


def end_to_end(frame: pd.DataFrame) -> pd.DataFrame:
    """Per configuration and batch: p50 of each stage of pre + model + post, the end-to-end
    p50 and items/s, next to the model-only p50 (where the task has a pipeline)."""
    columns = ["model", "source_framework", "format", "precision", "runtime", "threads"]
    if frame.empty or "e2e_ms_p50" not in frame or frame["e2e_ms_p50"].isna().all():
        return pd.DataFrame(columns=[*columns, "batch", *E2E_COLUMNS.values()])
    ok = ok_rows(frame)
    ok = ok[ok["e2e_ms_p50"].notna()].sort_values([*columns, "batch_size"])
    out = ok[columns].rename(columns={"source_framework": "src"})
    out["batch"] = ok["batch_size"]
    out["model-only p50 (ms)"] = ok["latency_ms_p50"]
    for field, name in E2E_COLUMNS.items():
        out[name] = ok[field]
    out["pre+post share"] = (ok["pre_ms_p50"] + ok["post_ms_p50"]) / ok["e2e_ms_p50"]
    out["end-to-end (items/s)"] = ok["e2e_items_per_s"]
    return out.reset_index(drop=True)


def ok_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "ok"].copy()


def speedup_over_fp32(frame: pd.DataFrame) -> pd.DataFrame:
    """Each precision's p50 and size against FP32 of the same model, framework, format,
    runtime, device, threads and batch size (rows without an FP32 twin are left out)."""
    ok = ok_rows(frame)
    keys = ["model", "source_framework", "format", "runtime", "device", "threads", "batch_size"]
    cols = [*keys, "precision", "latency_ms_p50", "model_size_bytes"]
    if ok.empty:
        return pd.DataFrame(columns=[*cols, "speedup", "size_ratio"])
    base = ok[ok["precision"] == "fp32"][keys + ["latency_ms_p50", "model_size_bytes"]]
    merged = ok[cols].merge(base, on=keys, suffixes=("", "_fp32"))
    merged["speedup"] = merged["latency_ms_p50_fp32"] / merged["latency_ms_p50"]
    merged["size_ratio"] = merged["model_size_bytes_fp32"] / merged["model_size_bytes"]
    return merged.sort_values([*keys, "precision"]).reset_index(drop=True)


def quality_column(frame: pd.DataFrame) -> str:
    """`accuracy` where the task has true labels, else the parity metric (e.g. top-1
    agreement with the source model)."""
    if "accuracy" in frame and frame["accuracy"].notna().any():
        return "accuracy"
    return "parity_metric_value"


def pareto(frame: pd.DataFrame, batch_size: int | None = None) -> pd.DataFrame:
    """One row per artifact at `batch_size` (default: the smallest measured) with latency,
    size and quality, and `on_front`: no other artifact is at least as fast, as small
    and as accurate, and strictly better in one of them."""
    ok = ok_rows(frame)
    quality = quality_column(frame)
    cols = [*KEY_COLUMNS, "batch_size", "latency_ms_p50", "model_size_bytes", quality]
    if ok.empty:
        return pd.DataFrame(columns=[*cols, "quality", "on_front"])
    batch = batch_size if batch_size is not None else int(ok["batch_size"].min())
    part = ok[ok["batch_size"] == batch][cols].dropna(
        subset=["latency_ms_p50", "model_size_bytes", quality]
    )
    part = part.rename(columns={quality: "quality"}).reset_index(drop=True)
    part["quality_metric"] = quality
    lat = part["latency_ms_p50"].to_numpy(float)
    size = part["model_size_bytes"].to_numpy(float)
    qual = part["quality"].to_numpy(float)
    front = []
    for i in range(len(part)):
        dominated = (
            (lat <= lat[i])
            & (size <= size[i])
            & (qual >= qual[i])
            & ((lat < lat[i]) | (size < size[i]) | (qual > qual[i]))
        )
        front.append(not dominated.any())
    part["on_front"] = front
    return part.sort_values("latency_ms_p50").reset_index(drop=True)


def crossover(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Per artifact measured on both CPU and a GPU: throughput by batch on each device and
    the first batch size where the GPU is faster. Returns (table, one-line reading)."""
    ok = ok_rows(frame)
    gpu_rows = frame[frame["device"].astype(str).str.startswith("cuda")]
    if ok[ok["device"].astype(str).str.startswith("cuda")].empty:
        reasons = sorted(set(gpu_rows["error"].dropna()))
        why = reasons[0] if reasons else "no GPU device was requested"
        return (
            pd.DataFrame(),
            f"No GPU measurement here: {why}. Only the CPU side is shown.",
        )
    keys = ["model", "source_framework", "format", "precision", "runtime"]
    out = []
    for key, group in ok.groupby(keys, sort=True):
        cpu = group[group["device"] == "cpu"].set_index("batch_size")["throughput_items_per_s"]
        for device in sorted(d for d in group["device"].unique() if str(d).startswith("cuda")):
            gpu = group[group["device"] == device].set_index("batch_size")["throughput_items_per_s"]
            common = sorted(set(cpu.index) & set(gpu.index))
            wins = [b for b in common if gpu[b] > cpu[b]]
            out.append(
                {
                    **dict(zip(keys, key, strict=True)),
                    "gpu": device,
                    "batches compared": ",".join(map(str, common)),
                    "GPU faster from batch": wins[0] if wins else None,
                    "max GPU/CPU throughput": max((gpu[b] / cpu[b] for b in common), default=None),
                }
            )
    table_ = pd.DataFrame(out)
    if table_.empty:
        return table_, "No artifact was measured on both the CPU and a GPU."
    found = table_.dropna(subset=["GPU faster from batch"])
    if found.empty:
        return table_, "The GPU never overtook the CPU at the batch sizes measured."
    first = found.sort_values("GPU faster from batch").iloc[0]
    return (
        table_,
        f"The GPU overtakes the CPU from batch {int(first['GPU faster from batch'])} "
        f"({first['source_framework']}/{first['format']}/{first['precision']}).",
    )


def headline_numbers(frame: pd.DataFrame) -> dict[str, str]:
    """Fastest configuration at its smallest batch, highest throughput, and row counts."""
    ok = ok_rows(frame)
    counts = frame["status"].value_counts().to_dict()
    out = {"rows": ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))}
    if ok.empty:
        return out
    small = ok[ok["batch_size"] == ok["batch_size"].min()]
    fast = small.loc[small["latency_ms_p50"].idxmin()]
    out["fastest p50"] = (
        f"{fast['latency_ms_p50']:.3g} ms at batch {int(fast['batch_size'])}: {label(fast)}"
    )
    best = ok.loc[ok["throughput_items_per_s"].idxmax()]
    out["best throughput"] = (
        f"{best['throughput_items_per_s']:.4g} items/s at batch {int(best['batch_size'])}: "
        f"{label(best)}"
    )
    return out


# ------------------------------------------------------------------ captions and headlines


def _manifests(run_ids: Iterable[str]) -> list[dict[str, Any]]:
    wanted = set(run_ids)
    return [m for m in results.load_manifests() if m.get("run_id") in wanted]


def host_text(fingerprint: dict[str, Any]) -> str:
    cpu = fingerprint.get("cpu", {})
    gpu = fingerprint.get("gpu", {})
    gpus = ", ".join(
        g.get("name", "?") if isinstance(g, dict) else str(g) for g in gpu.get("gpus", [])
    )
    return (
        f"{fingerprint.get('hostname', '?')}: {cpu.get('model', '?')}, "
        f"{cpu.get('logical_cores', '?')} cores, GPU: {gpus or 'none'}"
    )


def caption(frame: pd.DataFrame) -> str:
    """`host: <name>: <cpu>, N cores, GPU: ...; measured <date> UTC; run <id>`."""
    run_ids = sorted(set(frame["run_id"].dropna())) if "run_id" in frame else []
    manifests = _manifests(run_ids)
    if manifests:
        host = host_text(manifests[0].get("fingerprint", {}))
    else:
        from workbench.env import fingerprint

        host = host_text(fingerprint())
    stamps = sorted(frame["timestamp"].dropna()) if "timestamp" in frame else []
    date = (stamps[0] if stamps else datetime.now(UTC).isoformat())[:16].replace("T", " ")
    runs = ", ".join(run_ids) if run_ids else "-"
    return f"host {host}; measured {date} UTC; run {runs}"


def reports_dir() -> Path:
    """Where reports go: $WORKBENCH_REPORTS, else `reports/` of the enclosing checkout
    (found upwards from the current directory, so a notebook opened in notebooks/ works),
    else ./reports."""
    if os.environ.get(REPORTS_ENV):
        return Path(os.environ[REPORTS_ENV])
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "reports").is_dir() and (folder / "pyproject.toml").is_file():
            return folder / "reports"
    return here / "reports"


def record_headline(notebook: str, values: dict[str, Any], profile: str) -> Path:
    """Write a notebook's few headline numbers to `<reports>/headlines/<notebook>.json`."""
    from workbench.env import fingerprint

    folder = reports_dir() / HEADLINES
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{notebook}.json"
    payload = {
        "notebook": notebook,
        "profile": profile,
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": host_text(fingerprint()),
        "values": {str(k): _plain(v) for k, v in values.items()},
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str))
    os.replace(tmp, path)
    return path


def _plain(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def read_headlines(folder: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every notebook's headline record (notebook name -> record)."""
    folder = folder or reports_dir() / HEADLINES
    out = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        out[record.get("notebook", path.stem)] = record
    return out


def headlines_table(records: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per (notebook, headline) for the summary."""
    rows = [
        {
            "notebook": name,
            "headline": key,
            "value": value,
            "profile": record.get("profile"),
            "written (UTC)": str(record.get("written", ""))[:16].replace("T", " "),
        }
        for name, record in sorted(records.items())
        for key, value in record.get("values", {}).items()
    ]
    return pd.DataFrame(rows, columns=["notebook", "headline", "value", "profile", "written (UTC)"])
