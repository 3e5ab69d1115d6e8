"""A self-contained HTML report of one run that opens with the answer: what to ship per
model, device and batch size, the speedup heatmap against FP32 and the failures with
their reasons; then small multiples; then every row in a sortable, filterable table
(inline JavaScript, nothing loaded from the network).

The markup is `templates/run.html.j2`; every string that comes from data (model names,
errors, paths) is escaped by the template's autoescape.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pandas as pd

from workbench import results
from workbench.analysis import tables
from workbench.analysis.recommend import per_batch_and_device
from workbench.columns import SUMMARY_COLUMNS, Column, format_value, is_missing
from workbench.errors import UserError
from workbench.report import fleet as cross
from workbench.report import plots, run_headline, templates
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


def _figure(title: str, fig: object, alt: str, note: str = "") -> dict[str, str]:
    """A plot section: the template inlines the PNG as a base64 data URI."""
    return {
        "title": title,
        "alt": alt,
        "note": note,
        "png_base64": base64.b64encode(plots.png(fig)).decode(),
    }


def _cell(value: object, kind: str) -> str | None:
    """A table cell's text in its column's format, text never cut (the page has room);
    None for a missing value (the template prints a dash)."""
    if is_missing(value):
        return None
    return str(value) if kind == "text" else format_value(value, kind)


def _sort_value(value: object, kind: str) -> str | None:
    """The number a sortable table sorts a cell by (None: sort by its text)."""
    if kind == "text" or kind == "bool" or is_missing(value):
        return None
    try:
        return f"{float(value):.6g}"
    except (TypeError, ValueError):
        return None


def _answers(frame: pd.DataFrame) -> list[dict[str, str]]:
    """The page's first lines: per model, device and batch, what to ship."""
    table = per_batch_and_device(frame)
    out = []
    for r in table.to_dict(orient="records"):
        if is_missing(r.get("latency ms")):
            text = r["recommended"]
        else:
            speedup = r["speedup"]
            times = f"{speedup:.2g}x" if speedup < 100 else f"{speedup:,.0f}x"
            accuracy = "" if is_missing(r.get("accuracy")) else f", accuracy {r['accuracy']:.3f}"
            text = (
                f"{r['recommended']}: {r['latency']} {format_value(r['latency ms'], 'ms')} ms, "
                f"{format_value(r['items/s'], 'rate')} items/s{accuracy}; p50 {times} faster "
                f"than the {r['over']} (of {r['of']} measured)"
            )
        out.append({"model": r["model"], "device": r["device"], "batch": r["batch"], "text": text})
    return out


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
    tasks = sorted(set(frame["task"].dropna())) if not frame.empty else []
    facet = "format" if frame.empty or frame["format"].nunique() > 1 else "runtime"
    figures = [
        _figure(
            "Latency by batch size",
            plots.facets(frame, "latency_ms_p50", "p50 per call (ms)", caption, facet=facet),
            "p50 latency vs batch, small multiples",
            f"One panel per model and {facet}; colour: precision, line style: source framework.",
        ),
        _figure(
            "Throughput by batch size",
            plots.facets(frame, "throughput_items_per_s", "items/s", caption, facet=facet),
            "throughput vs batch, small multiples",
        ),
        _figure(
            "Latency spread",
            plots.latency_spread(frame, caption),
            "p50 to p99 of the fastest configurations",
        ),
        _figure("Memory", plots.memory_by_runtime(frame, caption), "peak RSS by runtime"),
    ]
    fleet = manifest.get("config", {}).get("fleet")
    if isinstance(fleet, dict) and "host" in frame and frame["host"].notna().any():
        figures.append(_cross_host_figure(frame, fleet, caption))
    load = manifest.get("load_avg") or {}
    load_text = ", ".join(f"{when} {' / '.join(map(str, v))}" for when, v in load.items() if v)
    return templates.render(
        "run.html.j2",
        run_id=str(manifest.get("run_id")),
        tasks=", ".join(tasks) or "?",
        host=host,
        gpu=gpu_text,
        load=load_text,
        fingerprint_id=str(manifest.get("fingerprint_id")),
        counts=", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
        answers=_answers(frame),
        heatmap=_figure(
            "Speedup over FP32",
            plots.speedup_heatmap(tables.speedup_over_fp32(frame), caption),
            "speedup heatmap, format x precision against FP32",
        ),
        failures=tables.failures(frame).to_dict(orient="records"),
        figures=figures,
        fields=[c.header for c in TABLE_COLUMNS],
        rows=[
            [
                {"text": _cell(r.get(c.field), c.kind), "v": _sort_value(r.get(c.field), c.kind)}
                for c in TABLE_COLUMNS
            ]
            for r in frame.to_dict(orient="records")
        ],
    )


def _cross_host_figure(frame: pd.DataFrame, fleet: dict, caption: str) -> dict[str, str]:
    """A fleet run's configurations side by side per host group (workbench.report.fleet)."""
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
    run_headline.write(frame, chosen, out_dir)
    write_index(out_dir)
    return path
