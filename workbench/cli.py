"""The `workbench` command: parse, call the package, print a table or JSON lines.

Bad input exits with code 2 and one line saying what is wrong and what to do.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from workbench.errors import UserError
from workbench.formats import PRECISIONS
from workbench.profiles import PROFILE_NAMES, get_profile

JSON_FIELDS_EXCLUDED = ("latencies_ms",)
OUTPUTS = ("table", "json", "csv")
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
    # No abbreviations: `--format` must not silently mean `--formats`.
    parser = _Parser(prog="workbench", description=__doc__, allow_abbrev=False)
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=functools.partial(_Parser, allow_abbrev=False)
    )

    sub.add_parser("env", help="print the environment fingerprint")

    bench = sub.add_parser("bench", help="benchmark a model file or a registered task")
    bench.add_argument("model_file", nargs="?", help=".onnx, .tflite, .pt, .pt2 or SavedModel dir")
    bench.add_argument("--task", help="benchmark a registered task across its artifacts")
    bench.add_argument(
        "--rerun", metavar="RUN_ID", help="repeat a stored run from its manifest, as a new run"
    )
    bench.add_argument(
        "--resume",
        metavar="RUN_ID",
        help="finish a task sweep that was cut short: measure only its missing configurations",
    )
    bench.add_argument(
        "--model", help="task model variant(s), comma-separated (default: the task's own)"
    )
    bench.add_argument("--frameworks", help="source frameworks: torch,keras")
    bench.add_argument("--formats", help="formats, e.g. onnx,torchscript,tflite")
    bench.add_argument(
        "--precisions", help="fp32,fp16,int8-dynamic,int8-static (default: all that apply)"
    )
    bench.add_argument("--runtime", help="runtime for a model file (default: from the file)")
    bench.add_argument("--device", help="cpu, cuda or cuda:N; comma-separated (default cpu)")
    bench.add_argument(
        "--threads", help="intra-op thread counts, e.g. 1,2 (default: all cores available)"
    )
    bench.add_argument("--batch", help="batch sizes, e.g. 1,8,32")
    bench.add_argument(
        "--seq-len", help="sequence lengths of a text task, e.g. 16,64,256 (default: preset)"
    )
    bench.add_argument(
        "--dim",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a symbolic input dimension (repeatable)",
    )
    bench.add_argument(
        "--shape",
        action="append",
        default=[],
        metavar="NAME=AXES",
        help="a model file's input shape, overriding its signature: axes joined by x, B for "
        "the batch axis, e.g. --shape state=2xBx128 or --shape image=Bx3x224x320 (repeatable)",
    )
    bench.add_argument(
        "--batch-axis",
        action="append",
        default=[],
        metavar="NAME=AXIS",
        help="the axis of a model file's input that takes the batch size, or none "
        "(default: found from the symbol the inputs share)",
    )
    bench.add_argument(
        "--int-range",
        action="append",
        default=[],
        metavar="NAME=LOW:HIGH",
        help="generated integers of a model file's input in [LOW, HIGH) (default: the range "
        "the file declares, else 0:100)",
    )
    bench.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=FILE.npy",
        help="real data for one input of a model file; cut or tiled to each batch size",
    )
    bench.add_argument(
        "--inputs",
        metavar="FEEDS.npz",
        help="real data for some or all inputs of a model file (.npz of NAME -> array)",
    )
    bench.add_argument(
        "--min-iters",
        type=int,
        help="minimum measured iterations (default: the profile's; full 100)",
    )
    bench.add_argument(
        "--min-time", type=float, help="minimum measured seconds (default: the profile's; full 1.0)"
    )
    bench.add_argument(
        "--max-time", type=float, help="maximum measured seconds (default: the profile's; full 30)"
    )
    bench.add_argument(
        "--warmup", type=int, help="warm-up iterations (default: the profile's; full 10)"
    )
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
        "--setting",
        action="append",
        default=[],
        metavar="RUNTIME.NAME=VALUE",
        help="a runtime's own setting, e.g. onnxruntime.allow_spinning=false (repeatable; "
        "`workbench list runtimes` shows each runtime's settings)",
    )
    bench.add_argument(
        "--no-end-to-end",
        dest="end_to_end",
        action="store_false",
        help="tasks with pre/post-processing: time the model only (skip the end-to-end loop)",
    )
    bench.add_argument(
        "--profile",
        choices=PROFILE_NAMES,
        help="what to measure when not told: ci (tiny), quick, full (default); a task's "
        "own presets per profile",
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help="the quick profile: short measurements; batches 1,8,64,256 (a task may set its own)",
    )
    _add_output(bench)
    from workbench.scenarios.cli import add_arguments as add_scenario_arguments

    add_scenario_arguments(bench)
    from workbench.fleet.cli import add_bench_arguments, add_cluster_parser

    add_bench_arguments(bench)
    add_cluster_parser(sub, functools.partial(_Parser, allow_abbrev=False))

    export = sub.add_parser("export", help="export a task's models and print the matrix")
    export.add_argument("--task", required=True)
    export.add_argument("--model", help="model variant(s), comma-separated")
    export.add_argument("--frameworks", help="source frameworks: torch,keras")
    export.add_argument("--formats", help="formats, e.g. onnx,torchscript,tflite,savedmodel")
    export.add_argument(
        "--precisions", help="fp32,fp16,int8-dynamic,int8-static (default: all that apply)"
    )
    _add_output(export)

    cache = sub.add_parser("cache", help="list, verify (sha256) or prune the exported artifacts")
    cache_sub = cache.add_subparsers(dest="cache_command", required=True)
    for name, text in (
        ("ls", "list every artifact with its state (ok, failed, stale, corrupt, no-manifest)"),
        ("verify", "check every artifact's files against its manifest's sha256 (exit 1: bad)"),
        ("gc", "remove the artifacts that can never be served: unfinished, corrupt, stale"),
    ):
        cmd = cache_sub.add_parser(name, help=text)
        _add_output(cmd)
        if name == "gc":
            cmd.add_argument("--dry-run", action="store_true", help="list, remove nothing")
            cmd.add_argument(
                "--keep-failed", action="store_true", help="keep the manifests of failed exports"
            )

    report = sub.add_parser("report", help="write an HTML report of a run under reports/")
    report.add_argument("--run", help="run id (default: the latest run)")
    report.add_argument("--out", default="reports", help="output folder (default reports/)")

    rec = sub.add_parser(
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

    cmp_ = sub.add_parser(
        "compare", help="compare two runs: per-configuration change with a noise-aware verdict"
    )
    cmp_.add_argument("run_a", help="the baseline run id (or latest / previous)")
    cmp_.add_argument("run_b", help="the run compared with it")
    cmp_.add_argument("--noise-floor", default="5%", help="smallest change judged (default 5%%)")
    cmp_.add_argument(
        "--noise-from",
        nargs="+",
        metavar="RUN",
        help="A/A calibration: one or more earlier pairs of identical runs (A0 A1 [A2 A3 ...]); "
        "each configuration's floor rises to the between-run drift they show",
    )
    cmp_.add_argument(
        "--fail-on-regression",
        metavar="PCT",
        help="exit 1 when a configuration is judged slower by more than PCT (e.g. 5%%)",
    )
    cmp_.add_argument(
        "--html",
        nargs="?",
        const="",
        metavar="FILE",
        help="also write the HTML diff report (default file: reports/compare-A-vs-B.html, "
        "listed in reports/index.html)",
    )
    cmp_.add_argument("--output", choices=("table", "json"), default="table")

    notebooks = sub.add_parser("notebooks", help="run the notebooks (papermill) into reports/")
    nb_sub = notebooks.add_subparsers(
        dest="notebooks_command",
        required=True,
        parser_class=functools.partial(_Parser, allow_abbrev=False),
    )
    nb_run = nb_sub.add_parser("run", help="execute notebooks, convert to HTML, write the index")
    nb_run.add_argument("--profile", choices=PROFILE_NAMES, default="ci")
    nb_run.add_argument("--only", nargs="+", action="extend", metavar="NAME", help="notebooks")
    nb_run.add_argument("--notebooks", default="notebooks", help="folder (default notebooks/)")
    nb_run.add_argument("--out", default="reports", help="output folder (default reports/)")
    nb_run.add_argument("--cell-timeout", type=int, help="seconds per cell (default: none)")
    nb_list = nb_sub.add_parser("list", help="list the notebooks in run order")
    nb_list.add_argument("--notebooks", default="notebooks", help="folder (default notebooks/)")
    nb_strip = nb_sub.add_parser("strip", help="remove outputs and execution counts in place")
    nb_strip.add_argument("paths", nargs="*", default=["notebooks"], help="folders or files")
    nb_new = nb_sub.add_parser("new", help="write the notebook of a newly registered task")
    nb_new.add_argument("task", help="a registered task without a notebook")
    nb_new.add_argument("--notebooks", default="notebooks", help="folder (default notebooks/)")

    from workbench.serving.cli import add_parser as add_serve_parser

    add_serve_parser(sub)

    listing = sub.add_parser("list", help="list the registered tasks, runtimes and passes")
    listing.add_argument(
        "what", nargs="?", choices=("tasks", "runtimes", "passes"), help="one registry only"
    )
    return parser


def _add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        choices=OUTPUTS,
        default="table",
        help="table (default), json (one JSON line per row) or csv on stdout",
    )


def _profile(args: argparse.Namespace) -> str:
    if args.quick and args.profile not in (None, "quick"):
        raise UserError(f"--quick is --profile quick: it cannot go with --profile {args.profile}")
    return "quick" if args.quick else (args.profile or "full")


def _stop_rule(args: argparse.Namespace) -> Any:
    """The profile's timing rule, with the fields given on the command line."""
    from dataclasses import replace

    given = {
        "min_iters": args.min_iters,
        "min_time_s": args.min_time,
        "max_time_s": args.max_time,
        "warmup_iters": args.warmup,
    }
    return replace(
        get_profile(_profile(args)).rule, **{k: v for k, v in given.items() if v is not None}
    )


