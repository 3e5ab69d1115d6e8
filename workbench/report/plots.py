"""Matplotlib figures of result rows, returned as PNG bytes (for inline HTML)."""

from __future__ import annotations

import io

import pandas as pd


def _series_label(row: pd.Series) -> str:
    return f"{row['source_framework']}/{row['format']}/{row['precision']} on {row['runtime']}"


def throughput_vs_batch(frame: pd.DataFrame, caption: str) -> bytes:
    """Items/s against batch size, one line per artifact x runtime, one panel per model."""
    return _per_model_plot(frame, "throughput_items_per_s", "throughput (items/s)", caption)


def latency_vs_batch(frame: pd.DataFrame, caption: str) -> bytes:
    """p50 latency per call against batch size."""
    return _per_model_plot(frame, "latency_ms_p50", "p50 latency per batch (ms)", caption)


def _per_model_plot(frame: pd.DataFrame, column: str, ylabel: str, caption: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = frame[frame["status"] == "ok"].copy()
    models = sorted(ok["model"].dropna().unique()) or ["(none)"]
    fig, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 4.5), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        part = ok[ok["model"] == model]
        if part.empty:
            ax.text(0.5, 0.5, "no successful rows", ha="center", transform=ax.transAxes)
        part = part.assign(series=part.apply(_series_label, axis=1))
        for series, group in part.groupby("series"):
            group = group.sort_values("batch_size")
            ax.plot(group["batch_size"], group[column], marker="o", label=series)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size (items per call)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"model: {model}")
        ax.grid(True, which="both", alpha=0.3)
        if not part.empty:
            ax.legend(fontsize=7)
    fig.text(0.01, 0.01, caption, fontsize=8, color="#555")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()
