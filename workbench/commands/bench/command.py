"""`workbench bench`: its parser, assembled from the parts' flags, and the dispatch to
the part that runs: a model file, a task sweep, a scenario, or a stored run again."""

from __future__ import annotations

import argparse

from workbench.commands.args import Subparsers, profile
from workbench.commands.bench import flags, fleet, model_file, rerun, scenario, spec, task
from workbench.commands.output import add_output, print_rows
from workbench.errors import UserError


def add_parser(subparsers: Subparsers) -> None:
    bench = subparsers.add_parser("bench", help="benchmark a model file or a registered task")
    sweep = flags.SweepFlags()
    flags.add_arguments(bench, sweep)
    sweep.others.append(add_output(bench))
    scenario.add_arguments(bench, sweep)
    fleet.add_arguments(bench, sweep)
    sweep.check_complete(bench)
    # --rerun and --resume refuse what the run says; `run` reads which flags those are here
    bench.set_defaults(sweep_flags=sweep)


def run(args: argparse.Namespace) -> int:
    fleet.check_args(args)
    if args.rerun and args.resume:
        raise UserError("give --rerun or --resume, not both")
    if args.rerun or args.resume:
        rerun.refuse_sweep_flags(args, args.sweep_flags)
        rows = rerun.rerun(args.rerun) if args.rerun else rerun.resume(args)
    elif args.scenario:
        if model_file.input_options_given(args):
            raise UserError(
                "--shape, --batch-axis, --int-range and --input(s) are not supported with "
                "--scenario yet: use --dim, or bench the model file without --scenario"
            )
        scenario.print_scenario_rows(scenario.bench_scenario(args, profile(args)), args.output)
        return 0
    elif spec.is_spec(args):
        rows = spec.bench_spec(args)
    elif bool(args.model_file) == bool(args.task):
        raise UserError("give either a MODEL_FILE or --task NAME (see `workbench bench --help`)")
    else:
        rows = model_file.bench_file(args) if args.model_file else task.bench_task(args)
    print_rows(rows, args.output)
    return 0
