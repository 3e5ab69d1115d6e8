"""The summary columns of result rows, listed once, with their headers and number formats.

The CLI's table, the notebooks' `study.table` and the HTML run report all show
these columns with these headers, so a figure reads the same everywhere. Each
column has a kind that fixes its format: an iteration count is `23,720`, never
`2.372e+04`; a latency keeps three significant digits; sizes are in MB.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Column:
    field: str  # the result field (workbench.results.RESULT_FIELDS)
    header: str  # with its unit
    kind: str  # text, count, ms, rate, mb, ratio, bool


SUMMARY_COLUMNS: tuple[Column, ...] = (
    Column("status", "status", "text"),
    Column("host", "host", "text"),  # fleet sweeps only
    Column("model", "model", "text"),
    Column("source_framework", "src", "text"),
    Column("format", "format", "text"),
    Column("precision", "prec", "text"),
    Column("runtime", "runtime", "text"),
    Column("device", "device", "text"),
    Column("threads", "thr", "count"),
    Column("batch_size", "batch", "count"),
    Column("seq_len", "seq", "count"),  # text tasks: tokens per item
    Column("latency_ms_p50", "p50 ms", "ms"),
    Column("latency_ms_p99", "p99 ms", "ms"),
    Column("latency_ms_mean", "mean ms", "ms"),
    Column("throughput_items_per_s", "items/s", "rate"),
    Column("n_iterations", "n", "count"),
    Column("pre_ms_p50", "pre ms", "ms"),
    Column("e2e_model_ms_p50", "e2e model ms", "ms"),
    Column("post_ms_p50", "post ms", "ms"),
    Column("e2e_ms_p50", "e2e ms", "ms"),
    Column("model_size_bytes", "size MB", "mb"),
    Column("peak_rss_bytes", "peak RSS MB", "mb"),
    Column("stable", "stable", "bool"),
    Column("parity_pass", "parity", "bool"),
    Column("accuracy", "accuracy", "ratio"),
    Column("error", "error", "text"),
)

MAX_TEXT = 60  # longer text (errors) is cut in tables; the full text stays in the row


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and other containers
        return False


def format_value(value: Any, kind: str) -> str:
    """`value` as a table shows it; `-` when missing."""
    if is_missing(value):
        return "-"
    if kind == "count" and isinstance(value, (int, float)) and float(value).is_integer():
        return f"{int(value):,}"
    if kind == "mb" and isinstance(value, (int, float)):
        return f"{value / 1e6:.3g}" if value < 1e9 else f"{value / 1e6:,.0f}"
    if kind in ("ms", "rate", "ratio", "count") and isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}" if kind == "ratio" else f"{value:.3g}"
    text = str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


def headline_value(key: str, value: Any) -> str:
    """A recorded headline number as the CLI writes it, its unit taken from the headline's
    name (the first of QPS, items/s, ms it names): `225 QPS`, `93,230 items/s`, `3.25 ms`;
    another number to 4 significant digits; text as it is."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-" if is_missing(value) else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "-"
    words = re.split(r"[\s(),:;]+", key.lower())
    for unit, kind, shown in (("qps", "rate", "QPS"), ("items/s", "rate", "items/s")):
        if unit in words:
            return f"{format_value(value, kind)} {shown}"
    if "ms" in words:
        return f"{format_value(value, 'ms')} ms"
    if isinstance(value, int):
        return f"{value:,}"
    return format_value(value, "ratio")


def formatters(columns: tuple[Column, ...]) -> dict[str, Any]:
    """Per header, the function that writes its values as the CLI's table does (for a
    pandas Styler over `summary_table`'s output; sizes there are already in MB)."""
    out = {}
    for column in columns:
        kind = "ratio" if column.kind == "mb" else column.kind
        out[column.header] = lambda v, kind=kind: format_value(v, kind)
    return out


def used_columns(rows: list[dict[str, Any]], columns: tuple[Column, ...]) -> list[Column]:
    """The columns that hold a value in at least one row."""
    return [c for c in columns if any(not is_missing(r.get(c.field)) for r in rows)]


def summary_table(
    frame: pd.DataFrame, columns: tuple[Column, ...] = SUMMARY_COLUMNS
) -> pd.DataFrame:
    """The summary columns of `frame` under their headers, values as measured (numbers stay
    numbers, for sorting and plotting; sizes converted to MB)."""
    out = {}
    for column in columns:
        values = frame[column.field] if column.field in frame else pd.Series([None] * len(frame))
        if column.kind == "mb":
            values = values.map(lambda v: None if is_missing(v) else float(v) / 1e6)
        out[column.header] = list(values)
    return pd.DataFrame(out)
