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

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.text import Text
from matplotlib.ticker import LogFormatter

CAPTION_WIDTH = 150


def png(fig: Figure, dpi: int = 90) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    with matplotlib.rc_context({"text.parse_math": False}):
        _literal_text(fig)
        fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _literal_text(fig: Figure) -> None:
    """Every text of the figure shown literally, never parsed as mathtext: labels carry
    user strings (model names, paths), and a `$` in one (`a$\\frac{$b`) would otherwise
    fail the whole figure. The figures use no mathtext of their own: log axes label their
    ticks with plain numbers (`PlainLogFormatter`)."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                base = axis.get_transform().base
                axis.set_major_formatter(PlainLogFormatter(base))
                axis.set_minor_formatter(PlainLogFormatter(base, labelOnlyBase=False))
    for text in fig.findobj(Text):
        text.set_parse_math(False)


class PlainLogFormatter(LogFormatter):
    """Log-axis ticks as plain numbers (0.1, 1, 10, 256, 1e+05). Matplotlib's default
    writes them as mathtext (`$\\mathdefault{10^{-1}}$`), which these figures never parse,
    so it would print the markup itself. Which ticks get a label stays LogFormatter's rule."""

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        return f"{x:g}"


def new_figure(n_panels: int, width: float = 6.5, height: float = 4.5) -> tuple[Figure, list[Any]]:
    """A figure of `n_panels` side by side; every figure of the report starts here."""
    fig = Figure(figsize=(max(width * n_panels, 7.0), height))
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    return fig, list(axes)


def finish_figure(fig: Figure, caption: str) -> Figure:
    """Add the wrapped caption under the panels and lay the figure out, math-free."""
    text = "\n".join(textwrap.wrap(caption, CAPTION_WIDTH)) or ""
    lines = text.count("\n") + 1
    fig.text(0.01, 0.01, plain(text), fontsize=7.5, color="#444", va="bottom")
    _tight(fig, rect=(0, 0.035 * lines + 0.01, 1, 1))
    return fig


def _tight(fig: Figure, rect: tuple[float, float, float, float]) -> None:
    """tight_layout draws the texts, so they must be literal first (`_literal_text`)."""
    _literal_text(fig)
    with matplotlib.rc_context({"text.parse_math": False}):
        fig.tight_layout(rect=rect)


def empty_panel(ax: Any, message: str) -> None:
    """Say in the panel why it is empty, instead of drawing blank axes."""
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_xticks([])
    ax.set_yticks([])


def plain(text: object) -> str:
    """User text (a model name, a path) for a label. Figures never parse mathtext
    (`_literal_text`), so a `$` in it is shown as it is."""
    return str(text)


def _series(row: pd.Series, with_model: bool = False, with_device: bool = True) -> str:
    text = f"{row['source_framework']}/{row['format']}/{row['precision']} on {row['runtime']}"
    if with_device:
        text += f" ({row['device']})"
    return plain(f"{row['model']}: {text}" if with_model else text)


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "ok"].copy()


def _per_model(frame: pd.DataFrame, column: str, ylabel: str, caption: str) -> Figure:
    ok = _ok(frame)
    models = sorted(ok["model"].dropna().unique()) or ["(none)"]
    fig, axes = new_figure(len(models))
    for ax, model in zip(axes, models, strict=True):
        part = ok[ok["model"] == model]
        if part.empty:
            empty_panel(ax, "no successful rows")
            continue
        part = part.assign(series=part.apply(_series, axis=1))
        for series, group in part.groupby("series"):
            group = group.sort_values("batch_size")
            ax.plot(group["batch_size"], group[column], marker="o", label=series)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size (items per call)")
        ax.set_ylabel(ylabel)
        ax.set_title(plain(f"model: {model}"))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return finish_figure(fig, caption)


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
    fig, axes = new_figure(max(1, len(batches)), width=5.5)
    if not batches:
        empty_panel(axes[0], "no per-call latencies recorded")
        return finish_figure(fig, caption)
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
    return finish_figure(fig, caption)


