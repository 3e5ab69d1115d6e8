"""`workbench recommend`: the best configuration of one or more runs within a latency,
size and accuracy budget, its runners-up and the Pareto front."""

from __future__ import annotations

import argparse
import json
from typing import Any

from workbench.commands.args import Subparsers


def add_parser(subparsers: Subparsers) -> None:
    rec = subparsers.add_parser(
        "recommend", help="the best configuration of a run within a latency/size/accuracy budget"
    )
    rec.add_argument(
        "--run", nargs="+", action="extend", metavar="RUN", help="run id(s) (default: latest)"
    )
    rec.add_argument("--p99-ms", type=float, help="p99 latency per call at most this (ms)")
    rec.add_argument("--batch", type=int, help="only this batch size")
    rec.add_argument("--min-throughput", type=float, help="at least this many items/s")
    rec.add_argument(
        "--max-accuracy-drop",
        type=float,
        help="accuracy may drop this many points below FP32 (default: parity must pass)",
    )
    rec.add_argument("--max-size-mb", type=float, help="artifact size at most this (MB)")
    rec.add_argument("--device", help="only this device, e.g. cpu or cuda:0")
    rec.add_argument("--model", help="only this model variant of the task")
    rec.add_argument("--objective", choices=("latency", "throughput"), help="what 'best' means")
    rec.add_argument("--top", type=int, default=3, help="runners-up shown (default 3)")
    rec.add_argument("--output", choices=("table", "json"), default="table")


def run(args: argparse.Namespace) -> int:
    """Exit 1 when no configuration meets the constraints."""
    # lazy: pandas, matplotlib (workbench.study)
    import pandas as pd

    from workbench.analysis.compare import load_run
    from workbench.analysis.recommend import Constraints, recommend

    frames = [load_run(r)[1] for r in (args.run or ["latest"])]
    constraints = Constraints(
        p99_ms=args.p99_ms,
        batch_size=args.batch,
        min_throughput=args.min_throughput,
        max_accuracy_drop=args.max_accuracy_drop,
        max_size_mb=args.max_size_mb,
        device=args.device,
        model=args.model,
        objective=args.objective,
    )
    result = recommend(pd.concat(frames, ignore_index=True), constraints, top=args.top)
    if args.output == "json":
        print(json.dumps(result.to_json(), default=str))
    else:
        print(f"constraints: {constraints.describe()}")
        _print_text(result)
    return 0 if result.best is not None else 1


def _print_text(result: Any) -> None:
    """The recommendation for a person: notes, best, runners-up, front, why rejected."""
    from workbench.analysis.recommend import describe_config  # lazy: pandas, matplotlib

    for note in result.notes:
        print(f"note: {note}")
    print(result.summary())
    if result.best is not None:
        print(f"\nrunners-up ({len(result.runners_up)}):")
        for r in result.runners_up.to_dict(orient="records"):
            print(f"  {describe_config(r)}: {r['gives up']}")
        front = result.front[result.front["on_front"]] if not result.front.empty else result.front
        print(
            f"\nPareto front, {result.latency_stat} x quality x size ({len(front)} of "
            f"{len(result.front)} at this batch):"
        )
        for r in front.to_dict(orient="records"):
            print(
                f"  {r['model']} {r['source_framework']}/{r['format']}/{r['precision']} on "
                f"{r['runtime']}: {result.latency_stat} "
                f"{r['latency_ms_' + result.latency_stat]:.3g} ms, {r['quality_metric']} "
                f"{r['quality']:.4g}, {r['model_size_bytes'] / 1e6:.3g} MB"
            )
    reasons = result.rejected["why"].value_counts() if not result.rejected.empty else []
    if len(reasons):
        print(f"\nrejected ({len(result.rejected)}), most common reasons:")
        for why, n in list(reasons.items())[:5]:
            print(f"  {n} x {why}")
