"""`workbench bench MODEL_FILE`: one model file on one runtime, over devices, thread
counts and batch sizes, each configuration in a worker process."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from workbench import input_options as opts
from workbench import model_inputs as mi
from workbench.commands.args import devices, int_list, profile, runtime_settings, stop_rule, threads
from workbench.commands.progress import progress_bar
from workbench.errors import UserError
from workbench.formats import detect_format, runtime_for
from workbench.harness.runner import BenchConfig
from workbench.profiles import get_profile
from workbench.registry import get_runtime
from workbench.signature import parse_dims

INPUT_FLAGS = ("shape", "batch_axis", "int_range", "input", "inputs")


def input_options_given(args: argparse.Namespace) -> bool:
    """Whether any flag describing a model file's inputs (beyond --dim) was given."""
    return any(getattr(args, n) for n in INPUT_FLAGS)


def bench_file(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Benchmark `args.model_file` into a new stored run; its rows."""
    path = Path(args.model_file)
    fmt = detect_format(path)
    refuse_conversion_flags(args, path)
    runtime = get_runtime(args.runtime or runtime_for(fmt))
    if fmt not in runtime.formats:
        raise UserError(
            f"runtime {runtime.name!r} cannot run format {fmt!r} ({path.name}): it runs "
            f"{', '.join(runtime.formats)}; drop --runtime or pick {runtime_for(fmt)}"
        )
    plan = input_plan(args, path, fmt)
    settings = runtime_settings(args)
    others = sorted(set(settings) - {runtime.name})
    if others:
        raise UserError(
            f"settings for {', '.join(others)} given, but {path.name} runs on {runtime.name}: "
            f"drop them or pick that runtime with --runtime"
        )
    defaults = get_profile(profile(args))
    batches = int_list(args.batch, "--batch") if args.batch else list(defaults.file_batch_sizes)
    configs = [
        BenchConfig(
            runtime=runtime.name,
            format=fmt,
            path=str(path),
            device=d,
            threads=t,
            batch_sizes=batches,
            dims=parse_dims(args.dim),
            rule=stop_rule(args),
            runtime_settings=settings.get(runtime.name, {}),
            repeats=args.repeats,
            labels={"model": path.name, "precision": None},
            input_plan=plan.to_json(),
        )
        for d in devices(args)
        for t in threads(args)
    ]
    # TorchScript carries no typed signature: --shape items (in forward's order) give it
    inputs = mi.signature_from_shapes(plan) if fmt == "torchscript" and plan.shapes else None
    manifest = {"command": "bench", "model_file": str(path), "inputs": inputs}
    return run_configs(configs, manifest, inputs)


def refuse_conversion_flags(args: argparse.Namespace, path: Path) -> None:
    """A model file is timed as it is: asking for another precision or format of it is an
    error, never a silent fp32 measurement under that label."""
    asked = [
        f"--{flag} {value}"
        for flag, value in (("precisions", args.precisions), ("formats", args.formats))
        if value and value.strip() not in ("fp32", "")
    ]
    if asked or args.calibration:
        raise UserError(
            f"{' '.join(asked) or '--calibration'}: `bench FILE` times {path.name} as it is; to "
            f"convert or quantize it, `workbench model init {path} --sample batch.npz` and "
            "`workbench bench model.yaml --precisions ...`"
        )


def input_plan(args: argparse.Namespace, path: Path, fmt: str) -> mi.InputPlan:
    """What the command line says about a model file's inputs, plus the integer ranges
    the file itself declares."""
    declared, none_declared = mi.declared_int_ranges(path, fmt)
    shapes, dtypes = opts.parse_shapes(args.shape)
    return mi.InputPlan(
        shapes=shapes,
        dtypes=dtypes,
        batch_axes=opts.parse_batch_axes(args.batch_axis),
        int_ranges=opts.parse_int_ranges(args.int_range),
        declared_ranges=declared,
        data={k: str(Path(v).resolve()) for k, v in opts.parse_input_files(args.input).items()},
        data_file=str(Path(opts.check_npz(args.inputs)).resolve()) if args.inputs else None,
        no_declared_constraints=none_declared,
    )


def run_configs(
    configs: list[BenchConfig],
    manifest: dict[str, Any],
    inputs: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Benchmark model-file configs into one new stored run, each in a worker process
    (a runtime that crashes on the file costs its rows, not the CLI)."""
    # lazy: pandas
    from workbench.harness.isolated import run_isolated
    from workbench.results import RunStore, load

    store = RunStore.create({**manifest, "configs": [c.to_json() for c in configs]})
    status = "failed"
    try:
        for config in progress_bar(iterable=configs, desc="bench", unit="config"):
            user_error = run_isolated(store, config, inputs)
            if user_error:
                raise UserError(user_error)
        status = "ok"
    finally:
        store.finish(status)
    return load(run_ids=[store.run_id]).to_dict(orient="records")
