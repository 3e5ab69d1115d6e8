"""`workbench compare A B`: the per-configuration change between two runs with a
noise-aware verdict, optionally an HTML diff and a regression gate."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from workbench.commands.args import Subparsers


def add_parser(subparsers: Subparsers) -> None:
    cmp_ = subparsers.add_parser(
        "compare", help="compare two runs: per-configuration change with a noise-aware verdict"
    )
    cmp_.add_argument(
        "run_a",
        help="the baseline run id (or latest / previous); alone: a run that timed A and B "
        "interleaved (the CI regression gate), judged by its per-round ratios",
    )
    cmp_.add_argument("run_b", nargs="?", help="the run compared with it")
    cmp_.add_argument("--noise-floor", default="5%", help="smallest change judged (default 5%%)")
    cmp_.add_argument(
        "--noise-from",
        nargs="+",
        metavar="RUN",
        help="A/A calibration: one or more earlier pairs of identical runs (A0 A1 [A2 A3 ...]); "
        "each configuration's floor rises to the between-run drift they show",
    )
    cmp_.add_argument(
        "--fail-on-regression",
        metavar="PCT",
        help="exit 1 when a configuration is judged slower by more than PCT (e.g. 5%%)",
    )
    cmp_.add_argument(
        "--html",
        nargs="?",
        const="",
        metavar="FILE",
        help="also write the HTML diff report (default file: reports/compare-A-vs-B.html, "
        "listed in reports/index.html)",
    )
    cmp_.add_argument("--output", choices=("table", "json"), default="table")


def run(args: argparse.Namespace) -> int:
    """Exit 1 when --fail-on-regression finds a configuration slower than its gate."""
    # lazy: pandas, matplotlib (workbench.study)
    from workbench.analysis.compare import (
        compare,
        compare_interleaved,
        load_calibration,
        load_run,
        parse_threshold,
    )
    from workbench.errors import UserError

    floor = parse_threshold(args.noise_floor)
    gate = parse_threshold(args.fail_on_regression) if args.fail_on_regression else None
    calibration = load_calibration(args.noise_from) if args.noise_from else None
    manifest_a, frame_a = load_run(args.run_a)
    if args.run_b is None:
        if calibration is not None:
            raise UserError(
                "--noise-from calibrates two separate runs; an interleaved run needs none"
            )
        result = compare_interleaved(frame_a, manifest_a, floor=floor)
        manifest_b = manifest_a
    else:
        manifest_b, frame_b = load_run(args.run_b)
        result = compare(
            frame_a, frame_b, manifest_a, manifest_b, floor=floor, calibration=calibration
        )
    html = _write_html(result, manifest_a, manifest_b, args.html) if args.html is not None else None
    regressions = result.regressions(gate) if gate is not None else None
    if args.output == "json":
        print(json.dumps(_as_json(result, calibration), default=str))
    else:
        _print_text(result, floor, calibration, html)
    if regressions is not None and len(regressions):
        print(
            f"regression gate: {len(regressions)} configuration(s) slower by more than {gate:.0%}",
            file=sys.stderr,
        )
        return 1
    return 0


def _write_html(result: Any, manifest_a: dict, manifest_b: dict, file: str) -> Path:
    """The HTML diff: to `file`, or (empty) under reports/ and listed in its index."""
    # lazy: jinja2, matplotlib, pandas (workbench.report, workbench.study)
    from workbench.report import compare_html
    from workbench.report.index import write_index
    from workbench.study.headlines import host_text

    caption = (
        f"A: run {result.run_a} on {host_text(manifest_a.get('fingerprint', {}))}; "
        f"B: run {result.run_b} on {host_text(manifest_b.get('fingerprint', {}))}"
    )
    if file:
        return compare_html.write(result, Path(file), caption)
    name = f"compare-{result.run_a}-vs-{result.run_b}.html"
    path = compare_html.write(result, Path("reports") / name, caption)
    write_index(path.parent)
    return path


def _as_json(result: Any, calibration: Any) -> dict[str, Any]:
    return {
        "run_a": result.run_a,
        "run_b": result.run_b,
        "summary": result.summary(),
        "counts": result.counts(),
        "fingerprint_diff": result.fingerprint_diff,
        "warnings": result.warnings,
        "calibration": None
        if calibration is None
        else {
            "sources": calibration.sources,
            "quantile": calibration.quantile,
            "run_wide_floor": math.expm1(calibration.run_wide),
            "configurations": len(calibration.per_config),
        },
        "rows": result.table.to_dict(orient="records"),
    }


def _print_text(result: Any, floor: float, calibration: Any, html: Path | None) -> None:
    print(f"A: {result.run_a}  B: {result.run_b}  noise floor {floor:.0%}")
    if calibration is not None:
        print(
            f"A/A calibration from {'; '.join(calibration.sources)}: "
            f"{len(calibration.per_config)} configurations, run-wide "
            f"p{calibration.quantile * 100:.0f} floor {math.expm1(calibration.run_wide):.0%}"
        )
    for line in result.fingerprint_diff:
        print(f"warning: environments differ: {line}")
    for line in result.warnings:
        print(f"warning: {line}")
    print(result.summary())
    if not result.table.empty:
        modes = ", ".join(sorted(set(result.table["mode"])))
        print(f"verdicts made by: {modes}")
    changed = (
        result.table[result.table["verdict"].isin(["slower", "faster"])]
        if not result.table.empty
        else result.table
    )
    for r in changed.to_dict(orient="records"):
        print(
            f"  {r['verdict']:>6} {r['p50 change']:+.1%} p50 (95% CI of B/A "
            f"{r['ratio CI low']:.3f}-{r['ratio CI high']:.3f}), p99 {r['p99 change']:+.1%}, "
            f"throughput {r['throughput change']:+.1%}, floor {r['floor']:.0%} "
            f"({r['floor source']}; {r['mode']}): {r['config']}"
        )
    if html is not None:
        print(f"HTML diff report: {html}")