def speedup(table: pd.DataFrame, caption: str) -> Figure:
    """Speedup of each precision over FP32 (same artifact family, runtime, device, batch):
    `table` is `workbench.study.speedup_over_fp32(frame)`."""
    part = table[table["precision"] != "fp32"] if not table.empty else table
    fig, axes = new_figure(1, width=9)
    ax = axes[0]
    if part.empty:
        empty_panel(ax, "no precision with an FP32 twin was measured")
        return finish_figure(fig, caption)
    part = part.assign(
        group=part.apply(
            lambda r: plain(
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
    return finish_figure(fig, caption)


def pareto(table: pd.DataFrame, caption: str) -> Figure:
    """Quality against p50 latency, marker area by file size, the Pareto front marked:
    `table` is `workbench.study.pareto(frame)`."""
    fig, axes = new_figure(1, width=9, height=5.2)
    ax = axes[0]
    if table.empty:
        empty_panel(ax, "no artifact with latency, size and quality")
        return finish_figure(fig, caption)
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
    return finish_figure(fig, caption)


def memory(frame: pd.DataFrame, caption: str) -> Figure:
    """Peak resident memory of the measuring process and the model file size per
    configuration, at each configuration's largest batch."""
    ok = _ok(frame)
    fig, axes = new_figure(1, width=9, height=max(3.0, 0.32 * max(1, len(ok)) + 1.5))
    ax = axes[0]
    if ok.empty:
        empty_panel(ax, "no successful rows")
        return finish_figure(fig, caption)
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
    return finish_figure(fig, caption)


def by_device(frame: pd.DataFrame, caption: str) -> Figure:
    """p50 latency and throughput against batch size, one line per artifact and device."""
    ok = _ok(frame)
    fig, axes = new_figure(2, width=6)
    if ok.empty:
        for ax in axes:
            empty_panel(ax, "no successful rows")
        return finish_figure(fig, caption)
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
    return finish_figure(fig, caption)


STAGE_COLOURS = {"pre (ms)": "#8da0cb", "model (ms)": "#fc8d62", "post (ms)": "#66c2a5"}


def end_to_end_stages(table: pd.DataFrame, caption: str, batch_size: int | None = None) -> Figure:
    """Stacked bars of pre / model / post p50 per configuration at one batch size (default:
    the smallest measured), from `study.end_to_end`."""
    fig, (ax,) = new_figure(1, width=9.0, height=max(3.0, 0.35 * len(table) + 1.5))
    if table.empty:
        empty_panel(ax, "no end-to-end rows (the task has no pre/post-processing, or it failed)")
        return finish_figure(fig, caption)
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
    return finish_figure(fig, caption)


def detections(examples: list[Any], classes: list[str], caption: str, columns: int = 2) -> Figure:
    """Held-out scenes with ground truth (green, dashed) and an artifact's detections (red,
    class and score), one panel per (artifact, scene), from `demos.detection_examples`."""
    n = max(1, len(examples))
    rows = -(-n // columns)
    fig = Figure(figsize=(4.2 * columns, 4.0 * rows + 0.4))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[len(examples) :]:
        ax.axis("off")
    if not examples:
        empty_panel(axes[0], "no ONNX/TFLite detector artifact with an ok row")
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
    return finish_figure(fig, caption)


def compare_ratios(table: pd.DataFrame, floor: float, caption: str) -> Figure:
    """Every matched configuration's median-latency ratio B/A with its bootstrap 95 %
    interval, sorted, against the noise band: readable at any number of configurations
    because it is one point per configuration and the outliers are labelled."""
    fig, (ax,) = new_figure(1, width=11, height=4.2)
    part = table.dropna(subset=["p50 ratio"]) if not table.empty else table
    if part.empty:
        empty_panel(ax, "no configuration measured in both runs")
        return finish_figure(fig, caption)
    part = part.sort_values("p50 ratio").reset_index(drop=True)
    xs = np.arange(len(part))
    colours = (
        part["verdict"]
        .map({"slower": "#c62828", "faster": "#1a7f37", "unstable": "#e08600"})
        .fillna("#7a9cc6")
    )
    low = (part["p50 ratio"] - part["ratio CI low"]).clip(lower=0).fillna(0)
    high = (part["ratio CI high"] - part["p50 ratio"]).clip(lower=0).fillna(0)
    ax.axhspan(1 - floor, 1 + floor, color="#ddd", alpha=0.6, label=f"noise floor ±{floor:.0%}")
    ax.axhline(1.0, color="#333", linewidth=0.8)
    ax.errorbar(xs, part["p50 ratio"], yerr=[low, high], fmt="none", ecolor="#999", lw=0.8)
    ax.scatter(xs, part["p50 ratio"], c=list(colours), s=14, zorder=3)
    # direct labels for the three largest changes each way only, stacked so they never overlap
    changed = part[part["verdict"].isin(["slower", "faster"])]
    slower = changed[changed["p50 ratio"] > 1].tail(3).iloc[::-1]
    faster = changed[changed["p50 ratio"] < 1].head(3)
    for rank, (i, row) in enumerate(slower.iterrows()):
        ax.annotate(
            row["config"],
            (i, row["p50 ratio"]),
            fontsize=6.5,
            ha="right",
            xytext=(-8, -10 - 11 * rank),
            textcoords="offset points",
            arrowprops={"arrowstyle": "-", "color": "#c62828", "lw": 0.5},
        )
    for rank, (i, row) in enumerate(faster.iterrows()):
        ax.annotate(
            row["config"],
            (i, row["p50 ratio"]),
            fontsize=6.5,
            ha="left",
            xytext=(8, 10 + 11 * rank),
            textcoords="offset points",
            arrowprops={"arrowstyle": "-", "color": "#1a7f37", "lw": 0.5},
        )
    ax.set_yscale("log")
    ax.set_xlabel("matched configurations, sorted by ratio")
    ax.set_ylabel("median latency B / A (x, log scale)")
    ax.set_title(
        "change per configuration (red: slower, green: faster, orange: unstable, "
        "blue: within noise)"
    )
    ax.set_xticks([])
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return finish_figure(fig, caption)


# Consistent encodings across every panel of a small-multiples figure, so one legend,
# outside the data, serves them all: colour = precision, line style = source framework.
PRECISION_COLOURS = {
    "fp32": "#1f77b4",
    "fp16": "#ff7f0e",
    "bf16": "#8c564b",
    "int8-dynamic": "#2ca02c",
    "int8-static": "#d62728",
    "int8": "#9467bd",
}
FRAMEWORK_STYLES = ["-", "--", ":", "-."]


def _colour(precision: str) -> str:
    return PRECISION_COLOURS.get(str(precision), "#7f7f7f")


def facets(
    frame: pd.DataFrame,
    column: str,
    ylabel: str,
    caption: str,
    facet: str = "format",
    max_columns: int = 4,
) -> Figure:
    """Small multiples of `column` against batch size: one panel per model x `facet` value
    (format or runtime), a few lines per panel (precision x source framework, each on its
    runtime), the same colours and line styles in every panel and one legend outside them.
    Stays readable at any number of configurations because no panel holds more than the
    handful of artifacts that share its format."""
    ok = _ok(frame).dropna(subset=[column])
    ok = ok[ok["batch_size"].notna()]
    if ok.empty:
        fig, (ax,) = new_figure(1)
        empty_panel(ax, "no successful rows")
        return finish_figure(fig, caption)
    models = sorted(ok["model"].dropna().unique())
    values = sorted(ok[facet].dropna().astype(str).unique())
    panels = [
        (m, v)
        for m in models
        for v in values
        if not ok[(ok["model"] == m) & (ok[facet].astype(str) == v)].empty
    ]
    n_cols = min(max_columns, len(panels))
    n_rows = -(-len(panels) // n_cols)
    fig = Figure(figsize=(3.3 * n_cols + 2.2, 2.6 * n_rows + 0.6))
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharey=True).ravel()
    frameworks = sorted(ok["source_framework"].dropna().astype(str).unique())
    styles = {f: FRAMEWORK_STYLES[i % len(FRAMEWORK_STYLES)] for i, f in enumerate(frameworks)}
    for ax in axes[len(panels) :]:
        ax.axis("off")
    batches = sorted(ok["batch_size"].unique())
    for ax, (model, value) in zip(axes, panels, strict=False):
        part = ok[(ok["model"] == model) & (ok[facet].astype(str) == value)]
        keys = ["source_framework", "format", "precision", "runtime"]
        for key, group in part.groupby(keys, sort=True):
            group = group.sort_values("batch_size")
            ax.plot(
                group["batch_size"],
                group[column],
                styles.get(str(key[0]), "-"),
                color=_colour(key[2]),
                marker="o",
                markersize=3,
                linewidth=1.3,
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(batches)
        ax.set_xticklabels([str(int(b)) for b in batches], fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        runtimes = ", ".join(sorted(part["runtime"].astype(str).unique()))
        ax.set_title(f"{model}: {value}\n({runtimes})", fontsize=8)
        ax.grid(True, which="both", alpha=0.25)
    for ax in axes[: len(panels)][-n_cols:]:
        ax.set_xlabel("batch size", fontsize=8)
    for i in range(n_rows):
        axes[i * n_cols].set_ylabel(ylabel, fontsize=8)
    precisions = [p for p in PRECISION_COLOURS if p in set(ok["precision"])] + sorted(
        set(ok["precision"]) - set(PRECISION_COLOURS)
    )
    handles = [Line2D([], [], color=_colour(p), marker="o", label=p) for p in precisions]
    handles += [
        Line2D([], [], color="#444", linestyle=styles[f], label=f"from {f}") for f in frameworks
    ]
    fig.legend(
        handles=handles,
        loc="upper right",
        fontsize=8,
        frameon=False,
        title="colour: precision\nline: source",
        title_fontsize=8,
    )
    text = "\n".join(textwrap.wrap(caption, CAPTION_WIDTH))
    fig.text(0.01, 0.005, text, fontsize=7, color="#444", va="bottom")
    _tight(fig, rect=(0, 0.04, 1 - 1.9 / fig.get_figwidth(), 1))
    return fig


def speedup_heatmap(table: pd.DataFrame, caption: str) -> Figure:
    """Format x precision, each cell the geometric-mean speedup of that precision over the
    same artifact family in FP32 (same model, source, format, runtime, device, threads and
    batch), across batch sizes; one panel per model. `table` is
    `workbench.study.speedup_over_fp32(frame)`; blank cells were not measured."""
    if table.empty:
        fig, (ax,) = new_figure(1, width=7, height=3)
        empty_panel(ax, "no precision with an FP32 twin was measured")
        return finish_figure(fig, caption)
    table = table.assign(
        row=table["source_framework"].astype(str)
        + "/"
        + table["format"].astype(str)
        + " ("
        + table["runtime"].astype(str)
        + ")",
        log_speedup=np.log(table["speedup"].astype(float)),
    )
    models = sorted(table["model"].unique())
    precisions = [
        p
        for p in ("fp32", "fp16", "bf16", "int8-dynamic", "int8-static", "int8")
        if p in set(table["precision"])
    ]
    rows = sorted(table["row"].unique())
    fig = Figure(figsize=(1.1 * len(precisions) * len(models) + 2.8, 0.32 * len(rows) + 1.9))
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    limit = np.log(8)  # colours saturate at 8x either way; the numbers in the cells do not
    for ax, model in zip(axes, models, strict=True):
        part = table[table["model"] == model]
        grid = (
            part.groupby(["row", "precision"])["log_speedup"]
            .mean()
            .unstack()
            .reindex(index=rows, columns=precisions)
        )
        values = grid.to_numpy(float)
        ax.imshow(
            np.clip(values, -limit, limit), cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto"
        )
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                speed = np.exp(value)
                label = f"{speed:.2g}x" if speed >= 0.01 else f"{speed:.1e}x"
                ax.text(
                    j,
                    i,
                    label,
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if abs(value) > 0.6 * limit else "black",
                )
        ax.set_xticks(range(len(precisions)))
        ax.set_xticklabels(precisions, fontsize=8)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(rows if ax is axes[0] else [""] * len(rows), fontsize=8)
        ax.set_title(f"{model}: speedup over FP32", fontsize=9)
    text = "\n".join(
        textwrap.wrap(
            caption
            + ". Cells: geometric mean over batch sizes (and threads); blue: faster than FP32, red: slower.",
            int(fig.get_figwidth() * 15),
        )
    )
    fig.text(0.01, 0.005, text, fontsize=7, color="#444", va="bottom")
    _tight(fig, rect=(0, 0.5 / fig.get_figheight(), 1, 1))
    return fig


def latency_spread(frame: pd.DataFrame, caption: str, top: int = 12) -> Figure:
    """p50 to p99 of each configuration (a bar per configuration, a tick at p90), at each
    model's smallest batch: each model's fastest by p99 (`top` in all) plus the source models, labelled
    directly, instead of dozens of overlapping CDF curves."""
    ok = _ok(frame).dropna(subset=["latency_ms_p50", "latency_ms_p99"])
    if ok.empty:
        fig, (ax,) = new_figure(1, width=9, height=3)
        empty_panel(ax, "no successful rows with p50 and p99")
        return finish_figure(fig, caption)
    smallest = ok.groupby("model")["batch_size"].transform("min")
    part = ok[ok["batch_size"] == smallest].sort_values("latency_ms_p99")
    native = part["format"].isin(["eager", "inductor", "keras"])
    per_model = max(3, top // max(1, part["model"].nunique()))
    fastest = part.groupby("model", sort=True).head(per_model)
    chosen = pd.concat([fastest, part[native]]).drop_duplicates(subset=["row_id"])
    chosen = chosen.sort_values("latency_ms_p99", ascending=False)
    fig, (ax,) = new_figure(1, width=10, height=0.3 * len(chosen) + 1.6)
    names = [
        f"{r['model']}: {r['source_framework']}/{r['format']}/{r['precision']} on {r['runtime']} b{int(r['batch_size'])}"
        for _, r in chosen.iterrows()
    ]
    ys = np.arange(len(chosen))
    colours = [_colour(p) for p in chosen["precision"]]
    ax.hlines(
        ys,
        chosen["latency_ms_p50"],
        chosen["latency_ms_p99"],
        colors=colours,
        linewidth=5,
        alpha=0.8,
    )
    ax.plot(chosen["latency_ms_p50"], ys, "|", color="black", markersize=9, label="p50")
    if chosen["latency_ms_p90"].notna().any():
        ax.plot(chosen["latency_ms_p90"], ys, "|", color="#555", markersize=6, label="p90")
    ax.set_yticks(ys)
    ax.set_yticklabels(names, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("latency per call (ms): bar from p50 to p99, colour = precision")
    ax.set_title(
        f"latency spread: each model's {per_model} lowest p99 at its smallest batch, and the "
        "source models"
    )
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return finish_figure(fig, caption)


def memory_by_runtime(frame: pd.DataFrame, caption: str) -> Figure:
    """Peak RSS of the measuring process per runtime, one dot per artifact at its largest
    batch, the heaviest labelled: a strip, not 150 bars."""
    ok = _ok(frame).dropna(subset=["peak_rss_bytes"])
    fig, (ax,) = new_figure(1, width=9, height=3.2)
    if ok.empty:
        empty_panel(ax, "no peak-RSS measurement")
        return finish_figure(fig, caption)
    keys = ["model", "source_framework", "format", "precision", "runtime", "device"]
    last = ok.sort_values("batch_size").groupby(keys, sort=True).tail(1)
    runtimes = sorted(last["runtime"].astype(str).unique())
    rng = np.random.default_rng(0)
    for i, runtime in enumerate(runtimes):
        part = last[last["runtime"] == runtime]
        ys = i + rng.uniform(-0.15, 0.15, len(part))
        ax.scatter(
            part["peak_rss_bytes"] / 2**20,
            ys,
            c=[_colour(p) for p in part["precision"]],
            s=18,
            alpha=0.8,
        )
        top = part.sort_values("peak_rss_bytes").tail(1)
        for _, r in top.iterrows():
            ax.annotate(
                f"{r['model']} {r['source_framework']}/{r['format']}/{r['precision']}",
                (r["peak_rss_bytes"] / 2**20, i),
                fontsize=6.5,
                xytext=(4, 6),
                textcoords="offset points",
            )
    ax.set_yticks(range(len(runtimes)))
    ax.set_yticklabels(runtimes, fontsize=8)
    ax.set_ylim(-0.6, len(runtimes) - 0.4)
    ax.set_xlabel("peak RSS of the measuring process (MiB), colour = precision")
    ax.set_title("memory by runtime (one dot per artifact, at its largest batch)")
    ax.grid(True, axis="x", alpha=0.3)
    return finish_figure(fig, caption)
