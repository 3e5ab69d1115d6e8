"""The sections every task notebook shares, one call each.

The task template (`templates/task_notebook.py`) calls these, so the seven task notebooks
hold one line per shared section and the logic is tested here once. Each function shows
what its cell shows (tables, printed lines, figures) and returns only what a later cell
uses; `workbench.study.task_template` checks every task notebook against the template.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from workbench.analysis import tables
from workbench.analysis.recommend import (
    Constraints,
    Recommendation,
    per_batch_and_device,
    readable,
    recommend,
)
from workbench.analysis.tables import end_to_end, headline_numbers, speedup_over_fp32
from workbench.columns import SUMMARY_COLUMNS, format_value, formatters
from workbench.report import plots
from workbench.study import headlines
from workbench.study.sweeps import describe, run
from workbench.sweep import from_profile

# Notebook parameters that are sweep axes (`workbench.sweep.from_profile` arguments); a
# task notebook declares the ones its task has (text tasks add `seq_lens`).
SWEEP_PARAMETERS = (
    "models",
    "frameworks",
    "formats",
    "precisions",
    "batch_sizes",
    "devices",
    "threads",
    "seq_lens",
)


def show(*objects: Any) -> None:
    """Display each object as a cell output (a table, a figure); tests replace it to collect
    what a section shows."""
    from IPython.display import display  # lazy: IPython, loaded only where something is shown

    display(*objects)


def display_options() -> None:
    """Pandas settings for the wide result tables: 40 columns, 200 characters a line."""
    pd.set_option("display.max_columns", 40)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_colwidth", 80)


def run_task(task: str, params: Mapping[str, Any]) -> tuple[pd.DataFrame, str]:
    """Measure `task` under the notebook's profile, each sweep parameter it declares on top
    (an empty one: the profile's preset). Prints what the sweep measures, its progress and
    the caption; returns the rows and the caption (host and date) every figure carries."""
    axes = {name: params[name] for name in SWEEP_PARAMETERS if name in params}
    if "max_accuracy_drop" in params:  # the INT8 quality budget its rows are judged with
        axes["max_accuracy_drop"] = float(params["max_accuracy_drop"])
    sweep = from_profile(task, params["profile"], **axes)
    print(describe(sweep))
    frame = run(sweep)
    text = headlines.caption(frame)
    print(text)
    return frame, text


def what_to_ship(frame: pd.DataFrame) -> Recommendation:
    """Prints the best configuration per model, device and batch size, then the one
    `workbench recommend` picks at the smallest batch measured; returns that pick."""
    print(readable(per_batch_and_device(frame)).to_string(index=False))
    smallest = int(frame["batch_size"].min())
    choice = recommend(frame, Constraints(batch_size=smallest))
    print(choice.summary())
    return choice


def table(frame: pd.DataFrame) -> Any:
    """The summary table of the rows (`analysis.tables.table`), its numbers written as the
    CLI writes them (`3.25`, `93,230`), in a pandas Styler: the values stay numbers."""
    summary = tables.table(frame)
    used = [c for c in SUMMARY_COLUMNS if c.header in summary]
    return summary.style.format(formatters(tuple(used))).hide(axis="index")


def styled(table: pd.DataFrame) -> Any:
    """`table` in a pandas Styler whose numbers read as the CLI writes them: milliseconds
    and rates to 3 significant digits with thousands separators, bytes as MB, ratios to 4
    digits; integers as counts (the values stay numbers)."""
    formats: dict[str, Any] = {}
    for name in table.columns:
        if not pd.api.types.is_numeric_dtype(table[name]) or pd.api.types.is_bool_dtype(
            table[name]
        ):
            continue
        text = str(name).lower()
        if "bytes" in text:
            kind = "mb"
        elif "ms" in text.replace("(", " ").replace("_", " ").split() or "items/s" in text:
            kind = "ms"
        elif pd.api.types.is_integer_dtype(table[name]) or text in ("batch", "threads"):
            kind = "count"
        else:
            kind = "ratio"
        formats[name] = lambda v, kind=kind: format_value(v, kind)
    return table.style.format(formats).hide(axis="index")


def show_speedups(frame: pd.DataFrame, caption: str) -> pd.DataFrame:
    """Shows each precision's speedup over FP32 (the non-FP32 rows) and its bar plot;
    returns the whole speedup table (the heatmap's input)."""
    speedups = speedup_over_fp32(frame)
    shown = speedups[speedups["precision"] != "fp32"].reset_index(drop=True)
    show(styled(shown), plots.speedup(speedups, caption))
    return speedups


def show_end_to_end(frame: pd.DataFrame, caption: str) -> None:
    """Shows the end-to-end table (pre-processing, model, post-processing per
    configuration and batch) and its stage plot."""
    table = end_to_end(frame)
    show(styled(table), plots.end_to_end_stages(table, caption))


def record_task_headline(
    task: str, frame: pd.DataFrame, choice: Recommendation, profile: str
) -> None:
    """Records the task's headline numbers and the recommended configuration for the
    summary notebook and the reports index, and prints them."""
    headline = headline_numbers(frame)
    headline["recommended"] = choice.summary()
    headlines.record_headline(task, headline, profile)
    for key, value in headline.items():
        print(f"{key}: {value}")
