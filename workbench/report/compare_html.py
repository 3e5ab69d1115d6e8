"""The HTML diff report of two runs (`workbench compare --html`): verdict counts, a
fingerprint warning, the ratio plot and a sortable, filterable table of every change."""

from __future__ import annotations

import base64
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.analysis.compare import Comparison
from workbench.columns import is_missing
from workbench.report import plots, templates

# (header, table column, kind): kind picks the format and the sort value
COLUMNS = [
    ("configuration", "config", "text"),
    ("verdict", "verdict", "verdict"),
    ("p50 change", "p50 change", "pct"),
    ("95% CI of B/A", None, "ci"),
    ("floor", "floor", "floor"),
    ("floor from", "floor source", "text"),
    ("p50 A ms", "p50 A ms", "num"),
    ("p50 B ms", "p50 B ms", "num"),
    ("p99 change", "p99 change", "pct"),
    ("p99 A ms", "p99 A ms", "num"),
    ("p99 B ms", "p99 B ms", "num"),
    ("throughput change", "throughput change", "pct"),
    ("items/s B", "items/s B", "num"),
]


def _cell(row: dict[str, Any], column: str | None, kind: str) -> dict[str, Any]:
    if kind == "ci":
        low, high = row.get("ratio CI low"), row.get("ratio CI high")
        if is_missing(low):
            return {"text": "\u2013", "v": None, "cls": None}
        return {"text": f"{low:.3f}\u2013{high:.3f}", "v": low, "cls": None}
    value = row.get(column)
    if is_missing(value):
        return {"text": "\u2013", "v": None, "cls": None}
    if kind == "floor":
        return {"text": f"{value:.0%}", "v": f"{value:.6g}", "cls": None}
    if kind == "pct":
        return {"text": f"{value:+.1%}", "v": f"{value:.6g}", "cls": None}
    if kind == "num":
        return {
            "text": f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}",
            "v": f"{value:.6g}",
            "cls": None,
        }
    if kind == "verdict":
        return {"text": value, "v": None, "cls": value if value in ("slower", "faster") else None}
    return {"text": str(value), "v": None, "cls": None}


def _config(row: pd.Series) -> str:
    return " ".join(str(v) for v in row.to_dict().values() if not is_missing(v))


def render(comparison: Comparison, caption: str) -> str:
    fig = plots.compare_ratios(comparison.table, comparison.floor, caption)
    records = comparison.table.to_dict(orient="records")
    return templates.render(
        "compare.html.j2",
        run_a=comparison.run_a,
        run_b=comparison.run_b,
        floor=f"{comparison.floor:.0%}",
        now=datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        summary=comparison.summary(),
        fingerprint_diff=comparison.fingerprint_diff,
        warnings=comparison.warnings,
        calibration=None
        if comparison.calibration is None
        else (
            f"A/A calibration from {'; '.join(comparison.calibration.sources)}: each "
            "configuration's floor is the larger of its own between-run drift and the "
            f"p{comparison.calibration.quantile * 100:.0f} of all configurations' "
            f"({math.expm1(comparison.calibration.run_wide):.0%})"
        ),
        figure={
            "alt": "median latency ratio B/A per configuration",
            "png_base64": base64.b64encode(plots.png(fig)).decode(),
        },
        headers=[h for h, _, _ in COLUMNS],
        rows=[[_cell(r, c, k) for _, c, k in COLUMNS] for r in records],
        only_a=[_config(r) for _, r in comparison.only_a.iterrows()],
        only_b=[_config(r) for _, r in comparison.only_b.iterrows()],
    )


def write(comparison: Comparison, path: Path, caption: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(comparison, caption), encoding="utf-8")
    return path
