"""`workbench bench model.yaml`: a user's own model (see `workbench model`) swept like a
task, with every flag a task sweep takes."""

from __future__ import annotations

import argparse
from typing import Any

from workbench.commands.bench import task
from workbench.commands.bench.model_file import input_options_given
from workbench.errors import UserError
from workbench.signature import parse_dims


def is_spec(args: argparse.Namespace) -> bool:
    """The positional names a model.yaml (not a model file)."""
    return bool(args.model_file) and str(args.model_file).endswith((".yaml", ".yml"))


def bench_spec(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The spec's task sweep (checked and registered first); its rows."""
    from workbench.usermodel.workflow import prepare  # lazy: numpy, yaml

    if args.task:
        raise UserError(f"give {args.model_file} or --task, not both")
    if input_options_given(args):
        raise UserError(
            "--shape, --batch-axis, --int-range and --input(s) describe a model file; a "
            f"model.yaml brings its inputs: edit {args.model_file} (or `model init --input`)"
        )
    spec = prepare(
        args.model_file,
        max_accuracy_drop=getattr(args, "max_accuracy_drop", None),
        calibration_random=args.calibration == "random",
        dims=parse_dims(args.dim),
    )
    args.task, args.model_file, args.from_spec = spec.name, None, True
    return task.bench_task(args)
