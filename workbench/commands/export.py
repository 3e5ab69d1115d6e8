"""`workbench export`: export a task's models (through the artifact cache) and print the
matrix of what each export gave."""

from __future__ import annotations

import argparse
import json

from exporters.base import export_many
from workbench.commands.args import Subparsers, csv_list
from workbench.commands.output import add_output, emit
from workbench.errors import UserError
from workbench.formats import PRECISIONS

EXPORT_COLUMNS = (
    "model",
    "source_framework",
    "format",
    "precision",
    "status",
    "size_bytes",
    "export_time_s",
    "parity_max_abs_error",
    "parity_metric_value",
    "parity_pass",
    "cache_hit",
    "error",
)
_KINDS = {
    "size_bytes": "mb",
    "export_time_s": "ms",
    "parity_max_abs_error": "ratio",
    "parity_metric_value": "ratio",
}


def add_parser(subparsers: Subparsers) -> None:
    export = subparsers.add_parser("export", help="export a task's models and print the matrix")
    export.add_argument(
        "spec", nargs="?", help="your own model's model.yaml (see `workbench model init`)"
    )
    export.add_argument("--task", help="a registered task (or give a model.yaml)")
    export.add_argument("--model", help="model variant(s), comma-separated")
    export.add_argument("--frameworks", help="source frameworks: torch,keras")
    export.add_argument("--formats", help="formats, e.g. onnx,torchscript,tflite,savedmodel")
    export.add_argument(
        "--precisions", help="fp32,fp16,bf16,int8-dynamic,int8-static (default: all that apply)"
    )
    add_output(export)


def run(args: argparse.Namespace) -> int:
    """Exit 1 when any export failed."""
    from workbench.sweep import TaskSweep, plan  # lazy: pandas

    if bool(args.spec) == bool(args.task):
        raise UserError("give a model.yaml or --task NAME (see `workbench export --help`)")
    if args.spec:
        from workbench.usermodel.workflow import prepare  # lazy: numpy, yaml

        args.task = prepare(args.spec).name
    sweep = TaskSweep(
        task=args.task,
        models=csv_list(args.model),
        frameworks=csv_list(args.frameworks),
        formats=csv_list(args.formats),
        precisions=csv_list(args.precisions) or list(PRECISIONS),
    )
    requests = {}
    for job in plan(sweep):
        if job.request is not None:
            requests[(job.model, job.source_framework, job.format, job.precision)] = job.request
    if not requests:
        raise UserError("nothing to export: the filters exclude every exportable format")
    manifests = export_many(list(requests.values()))
    if args.output == "json":
        for m in manifests:
            print(json.dumps({"size_bytes": m.get("size_bytes"), **m}, default=str))
    else:
        from workbench.columns import Column  # lazy: pandas

        columns = tuple(
            Column(c, "size MB" if c == "size_bytes" else c, _KINDS.get(c, "text"))
            for c in EXPORT_COLUMNS
        )
        emit([{c: m.get(c) for c in EXPORT_COLUMNS} for m in manifests], columns, args.output)
    return 0 if all(m.get("status") == "ok" for m in manifests) else 1
