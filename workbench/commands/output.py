"""What commands share on the way out: the `--output` flag and the rows it prints on
stdout, as a table, JSON lines or CSV."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

OUTPUTS = ("table", "json", "csv")
JSON_FIELDS_EXCLUDED = ("latencies_ms",)  # raw samples: in the stored run, not on stdout


def add_output(parser: argparse.ArgumentParser) -> argparse.Action:
    """The `--output table|json|csv` flag that `emit` reads."""
    return parser.add_argument(
        "--output",
        choices=OUTPUTS,
        default="table",
        help="table (default), json (one JSON line per row) or csv on stdout",
    )


def print_rows(rows: list[dict[str, Any]], output: str) -> None:
    """Result rows, the table showing the summary columns."""
    from workbench.columns import SUMMARY_COLUMNS  # lazy: pandas

    emit(rows, SUMMARY_COLUMNS, output)


def emit(rows: list[dict[str, Any]], columns: Sequence[Any], output: str) -> None:
    """Rows on stdout: JSON lines (every field but the raw latencies), CSV (the same), or a
    table of the given summary columns that hold a value."""
    if output == "json":
        for row in rows:
            clean = {k: _clean(v) for k, v in row.items() if k not in JSON_FIELDS_EXCLUDED}
            print(json.dumps(clean, default=str))
        return
    if output == "csv":
        # every field any row has (result rows: RESULT_FIELDS order), nested values as JSON
        fields = [
            k
            for k in dict.fromkeys(k for row in rows for k in row)
            if k not in JSON_FIELDS_EXCLUDED
        ]
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_cell(row.get(k)) for k in fields})
        return
    print_table(rows, columns)


def print_table(rows: list[dict[str, Any]], columns: Sequence[Any]) -> None:
    """A rich table: one line per row, numbers right-aligned in their column's format. On a
    terminal it fits the width; piped, lines are never wrapped. Without rich installed, a
    plain table of the same cells."""
    from workbench.columns import format_value, used_columns  # lazy: pandas

    used = used_columns(rows, tuple(columns))
    try:
        # lazy: rich (optional, and slow to import for the commands that print no table)
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        cells = [[c.header for c in used]]
        cells += [[format_value(row.get(c.field), c.kind) for c in used] for row in rows]
        widths = [max(len(line[i]) for line in cells) for i in range(len(used))]
        for line in cells:
            print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in used:
        numeric = column.kind not in ("text", "bool")
        table.add_column(column.header, justify="right" if numeric else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(format_value(row.get(c.field), c.kind) for c in used))
    terminal = sys.stdout.isatty()
    console = Console(width=None if terminal else 1000, soft_wrap=not terminal)
    console.print(table)


def _clean(value: Any) -> Any:
    """NaN as null: JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _csv_cell(value: Any) -> Any:
    value = _clean(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return value
