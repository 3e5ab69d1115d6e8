"""`workbench bench --scenario ...`: a LoadGen scenario (or a server peak search) on a
model file or a task's artifact, through the dynamic batcher; rows into a stored run.
The scenario logic is workbench.scenarios'; this is its flags and the call."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from workbench.batching import BatcherConfig
from workbench.commands.args import csv_list, devices, int_list
from workbench.commands.bench.flags import SweepFlags
from workbench.commands.output import emit
from workbench.errors import UserError
from workbench.scenarios import models
from workbench.scenarios.driver import run_scenario
from workbench.scenarios.peak import find_peak
from workbench.scenarios.settings import SCENARIOS, for_profile
from workbench.signature import parse_dims


def add_arguments(bench: argparse.ArgumentParser, sweep: SweepFlags) -> None:
    """The scenario and batcher flags of `workbench bench` (only --scenario says what a
    run measures: --rerun and --resume refuse it)."""
    group = bench.add_argument_group("load scenarios (MLPerf LoadGen)")
    tuning = sweep.off(group)  # how the load is run, taken as given on a rerun
    sweep.on(group)(
        "--scenario",
        help=f"run a LoadGen scenario: {', '.join(SCENARIOS)} (durations from --profile; "
        "full keeps MLPerf's 600 s minimum)",
    )
    tuning("--target-qps", type=float, help="server: Poisson arrival rate")
    tuning("--latency-bound-ms", type=float, help="server: latency bound at the target percentile")
    tuning("--latency-percentile", type=float, help="target latency percentile (default 0.99)")
    tuning(
        "--find-peak",
        action="store_true",
        help="server: search the highest QPS whose latency stays under --latency-bound-ms",
    )
    tuning("--max-probes", type=int, default=6, help="--find-peak: LoadGen runs")
    tuning("--start-qps", type=float, help="--find-peak: first target QPS")
    tuning("--min-duration-ms", type=int, help="LoadGen minimum duration")
    tuning("--max-duration-ms", type=int, help="LoadGen maximum duration")
    tuning("--min-query-count", type=int, help="LoadGen minimum query count")
    tuning("--max-batch", type=int, default=8, help="batcher: max batch size")
    tuning("--max-queue-delay-ms", type=float, default=1.0, help="batcher: max queue delay")
    tuning("--preferred-batch", help="batcher: preferred batch sizes, e.g. 4,8")
    tuning("--max-queue-size", type=int, default=1024, help="batcher: queue bound")
    tuning(
        "--adaptive",
        action="store_true",
        help="batcher: tune the batch cap toward --latency-bound-ms from the batches it runs",
    )
    tuning(
        "--instances",
        type=int,
        default=1,
        help="model instances (threads); openvino: infer requests on one compiled model "
        "(throughput mode: at least its optimal count)",
    )
    tuning("--no-batcher", action="store_true", help="run every request alone (batch 1)")


def bench_scenario(args: argparse.Namespace, profile: str) -> list[dict[str, Any]]:
    """Run the scenario (or the peak search) the flags describe into a new stored run."""
    from workbench.results import RunStore  # lazy: pandas

    _check(args)
    settings = for_profile(
        profile,
        args.scenario,
        target_qps=1.0 if args.find_peak else args.target_qps,
        latency_bound_ms=args.latency_bound_ms,
        target_latency_percentile=args.latency_percentile,
        min_duration_ms=args.min_duration_ms,
        max_duration_ms=args.max_duration_ms,
        min_query_count=args.min_query_count,
    )
    batcher = _batcher(args)
    served = _served(args, settings.sample_count)
    # A runtime serving from one compiled model may run more callers than --instances
    # (OpenVINO's throughput mode: its optimal infer requests): one worker for each.
    instances = len(served.run_batches)
    if batcher is not None:
        batcher = replace(batcher, instances=instances)
    config = {
        "command": "bench",
        "scenario": args.scenario,
        "find_peak": args.find_peak,
        "settings": settings.to_json(),
        "batcher": batcher.to_json() if batcher else None,
        "model_file": args.model_file,
        "task": args.task,
    }
    store = RunStore.create(config)
    rows: list[dict[str, Any]] = []

    def keep(row: dict[str, Any]) -> None:
        row = {**served.labels, **row}
        row["scenario_settings"] = {**row["scenario_settings"], "instances": instances}
        rows.append(store.append(row))

    status = "failed"
    try:
        if args.find_peak:
            find_peak(
                served,
                settings,
                batcher,
                max_probes=args.max_probes,
                start_qps=args.start_qps,
                log_root=store.path / "loadgen",
                on_row=keep,
            )
        else:
            keep(run_scenario(served, settings, batcher, log_dir=store.path / "loadgen"))
        status = "ok"
    finally:
        served.close()
        store.finish(status)
    return rows


def _check(args: argparse.Namespace) -> None:
    """The scenario flags agree with each other."""
    if bool(args.model_file or args.runtime == "null") == bool(args.task):
        raise UserError("--scenario needs either a MODEL_FILE (or --runtime null) or --task NAME")
    if args.scenario not in SCENARIOS:
        raise UserError(f"unknown scenario {args.scenario!r}: LoadGen runs {', '.join(SCENARIOS)}")
    if args.find_peak and args.scenario != "server":
        raise UserError("--find-peak searches the server scenario: add --scenario server")
    if args.find_peak and args.target_qps is not None:
        raise UserError("--find-peak searches the target QPS: drop --target-qps (or --start-qps)")
    if args.instances < 1:
        raise UserError(f"--instances must be a positive integer, got {args.instances}")
    if args.adaptive and not args.latency_bound_ms:
        raise UserError("--adaptive tunes toward --latency-bound-ms: give it")


def _batcher(args: argparse.Namespace) -> BatcherConfig | None:
    if args.no_batcher:
        return None
    preferred = ()
    if args.preferred_batch:
        preferred = tuple(int_list(args.preferred_batch, "--preferred-batch"))
    return BatcherConfig(
        max_batch_size=args.max_batch,
        max_queue_delay_ms=args.max_queue_delay_ms,
        preferred_batch_sizes=preferred,
        max_queue_size=args.max_queue_size,
        instances=args.instances,
        adaptive=args.adaptive,
        latency_target_ms=args.latency_bound_ms if args.adaptive else None,
    )


def _served(args: argparse.Namespace, sample_count: int) -> Any:
    """The model the scenario drives: the null model, a model file or a task's artifact."""
    chosen = devices(args)
    threads = int(args.threads) if args.threads and args.threads.isdigit() else None
    if len(chosen) > 1 or (args.threads and threads is None):
        raise UserError("--scenario runs one device and one thread count: give one of each")
    if args.runtime == "null" and not args.task:
        return models.load_null(args.instances, sample_count)
    if args.model_file:
        return models.load_file(
            args.model_file,
            runtime=args.runtime,
            instances=args.instances,
            device=chosen[0],
            threads=threads,
            dims=parse_dims(args.dim),
            sample_count=sample_count,
        )
    return models.load_task(
        args.task,
        model=_one(args.model, "model", None),
        framework=_one(args.frameworks, "framework", None),
        fmt=_one(args.formats, "format", "onnx"),
        precision=_one(args.precisions, "precision", "fp32"),
        instances=args.instances,
        device=chosen[0],
        threads=threads,
        sample_count=sample_count,
    )


