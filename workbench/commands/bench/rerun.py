"""`workbench bench --rerun RUN_ID` (repeat a stored run as a new one) and `--resume
RUN_ID` (finish a cut-short task sweep in place): both take what to measure from the
stored run."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from workbench.commands.bench import fleet
from workbench.commands.bench.flags import SweepFlags
from workbench.commands.bench.model_file import run_configs
from workbench.commands.bench.task import run_sweep
from workbench.commands.progress import job_progress, progress_bar
from workbench.errors import UserError
from workbench.harness.runner import BenchConfig


def refuse_sweep_flags(args: argparse.Namespace, sweep_flags: SweepFlags) -> None:
    """The stored run says what to measure: a flag that says it too is an error."""
    flag = "--rerun" if args.rerun else "--resume"
    given = sweep_flags.given(args)
    if args.resume:  # a fleet run may resume through a scheduler at a new address
        given = [g for g in given if g != "--cluster"]
    if given:
        raise UserError(
            f"{flag} takes the sweep from the stored run: drop {', '.join(given)} (or run "
            "a new bench with them)"
        )


def rerun(run_id: str) -> list[dict[str, Any]]:
    """Repeat a stored run from its manifest: a task sweep, or model-file configs."""
    from workbench.results import load_manifests  # lazy: pandas
    from workbench.sweep import TaskSweep  # lazy: pandas

    manifest = next((m for m in load_manifests() if m.get("run_id") == run_id), None)
    if manifest is None:
        raise UserError(f"no run {run_id!r} in this workspace: `ls .workbench/runs` lists them")
    config = manifest.get("config", {})
    command = f"bench --rerun {run_id}"
    if isinstance(config.get("sweep"), dict):
        return run_sweep(TaskSweep.from_json(config["sweep"]), command)
    if isinstance(config.get("configs"), list):
        known = set(BenchConfig.__dataclass_fields__)
        stale = sorted({k for c in config["configs"] for k in c} - known)
        if stale:
            raise UserError(
                f"run {run_id} was stored by another version of the workbench (its configs "
                f"have {', '.join(stale)}): bench the model file again instead"
            )
        configs = [BenchConfig(**c) for c in config["configs"]]
        inputs = config.get("inputs")
        manifest = {"command": command, "model_file": config.get("model_file"), "inputs": inputs}
        return run_configs(configs, manifest, inputs)
    raise UserError(
        f"run {run_id} stores no sweep or configs to repeat (it was made by "
        f"{config.get('command', 'another command')!r}, or by an older workbench)"
    )


def resume(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Finish a cut-short task sweep in place (a fleet run over its cluster); all of the
    run's rows."""
    # lazy: pandas
    from workbench.results import load
    from workbench.sweep import resume as resume_sweep

    run_id = args.resume
    is_fleet = fleet.is_fleet_run(run_id)
    if args.cluster and not is_fleet:
        raise UserError(f"run {run_id} was not made with --cluster: resume it without --cluster")
    bar = progress_bar(desc=f"resume {run_id}", unit="job")
    progress = job_progress(bar)
    try:
        if is_fleet:
            store, measured = fleet.resume(args, progress)
        else:
            store, measured = resume_sweep(run_id, on_progress=progress)
    finally:
        bar.close()
    frame = load(run_ids=[store.run_id])
    print(
        f"run {store.run_id}: {len(measured)} missing configuration(s) measured, "
        f"{len(frame)} rows in {store.path}",
        file=sys.stderr,
    )
    return frame.to_dict(orient="records")
