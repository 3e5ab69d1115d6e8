"""`workbench notebooks run|list|strip|new`: the study notebooks, run with papermill into
reports/ (see workbench.study.notebooks)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from workbench.commands.args import Subparsers, add_subcommands
from workbench.errors import UserError
from workbench.profiles import PROFILE_NAMES
from workbench.registry import TASKS


def add_parser(subparsers: Subparsers) -> None:
    notebooks = subparsers.add_parser(
        "notebooks", help="run the notebooks (papermill) into reports/"
    )
    nb_sub = add_subcommands(notebooks, "notebooks_command")
    nb_run = nb_sub.add_parser("run", help="execute notebooks, convert to HTML, write the index")
    nb_run.add_argument("--profile", choices=PROFILE_NAMES, default="ci")
    nb_run.add_argument("--only", nargs="+", action="extend", metavar="NAME", help="notebooks")
    nb_run.add_argument("--notebooks", default="notebooks", help="folder (default notebooks/)")
    nb_run.add_argument("--out", default="reports", help="output folder (default reports/)")
    nb_run.add_argument("--cell-timeout", type=int, help="seconds per cell (default: none)")
    nb_list = nb_sub.add_parser("list", help="list the notebooks in run order")
    nb_list.add_argument("--notebooks", default="notebooks", help="folder (default notebooks/)")
    nb_strip = nb_sub.add_parser("strip", help="remove outputs and execution counts in place")
    nb_strip.add_argument("paths", nargs="*", default=["notebooks"], help="folders or files")
    nb_new = nb_sub.add_parser("new", help="write the notebook of a newly registered task")
    nb_new.add_argument("task", help="a registered task without a notebook")
    nb_new.add_argument("--notebooks", default="notebooks", help="folder (default notebooks/)")


def run(args: argparse.Namespace) -> int:
    return _SUBCOMMANDS[args.notebooks_command](args)


def _list(args: argparse.Namespace) -> int:
    from workbench.study import notebooks  # lazy: papermill, jinja2, matplotlib, pandas

    print("\n".join(notebooks.discover(Path(args.notebooks))))
    return 0


def _new(args: argparse.Namespace) -> int:
    from workbench.study import notebooks  # lazy: papermill, jinja2, matplotlib, pandas

    if args.task not in TASKS.names():
        raise UserError(
            f"unknown task {args.task!r}: register it first (workbench/registry.py or an "
            f"entry point); registered: {', '.join(TASKS.names())}"
        )
    path = notebooks.new_task_notebook(args.task, Path(args.notebooks))
    print(f"notebook written: {path} (and its paired .py)")
    return 0


def _strip(args: argparse.Namespace) -> int:
    from workbench.study import notebooks  # lazy: papermill, jinja2, matplotlib, pandas

    paths = [Path(p) for p in args.paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UserError(f"no such file or folder: {', '.join(missing)}")
    changed = [
        c
        for p in paths
        for c in (notebooks.strip_all(p) if p.is_dir() else [p] if notebooks.strip(p) else [])
    ]
    print(f"stripped {len(changed)} notebook(s)" + "".join(f"\n  {c}" for c in changed))
    return 0


def _run(args: argparse.Namespace) -> int:
    """Exit 1 when a notebook failed."""
    from workbench.study import notebooks  # lazy: papermill, jinja2, matplotlib, pandas

    done = notebooks.run_notebooks(
        profile=args.profile,
        only=args.only,
        notebooks_dir=Path(args.notebooks),
        out_dir=Path(args.out),
        cell_timeout=args.cell_timeout,
        log=lambda line: print(line, flush=True),
    )
    failed = [r.name for r in done if r.status != "ok"]
    total = sum(r.duration_s or 0 for r in done)
    print(
        f"{len(done) - len(failed)} ok, {len(failed)} failed in {total:.0f} s"
        + (f" (failed: {', '.join(failed)})" if failed else "")
        + f"; index: {Path(args.out) / 'index.html'}"
    )
    return 1 if failed else 0


_SUBCOMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _run,
    "list": _list,
    "strip": _strip,
    "new": _new,
}
