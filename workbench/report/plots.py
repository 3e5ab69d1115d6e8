"""Matplotlib figures of result rows.

Every function takes rows (or a table derived from them by `workbench.study`) and
a caption (host and date: `workbench.study.caption(frame)`), and returns a
`matplotlib.figure.Figure` built without pyplot, so no global figure state leaks
between calls. A notebook displays the Figure inline; `png(fig)` gives the bytes
an HTML report inlines. Axes carry units; the caption is drawn under every figure.
"""

from __future__ import annotations

import io
import textwrap
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

CAPTION_WIDTH = 150


def png(fig: Figure, dpi: int = 90) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _figure(n_panels: int, width: float = 6.5, height: float = 4.5) -> tuple[Figure, list[Any]]:
    fig = Figure(figsize=(max(width * n_panels, 7.0), height))
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    return fig, list(axes)


def _finish(fig: Figure, caption: str) -> Figure:
    text = "\n".join(textwrap.wrap(caption, CAPTION_WIDTH)) or ""
    lines = text.count("\n") + 1
    fig.text(0.01, 0.01, text, fontsize=7.5, color="#444", va="bottom")
    fig.tight_layout(rect=(0, 0.035 * lines + 0.01, 1, 1))
    return fig


def _empty(ax: Any, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_xticks([])
    ax.set_yticks([])


def _series(row: pd.Series, with_model: bool = False, with_device: bool = True) -> str:
    text = f"{row['source_framework']}/{row['format']}/{row['precision']} on {row['runtime']}"
    if with_device:
        text += f" ({row['device']})"
    return f"{row['model']}: {text}" if with_model else text


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "ok"].copy()


def _per_model(frame: pd.DataFrame, column: str, ylabel: str, caption: str) -> Figure:
    ok = _ok(frame)
    models = sorted(ok["model"].dropna().unique()) or ["(none)"]
    fig, axes = _figure(len(models))
    for ax, model in zip(axes, models, strict=True):
        part = ok[ok["model"] == model]
        if part.empty:
            _empty(ax, "no successful rows")
            continue
        part = part.assign(series=part.apply(_series, axis=1))
        for series, group in part.groupby("series"):
            group = group.sort_values("batch_size")
            ax.plot(group["batch_size"], group[column], marker="o", label=series)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size (items per call)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"model: {model}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return _finish(fig, caption)


def throughput_vs_batch(frame: pd.DataFrame, caption: str) -> Figure:
    """Items/s against batch size: one line per artifact x runtime x device, a panel per model."""
    return _per_model(frame, "throughput_items_per_s", "throughput (items/s)", caption)


def latency_vs_batch(frame: pd.DataFrame, caption: str) -> Figure:
    """p50 latency per call against batch size."""
    return _per_model(frame, "latency_ms_p50", "p50 latency per call (ms)", caption)


