"""Captions, the reports folder and the few headline numbers each notebook records.

Every figure's caption names the host and the date; `record_headline` writes a
notebook's headline numbers to `<reports>/headlines/<notebook>.json` for the index
page and the summary notebook.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench import results
from workbench.atomic import write_json_atomic
from workbench.columns import headline_value
from workbench.env import fingerprint

REPORTS_ENV = "WORKBENCH_REPORTS"
HEADLINES = "headlines"


def _manifests(run_ids: Iterable[str]) -> list[dict[str, Any]]:
    wanted = set(run_ids)
    return [m for m in results.load_manifests() if m.get("run_id") in wanted]


def host_text(fingerprint: dict[str, Any]) -> str:
    cpu = fingerprint.get("cpu", {})
    gpu = fingerprint.get("gpu", {})
    gpus = ", ".join(
        g.get("name", "?") if isinstance(g, dict) else str(g) for g in gpu.get("gpus", [])
    )
    return (
        f"{fingerprint.get('hostname', '?')}: {cpu.get('model', '?')}, "
        f"{cpu.get('logical_cores', '?')} cores, GPU: {gpus or 'none'}"
    )


def caption(frame: pd.DataFrame) -> str:
    """`host: <name>: <cpu>, N cores, GPU: ...; measured <date> UTC; run <id>`."""
    run_ids = sorted(set(frame["run_id"].dropna())) if "run_id" in frame else []
    manifests = _manifests(run_ids)
    if manifests:
        host = host_text(manifests[0].get("fingerprint", {}))
    else:
        host = host_text(fingerprint())
    stamps = sorted(frame["timestamp"].dropna()) if "timestamp" in frame else []
    date = (stamps[0] if stamps else datetime.now(UTC).isoformat())[:16].replace("T", " ")
    runs = ", ".join(run_ids) if run_ids else "-"
    return f"host {host}; measured {date} UTC; run {runs}"


def reports_dir() -> Path:
    """Where reports go: $WORKBENCH_REPORTS, else `reports/` of the enclosing checkout
    (found upwards from the current directory, so a notebook opened in notebooks/ works),
    else ./reports."""
    if os.environ.get(REPORTS_ENV):
        return Path(os.environ[REPORTS_ENV])
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "reports").is_dir() and (folder / "pyproject.toml").is_file():
            return folder / "reports"
    return here / "reports"


def record_headline(notebook: str, values: dict[str, Any], profile: str) -> Path:
    """Write a notebook's few headline numbers to `<reports>/headlines/<notebook>.json`."""
    folder = reports_dir() / HEADLINES
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{notebook}.json"
    payload = {
        "notebook": notebook,
        "profile": profile,
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": host_text(fingerprint()),
        "values": {str(k): _plain(v) for k, v in values.items()},
    }
    write_json_atomic(path, payload, indent=1)
    return path


def _plain(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def read_headlines(folder: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every notebook's headline record (notebook name -> record)."""
    folder = folder or reports_dir() / HEADLINES
    out = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        out[record.get("notebook", path.stem)] = record
    return out


def headlines_table(records: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per (notebook, headline) for the summary."""
    rows = [
        {
            "notebook": name,
            "headline": key,
            "value": headline_value(key, value),
            "profile": record.get("profile"),
            "written (UTC)": str(record.get("written", ""))[:16].replace("T", " "),
        }
        for name, record in sorted(records.items())
        for key, value in record.get("values", {}).items()
    ]
    return pd.DataFrame(rows, columns=["notebook", "headline", "value", "profile", "written (UTC)"])
