"""`workbench report`: a run's HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.commands.args import Subparsers


def add_parser(subparsers: Subparsers) -> None:
    report = subparsers.add_parser("report", help="write an HTML report of a run under reports/")
    report.add_argument("--run", help="run id (default: the latest run)")
    report.add_argument("--out", default="reports", help="output folder (default reports/)")


def run(args: argparse.Namespace) -> int:
    from workbench.report.html import write_run_report  # lazy: matplotlib, jinja2, pandas

    path = write_run_report(args.run, Path(args.out))
    print(f"report written: {path}")
    return 0
