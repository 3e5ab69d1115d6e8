"""The HTML reports (run report and reports/index.html) render through the Jinja2
templates in workbench/report/templates/: data is escaped by autoescape, an unknown
template variable raises, and a small real run's report is self-contained."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import jinja2
import pytest

from workbench.cli import main
from workbench.errors import UserError
from workbench.report import index, templates
from workbench.report.html import TABLE_COLUMNS, write_run_report
from workbench.results import RunStore, make_row

NASTY = "<script>alert(\"x&y\")</script> & 'q'"
NASTY_ESCAPED = "&lt;script&gt;alert(&#34;x&amp;y&#34;)&lt;/script&gt; &amp; &#39;q&#39;"


def _status(out: Path, records: list[dict], **top: object) -> None:
    out.mkdir(parents=True, exist_ok=True)
    status = {"profile": "ci", "started": "2030-01-01T00:00:00", "host": "h", **top}
    (out / index.STATUS_FILE).write_text(json.dumps({**status, "notebooks": records}))


def _no_raw_markup(page: str) -> None:
    assert "<script" not in page and 'alert("' not in page and "& '" not in page


def test_index_escapes_names_errors_and_headline_values(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    _status(
        out,
        [
            {
                "name": "fails",
                "status": "failed",
                "duration_s": 2.4,
                "error": f"RuntimeError: {NASTY}\n  second line",
                "executed": "executed/fails.ipynb",
                "html": "fails.html",
            },
            {
                "name": 'ok"<b>',
                "status": "ok",
                "duration_s": 10.6,
                "profile": "ci",
                "finished": "2030-01-01T00:01:00",
                "headline": {
                    "speedup & <x>": NASTY,
                    "p50_ms": 1.25,
                    "missing": None,
                    "max QPS with p99 < 50 ms, mlp": 225.3109516450839,
                    "peak (items/s)": 93230.41,
                    "agreement": 0.914372,
                },
                "html": "ok.html",
                "executed": "executed/ok.ipynb",
            },
        ],
        host=NASTY,
    )
    page = index.write_index(out).read_text(encoding="utf-8")
    _no_raw_markup(page)
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "<title>workbench reports</title>" in page
    # the error, in the failed list and in the table, escaped with its line break kept
    assert page.count(f"<pre>RuntimeError: {NASTY_ESCAPED}\n  second line</pre>") == 2
    assert "Failed notebooks (1)" in page
    assert f"<b>speedup &amp; &lt;x&gt;</b>: {NASTY_ESCAPED}</li>" in page  # headline
    assert "<b>p50_ms</b>: 1.25</li>" in page and "<b>missing</b>: </li>" in page
    # numbers as the CLI writes them, the unit from the headline's name
    assert "<b>max QPS with p99 &lt; 50 ms, mlp</b>: 225 QPS</li>" in page
    assert "<b>peak (items/s)</b>: 93,230 items/s</li>" in page
    assert "<b>agreement</b>: 0.9144</li>" in page
    assert f"on {NASTY_ESCAPED}." in page  # host
    assert '<tr id="nb-ok&#34;&lt;b&gt;"><td>ok&#34;&lt;b&gt;</td>' in page  # name, in an attribute
    assert "1 ok, 1 failed, 13 s of notebook time" in page
    assert '<td class="time">2 s</td>' in page and '<td class="time">11 s</td>' in page
    # links: report / partial report, the executed copy, both ways to the failed one
    assert '<a href="fails.html">partial report</a> &middot; ' in page
    assert '<a href="executed/fails.ipynb">partially executed notebook</a> &middot; ' in page
    assert '<a href="fails.html">as HTML</a>' in page
    assert (
        '<a href="ok.html">report</a> &middot; <a href="executed/ok.ipynb">executed .ipynb</a>'
        in page
    )
    assert '<p class="muted">none</p>' in page  # no run reports yet


def test_index_without_a_notebook_run_and_with_run_reports(tmp_path: Path) -> None:
    (tmp_path / "run-20300101T000000-a&b.html").write_text("x")
    (tmp_path / "run-20300102T000000-c.html").write_text("x")
    page = index.render_index(tmp_path)
    assert "No notebook run yet: <code>workbench notebooks run</code>." in page
    first = page.index('href="run-20300102T000000-c.html"')  # newest first
    assert first < page.index(
        '<a href="run-20300101T000000-a&amp;b.html">run-20300101T000000-a&amp;b</a>'
    )


def test_index_tolerates_records_with_missing_fields(tmp_path: Path) -> None:
    _status(tmp_path, [{"status": "failed", "error": "e"}, {}])
    page = index.render_index(tmp_path)
    assert '<tr id="nb-"><td></td><td class="failed">failed</td>' in page
    assert '<td class="?">?</td>' in page and "None" not in page


def test_unknown_template_variable_raises() -> None:
    with pytest.raises(jinja2.UndefinedError, match="runs"):
        templates.render(
            "index.html.j2", now="now", status=None, headlines=[], compares=[]
        )  # no `runs`
    with pytest.raises(jinja2.UndefinedError, match="nope"):
        templates.environment().from_string("{{ nope }}").render()
    with pytest.raises(jinja2.UndefinedError):
        templates.environment().from_string("{{ d.nope }}").render(d={})


def test_every_template_autoescapes() -> None:
    env = templates.environment()
    names = env.list_templates()
    assert {"base.html.j2", "run.html.j2", "index.html.j2"} <= set(names)
    for name in names:
        assert env.get_template(name).environment.autoescape is True
    assert env.from_string("{{ x }}").render(x="<&>") == "&lt;&amp;&gt;"


def test_template_files_are_package_data() -> None:
    """pyproject's package-data glob covers every template, so a wheel carries them."""
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    data = re.search(r"^workbench = \[(.*)\]$", pyproject, re.M).group(1)
    globs = [g.strip().strip('"') for g in data.split(",")]
    folder = Path(templates.__file__).parent
    files = {p.relative_to(folder.parent).as_posix() for p in (folder / "templates").iterdir()}
    covered = {f for f in files if any(Path(f).match(g.removeprefix("report/")) for g in globs)}
    assert files and covered == files


