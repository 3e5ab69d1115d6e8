"""Cross-host comparison of a fleet run: one line per configuration, one column per host
group.

A fleet run measures each configuration once per host group (`workbench.fleet`): a
class of identical hosts, or each host alone with `--each-host`. This lays those rows
side by side (p50 latency per group and how much slower the slowest is than the
fastest) and plots them. Hosts whose software differs from the client's carry
`host_warning`; `hosts_table` lists each host with that flag.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from workbench.report.plots import empty_panel, finish_figure

CONFIG = ["model", "source_framework", "format", "precision", "runtime", "device", "batch_size"]
RATIO = "slowest/fastest"


def _config_columns(frame: pd.DataFrame, by_threads: bool) -> list[str]:
    cols = [c for c in CONFIG if c in frame]
    if "seq_len" in frame and frame["seq_len"].notna().any():
        cols.append("seq_len")
    if by_threads:
        cols.insert(cols.index("device") + 1, "threads")
    return cols


def group_labels(frame: pd.DataFrame, each_host: bool) -> pd.Series:
    """Each row's column in the comparison: its host (`each_host`), else its host class
    named by the hosts in it (e.g. `host-0+host-1`), flagged `(!)` when one of them
    differs in software from the client."""
    if each_host:
        names = frame["host"].astype(str)
        flagged = frame["host_warning"].notna()
        return names.where(~flagged, names + " (!)")
    labels = {}
    for cls, part in frame.groupby("host_class"):
        name = "+".join(sorted(part["host"].astype(str).unique()))
        labels[cls] = name + (" (!)" if part["host_warning"].notna().any() else "")
    return frame["host_class"].map(labels)


def cross_host_table(
    frame: pd.DataFrame,
    value: str = "latency_ms_p50",
    by_threads: bool = True,
    each_host: bool = False,
) -> pd.DataFrame:
    """Configurations x host groups of `value` (ok rows only), plus `slowest/fastest`
    where two or more groups measured it. `by_threads=False` (each host ran at its own
    core count) keeps threads out of the configuration, so hosts line up."""
    ok = frame[(frame["status"] == "ok") & frame["host"].notna()]
    if ok.empty:
        return pd.DataFrame()
    cols = _config_columns(ok, by_threads)
    keyed = ok.assign(
        group=group_labels(ok, each_host),
        **{c: ok[c].astype(object).where(ok[c].notna(), "-") for c in cols},
    )
    wide = keyed.pivot_table(index=cols, columns="group", values=value, aggfunc="median")
    wide.columns = [str(c) for c in wide.columns]
    groups = list(wide.columns)
    measured = wide[groups].notna().sum(axis=1)
    ratio = wide[groups].max(axis=1) / wide[groups].min(axis=1)
    wide[RATIO] = ratio.where(measured >= 2)
    return wide.reset_index()


def hosts_table(manifest: dict[str, Any]) -> pd.DataFrame:
    """The run's hosts: name, class, CPU, cores, GPUs and any software mismatch flag."""
    hosts = manifest.get("hosts") or {}
    cols = ["host", "host_class", "arch", "cpu", "cores", "gpus", "fingerprint_id", "warning"]
    return pd.DataFrame([{c: h.get(c) for c in cols} for h in hosts.values()], columns=cols)


def cross_host_plot(
    table: pd.DataFrame, caption: str, value_label: str = "p50 latency (ms)"
) -> Figure:
    """Grouped horizontal bars: each configuration, one bar per host group."""
    fig = Figure(figsize=(8.0, max(3.0, 0.45 * max(len(table), 1) + 1.8)))
    ax = fig.subplots()
    skip = {*CONFIG, "threads", "seq_len", RATIO}
    groups = [c for c in table.columns if c not in skip]
    if table.empty or not groups:
        empty_panel(ax, "no ok rows with a host to compare")
        return finish_figure(fig, caption)
    labels = [
        f"{r['model']} {r['format']}/{r['precision']} {r['runtime']} b{r['batch_size']}"
        + (f" t{r['threads']}" if "threads" in table else "")
        for _, r in table.iterrows()
    ]
    y = np.arange(len(table))
    height = 0.8 / len(groups)
    for i, group in enumerate(groups):
        ax.barh(y + i * height, table[group].astype(float), height, label=group)
    ax.set_yticks(y + 0.4 - height / 2, labels, fontsize=8)
    ax.invert_yaxis()
    values = table[groups].to_numpy(dtype=float)
    finite = values[np.isfinite(values) & (values > 0)]
    if finite.size and finite.max() / finite.min() > 100:
        ax.set_xscale("log")
    ax.set_xlabel(value_label)
    ax.set_title("Across hosts (lower is faster)")
    ax.legend(fontsize=8)
    return finish_figure(fig, caption)
