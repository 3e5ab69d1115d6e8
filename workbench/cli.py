"""The `workbench` command: parse, call the package, print a table or JSON lines.

Bad input exits with code 2 and one line saying what is wrong and what to do.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from workbench.errors import UserError
from workbench.formats import PRECISIONS

JSON_FIELDS_EXCLUDED = ("latencies_ms",)
TABLE_COLUMNS = [
    ("status", "status"),
    ("model", "model"),
    ("source_framework", "src"),
    ("format", "format"),
    ("precision", "prec"),
    ("runtime", "runtime"),
    ("device", "device"),
    ("threads", "thr"),
    ("batch_size", "batch"),
    ("latency_ms_p50", "p50 ms"),
    ("latency_ms_p99", "p99 ms"),
    ("latency_ms_mean", "mean ms"),
    ("throughput_items_per_s", "items/s"),
    ("n_iterations", "n"),
    ("pre_ms_p50", "pre ms"),
    ("e2e_model_ms_p50", "e2e model ms"),
    ("post_ms_p50", "post ms"),
    ("e2e_ms_p50", "e2e ms"),
    ("stable", "stable"),
    ("parity_pass", "parity"),
    ("accuracy", "accuracy"),
    ("error", "error"),
]
QUICK = {"batch": [1, 8, 64, 256], "min_iters": 30, "min_time": 0.2, "warmup_time": 0.05}
FULL_BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see `{self.prog} --help`)")


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise UserError(f"{what} must be positive integers, got {text!r}")
    return values


def _csv(text: str | None) -> list[str] | None:
    return [v.strip() for v in text.split(",") if v.strip()] if text else None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="workbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("env", help="print the environment fingerprint")

    bench = sub.add_parser("bench", help="benchmark a model file or a registered task")
    bench.add_argument("model_file", nargs="?", help=".onnx, .tflite, .pt, .pt2 or SavedModel dir")
    bench.add_argument("--task", help="benchmark a registered task across its artifacts")
    bench.add_argument(
        "--model", help="task model variant(s), comma-separated (default: the task's own)"
    )
    bench.add_argument("--frameworks", help="source frameworks: torch,keras")
    bench.add_argument("--formats", help="formats, e.g. onnx,torchscript,tflite")
    bench.add_argument(
        "--precisions", help="fp32,fp16,int8-dynamic,int8-static (default: all that apply)"
    )
    bench.add_argument("--runtime", help="runtime for a model file (default: from the file)")
    bench.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N; comma-separated")
    bench.add_argument(
        "--threads", help="intra-op thread counts, e.g. 1,2 (default: all cores available)"
    )
    bench.add_argument("--batch", help="batch sizes, e.g. 1,8,32")
    bench.add_argument(
        "--dim",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a symbolic input dimension (repeatable)",
    )
    bench.add_argument("--min-iters", type=int, help="minimum measured iterations (default 100)")
    bench.add_argument("--min-time", type=float, help="minimum measured seconds (default 1.0)")
    bench.add_argument("--max-time", type=float, help="maximum measured seconds (default 30)")
    bench.add_argument("--warmup", type=int, help="warm-up iterations (default 10)")
    bench.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="independent timed runs per configuration; >1 flags p50 drift across them",
    )
    bench.add_argument(
        "--tensorrt",
        action="store_true",
        help="onnxruntime on cuda: put the TensorRT provider first (CUDA provider after it)",
    )
    bench.add_argument(
        "--graph-optimization",
        choices=("disable", "basic", "extended", "all"),
        help="onnxruntime graph optimization level (default all)",
    )
    bench.add_argument(
        "--no-spinning",
        action="store_true",
        help="onnxruntime: idle intra-op threads sleep instead of spinning (frees the cores "
        "for pre/post-processing between calls; may cost model latency)",
    )
    bench.add_argument(
        "--no-end-to-end",
        dest="end_to_end",
        action="store_false",
        help="tasks with pre/post-processing: time the model only (skip the end-to-end loop)",
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help="quick sweep: short measurements; batches 1,8,64,256 (a task may set its own)",
    )
    bench.add_argument(
        "--format",
        dest="output",
        choices=("table", "json"),
        default="table",
        help="table (default) or json lines on stdout",
    )

    export = sub.add_parser("export", help="export a task's models and print the matrix")
    export.add_argument("--task", required=True)
    export.add_argument("--model", help="model variant(s), comma-separated")
    export.add_argument("--frameworks", help="source frameworks: torch,keras")
    export.add_argument("--formats", help="formats, e.g. onnx,torchscript,tflite,savedmodel")
    export.add_argument(
        "--precisions", help="fp32,fp16,int8-dynamic,int8-static (default: all that apply)"
    )
    export.add_argument("--format", dest="output", choices=("table", "json"), default="table")

    report = sub.add_parser("report", help="write an HTML report of a run under reports/")
    report.add_argument("--run", help="run id (default: the latest run)")
    report.add_argument("--out", default="reports", help="output folder (default reports/)")

    notebooks = sub.add_parser("notebooks", help="run the notebooks (papermill) into reports/")
    nb_sub = notebooks.add_subparsers(dest="notebooks_command", required=True)
    nb_run = nb_sub.add_parser("run", help="execute notebooks, convert to HTML, write the index")
    nb_run.add_argument("--profile", choices=("ci", "full"), default="ci")
    nb_run.add_argument("--only", nargs="+", action="extend", metavar="NAME", help="notebooks")
    nb_run.add_argument("--notebooks", default="notebooks", help="folder (default notebooks/)")
    nb_run.add_argument("--out", default="reports", help="output folder (default reports/)")
    nb_run.add_argument("--cell-timeout", type=int, help="seconds per cell (default: none)")
    nb_list = nb_sub.add_parser("list", help="list the notebooks in run order")
    nb_list.add_argument("--notebooks", default="notebooks", help="folder (default notebooks/)")
    nb_strip = nb_sub.add_parser("strip", help="remove outputs and execution counts in place")
    nb_strip.add_argument("paths", nargs="*", default=["notebooks"], help="folders or files")
    return parser


def _stop_rule(args: argparse.Namespace) -> Any:
    from workbench.harness.timing import StopRule

    base = StopRule()
    values = {
        "min_iters": args.min_iters
        if args.min_iters is not None
        else (QUICK["min_iters"] if args.quick else base.min_iters),
        "min_time_s": args.min_time
        if args.min_time is not None
        else (QUICK["min_time"] if args.quick else base.min_time_s),
        "warmup_iters": args.warmup if args.warmup is not None else base.warmup_iters,
        "warmup_time_s": QUICK["warmup_time"] if args.quick else base.warmup_time_s,
    }
    if args.max_time is not None:
        values["max_time_s"] = args.max_time
    return StopRule(**values)


def _runtime_extra(args: argparse.Namespace) -> dict[str, Any]:
    """Runtime options from the command line (each runtime reads the keys it knows)."""
    extra: dict[str, Any] = {}
    if args.tensorrt:
        extra["tensorrt"] = True
    if args.graph_optimization:
        extra["graph_optimization_level"] = args.graph_optimization
    if args.no_spinning:
        extra["allow_spinning"] = False
    return extra


def cmd_env(_: argparse.Namespace) -> int:
    from workbench.env import fingerprint, fingerprint_id, format_fingerprint

    fp = fingerprint()
    print(format_fingerprint(fp))
    print(f"fingerprint id: {fingerprint_id(fp)}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if bool(args.model_file) == bool(args.task):
        raise UserError("give either a MODEL_FILE or --task NAME (see `workbench bench --help`)")
    from workbench.devices import parse_device

    devices = [str(parse_device(d)) for d in _csv(args.device) or ["cpu"]]
    # Default: every core this process may use, set explicitly for every runtime, so that
    # runtimes with a 1-thread default (LiteRT) are not compared unfairly with the others.
    threads: list[int | None] = (
        _int_list(args.threads, "--threads") if args.threads else [len(os.sched_getaffinity(0))]
    )
    defaults = _task_defaults(args)
    default_batches = QUICK["batch"] if args.quick else ([1] if args.model_file else FULL_BATCHES)
    default_batches = defaults.get("batch_sizes", default_batches)
    batches = _int_list(args.batch, "--batch") if args.batch else default_batches
    rule = _stop_rule(args)
    rows = (
        _bench_file(args, devices, threads, batches, rule)
        if args.model_file
        else _bench_task(args, devices, threads, batches, rule)
    )
    _print_rows(rows, args.output)
    return 0


def _task_defaults(args: argparse.Namespace) -> dict[str, Any]:
    """The task's own defaults for this mode (--quick or not), e.g. one model and batch
    sizes that suit it; empty for a model file."""
    if not args.task:
        return {}
    from workbench.tasks.base import get_task

    return dict(get_task(args.task).bench_defaults.get("quick" if args.quick else "full", {}))


def _bench_file(
    args: argparse.Namespace,
    devices: list[str],
    threads: list[int | None],
    batches: list[int],
    rule: Any,
) -> list[dict[str, Any]]:
    from tqdm import tqdm

    from workbench.formats import detect_format, runtime_for
    from workbench.harness.runner import BenchConfig, run_config
    from workbench.results import RunStore
    from workbench.runtimes.base import get_runtime
    from workbench.signature import parse_dims

    path = Path(args.model_file)
    fmt = detect_format(path)
    runtime = get_runtime(args.runtime or runtime_for(fmt))
    dims = parse_dims(args.dim)
    configs = [
        BenchConfig(
            runtime=runtime.name,
            format=fmt,
            path=str(path),
            device=d,
            threads=t,
            batch_sizes=batches,
            dims=dims,
            rule=rule,
            runtime_extra=_runtime_extra(args),
            repeats=args.repeats,
            labels={"model": path.name, "precision": None},
        )
        for d in devices
        for t in threads
    ]
    store = RunStore.create(
        {
            "command": "bench",
            "model_file": str(path),
            "runtime": runtime.name,
            "configs": [c.to_json() for c in configs],
        }
    )
    rows: list[dict[str, Any]] = []
    status = "failed"
    try:
        for config in tqdm(configs, desc="bench", unit="config", disable=None, file=sys.stderr):
            run_config(config, lambda row: rows.append(store.append(row)))
        status = "ok"
    finally:
        store.finish(status)
    return rows


def _bench_task(
    args: argparse.Namespace,
    devices: list[str],
    threads: list[int | None],
    batches: list[int],
    rule: Any,
) -> list[dict[str, Any]]:
    from tqdm import tqdm

    from workbench.results import RunStore, load
    from workbench.sweep import TaskSweep, plan, run_sweep

    sweep = TaskSweep(
        task=args.task,
        models=_csv(args.model) or _task_defaults(args).get("models"),
        frameworks=_csv(args.frameworks),
        formats=_csv(args.formats),
        precisions=_csv(args.precisions) or list(PRECISIONS),
        batch_sizes=batches,
        threads=threads,
        devices=devices,
        rule=rule,
        runtime_extra=_runtime_extra(args),
        repeats=args.repeats,
        end_to_end=args.end_to_end,
    )
    jobs = plan(sweep)
    if not jobs:
        raise UserError("nothing to benchmark: the filters exclude every format and precision")
    store = RunStore.create({"command": "bench", "task": args.task, "sweep": repr(sweep)})
    bar = tqdm(
        total=len(jobs), desc=f"bench {args.task}", unit="job", disable=None, file=sys.stderr
    )
    status = "failed"
    try:

        def progress(label: str) -> None:
            bar.set_postfix_str(label)
            bar.update(1)

        run_sweep(sweep, store, progress)
        status = "ok"
    finally:
        bar.close()
        store.finish(status)
    frame = load(run_ids=[store.run_id])
    print(f"run {store.run_id}: {len(frame)} rows in {store.path}", file=sys.stderr)
    return frame.to_dict(orient="records")


def cmd_export(args: argparse.Namespace) -> int:
    from exporters.base import export_many
    from workbench.sweep import TaskSweep, plan

    sweep = TaskSweep(
        task=args.task,
        models=_csv(args.model),
        frameworks=_csv(args.frameworks),
        formats=_csv(args.formats),
        precisions=_csv(args.precisions) or list(PRECISIONS),
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
        cols = [
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
        ]
        _print_table([{c: m.get(c) for c in cols} for m in manifests], [(c, c) for c in cols])
    return 0 if all(m.get("status") == "ok" for m in manifests) else 1


def cmd_report(args: argparse.Namespace) -> int:
    from workbench.report.html import write_run_report

    path = write_run_report(args.run, Path(args.out))
    print(f"report written: {path}")
    return 0


def cmd_notebooks(args: argparse.Namespace) -> int:
    from workbench.study import notebooks

    if args.notebooks_command == "list":
        print("\n".join(notebooks.discover(Path(args.notebooks))))
        return 0
    if args.notebooks_command == "strip":
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


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _print_rows(rows: list[dict[str, Any]], output: str) -> None:
    if output == "json":
        for row in rows:
            print(
                json.dumps(
                    {k: _clean(v) for k, v in row.items() if k not in JSON_FIELDS_EXCLUDED},
                    default=str,
                )
            )
        return
    _print_table(rows, TABLE_COLUMNS)


def _fmt(value: Any) -> str:
    value = _clean(value)
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _print_table(rows: list[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    used = [(k, h) for k, h in columns if any(_clean(r.get(k)) is not None for r in rows)]
    cells = [[_fmt(r.get(k)) for k, _ in used] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (_, h) in enumerate(used)]
    print("  ".join(h.ljust(w) for (_, h), w in zip(used, widths, strict=True)))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))


COMMANDS = {
    "env": cmd_env,
    "bench": cmd_bench,
    "export": cmd_export,
    "report": cmd_report,
    "notebooks": cmd_notebooks,
}


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"workbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("workbench: interrupted; finished rows are kept in the run", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout went to a closed pipe (e.g. `| head`): stop quietly, as shell tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
