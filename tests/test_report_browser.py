"""The run report, a compare report and the index in headless Chromium (DevTools, as in
test_browser): no console error or failed load, every image decoded, the table's inline
JavaScript sorts and filters, and 1280 px screenshots are saved under reports/.

The run is a small stored run of several formats and precisions (rows as the harness
writes them) and the compare report diffs two real `null`-runtime runs, one with a 20 %
longer delay per call, so the whole module takes seconds, not a notebook run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import CHROMIUM, IMAGES_JS, SCREENSHOTS, DevTools
from workbench.analysis.compare import compare, load_run
from workbench.harness.runner import BenchConfig, run_config
from workbench.harness.timing import StopRule
from workbench.report import compare_html
from workbench.report.html import write_run_report
from workbench.report.index import write_index
from workbench.results import RunStore, make_row

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium: run `make setup` as root on Debian"
)
RULE = StopRule(warmup_iters=5, warmup_time_s=0.0, min_iters=100, min_time_s=0.0, max_time_s=5)


def _row(fmt: str, precision: str, batch: int, p50: float, **fields: object) -> dict:
    values = [p50 * (1 + 0.002 * k) for k in range(50)]
    return make_row(
        status="ok",
        task="tabular",
        model="mlp",
        source_framework="torch",
        format=fmt,
        precision=precision,
        runtime="torch" if fmt in ("eager", "torchscript") else "onnxruntime",
        device="cpu",
        threads=2,
        batch_size=batch,
        latency_ms_p50=p50,
        latency_ms_p90=p50 * 1.05,
        latency_ms_p99=p50 * 1.1,
        throughput_items_per_s=batch * 1000 / p50,
        model_size_bytes=400_000 if precision == "fp32" else 110_000,
        peak_rss_bytes=300_000_000 + batch,
        parity_pass=None if fmt == "eager" else True,
        accuracy=0.89,
        stable=True,
        latencies_ms=values,
        **fields,
    )


def _null_run(delay_ms: float) -> RunStore:
    store = RunStore.create({"task": "null-delay"})
    labels = {"task": "null-delay", "model": "sleep", "source_framework": "none"}
    config = BenchConfig(
        "null",
        "null",
        batch_sizes=[1, 4],
        rule=RULE,
        runtime_settings={"delay_ms": delay_ms},
        labels={**labels, "precision": "fp32"},
    )
    run_config(config, store.append)
    store.finish("ok")
    return store


@pytest.fixture
def reports(workspace: Path, tmp_path: Path) -> Path:
    out = tmp_path / "reports"
    store = RunStore.create({"task": "tabular"})
    for batch in (1, 8, 64):
        for fmt, precision, p50 in (
            ("eager", "fp32", 0.09),
            ("torchscript", "fp32", 0.05),
            ("onnx", "fp32", 0.02),
            ("onnx", "fp16", 0.03),
            ("onnx", "int8-dynamic", 0.025),
        ):
            store.append(_row(fmt, precision, batch, p50 * batch**0.5))
    store.append(
        make_row(
            status="failed",
            task="tabular",
            model="mlp",
            source_framework="torch",
            format="tflite",
            precision="fp32",
            runtime="litert",
            device="cpu",
            batch_size=8,
            error="FixedBatchError: input has a fixed batch of 1",
        )
    )
    store.finish("ok")
    write_run_report(store.run_id, out)
    a, b = _null_run(1.0), _null_run(1.2)
    (ma, fa), (mb, fb) = load_run(a.run_id), load_run(b.run_id)
    compare_html.write(compare(fa, fb, ma, mb), out / f"compare-{a.run_id}-vs-{b.run_id}.html", "c")
    write_index(out)
    return out


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    tools = DevTools(profile)
    try:
        yield tools
    finally:
        tools.close()


def _check_page(browser: DevTools, path: Path, shot: str, min_images: int) -> str:
    browser.open(path.as_uri())
    images = json.loads(browser.evaluate(IMAGES_JS))
    assert images["count"] >= min_images, images
    assert not images["failed"] and not images["empty"], images
    assert browser.errors() == []
    SCREENSHOTS.mkdir(exist_ok=True)
    assert browser.screenshot(SCREENSHOTS / shot).stat().st_size > 10_000
    return browser.evaluate("document.body.innerText")


SORT_JS = """(() => {
  const th = Array.from(document.querySelectorAll('#rows th')).find(h => h.textContent === 'p50 ms');
  const col = Array.from(th.parentNode.children).indexOf(th);
  const read = () => Array.from(document.querySelectorAll('#rows tbody tr'))
    .map(r => r.cells[col].getAttribute('data-v')).filter(v => v !== null).map(Number);
  th.click(); const up = read(); th.click(); const down = read();
  return JSON.stringify({up, down});
})()"""
FILTER_JS = """(() => {
  const input = document.querySelector('input[data-filter="rows"]');
  input.value = 'int8 onnx'; input.dispatchEvent(new Event('input'));
  const shown = Array.from(document.querySelectorAll('#rows tbody tr'))
    .filter(r => r.style.display !== 'none').length;
  return JSON.stringify({shown, count: document.getElementById('rows-count').textContent});
})()"""


def test_run_compare_and_index_pages_in_chromium(reports: Path, browser: DevTools) -> None:
    run_page = next(reports.glob("run-*.html"))
    text = _check_page(browser, run_page, "screenshot-run.png", min_images=5)
    assert text.index("What to ship") < text.index("Speedup over FP32") < text.index("All rows")
    assert "mlp, batch 1 on cpu: torch/onnx/fp32 on onnxruntime (cpu), 2 threads" in text
    assert "accuracy 0.890; p50 4.5x faster than the source model, fp32" in text
    assert "FixedBatchError: input has a fixed batch of 1" in text
    order = json.loads(browser.evaluate(SORT_JS))
    assert order["up"] == sorted(order["up"]) and order["down"] == sorted(order["down"])[::-1]
    assert len(order["up"]) == 15
    shown = json.loads(browser.evaluate(FILTER_JS))
    assert shown == {"shown": 3, "count": "3 of 16 rows"}
    assert browser.errors() == []

    compare_page = next(reports.glob("compare-*.html"))
    text = _check_page(browser, compare_page, "screenshot-compare.png", min_images=1)
    assert "2 matching configurations: 2 slower" in text

    text = _check_page(browser, reports / "index.html", "screenshot-index-runs.png", min_images=0)
    assert "Headlines by task" in text and "recommended" in text
    assert browser.evaluate("document.querySelector('a[href^=\"compare-\"]') !== null")
    assert browser.evaluate("document.querySelector('a[href^=\"run-\"]') !== null")
