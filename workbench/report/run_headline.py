"""A run's headline for the index: best latency, best throughput and the recommended
configuration, written next to its report as `run-<id>.json` so the index can list
every task's headline without loading rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.analysis import tables
from workbench.analysis.recommend import TAIL, Constraints, describe_config, recommend
from workbench.atomic import write_json_atomic
from workbench.columns import format_value

ACCURACY_POINTS = 1.0  # the index's recommendation: within this many points of the best FP32


def headline(frame: pd.DataFrame, manifest: dict[str, Any]) -> dict[str, Any]:
    """Task, run id and the three headline figures (as text) of one run."""
    numbers = tables.headline_numbers(frame) if not frame.empty else {}
    has_accuracy = not frame.empty and frame["accuracy"].notna().any()
    constraints = Constraints(max_accuracy_drop=ACCURACY_POINTS if has_accuracy else None)
    rec = recommend(frame, constraints, top=0)
    if rec.best is not None:
        why = (
            f"lowest p99 within {ACCURACY_POINTS:g} point of the best FP32 accuracy"
            if has_accuracy
            else "lowest p99 with parity passing"
        )
        stat = rec.latency_stat
        recommended = (
            f"{describe_config(rec.best)}: {stat} "
            f"{format_value(rec.best[TAIL], 'ms')} ms ({why.replace('p99', stat)})"
        )
    else:
        recommended = "none: " + (
            "; ".join([*rec.notes, *rec.rejection_counts()]) or "no configuration passes"
        )
    tasks = sorted(set(frame["task"].dropna())) if not frame.empty else []
    return {
        "task": ", ".join(tasks) or str(manifest.get("config", {}).get("task", "?")),
        "run_id": manifest.get("run_id"),
        "created": str(manifest.get("created", ""))[:16].replace("T", " "),
        "rows": numbers.get("rows", "0"),
        "best latency": numbers.get("fastest p50", "-"),
        "best throughput": numbers.get("best throughput", "-"),
        "recommended": recommended,
    }


def write(frame: pd.DataFrame, manifest: dict[str, Any], out_dir: Path) -> Path:
    path = out_dir / f"run-{manifest['run_id']}.json"
    write_json_atomic(path, headline(frame, manifest), indent=1)
    return path


def read_all(out_dir: Path) -> list[dict[str, Any]]:
    """Every run headline in `out_dir`, newest run first."""
    out = []
    for path in sorted(out_dir.glob("run-*.json"), reverse=True):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and (out_dir / f"{path.stem}.html").is_file():
            out.append({**record, "href": f"{path.stem}.html"})
    return out
