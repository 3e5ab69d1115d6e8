"""The generated reports in a real browser: Debian's headless Chromium, driven over the
Chrome DevTools protocol (websocket-client, from the lock). The runner executes one task
notebook (`--only tabular`, ci profile) into a temporary reports folder; the test opens
its index.html and the task report, checks that every image decoded and that no console
error or failed load occurred, and saves screenshots under reports/.

Skipped (with the reason) where no Chromium is installed: `make setup` installs it as
root on Debian (scripts/setup-venv.sh)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import CHROMIUM, IMAGES_JS, REPO, SCREENSHOTS, DevTools
from workbench.study import notebooks

pytestmark = [
    pytest.mark.notebooks,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium: run `make setup` as root on Debian"),
]


@pytest.fixture(scope="module")
def task_reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """reports/ of a runner call with --only tabular (ci profile), in a temporary folder.
    The workspace is the checkout's .workbench, so exports are shared with `make test`'s
    notebook run (artifacts are content-keyed caches)."""
    out = tmp_path_factory.mktemp("reports")
    mp = pytest.MonkeyPatch()
    mp.setenv("WORKBENCH_HOME", str(REPO / ".workbench"))
    try:
        done = notebooks.run_notebooks(
            profile="ci",
            only=["tabular"],
            notebooks_dir=REPO / "notebooks",
            out_dir=out,
            log=lambda _: None,
        )
    finally:
        mp.undo()
    assert [r.status for r in done] == ["ok"], done[0].error
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


def test_index_and_task_report_render_in_chromium(task_reports: Path, browser: DevTools) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    browser.open((task_reports / "index.html").as_uri())
    assert browser.evaluate("document.title") == "workbench reports"
    href = browser.evaluate(
        "(() => { const a = document.querySelector('a[href=\"tabular.html\"]');"
        " return a ? a.href : null })()"
    )
    assert href, "index.html has no link to the tabular report"
    assert browser.evaluate("document.querySelector('td.ok') !== null")
    images = json.loads(browser.evaluate(IMAGES_JS))
    assert not images["failed"] and not images["empty"], images
    assert browser.errors() == []
    browser.screenshot(SCREENSHOTS / "screenshot-index.png")

    browser.open(href)
    images = json.loads(browser.evaluate(IMAGES_JS))
    assert images["count"] >= 4, images  # CDF, throughput, speedup, memory
    assert not images["failed"] and not images["empty"], images
    assert browser.errors() == []
    text = browser.evaluate("document.body.innerText")
    assert "Export matrix" in text and "host" in text
    shot = browser.screenshot(SCREENSHOTS / "screenshot-tabular.png")
    assert shot.stat().st_size > 10_000