def _one(text: str | None, what: str, default: str | None) -> str | None:
    """The one value a scenario flag may give (its default where not given)."""
    values = csv_list(text) or ([default] if default else [None])
    if len(values) > 1:
        raise UserError(f"--scenario measures one {what}: give one, not {text!r}")
    return values[0]


def scenario_columns() -> tuple[Any, ...]:
    """The table columns of scenario rows (the settings' target QPS shown flat)."""
    from workbench.columns import Column  # lazy: pandas

    return (
        Column("status", "status", "text"),
        Column("model", "model", "text"),
        Column("runtime", "runtime", "text"),
        Column("scenario", "scenario", "text"),
        Column("target_qps", "target QPS", "rate"),
        Column("batch_size", "max batch", "count"),
        Column("throughput_items_per_s", "achieved/s", "rate"),
        Column("latency_ms_p50", "p50 ms", "ms"),
        Column("latency_ms_p99", "p99 ms", "ms"),
        Column("latency_ms_max", "max ms", "ms"),
        Column("queue_ms_p50", "queue p50 ms", "ms"),
        Column("compute_ms_p50", "compute p50 ms", "ms"),
        Column("rejected", "rejected", "count"),
        Column("failed_requests", "failed", "count"),
        Column("verdict", "verdict", "text"),
        Column("peak_qps", "peak QPS", "rate"),
        Column("verdict_reasons", "reasons", "text"),
        Column("error", "error", "text"),
    )


def print_scenario_rows(rows: list[dict[str, Any]], output: str) -> None:
    """Scenario rows on stdout; the table shows the target QPS and reasons flat."""
    if output == "table":
        rows = [
            {
                **r,
                "target_qps": (r.get("scenario_settings") or {}).get("target_qps"),
                "verdict_reasons": "; ".join(r.get("verdict_reasons") or []) or None,
            }
            for r in rows
        ]
    emit(rows, scenario_columns(), output)