def _row(batch: int, **fields: object) -> dict:
    defaults = {"model": "mlp"}
    return make_row(
        status="ok",
        task="tabular",
        source_framework="torch",
        format="onnx",
        precision="fp32",
        runtime="onnxruntime",
        device="cpu",
        threads=1,
        scenario="single_stream",
        batch_size=batch,
        input_shape=f"{batch}x10",
        latency_ms_p50=0.2 * batch,
        latency_ms_p99=0.3 * batch,
        latency_ms_mean=0.25 * batch,
        throughput_items_per_s=1000.0 / 0.2,
        n_iterations=5,
        stable=True,
        model_size_bytes=4096,
        peak_rss_bytes=50_000_000 + batch,
        latencies_ms=[0.2 * batch + 0.01 * k for k in range(5)],
        **{**defaults, **fields},
    )


def test_run_report_of_a_small_real_run(tmp_path: Path, workspace: Path) -> None:
    store = RunStore.create({"task": "tabular"})
    store.append(_row(1))
    store.append(_row(8, model=NASTY))
    store.append(
        make_row(
            status="failed",
            task="tabular",
            model="mlp",
            format="tflite",
            precision="int8",
            runtime="litert",
            device="cpu",
            batch_size=1,
            error=f"load failed: {NASTY}",
        )
    )
    store.finish("ok")
    out = tmp_path / "reports"
    path = write_run_report(None, out)
    assert path == out / f"run-{store.run_id}.html"
    page = path.read_text()
    assert page.count("<script") == 1  # the table's own inline script, nothing loaded
    _no_raw_markup(re.sub(r"<script>.*?</script>", "", page, flags=re.S))
    assert f"<title>workbench run {store.run_id}</title>" in page
    assert f"<h1>workbench run {store.run_id}</h1>" in page
    assert "rows: 1 failed, 2 ok." in page
    fp = store.manifest["fingerprint_id"]
    assert f"fingerprint\n{fp}" in page
    # it opens with the answer: what to ship per model x batch x device, before any plot
    titles = re.findall(r"<h2>([^<]+)</h2>", page)
    assert titles[:3] == ["What to ship", "Speedup over FP32", "Failures (1 row)"], titles
    # (these rows carry no parity verdict, so nothing qualifies, and the page says why)
    assert "<b>mlp, batch 1 on cpu</b>: none qualifies: parity not checked (1 of 1 rows)" in page
    assert f"<b>{NASTY_ESCAPED}, batch 8 on cpu</b>" in page
    assert page.index("What to ship") < page.index("<img")
    # failures grouped by reason, escaped
    assert (
        f"<td>load failed: {NASTY_ESCAPED}</td><td>mlp tflite/int8 on litert (batch 1)</td>" in page
    )
    for title in (
        "Latency by batch size",
        "Throughput by batch size",
        "Latency spread",
        "Memory",
        "All rows",
    ):
        assert f"<h2>{title}</h2>" in page
    # five self-contained plots: real PNGs as data URIs, nothing loaded from elsewhere
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)">', page)
    assert [alt for alt, _ in images] == [
        "speedup heatmap, format x precision against FP32",
        "p50 latency vs batch, small multiples",
        "throughput vs batch, small multiples",
        "p50 to p99 of the fastest configurations",
        "peak RSS by runtime",
    ]
    assert all(base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n") for _, data in images)
    assert "http://" not in page and "https://" not in page and "<link" not in page
    # the sortable table: one header per field, one row per result, data escaped, gaps as
    # a dash, numbers carrying their sort value
    table = page[page.index('<table id="rows"') :]
    assert table.count("<th>") == len(TABLE_COLUMNS) and table.count("<tr><td>") == 3
    assert f"<td>{NASTY_ESCAPED}</td>" in table
    assert f"<td>load failed: {NASTY_ESCAPED}</td>" in table
    # p50, p99, mean ms and items/s in the summary columns' formats
    assert (
        '<td data-v="1.6">1.6</td><td data-v="2.4">2.4</td><td data-v="2">2</td>'
        '<td data-v="5000">5,000</td>' in table
    )
    assert "<td>&ndash;</td>" in table
    # the index is rebuilt and links the run report
    assert f'<a href="{path.name}">{path.stem}</a>' in (out / "index.html").read_text()
    # the CLI writes the same report; an unknown run id is a UserError naming known runs
    assert main(["report", "--run", store.run_id, "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / path.name).is_file()
    with pytest.raises(UserError, match=store.run_id):
        write_run_report("no-such-run", out)