def _runtime_settings(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Runtime settings from the command line, by runtime (each runtime checks its own)."""
    settings: dict[str, dict[str, Any]] = {}
    ort = settings.setdefault("onnxruntime", {})
    if args.tensorrt:
        ort["tensorrt"] = True
    if args.graph_optimization:
        ort["graph_optimization_level"] = args.graph_optimization
    if args.no_spinning:
        ort["allow_spinning"] = False
    for item in args.setting:
        runtime, name, value = _parse_setting(item)
        settings.setdefault(runtime, {})[name] = value
    return {runtime: values for runtime, values in settings.items() if values}


def _parse_setting(item: str) -> tuple[str, str, Any]:
    """`RUNTIME.NAME=VALUE`; the value read as JSON where it parses (true, 3, null, "x"),
    else as text."""
    key, sep, text = item.partition("=")
    runtime, dot, name = key.partition(".")
    if not sep or not dot or not runtime or not name:
        raise UserError(
            f"--setting must look like RUNTIME.NAME=VALUE (e.g. onnxruntime.allow_spinning="
            f"false), got {item!r}"
        )
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    return runtime.strip(), name.strip(), value


def cmd_env(_: argparse.Namespace) -> int:
    from workbench.env import fingerprint, fingerprint_id, format_fingerprint

    fp = fingerprint()
    print(format_fingerprint(fp))
    print(f"fingerprint id: {fingerprint_id(fp)}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from workbench.fleet.cli import check_bench_args

    check_bench_args(args)
    if args.rerun and args.resume:
        raise UserError("give --rerun or --resume, not both")
    if args.rerun or args.resume:
        flag = "--rerun" if args.rerun else "--resume"
        given = _options_given_with_rerun(args)
        if args.resume:  # a fleet run may resume through a scheduler at a new address
            given = [g for g in given if g != "--cluster"]
        if given:
            raise UserError(
                f"{flag} takes the sweep from the stored run: drop {', '.join(given)} (or run "
                "a new bench with them)"
            )
        rows = _rerun(args.rerun) if args.rerun else _resume(args)
    elif args.scenario:
        from workbench.scenarios.cli import bench_scenario, print_rows

        if _input_options_given(args):
            raise UserError(
                "--shape, --batch-axis, --int-range and --input(s) are not supported with "
                "--scenario yet: use --dim, or bench the model file without --scenario"
            )

        print_rows(bench_scenario(args, _profile(args)), args.output)
        return 0
    elif bool(args.model_file) == bool(args.task):
        raise UserError("give either a MODEL_FILE or --task NAME (see `workbench bench --help`)")
    else:
        rows = _bench_file(args) if args.model_file else _bench_task(args)
    _print_rows(rows, args.output)
    return 0


# What --rerun takes from the stored run, so the command line must not give it.
_RERUN_CONFLICTS = {
    "model_file": "MODEL_FILE",
    "task": "--task",
    "model": "--model",
    "frameworks": "--frameworks",
    "formats": "--formats",
    "precisions": "--precisions",
    "runtime": "--runtime",
    "device": "--device",
    "threads": "--threads",
    "batch": "--batch",
    "seq_len": "--seq-len",
    "dim": "--dim",
    "shape": "--shape",
    "batch_axis": "--batch-axis",
    "int_range": "--int-range",
    "input": "--input",
    "inputs": "--inputs",
    "min_iters": "--min-iters",
    "min_time": "--min-time",
    "max_time": "--max-time",
    "warmup": "--warmup",
    "tensorrt": "--tensorrt",
    "graph_optimization": "--graph-optimization",
    "no_spinning": "--no-spinning",
    "setting": "--setting",
    "profile": "--profile",
    "quick": "--quick",
    "scenario": "--scenario",
    "cluster": "--cluster",
    "hosts": "--hosts",
    "each_host": "--each-host",
}


def _options_given_with_rerun(args: argparse.Namespace) -> list[str]:
    given = [
        flag
        for name, flag in _RERUN_CONFLICTS.items()
        if getattr(args, name) not in (None, False, [])
    ]
    if args.repeats != 1:
        given.append("--repeats")
    if not args.end_to_end:
        given.append("--no-end-to-end")
    return given


def _devices(args: argparse.Namespace) -> list[str]:
    from workbench.devices import parse_device

    return [str(parse_device(d)) for d in _csv(args.device) or ["cpu"]]


def _threads(args: argparse.Namespace) -> list[int | None]:
    # Default: every core this process may use, set explicitly for every runtime, so that
    # runtimes with a 1-thread default (LiteRT) are not compared unfairly with the others.
    if args.threads:
        return list(_int_list(args.threads, "--threads"))
    return [len(os.sched_getaffinity(0))]


def _bench_file(args: argparse.Namespace) -> list[dict[str, Any]]:
    from workbench.formats import detect_format, runtime_for
    from workbench.harness.runner import BenchConfig
    from workbench.model_inputs import signature_from_shapes
    from workbench.registry import get_runtime
    from workbench.signature import parse_dims

    path = Path(args.model_file)
    fmt = detect_format(path)
    runtime = get_runtime(args.runtime or runtime_for(fmt))
    if fmt not in runtime.formats:
        raise UserError(
            f"runtime {runtime.name!r} cannot run format {fmt!r} ({path.name}): it runs "
            f"{', '.join(runtime.formats)}; drop --runtime or pick {runtime_for(fmt)}"
        )
    plan = _input_plan(args, path, fmt)
    settings = _runtime_settings(args)
    others = sorted(set(settings) - {runtime.name})
    if others:
        raise UserError(
            f"settings for {', '.join(others)} given, but {path.name} runs on {runtime.name}: "
            f"drop them or pick that runtime with --runtime"
        )
    profile = get_profile(_profile(args))
    batches = _int_list(args.batch, "--batch") if args.batch else list(profile.file_batch_sizes)
    configs = [
        BenchConfig(
            runtime=runtime.name,
            format=fmt,
            path=str(path),
            device=d,
            threads=t,
            batch_sizes=batches,
            dims=parse_dims(args.dim),
            rule=_stop_rule(args),
            runtime_settings=settings.get(runtime.name, {}),
            repeats=args.repeats,
            labels={"model": path.name, "precision": None},
            input_plan=plan.to_json(),
        )
        for d in _devices(args)
        for t in _threads(args)
    ]
    # TorchScript carries no typed signature: --shape items (in forward's order) give it
    inputs = signature_from_shapes(plan) if fmt == "torchscript" and plan.shapes else None
    manifest = {"command": "bench", "model_file": str(path), "inputs": inputs}
    return _run_configs(configs, manifest, inputs)


def _input_options_given(args: argparse.Namespace) -> bool:
    return any(getattr(args, n) for n in ("shape", "batch_axis", "int_range", "input", "inputs"))


def _input_plan(args: argparse.Namespace, path: Path, fmt: str) -> Any:
    """What the command line says about a model file's inputs, plus the integer ranges
    the file itself declares."""
    from workbench import input_options as opts
    from workbench import model_inputs as mi

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


def _progress_bar(**kwargs: Any) -> Any:
    """A tqdm bar on stderr, or a silent stand-in where tqdm is not installed (a host
    with only PyTorch's stack)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar(kwargs.get("iterable"))
    return tqdm(disable=None, file=sys.stderr, **kwargs)


class _NoBar:
    total: int | None = None

    def __init__(self, iterable: Any = None) -> None:
        self.iterable = iterable or ()

    def __iter__(self) -> Any:
        return iter(self.iterable)

    def set_postfix_str(self, text: str) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _run_configs(
    configs: list[Any], manifest: dict[str, Any], inputs: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Benchmark model-file configs into one new stored run, each in a worker process
    (a runtime that crashes on the file costs its rows, not the CLI)."""
    from workbench.harness.isolated import run_isolated
    from workbench.results import RunStore, load

    store = RunStore.create({**manifest, "configs": [c.to_json() for c in configs]})
    status = "failed"
    try:
        for config in _progress_bar(iterable=configs, desc="bench", unit="config"):
            user_error = run_isolated(store, config, inputs)
            if user_error:
                raise UserError(user_error)
        status = "ok"
    finally:
        store.finish(status)
    return load(run_ids=[store.run_id]).to_dict(orient="records")


def _bench_task(args: argparse.Namespace) -> list[dict[str, Any]]:
    from workbench.sweep import from_profile

    if _input_options_given(args):
        raise UserError(
            "--shape, --batch-axis, --int-range and --input(s) describe a MODEL_FILE's inputs; "
            "a task brings its own"
        )

    sweep = from_profile(
        args.task,
        _profile(args),
        models=_csv(args.model) or (),
        frameworks=_csv(args.frameworks) or (),
        formats=_csv(args.formats) or (),
        precisions=_csv(args.precisions) or (),
        batch_sizes=_int_list(args.batch, "--batch") if args.batch else (),
        seq_lens=_int_list(args.seq_len, "--seq-len") if args.seq_len else (),
        threads=_threads(args),
        devices=_devices(args),
        rule=_stop_rule(args),
        runtime_settings=_runtime_settings(args),
        repeats=args.repeats,
        end_to_end=args.end_to_end,
    )
    return _run_sweep(sweep, "bench", args)


def _run_sweep(
    sweep: Any, command: str, args: argparse.Namespace | None = None
) -> list[dict[str, Any]]:
    """Run a task sweep into a new stored run with a progress bar (over the cluster with
    --cluster); its rows."""
    from workbench.results import load
    from workbench.sweep import run_stored

    bar = _progress_bar(desc=f"bench {sweep.task}", unit="job")

    def progress(done: int, total: int, label: str) -> None:
        bar.total = total
        bar.set_postfix_str(label)
        bar.update(1)

    try:
        if args is not None and args.cluster:
            from workbench.fleet.cli import run_on_cluster

            store = run_on_cluster(sweep, args, progress)
        else:
            store = run_stored(sweep, command=command, on_progress=progress)
    finally:
        bar.close()
    frame = load(run_ids=[store.run_id])
    print(f"run {store.run_id}: {len(frame)} rows in {store.path}", file=sys.stderr)
    return frame.to_dict(orient="records")


def _resume(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Finish a cut-short task sweep in place (a fleet run over its cluster); all of the
    run's rows."""
    from workbench.fleet.cli import is_fleet_run
    from workbench.fleet.cli import resume as resume_fleet
    from workbench.results import load
    from workbench.sweep import resume

    run_id = args.resume
    bar = _progress_bar(desc=f"resume {run_id}", unit="job")

    def progress(done: int, total: int, label: str) -> None:
        bar.total = total
        bar.set_postfix_str(label)
        bar.update(1)

    fleet = is_fleet_run(run_id)
    if args.cluster and not fleet:
        raise UserError(f"run {run_id} was not made with --cluster: resume it without --cluster")
    try:
        if fleet:
            store, measured = resume_fleet(args, progress)
        else:
            store, measured = resume(run_id, on_progress=progress)
    finally:
        bar.close()
    frame = load(run_ids=[store.run_id])
    print(
        f"run {store.run_id}: {len(measured)} missing configuration(s) measured, "
        f"{len(frame)} rows in {store.path}",
        file=sys.stderr,
    )
    return frame.to_dict(orient="records")


def _rerun(run_id: str) -> list[dict[str, Any]]:
    """Repeat a stored run from its manifest: a task sweep, or model-file configs."""
    from workbench.harness.runner import BenchConfig
    from workbench.results import load_manifests
    from workbench.sweep import TaskSweep

    manifest = next((m for m in load_manifests() if m.get("run_id") == run_id), None)
    if manifest is None:
        raise UserError(f"no run {run_id!r} in this workspace: `ls .workbench/runs` lists them")
    config = manifest.get("config", {})
    command = f"bench --rerun {run_id}"
    if isinstance(config.get("sweep"), dict):
        return _run_sweep(TaskSweep.from_json(config["sweep"]), command)
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
        return _run_configs(configs, manifest, inputs)
    raise UserError(
        f"run {run_id} stores no sweep or configs to repeat (it was made by "
        f"{config.get('command', 'another command')!r}, or by an older workbench)"
    )


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
        from workbench.columns import Column

        kinds = {
            "size_bytes": "mb",
            "export_time_s": "ms",
            "parity_max_abs_error": "ratio",
            "parity_metric_value": "ratio",
        }
        columns = tuple(
            Column(c, "size MB" if c == "size_bytes" else c, kinds.get(c, "text"))
            for c in EXPORT_COLUMNS
        )
        _emit([{c: m.get(c) for c in EXPORT_COLUMNS} for m in manifests], columns, args.output)
    return 0 if all(m.get("status") == "ok" for m in manifests) else 1


CACHE_COLUMNS = (
    ("entry", "entry", "text"),
    ("state", "state", "text"),
    ("format", "format", "text"),
    ("precision", "precision", "text"),
    ("size_bytes", "size MB", "mb"),
    ("peak_rss_bytes", "export peak RSS MB", "mb"),
    ("parity_pass", "parity", "bool"),
    ("reason", "reason", "text"),
)


def cmd_cache(args: argparse.Namespace) -> int:
    """`workbench cache ls|verify|gc`: see exporters.cache."""
    from exporters import cache
    from workbench.columns import Column

    if args.cache_command == "gc":
        found = cache.gc(dry_run=args.dry_run, keep_failed=args.keep_failed)
    else:
        hashes = args.cache_command == "verify"
        found = [cache.check(e, hashes=hashes) for e in cache.entries()]
    rows = [e.row() for e in found]
    _emit(rows, tuple(Column(*c) for c in CACHE_COLUMNS), args.output)
    if args.cache_command == "gc":
        verb = "would remove" if args.dry_run else "removed"
        print(f"{verb} {len(rows)} artifact(s)", file=sys.stderr)
    bad = [e for e in found if e.state in ("corrupt", "no-manifest")]
    return 1 if args.cache_command == "verify" and bad else 0


def cmd_report(args: argparse.Namespace) -> int:
    from workbench.report.html import write_run_report

    path = write_run_report(args.run, Path(args.out))
    print(f"report written: {path}")
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    import pandas as pd

    from workbench.study.compare import load_run
    from workbench.study.recommend import Constraints, describe_config, recommend

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
        return 0 if result.best is not None else 1
    print(f"constraints: {constraints.describe()}")
    for note in result.notes:
        print(f"note: {note}")
    print(result.summary())
    if result.best is not None:
        print(f"\nrunners-up ({len(result.runners_up)}):")
        for r in result.runners_up.to_dict(orient="records"):
            print(f"  {describe_config(r)}: {r['gives up']}")
        front = result.front[result.front["on_front"]] if not result.front.empty else result.front
        print(
            f"\nPareto front, p99 x quality x size ({len(front)} of {len(result.front)} at this batch):"
        )
        for r in front.to_dict(orient="records"):
            print(
                f"  {r['model']} {r['source_framework']}/{r['format']}/{r['precision']} on "
                f"{r['runtime']}: p99 {r['latency_ms_p99']:.3g} ms, {r['quality_metric']} "
                f"{r['quality']:.4g}, {r['model_size_bytes'] / 1e6:.3g} MB"
            )
    reasons = result.rejected["why"].value_counts() if not result.rejected.empty else []
    if len(reasons):
        print(f"\nrejected ({len(result.rejected)}), most common reasons:")
        for why, n in list(reasons.items())[:5]:
            print(f"  {n} x {why}")
    return 0 if result.best is not None else 1


def cmd_compare(args: argparse.Namespace) -> int:
    from workbench.study.compare import compare, load_calibration, load_run, parse_threshold

    floor = parse_threshold(args.noise_floor)
    gate = parse_threshold(args.fail_on_regression) if args.fail_on_regression else None
    calibration = load_calibration(args.noise_from) if args.noise_from else None
    manifest_a, frame_a = load_run(args.run_a)
    manifest_b, frame_b = load_run(args.run_b)
    result = compare(frame_a, frame_b, manifest_a, manifest_b, floor=floor, calibration=calibration)
    if args.html is not None:
        from workbench.report import compare_html
        from workbench.study.headlines import host_text

        caption = (
            f"A: run {result.run_a} on {host_text(manifest_a.get('fingerprint', {}))}; "
            f"B: run {result.run_b} on {host_text(manifest_b.get('fingerprint', {}))}"
        )
        if args.html:
            path = compare_html.write(result, Path(args.html), caption)
        else:
            from workbench.report.index import write_index

            name = f"compare-{result.run_a}-vs-{result.run_b}.html"
            path = compare_html.write(result, Path("reports") / name, caption)
            write_index(path.parent)
    regressions = result.regressions(gate) if gate is not None else None
    if args.output == "json":
        print(
            json.dumps(
                {
                    "run_a": result.run_a,
                    "run_b": result.run_b,
                    "summary": result.summary(),
                    "counts": result.counts(),
                    "fingerprint_diff": result.fingerprint_diff,
                    "warnings": result.warnings,
                    "calibration": None
                    if calibration is None
                    else {
                        "sources": calibration.sources,
                        "quantile": calibration.quantile,
                        "run_wide_floor": math.expm1(calibration.run_wide),
                        "configurations": len(calibration.per_config),
                    },
                    "rows": result.table.to_dict(orient="records"),
                },
                default=str,
            )
        )
    else:
        print(f"A: {result.run_a}  B: {result.run_b}  noise floor {floor:.0%}")
        if calibration is not None:
            print(
                f"A/A calibration from {'; '.join(calibration.sources)}: "
                f"{len(calibration.per_config)} configurations, run-wide "
                f"p{calibration.quantile * 100:.0f} floor {math.expm1(calibration.run_wide):.0%}"
            )
        for line in result.fingerprint_diff:
            print(f"warning: environments differ: {line}")
        for line in result.warnings:
            print(f"warning: {line}")
        print(result.summary())
        changed = (
            result.table[result.table["verdict"].isin(["slower", "faster"])]
            if not result.table.empty
            else result.table
        )
        for r in changed.to_dict(orient="records"):
            print(
                f"  {r['verdict']:>6} {r['p50 change']:+.1%} p50 (95% CI of B/A "
                f"{r['ratio CI low']:.3f}-{r['ratio CI high']:.3f}), p99 {r['p99 change']:+.1%}, "
                f"throughput {r['throughput change']:+.1%}, floor {r['floor']:.0%} "
                f"({r['floor source']}): {r['config']}"
            )
        if args.html is not None:
            print(f"HTML diff report: {path}")
    if regressions is not None and len(regressions):
        print(
            f"regression gate: {len(regressions)} configuration(s) slower by more than {gate:.0%}",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_notebooks(args: argparse.Namespace) -> int:
    from workbench.study import notebooks

    if args.notebooks_command == "list":
        print("\n".join(notebooks.discover(Path(args.notebooks))))
        return 0
    if args.notebooks_command == "new":
        from workbench.registry import TASKS

        if args.task not in TASKS.names():
            raise UserError(
                f"unknown task {args.task!r}: register it first (workbench/registry.py or an "
                f"entry point); registered: {', '.join(TASKS.names())}"
            )
        path = notebooks.new_task_notebook(args.task, Path(args.notebooks))
        print(f"notebook written: {path} (and its paired .py)")
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


def cmd_list(args: argparse.Namespace) -> int:
    """The registries, read from their tables and entry points; a runtime's or pass's
    options are shown only for one registry (that imports its modules, not frameworks)."""
    from workbench.devices import parse_device
    from workbench.registry import registries

    chosen = {k: v for k, v in registries().items() if args.what in (None, k)}
    for noun, registry in chosen.items():
        print(f"{noun}:")
        for name in registry.names():
            detail = ""
            if args.what in ("runtimes", "passes"):
                cls = registry.get(name)
                options = cls.Settings if noun == "runtimes" else cls.Params
                detail = f"  [{options.describe()}]"
            if args.what == "runtimes":
                reason = cls().unavailable_reason(parse_device("cpu"))
                detail += f"  unavailable: {reason}" if reason else ""
            print(f"  {name}{detail}")
    return 0


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _print_rows(rows: list[dict[str, Any]], output: str) -> None:
    from workbench.columns import SUMMARY_COLUMNS

    _emit(rows, SUMMARY_COLUMNS, output)


def _emit(rows: list[dict[str, Any]], columns: Sequence[Any], output: str) -> None:
    """Rows on stdout: JSON lines (every field but the raw latencies), CSV (the same), or a
    table of the given summary columns that hold a value."""
    if output == "json":
        for row in rows:
            clean = {k: _clean(v) for k, v in row.items() if k not in JSON_FIELDS_EXCLUDED}
            print(json.dumps(clean, default=str))
        return
    if output == "csv":
        import csv

        # every field any row has (result rows: RESULT_FIELDS order), nested values as JSON
        fields = [
            k
            for k in dict.fromkeys(k for row in rows for k in row)
            if k not in JSON_FIELDS_EXCLUDED
        ]
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_cell(row.get(k)) for k in fields})
        return
    _print_table(rows, columns)


def _csv_cell(value: Any) -> Any:
    value = _clean(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return value


def _print_table(rows: list[dict[str, Any]], columns: Sequence[Any]) -> None:
    """A rich table: one line per row, numbers right-aligned in their column's format. On a
    terminal it fits the width; piped, lines are never wrapped. Without rich installed, a
    plain table of the same cells."""
    from workbench.columns import format_value, used_columns

    used = used_columns(rows, tuple(columns))
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        cells = [[c.header for c in used]]
        cells += [[format_value(row.get(c.field), c.kind) for c in used] for row in rows]
        widths = [max(len(line[i]) for line in cells) for i in range(len(used))]
        for line in cells:
            print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in used:
        numeric = column.kind not in ("text", "bool")
        table.add_column(column.header, justify="right" if numeric else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(format_value(row.get(c.field), c.kind) for c in used))
    terminal = sys.stdout.isatty()
    console = Console(width=None if terminal else 1000, soft_wrap=not terminal)
    console.print(table)


def cmd_serve(args: argparse.Namespace) -> int:
    from workbench.serving.cli import cmd_serve as serve

    return serve(args)


COMMANDS = {
    "env": cmd_env,
    "bench": cmd_bench,
    "export": cmd_export,
    "cache": cmd_cache,
    "report": cmd_report,
    "recommend": cmd_recommend,
    "compare": cmd_compare,
    "notebooks": cmd_notebooks,
    "list": cmd_list,
    "cluster": lambda args: _cmd_cluster(args),
    "serve": cmd_serve,
}


def _cmd_cluster(args: argparse.Namespace) -> int:
    from workbench.fleet.cli import cmd_cluster

    return cmd_cluster(args)


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
