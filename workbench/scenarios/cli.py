"""`workbench bench --scenario ...`: a LoadGen scenario (or a server peak search) on a
model file or a task's artifact, through the dynamic batcher; rows into a stored run."""

from __future__ import annotations

import argparse
from typing import Any

from workbench.errors import UserError
from workbench.scenarios.settings import SCENARIOS


def add_arguments(bench: argparse.ArgumentParser) -> None:
    """The scenario and batcher flags of `workbench bench`."""
    group = bench.add_argument_group("load scenarios (MLPerf LoadGen)")
    group.add_argument(
        "--scenario",
        help=f"run a LoadGen scenario: {', '.join(SCENARIOS)} (durations from --profile; "
        "full keeps MLPerf's 600 s minimum)",
    )
    group.add_argument("--target-qps", type=float, help="server: Poisson arrival rate")
    group.add_argument(
        "--latency-bound-ms", type=float, help="server: latency bound at the target percentile"
    )
    group.add_argument(
        "--latency-percentile", type=float, help="target latency percentile (default 0.99)"
    )
    group.add_argument(
        "--find-peak",
        action="store_true",
        help="server: search the highest QPS whose latency stays under --latency-bound-ms",
    )
    group.add_argument("--max-probes", type=int, default=6, help="--find-peak: LoadGen runs")
    group.add_argument("--start-qps", type=float, help="--find-peak: first target QPS")
    group.add_argument("--min-duration-ms", type=int, help="LoadGen minimum duration")
    group.add_argument("--max-duration-ms", type=int, help="LoadGen maximum duration")
    group.add_argument("--min-query-count", type=int, help="LoadGen minimum query count")
    group.add_argument("--max-batch", type=int, default=8, help="batcher: max batch size")
    group.add_argument(
        "--max-queue-delay-ms", type=float, default=1.0, help="batcher: max queue delay"
    )
    group.add_argument("--preferred-batch", help="batcher: preferred batch sizes, e.g. 4,8")
    group.add_argument("--max-queue-size", type=int, default=1024, help="batcher: queue bound")
    group.add_argument(
        "--adaptive",
        action="store_true",
        help="batcher: tune the batch cap toward --latency-bound-ms from the batches it runs",
    )
    group.add_argument("--instances", type=int, default=1, help="model instances (threads)")
    group.add_argument(
        "--no-batcher", action="store_true", help="run every request alone (batch 1)"
    )


def _batcher(args: argparse.Namespace) -> Any:
    from workbench.scenarios.batcher import BatcherConfig

    if args.no_batcher:
        return None
    preferred = ()
    if args.preferred_batch:
        from workbench.cli import _int_list

        preferred = tuple(_int_list(args.preferred_batch, "--preferred-batch"))
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
    from workbench.cli import _csv, _devices
    from workbench.scenarios import models

    devices = _devices(args)
    threads = int(args.threads) if args.threads and args.threads.isdigit() else None
    if len(devices) > 1 or (args.threads and threads is None):
        raise UserError("--scenario runs one device and one thread count: give one of each")
    if args.runtime == "null" and not args.task:
        return models.load_null(args.instances, sample_count)
    if args.model_file:
        from workbench.signature import parse_dims

        return models.load_file(
            args.model_file,
            runtime=args.runtime,
            instances=args.instances,
            device=devices[0],
            threads=threads,
            dims=parse_dims(args.dim),
            sample_count=sample_count,
        )

    def one(text: str | None, what: str, default: str | None) -> str | None:
        values = _csv(text) or ([default] if default else [None])
        if len(values) > 1:
            raise UserError(f"--scenario measures one {what}: give one, not {text!r}")
        return values[0]

    return models.load_task(
        args.task,
        model=one(args.model, "model", None),
        framework=one(args.frameworks, "framework", "torch"),
        fmt=one(args.formats, "format", "onnx"),
        precision=one(args.precisions, "precision", "fp32"),
        instances=args.instances,
        device=devices[0],
        threads=threads,
        sample_count=sample_count,
    )


def bench_scenario(args: argparse.Namespace, profile: str) -> list[dict[str, Any]]:
    """Run the scenario (or the peak search) the flags describe into a new stored run."""
    from workbench.results import RunStore
    from workbench.scenarios.driver import run_scenario
    from workbench.scenarios.peak import find_peak
    from workbench.scenarios.settings import for_profile

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
        row["scenario_settings"] = {**row["scenario_settings"], "instances": args.instances}
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


def scenario_columns() -> tuple[Any, ...]:
    """The table columns of scenario rows (the settings' target QPS shown flat)."""
    from workbench.columns import Column

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


def print_rows(rows: list[dict[str, Any]], output: str) -> None:
    from workbench.cli import _emit

    if output == "table":
        rows = [
            {
                **r,
                "target_qps": (r.get("scenario_settings") or {}).get("target_qps"),
                "verdict_reasons": "; ".join(r.get("verdict_reasons") or []) or None,
            }
            for r in rows
        ]
    _emit(rows, scenario_columns(), output)
