"""`reports/index.html`: each task's headline (from its newest run report and from its
notebook), every notebook report with its status, then every run and compare report. Rebuilt whenever either kind of report is written.

The notebook runner leaves `notebooks.json` (one record per notebook of the last
run) in the reports folder; run reports are the `run-*.html` files. The markup is
`templates/index.html.j2`; every string from data (names, errors, headline values)
is escaped by the template's autoescape.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench.columns import headline_value
from workbench.report import run_headline, templates

STATUS_FILE = "notebooks.json"


def read_status(out_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None


def _notebook(r: dict[str, Any]) -> dict[str, Any]:
    """One notebook record with every field the template reads (missing ones None)."""
    state = r.get("status", "?")
    duration = r.get("duration_s")
    links = [
        (r.get("html"), "report" if state == "ok" else "partial report"),
        (r.get("executed"), "executed .ipynb"),
    ]
    return {
        "name": r.get("name"),
        "status": state,
        "time": None if duration is None else f"{duration:.0f} s",
        "profile": r.get("profile"),
        "finished": r.get("finished"),
        "headline": _readable(r.get("headline") or {}),
        "links": [(href, text) for href, text in links if href],
        "error": r.get("error"),
        "html": r.get("html"),
        "executed": r.get("executed"),
    }


def _readable(headline: dict[str, Any]) -> dict[str, Any]:
    """A notebook's recorded headline numbers as the CLI writes them (`225 QPS`)."""
    return {k: None if v is None else headline_value(k, v) for k, v in headline.items()}


def _status(status: dict[str, Any]) -> dict[str, Any]:
    records = status.get("notebooks", [])
    total = sum(r.get("duration_s") or 0 for r in records)
    notebooks = [_notebook(r) for r in records]
    return {
        "profile": status.get("profile"),
        "started": status.get("started"),
        "host": status.get("host"),
        "counts": {
            s: sum(r.get("status") == s for r in records) for s in ("ok", "failed", "skipped")
        },
        "total_s": f"{total:.0f} s",
        "notebooks": notebooks,
        "failed": [n for n in notebooks if n["status"] == "failed"],
    }


def _task_headlines(out_dir: Path, status: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One entry per task and source: the newest run report's headline for each task
    (best latency, best throughput, recommended configuration), then each notebook's
    recorded headline numbers."""
    seen: set[str] = set()
    out = []
    for record in run_headline.read_all(out_dir):
        if record.get("task") in seen:
            continue
        seen.add(record.get("task"))
        values = {k: record.get(k) for k in ("recommended", "best latency", "best throughput")}
        out.append(
            {
                "task": record.get("task"),
                "source": f"run {record.get('run_id')}",
                "href": record["href"],
                "when": record.get("created"),
                "values": values,
            }
        )
    for r in (status or {}).get("notebooks", []):
        if r.get("headline"):
            out.append(
                {
                    "task": r.get("name"),
                    "source": f"notebook ({r.get('profile') or '?'} profile)",
                    "href": r.get("html"),
                    "when": r.get("finished"),
                    "values": _readable(r["headline"]),
                }
            )
    return sorted(out, key=lambda e: str(e["task"]))


def render_index(out_dir: Path) -> str:
    status = read_status(out_dir)
    runs = sorted(out_dir.glob("run-*.html"), reverse=True)
    compares = sorted(out_dir.glob("compare-*.html"), reverse=True)
    return templates.render(
        "index.html.j2",
        now=datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        headlines=_task_headlines(out_dir, status),
        status=_status(status) if status else None,
        runs=[{"href": p.name, "text": p.stem} for p in runs],
        compares=[{"href": p.name, "text": p.stem} for p in compares],
    )


def write_index(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    path.write_text(render_index(out_dir), encoding="utf-8")
    return path
