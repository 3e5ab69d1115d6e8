"""Tables derived from result rows: what a notebook shows under each plot.

Every function takes the rows of `workbench.results.load` (a DataFrame of RESULT_FIELDS)
and returns a tidy table; none of them measures anything.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from workbench.columns import SUMMARY_COLUMNS, format_value, summary_table, used_columns
from workbench.parity_thresholds import current_judgement

KEY_COLUMNS = ["model", "source_framework", "format", "precision", "runtime", "device"]


def label(row: pd.Series | dict[str, Any]) -> str:
    """`torch/onnx/int8-dynamic on onnxruntime (cpu)`."""
    return (
        f"{row['source_framework']}/{row['format']}/{row['precision']} on {row['runtime']} "
        f"({row['device']})"
    )


def table(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows a reader wants to see: the summary columns (workbench.columns), with units
    in the headers, leaving out columns no row fills."""
    used = tuple(used_columns(frame.to_dict(orient="records"), SUMMARY_COLUMNS))
    return summary_table(frame, used).reset_index(drop=True)


def rejudge(frame: pd.DataFrame, max_drop_points: float | None = None) -> pd.DataFrame:
    """`frame` with each row's parity verdict recomputed from its stored numbers under
    today's rules and an INT8 quality budget of `max_drop_points` (None: the default):
    `parity_pass`, `parity_rule` and `parity_reason`. A row without the numbers (a
    native model, a row stored before rows carried the output scale) keeps its own."""
    out = frame.copy()
    if out.empty or "parity_max_abs_error" not in out:
        return out
    for column in ("parity_pass", "parity_rule", "parity_reason"):
        if column not in out:
            out[column] = None
        out[column] = out[column].astype(object)
    for index, row in out.iterrows():
        judged = current_judgement(row.to_dict(), max_drop_points)
        if judged is not None:
            out.at[index, "parity_pass"] = judged.passed
            out.at[index, "parity_rule"] = judged.rule
            out.at[index, "parity_reason"] = judged.reason
    return out


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
        rules = group["parity_rule"].dropna() if "parity_rule" in group else pd.Series()
        row = {
            **dict(zip(keys, key, strict=True)),
            "status": "/".join(statuses),
            "parity_pass": "-" if parity.empty else bool(parity.all()),
            "parity_rule": "-" if rules.empty else "/".join(sorted(set(rules))),
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
    if "seq_len" in ok and ok["seq_len"].notna().any():  # text tasks: per sequence length
        keys.append("seq_len")
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
        f"{format_value(fast['latency_ms_p50'], 'ms')} ms at batch {int(fast['batch_size'])}: "
        f"{label(fast)}"
    )
    best = ok.loc[ok["throughput_items_per_s"].idxmax()]
    out["best throughput"] = (
        f"{format_value(best['throughput_items_per_s'], 'rate')} items/s at batch "
        f"{int(best['batch_size'])}: {label(best)}"
    )
    return out


def failures(frame: pd.DataFrame) -> pd.DataFrame:
    """Failed and unavailable rows grouped by reason (the error's first line): how many
    rows, and which configurations and batch sizes, most frequent reason first."""
    columns = ["status", "reason", "rows", "configurations"]
    bad = frame[frame["status"] != "ok"] if not frame.empty else frame
    if bad.empty:
        return pd.DataFrame(columns=columns)
    bad = bad.assign(
        reason=bad["error"].fillna("(no error recorded)").astype(str).str.split("\n").str[0]
    )
    out = []
    for (status, reason), group in bad.groupby(["status", "reason"], sort=False):
        configs = {}
        for _, r in group.iterrows():
            artifact = "/".join(
                str(r[k]) for k in ("source_framework", "format", "precision") if pd.notna(r[k])
            )
            name = f"{r['model']} {artifact} on {r['runtime']}"
            configs.setdefault(name, []).append(r["batch_size"])
        text = "; ".join(
            f"{name} (batch {', '.join(str(int(b)) for b in sorted(x for x in bs if pd.notna(x)))})"
            if any(pd.notna(b) for b in bs)
            else name
            for name, bs in configs.items()
        )
        out.append({"status": status, "reason": reason, "rows": len(group), "configurations": text})
    return (
        pd.DataFrame(out, columns=columns)
        .sort_values("rows", ascending=False)
        .reset_index(drop=True)
    )
