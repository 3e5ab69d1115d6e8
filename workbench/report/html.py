"""A self-contained HTML report of one run: environment, plots inline, the result table.

Every string that comes from data (model names, errors, paths) is escaped.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from workbench import results
from workbench.errors import UserError
from workbench.report import plots
from workbench.report.index import write_index

TABLE_FIELDS = [
    "status",
    "task",
    "model",
    "source_framework",
    "format",
    "precision",
    "runtime",
    "provider",
    "device",
    "threads",
    "batch_size",
    "latency_ms_p50",
    "latency_ms_p99",
    "latency_ms_mean",
    "throughput_items_per_s",
    "n_iterations",
    "stable",
    "model_size_bytes",
    "peak_rss_bytes",
    "parity_max_abs_error",
    "parity_pass",
    "accuracy",
    "error",
]


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _figure(fig: object, alt: str) -> str:
    return _img(plots.png(fig), alt)


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def render(frame: pd.DataFrame, manifest: dict) -> str:
    fp = manifest.get("fingerprint", {})
    cpu = fp.get("cpu", {})
    host = f"{cpu.get('model', '?')}, {cpu.get('logical_cores', '?')} cores"
    gpu = fp.get("gpu", {})
    gpu_text = ", ".join(
        g.get("name", "?") if isinstance(g, dict) else str(g) for g in gpu.get("gpus", [])
    ) or gpu.get("gpu_reason", "none")
    caption = f"host: {host}; run {manifest.get('run_id')} ({manifest.get('created', '')[:19]} UTC)"
    rows = "".join(
        "<tr>" + "".join(f"<td>{_cell(r.get(f))}</td>" for f in TABLE_FIELDS) + "</tr>"
        for r in frame.to_dict(orient="records")
    )
    head = "".join(f"<th>{html.escape(f)}</th>" for f in TABLE_FIELDS)
    counts = frame["status"].value_counts().to_dict() if not frame.empty else {}
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>workbench run {html.escape(str(manifest.get("run_id")))}</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:2px 6px}}img{{max-width:100%}}</style></head><body>
<h1>workbench run {html.escape(str(manifest.get("run_id")))}</h1>
<p>Host: {html.escape(host)}; GPU: {html.escape(gpu_text)}; fingerprint
{html.escape(str(manifest.get("fingerprint_id")))}; rows by status:
{html.escape(str(counts))}.</p>
<h2>Throughput</h2>{_figure(plots.throughput_vs_batch(frame, caption), "throughput vs batch")}
<h2>Latency</h2>{_figure(plots.latency_vs_batch(frame, caption), "p50 latency vs batch")}
<h2>Latency distribution</h2>{_figure(plots.latency_cdf(frame, caption), "latency CDF")}
<h2>Memory</h2>{_figure(plots.memory(frame, caption), "memory per configuration")}
<h2>All rows</h2><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>
</body></html>"""


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
