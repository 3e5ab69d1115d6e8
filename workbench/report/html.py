"""A self-contained HTML report of one run: environment, plots inline, the result table.

The markup is `templates/run.html.j2`; every string that comes from data (model names,
errors, paths) is escaped by the template's autoescape.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pandas as pd

from workbench import results
from workbench.columns import SUMMARY_COLUMNS, Column, format_value, is_missing
from workbench.errors import UserError
from workbench.report import plots, templates
from workbench.report.index import write_index

# The run report shows every configuration's summary, plus what ran it (provider) and
# the parity error, in the summary columns' own formats.
TABLE_COLUMNS: tuple[Column, ...] = (
    *SUMMARY_COLUMNS[:6],
    Column("task", "task", "text"),
    Column("provider", "provider", "text"),
    *SUMMARY_COLUMNS[6:-1],
    Column("parity_max_abs_error", "parity max abs err", "ratio"),
    SUMMARY_COLUMNS[-1],
)


def _figure(title: str, fig: object, alt: str) -> dict[str, str]:
    """A plot section: the template inlines the PNG as a base64 data URI."""
    return {"title": title, "alt": alt, "png_base64": base64.b64encode(plots.png(fig)).decode()}


def _cell(value: object, kind: str) -> str | None:
    """A table cell's text in its column's format, text never cut (the page has room);
    None for a missing value (the template prints a dash)."""
    if is_missing(value):
        return None
    return str(value) if kind == "text" else format_value(value, kind)


def render(frame: pd.DataFrame, manifest: dict) -> str:
    fp = manifest.get("fingerprint", {})
    cpu = fp.get("cpu", {})
    host = f"{cpu.get('model', '?')}, {cpu.get('logical_cores', '?')} cores"
    gpu = fp.get("gpu", {})
    gpu_text = ", ".join(
        g.get("name", "?") if isinstance(g, dict) else str(g) for g in gpu.get("gpus", [])
    ) or gpu.get("gpu_reason", "none")
    caption = f"host: {host}; run {manifest.get('run_id')} ({manifest.get('created', '')[:19]} UTC)"
    counts = frame["status"].value_counts().to_dict() if not frame.empty else {}
    figures = [
        _figure("Throughput", plots.throughput_vs_batch(frame, caption), "throughput vs batch"),
        _figure("Latency", plots.latency_vs_batch(frame, caption), "p50 latency vs batch"),
        _figure("Latency distribution", plots.latency_cdf(frame, caption), "latency CDF"),
        _figure("Memory", plots.memory(frame, caption), "memory per configuration"),
    ]
    fleet = manifest.get("config", {}).get("fleet")
    if isinstance(fleet, dict) and "host" in frame and frame["host"].notna().any():
        figures.append(_cross_host_figure(frame, fleet, caption))
    return templates.render(
        "run.html.j2",
        run_id=str(manifest.get("run_id")),
        host=host,
        gpu=gpu_text,
        fingerprint_id=str(manifest.get("fingerprint_id")),
        counts=str(counts),
        figures=figures,
        fields=[c.header for c in TABLE_COLUMNS],
        rows=[
            [_cell(r.get(c.field), c.kind) for c in TABLE_COLUMNS]
            for r in frame.to_dict(orient="records")
        ],
    )


def _cross_host_figure(frame: pd.DataFrame, fleet: dict, caption: str) -> dict[str, str]:
    """A fleet run's configurations side by side per host group (workbench.report.fleet)."""
    from workbench.report import fleet as cross

    each = bool(fleet.get("each_host"))
    table = cross.cross_host_table(frame, by_threads=not fleet.get("host_threads"), each_host=each)
    fig = cross.cross_host_plot(table, caption + "; (!) marks hosts whose software differs")
    return _figure("Across hosts", fig, "p50 latency per configuration and host")


def write_run_report(run_id: str | None, out_dir: Path) -> Path:
    """Write `<out_dir>/run-<run_id>.html` and `<out_dir>/index.html` linking every report."""
    manifests = results.load_manifests()
    if not manifests:
        raise UserError("no runs yet: run `workbench bench ...` first")
    chosen = (
        manifests[-1]
        if run_id is None
        else next((m for m in manifests if m.get("run_id") == run_id), None)
    )
    if chosen is None:
        raise UserError(
            f"no run {run_id!r}: known runs are " + ", ".join(m["run_id"] for m in manifests[-5:])
        )
    frame = results.load(run_ids=[chosen["run_id"]])
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"run-{chosen['run_id']}.html"
    path.write_text(render(frame, chosen))
    write_index(out_dir)
    return path
