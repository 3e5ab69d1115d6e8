"""Size and load time of generated HTML reports in headless Chromium (issue #16's figure:
the run report of the 152-row tabular run), with a 1280 px screenshot of each page.

Each page is opened `--loads` times in one fresh headless Chromium (DevTools protocol, the
`DevTools` helper of tests/test_browser.py); the load time is the page's own Navigation
Timing `loadEventEnd - startTime` (parsing, inline script, decoding the inlined PNGs).
Console errors, failed loads and images that did not decode are reported per page.

Run:  .venv/bin/python benchmarks/report_in_chromium.py reports/run-<id>.html
          [reports/index.html ...] [--loads 5] [--shots reports/]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.browser import CHROMIUM, IMAGES_JS, DevTools  # noqa: E402

LOAD_JS = "JSON.stringify(performance.getEntriesByType('navigation')[0].toJSON())"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="+", type=Path)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--shots", type=Path, default=None, help="folder for screenshots")
    parser.add_argument(
        "--width", type=int, default=1280, help="layout width in CSS px (390: a phone)"
    )
    args = parser.parse_args()
    if CHROMIUM is None:
        print("unavailable: no chromium on PATH (make setup installs it on Debian)")
        return 2
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        browser = DevTools(Path(tmp))
        if args.width != 1280:
            browser.set_width(args.width, mobile=args.width < 800)
        try:
            for page in args.pages:
                times = []
                for _ in range(args.loads):
                    browser.open(page.resolve().as_uri())
                    nav = json.loads(browser.evaluate(LOAD_JS))
                    times.append(nav["loadEventEnd"] - nav["startTime"])
                images = json.loads(browser.evaluate(IMAGES_JS))
                errors = browser.errors()
                size = page.stat().st_size
                print(
                    f"{page.name}: {size / 1e6:.2f} MB, load {statistics.median(times):.0f} ms "
                    f"median of {len(times)} (min {min(times):.0f}, max {max(times):.0f}); "
                    f"{images['count']} images, {len(images['failed']) + len(images['empty'])} "
                    f"not decoded; {len(errors)} console/load errors {errors[:3]}"
                )
                if args.shots:
                    args.shots.mkdir(parents=True, exist_ok=True)
                    browser.screenshot(
                        args.shots / f"screenshot-{page.stem}-{args.width}.png",
                        max_height=4000,
                        width=args.width,
                    )
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
