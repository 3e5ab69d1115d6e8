"""`reports/index.html`: every notebook report with its status and headline numbers,
then every run report. Rebuilt whenever either kind of report is written.

The notebook runner leaves `notebooks.json` (one record per notebook of the last
run) in the reports folder; run reports are the `run-*.html` files. Every string
from data (names, errors, headline values) is escaped.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STATUS_FILE = "notebooks.json"
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:80em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 8px;vertical-align:top;text-align:left}
th{background:#f3f3f3}.ok{color:#1a7f37;font-weight:bold}
.failed{color:#c62828;font-weight:bold}.skipped{color:#777}
pre{white-space:pre-wrap;margin:0;font-size:12px;max-width:50em}
td.time{white-space:nowrap}
ul.headline{margin:0;padding-left:1.1em}.muted{color:#666}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def read_status(out_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None


def _link(href: str | None, text: str) -> str:
    return f'<a href="{_e(href)}">{_e(text)}</a>' if href else ""


def _headline(values: dict[str, Any]) -> str:
    if not values:
        return '<span class="muted">&ndash;</span>'
    items = "".join(f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in values.items())
    return f'<ul class="headline">{items}</ul>'


def _notebook_section(status: dict[str, Any]) -> str:
    records = status.get("notebooks", [])
    rows = []
    for r in records:
        state = r.get("status", "?")
        links = " &middot; ".join(
            filter(
                None,
                [
                    _link(r.get("html"), "report" if state == "ok" else "partial report"),
                    _link(r.get("executed"), "executed .ipynb"),
                ],
            )
        )
        error = f"<pre>{_e(r.get('error'))}</pre>" if r.get("error") else ""
        duration = r.get("duration_s")
        rows.append(
            f'<tr id="nb-{_e(r.get("name"))}"><td>{_e(r.get("name"))}</td>'
            f'<td class="{_e(state)}">{_e(state)}</td>'
            f'<td class="time">{"" if duration is None else f"{duration:.0f} s"}</td>'
            f'<td class="time">{_e(r.get("profile"))}<br>{_e(r.get("finished"))}</td>'
            f"<td>{_headline(r.get('headline') or {})}</td><td>{links}</td><td>{error}</td></tr>"
        )
    failed = [r for r in records if r.get("status") == "failed"]
    failed_html = ""
    if failed:
        items = "".join(
            f"<li><b>{_e(r.get('name'))}</b>: <pre>{_e(r.get('error'))}</pre> "
            f"{_link(r.get('executed'), 'partially executed notebook')}"
            f"{' &middot; ' + _link(r.get('html'), 'as HTML') if r.get('html') else ''}</li>"
            for r in failed
        )
        failed_html = f'<h2 class="failed">Failed notebooks ({len(failed)})</h2><ul>{items}</ul>'
    total = sum(r.get("duration_s") or 0 for r in records)
    counts = {s: sum(r.get("status") == s for r in records) for s in ("ok", "failed", "skipped")}
    return (
        f"<h2>Notebooks</h2><p>Last run: profile <b>{_e(status.get('profile'))}</b>, "
        f"{_e(status.get('started'))} UTC on {_e(status.get('host'))}. Listed: "
        f"{counts['ok']} ok, {counts['failed']} failed, {total:.0f} s of notebook time.</p>"
        f"{failed_html}"
        "<table><thead><tr><th>notebook</th><th>status</th><th>time</th><th>profile, UTC</th>"
        "<th>headline numbers</th><th>links</th><th>error</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def render_index(out_dir: Path) -> str:
    status = read_status(out_dir)
    runs = sorted(out_dir.glob("run-*.html"), reverse=True)
    run_items = "".join(f"<li>{_link(p.name, p.stem)}</li>" for p in runs)
    notebooks = (
        _notebook_section(status)
        if status
        else '<p class="muted">No notebook run yet: <code>workbench notebooks run</code>.</p>'
    )
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>workbench reports</title><style>{STYLE}</style></head><body>"
        f'<h1>workbench reports</h1><p class="muted">Index written {now} UTC.</p>'
        f"{notebooks}<h2>Run reports</h2>"
        + (f"<ul>{run_items}</ul>" if run_items else '<p class="muted">none</p>')
        + "</body></html>"
    )


def write_index(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    path.write_text(render_index(out_dir), encoding="utf-8")
    return path
