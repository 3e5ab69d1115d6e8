"""`workbench bench --task NAME`: a registered task's sweep (exports, then every
configuration), here or over a cluster."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from workbench.commands.args import (
    csv_list,
    devices,
    int_list,
    profile,
    runtime_settings,
    stop_rule,
    threads,
)
from workbench.commands.bench import fleet
from workbench.commands.bench.model_file import input_options_given
from workbench.commands.progress import job_progress, progress_bar
from workbench.errors import UserError
from workbench.formats import runtime_for
from workbench.registry import get_runtime


def bench_task(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The task sweep the flags describe (the profile's presets where not given); its rows."""
    from workbench.sweep import from_profile  # lazy: pandas

    if input_options_given(args):
        raise UserError(
            "--shape, --batch-axis, --int-range and --input(s) describe a MODEL_FILE's inputs; "
            "a task brings its own"
        )
    if args.calibration and not getattr(args, "from_spec", False):
        raise UserError(
            "--calibration random is for a model.yaml without calibration data; a task "
            "brings its own calibration data"
        )
    sweep = from_profile(
        args.task,
        profile(args),
        models=csv_list(args.model) or (),
        frameworks=csv_list(args.frameworks) or (),
        formats=csv_list(args.formats) or (),
        precisions=csv_list(args.precisions) or (),
        batch_sizes=int_list(args.batch, "--batch") if args.batch else (),
        seq_lens=int_list(args.seq_len, "--seq-len") if args.seq_len else (),
        threads=threads(args),
        devices=devices(args),
        rule=stop_rule(args),
        runtime_settings=runtime_settings(args),
        repeats=args.repeats,
        end_to_end=args.end_to_end,
        **budget(args),
    )
    if args.runtime:
        sweep.extra_runtimes = beside(csv_list(args.runtime) or [], sweep.formats)
    return run_sweep(sweep, "bench", args)


def beside(runtimes: list[str], formats: list[str] | None) -> dict[str, list[str]]:
    """`--runtime` with `--task`: each named runtime measures the artifacts of every sweep
    format it can run, beside that format's own runtime (e.g. onnxruntime-c beside
    onnxruntime on the ONNX files); a runtime that can run none of them is an error."""
    extra: dict[str, list[str]] = {}
    for name in runtimes:
        own = list(get_runtime(name).formats)
        runs = [fmt for fmt in formats if fmt in own] if formats else own  # None: all formats
        if not runs:
            raise UserError(
                f"--runtime {name}: it runs none of this sweep's formats "
                f"({', '.join(formats or [])}); it runs {', '.join(own)}: add one with --formats"
            )
        for fmt in runs:
            if name != runtime_for(fmt) and name not in extra.setdefault(fmt, []):
                extra[fmt].append(name)
    return {fmt: names for fmt, names in extra.items() if names}


def budget(args: argparse.Namespace) -> dict[str, float]:
    """The INT8 quality budget the flags give (none: the sweep's default)."""
    drop = getattr(args, "max_accuracy_drop", None)
    if drop is None:
        return {}
    if drop < 0:
        raise UserError(f"--max-accuracy-drop must be >= 0 points, got {drop:g}")
    return {"max_accuracy_drop": drop}


def run_sweep(
    sweep: Any, command: str, args: argparse.Namespace | None = None
) -> list[dict[str, Any]]:
    """Run a task sweep into a new stored run with a progress bar (over the cluster with
    --cluster); its rows."""
    # lazy: pandas
    from workbench.results import load
    from workbench.sweep import run_stored

    bar = progress_bar(desc=f"bench {sweep.task}", unit="job")
    progress = job_progress(bar)
    try:
        if args is not None and args.cluster:
            store = fleet.run_on_cluster(sweep, args, progress)
        else:
            store = run_stored(sweep, command=command, on_progress=progress)
    finally:
        bar.close()
    frame = load(run_ids=[store.run_id])
    print(f"run {store.run_id}: {len(frame)} rows in {store.path}", file=sys.stderr)
    return frame.to_dict(orient="records")