def latency_cdf(frame: pd.DataFrame, caption: str, max_panels: int = 3) -> Figure:
    """Distribution of every timed call's latency (empirical CDF) per configuration, one
    panel per batch size (the smallest, the largest and one between when there are more)."""
    ok = _ok(frame)
    has_calls = ok["latencies_ms"].map(lambda v: isinstance(v, (list, np.ndarray)) and len(v) > 0)
    ok = ok[has_calls.astype(bool)]
    batches = sorted(ok["batch_size"].dropna().unique())
    if len(batches) > max_panels:
        batches = [batches[0], batches[len(batches) // 2], batches[-1]][:max_panels]
    fig, axes = _figure(max(1, len(batches)), width=5.5)
    if not batches:
        _empty(axes[0], "no per-call latencies recorded")
        return _finish(fig, caption)
    with_model = ok["model"].nunique() > 1
    for ax, batch in zip(axes, batches, strict=True):
        part = ok[ok["batch_size"] == batch]
        for _, row in part.iterrows():
            values = np.sort(np.asarray(row["latencies_ms"], dtype=float))
            fraction = np.arange(1, len(values) + 1) / len(values)
            ax.step(values, fraction, where="post", label=_series(row, with_model))
        ax.set_xscale("log")
        ax.set_xlabel("latency per call (ms)")
        ax.set_ylabel("fraction of calls at or below (0-1)")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"batch {int(batch)}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6.5, loc="lower right")
    return _finish(fig, caption)


def speedup(table: pd.DataFrame, caption: str) -> Figure:
    """Speedup of each precision over FP32 (same artifact family, runtime, device, batch):
    `table` is `workbench.study.speedup_over_fp32(frame)`."""
    part = table[table["precision"] != "fp32"] if not table.empty else table
    fig, axes = _figure(1, width=9)
    ax = axes[0]
    if part.empty:
        _empty(ax, "no precision with an FP32 twin was measured")
        return _finish(fig, caption)
    part = part.assign(
        group=part.apply(
            lambda r: (
                f"{r['model']} {r['source_framework']}/{r['format']}\n"
                f"{r['runtime']} {r['device']} b{int(r['batch_size'])}"
                + (f" s{int(r['seq_len'])}" if pd.notna(r.get("seq_len", None)) else "")
            ),
            axis=1,
        )
    )
    groups = list(dict.fromkeys(part["group"]))
    precisions = sorted(part["precision"].unique())
    width = 0.8 / max(1, len(precisions))
    for i, precision in enumerate(precisions):
        sub = part[part["precision"] == precision].set_index("group")["speedup"]
        xs = np.arange(len(groups)) + i * width
        ax.bar(xs, [sub.get(g, np.nan) for g in groups], width, label=precision)
    ax.axhline(1.0, color="#333", linewidth=1, linestyle="--")
    ax.set_xticks(np.arange(len(groups)) + width * (len(precisions) - 1) / 2)
    ax.set_xticklabels(groups, fontsize=7)
    ax.set_ylabel("speedup over FP32 (x, p50 latency ratio)")
    ax.set_title("speedup over the FP32 baseline (>1: faster than FP32)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, caption)


def pareto(table: pd.DataFrame, caption: str) -> Figure:
    """Quality against p50 latency, marker area by file size, the Pareto front marked:
    `table` is `workbench.study.pareto(frame)`."""
    fig, axes = _figure(1, width=9, height=5.2)
    ax = axes[0]
    if table.empty:
        _empty(ax, "no artifact with latency, size and quality")
        return _finish(fig, caption)
    metric = str(table["quality_metric"].iloc[0])
    size_mb = table["model_size_bytes"].astype(float) / 1e6
    area = 30 + 300 * (size_mb / max(size_mb.max(), 1e-9))
    off = table[~table["on_front"]]
    on = table[table["on_front"]]
    ax.scatter(
        off["latency_ms_p50"],
        off["quality"],
        s=area[off.index],
        alpha=0.5,
        color="#7a9cc6",
        label="dominated",
    )
    ax.scatter(
        on["latency_ms_p50"],
        on["quality"],
        s=area[on.index],
        alpha=0.9,
        color="#d9534f",
        edgecolor="black",
        label="Pareto front (latency, size, quality)",
    )
    front2d = table.sort_values("latency_ms_p50")
    best, xs, ys = -np.inf, [], []
    for _, row in front2d.iterrows():
        if row["quality"] > best:
            best = row["quality"]
            xs.append(row["latency_ms_p50"])
            ys.append(row["quality"])
    ax.step(xs, ys, where="post", color="#d9534f", linewidth=1, alpha=0.7)
    for i, row in table.iterrows():
        ax.annotate(
            f"{row['source_framework']}/{row['format']}/{row['precision']}\n{size_mb[i]:.2g} MB",
            (row["latency_ms_p50"], row["quality"]),
            fontsize=6.5,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.set_xlabel(f"p50 latency per call at batch {int(table['batch_size'].iloc[0])} (ms)")
    ax.set_ylabel(f"{metric} (fraction)")
    ax.set_title("accuracy - latency - size (marker area: file size)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _finish(fig, caption)


def memory(frame: pd.DataFrame, caption: str) -> Figure:
    """Peak resident memory of the measuring process and the model file size per
    configuration, at each configuration's largest batch."""
    ok = _ok(frame)
    fig, axes = _figure(1, width=9, height=max(3.0, 0.32 * max(1, len(ok)) + 1.5))
    ax = axes[0]
    if ok.empty:
        _empty(ax, "no successful rows")
        return _finish(fig, caption)
    keys = ["model", "source_framework", "format", "precision", "runtime", "device"]
    last = ok.sort_values("batch_size").groupby(keys, sort=True).tail(1)
    with_model = last["model"].nunique() > 1
    names = [f"{_series(r, with_model)} b{int(r['batch_size'])}" for _, r in last.iterrows()]
    ys = np.arange(len(last))
    rss = last["peak_rss_bytes"].astype(float) / 2**20
    size = last["model_size_bytes"].astype(float).fillna(0) / 2**20
    ax.barh(ys - 0.2, rss, 0.4, label="peak RSS of the process (MiB)")
    ax.barh(ys + 0.2, size, 0.4, label="model file size (MiB)")
    ax.set_yticks(ys)
    ax.set_yticklabels(names, fontsize=7)
    ax.set_xlabel("memory (MiB)")
    ax.set_title("memory per configuration (largest batch measured)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, caption)


def by_device(frame: pd.DataFrame, caption: str) -> Figure:
    """p50 latency and throughput against batch size, one line per artifact and device."""
    ok = _ok(frame)
    fig, axes = _figure(2, width=6)
    if ok.empty:
        for ax in axes:
            _empty(ax, "no successful rows")
        return _finish(fig, caption)
    with_model = ok["model"].nunique() > 1
    ok = ok.assign(series=ok.apply(lambda r: _series(r, with_model), axis=1))
    for ax, column, ylabel in (
        (axes[0], "latency_ms_p50", "p50 latency per call (ms)"),
        (axes[1], "throughput_items_per_s", "throughput (items/s)"),
    ):
        for series, group in ok.groupby("series"):
            group = group.sort_values("batch_size")
            style = "--" if str(group["device"].iloc[0]).startswith("cuda") else "-"
            ax.plot(group["batch_size"], group[column], style, marker="o", label=series)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size (items per call)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_title("latency by batch size (dashed: GPU)")
    axes[1].set_title("throughput by batch size (dashed: GPU)")
    return _finish(fig, caption)


STAGE_COLOURS = {"pre (ms)": "#8da0cb", "model (ms)": "#fc8d62", "post (ms)": "#66c2a5"}


def end_to_end_stages(table: pd.DataFrame, caption: str, batch_size: int | None = None) -> Figure:
    """Stacked bars of pre / model / post p50 per configuration at one batch size (default:
    the smallest measured), from `study.end_to_end`."""
    fig, (ax,) = _figure(1, width=9.0, height=max(3.0, 0.35 * len(table) + 1.5))
    if table.empty:
        _empty(ax, "no end-to-end rows (the task has no pre/post-processing, or it failed)")
        return _finish(fig, caption)
    batch = batch_size if batch_size is not None else int(table["batch"].min())
    part = table[table["batch"] == batch]
    names = [
        f"{r.model}: {r.src}/{r.format}/{r.precision} on {r.runtime} (t{r.threads})"
        for r in part.itertuples()
    ]
    left = np.zeros(len(part))
    for stage, colour in STAGE_COLOURS.items():
        values = part[stage].to_numpy(dtype=float)
        ax.barh(names, values, left=left, color=colour, label=stage.replace(" (ms)", ""))
        left += values
    ax.invert_yaxis()
    ax.set_xlabel(f"p50 per call at batch {batch} (ms)")
    ax.set_title("end-to-end latency split: pre-processing, model, post-processing")
    ax.legend(fontsize=8)
    ax.grid(True, axis="x", alpha=0.3)
    ax.tick_params(axis="y", labelsize=7)
    return _finish(fig, caption)


def detections(examples: list[Any], classes: list[str], caption: str, columns: int = 2) -> Figure:
    """Held-out scenes with ground truth (green, dashed) and an artifact's detections (red,
    class and score), one panel per (artifact, scene), from `demos.detection_examples`."""
    from matplotlib.patches import Rectangle

    n = max(1, len(examples))
    rows = -(-n // columns)
    fig = Figure(figsize=(4.2 * columns, 4.0 * rows + 0.4))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[len(examples) :]:
        ax.axis("off")
    if not examples:
        _empty(axes[0], "no ONNX/TFLite detector artifact with an ok row")
    for ax, example in zip(axes, examples, strict=False):
        ax.imshow(example.image)
        for x0, y0, x1, y1 in example.truth.boxes:
            ax.add_patch(
                Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="#1a9850", lw=1.2, ls="--")
            )
        for (x0, y0, x1, y1), score, cls in zip(
            example.detections.boxes,
            example.detections.scores,
            example.detections.classes,
            strict=True,
        ):
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="#d73027", lw=1.2))
            ax.text(
                x0,
                y0,
                f"{classes[cls]} {score:.2f}",
                color="white",
                fontsize=6,
                va="bottom",
                bbox={"fc": "#d73027", "ec": "none", "pad": 0.5},
            )
        ax.set_title(
            f"{example.artifact}: {len(example.detections)} found, {len(example.truth.boxes)} true",
            fontsize=8,
        )
        ax.axis("off")
    return _finish(fig, caption)


def compare_ratios(table: pd.DataFrame, floor: float, caption: str) -> Figure:
    """Every matched configuration's median-latency ratio B/A with its bootstrap 95 %
    interval, sorted, against the noise band: readable at any number of configurations
    because it is one point per configuration and the outliers are labelled."""
    fig, (ax,) = _figure(1, width=11, height=4.2)
    part = table.dropna(subset=["p50 ratio"]) if not table.empty else table
    if part.empty:
        _empty(ax, "no configuration measured in both runs")
        return _finish(fig, caption)
    part = part.sort_values("p50 ratio").reset_index(drop=True)
    xs = np.arange(len(part))
    colours = part["verdict"].map({"slower": "#c62828", "faster": "#1a7f37"}).fillna("#7a9cc6")
    low = (part["p50 ratio"] - part["ratio CI low"]).clip(lower=0).fillna(0)
    high = (part["ratio CI high"] - part["p50 ratio"]).clip(lower=0).fillna(0)
    ax.axhspan(1 - floor, 1 + floor, color="#ddd", alpha=0.6, label=f"noise floor ±{floor:.0%}")
    ax.axhline(1.0, color="#333", linewidth=0.8)
    ax.errorbar(xs, part["p50 ratio"], yerr=[low, high], fmt="none", ecolor="#999", lw=0.8)
    ax.scatter(xs, part["p50 ratio"], c=list(colours), s=14, zorder=3)
    changed = part[part["verdict"].isin(["slower", "faster"])]
    for i, row in changed.head(8).iterrows():
        ax.annotate(
            row["config"],
            (i, row["p50 ratio"]),
            fontsize=6.5,
            xytext=(4, 2),
            textcoords="offset points",
        )
    ax.set_xlabel("matched configurations, sorted by ratio")
    ax.set_ylabel("median latency B / A (x)")
    ax.set_title("change per configuration (red: slower, green: faster, blue: within noise)")
    ax.set_xticks([])
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _finish(fig, caption)
