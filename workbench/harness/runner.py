"""Benchmark one artifact on one runtime/device/thread setting over batch sizes.

Produces one result row per batch size through `emit`, so the caller can store
each row durably the moment it exists. A configuration that cannot run becomes
a row with status `unavailable` (the backend or device is missing here) or
`failed` (it raised), and the remaining batch sizes still run. Only bad user
input (`UserError`) stops the whole call, since it would fail every row alike.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.devices import parse_device
from workbench.errors import UnavailableError, UserError
from workbench.harness.memory import peak_rss_bytes, reset_peak_rss
from workbench.harness.stats import summarize
from workbench.harness.timing import StopRule, time_calls
from workbench.model_inputs import InputPlan, describe, make_feeds
from workbench.options import Options
from workbench.procs import describe_memory_error
from workbench.registry import get_runtime
from workbench.runtimes.base import LoadedModel, RuntimeOptions, by_input_name
from workbench.signature import FixedBatchError, TensorSpec, make_input_pool, resolve_shape

if TYPE_CHECKING:
    # Type hints only: the runner measures any object with a pipeline's methods and needs
    # nothing from the tasks package at run time.
    from workbench.tasks.base import Pipeline

Row = dict[str, Any]
REPEAT_P50_MAX_DEV = 0.03  # repeated runs whose p50s spread wider than this are flagged


@dataclass
class BenchConfig:
    """One artifact on one runtime, device and thread count; swept over `batch_sizes`."""

    runtime: str
    format: str
    path: str | None = None
    device: str = "cpu"
    threads: int | None = None
    inter_op_threads: int | None = None
    batch_sizes: list[int] = field(default_factory=lambda: [1])
    dims: dict[str, int] = field(default_factory=dict)
    rule: StopRule = field(default_factory=StopRule)
    # The runtime's own settings by name (see the runtime's `Settings`), e.g.
    # {"allow_spinning": False} for onnxruntime; checked when the config is made.
    runtime_settings: dict[str, Any] = field(default_factory=dict)
    pool_size: int = 8
    # Independent timed loops per batch size; >1 also checks that p50 agrees across them.
    repeats: int = 1
    # Labels copied into every row.
    labels: dict[str, Any] = field(default_factory=dict)
    # Also time pre + model + post when the caller passes a task pipeline.
    end_to_end: bool = True
    # A model file's inputs as the user described them (workbench.model_inputs.InputPlan
    # as JSON): shapes, batch axes, integer ranges, real data. None: the signature alone.
    input_plan: dict[str, Any] | None = None
    # A known slowdown to test a regression gate with: each timed call spins this fraction
    # of its own duration more before it returns (0.1: 10 % slower). 0 in every real
    # measurement; a row measured with it records it in `runtime_options`.
    inject_slowdown: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.inject_slowdown < 10:
            raise UserError(f"inject_slowdown must be in [0, 10), got {self.inject_slowdown}")
        if not isinstance(self.repeats, int) or self.repeats < 1:
            raise UserError(f"repeats must be a positive integer, got {self.repeats!r}")
        if not self.batch_sizes:
            raise UserError("no batch sizes given: pass e.g. --batch 1,8,32")
        for b in self.batch_sizes:
            if not isinstance(b, int) or b <= 0:
                raise UserError(f"batch size must be a positive integer, got {b!r}")
        if isinstance(self.rule, dict):
            self.rule = StopRule(**self.rule)
        self.settings()  # an unknown or ill-typed setting fails here, before any work

    def settings(self) -> Options:
        """The runtime's typed settings for this config."""
        return get_runtime(self.runtime).parse_settings(self.runtime_settings)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rule"] = asdict(self.rule)
        return data


def _base_row(config: BenchConfig, batch_size: int) -> Row:
    row: Row = {
        "runtime": config.runtime,
        "format": config.format,
        "device": config.device,
        "threads": config.threads,
        "inter_op_threads": config.inter_op_threads,
        "batch_size": batch_size,
        "scenario": "single_stream" if batch_size == 1 else "offline",
        "artifact_path": config.path,
        "runtime_options": dict(config.runtime_settings) or None,
    }
    if config.inject_slowdown:
        row["runtime_options"] = {
            **(row["runtime_options"] or {}),
            "inject_slowdown": config.inject_slowdown,
        }
    if config.path and os.path.exists(config.path):
        row["model_size_bytes"] = _size_on_disk(Path(config.path))
    row.update(config.labels)
    return row


def _size_on_disk(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def outcome_rows(
    config: BenchConfig, status: str, error: str, batch_sizes: list[int] | None = None
) -> list[Row]:
    """The rows of a configuration that produced no measurement: one per batch size (all
    of the config's unless given), with its labels, status (`failed`/`unavailable`) and
    the reason. Every such row in the workbench is made here."""
    sizes = config.batch_sizes if batch_sizes is None else batch_sizes
    return [{**_base_row(config, b), "status": status, "error": error} for b in sizes]


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return describe_memory_error(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def run_config(
    config: BenchConfig,
    emit: Callable[[Row], None],
    model: Any = None,
    input_specs: list[TensorSpec] | None = None,
    pipeline: Pipeline | None = None,
    feeds: Callable[[int], list[dict[str, np.ndarray]] | None] | None = None,
) -> None:
    """Measure `config`, calling `emit(row)` once per batch size. `model` is the in-memory
    framework model for eager formats; `input_specs` overrides the runtime's signature;
    `pipeline` (with `config.end_to_end`) adds end-to-end timing to each row; `feeds`
    (batch size -> feeds, or None) gives the timed loop real inputs instead of ones drawn
    from the signature."""
    runtime = get_runtime(config.runtime)
    device = parse_device(config.device)
    if config.format not in runtime.formats:
        raise UserError(
            f"runtime {runtime.name!r} cannot run format {config.format!r}: it runs "
            f"{', '.join(runtime.formats)}"
        )

    def emit_all(status: str, error: str) -> None:
        for row in outcome_rows(config, status, error):
            emit(row)

    reason = runtime.unavailable_reason(device)
    if reason:
        emit_all("unavailable", reason)
        return
    options = RuntimeOptions(
        device,
        config.threads,
        config.inter_op_threads,
        format=config.format,
        inputs=input_specs,
        settings=config.settings(),
    )
    t0 = time.perf_counter_ns()
    try:
        loaded = runtime.load(Path(config.path) if config.path else None, options, model=model)
    except UserError:
        raise
    except UnavailableError as exc:
        emit_all("unavailable", str(exc))
        return
    except Exception as exc:  # noqa: BLE001 - any load failure becomes a failed row
        emit_all("failed", f"load failed: {_first_line(exc)}")
        return
    load_ms = (time.perf_counter_ns() - t0) / 1e6
    common = {
        "runtime_version": runtime.version(),
        "provider": loaded.provider,
        "load_time_ms": load_ms,
    }
    try:
        for batch_size in config.batch_sizes:
            row = {**_base_row(config, batch_size), **common}
            try:
                row.update(_measure_batch(loaded, config, batch_size, feeds))
                row["status"] = "ok"
                if pipeline is not None and config.end_to_end:
                    row.update(_end_to_end_fields(loaded, config, batch_size, pipeline))
            except UserError:
                raise
            except Exception as exc:  # noqa: BLE001 - recorded, the sweep goes on
                row.update(
                    status="failed",
                    error=_first_line(exc),
                    error_detail=traceback.format_exc(limit=3),
                )
            row.pop("error_detail", None)
            emit(row)
    finally:
        loaded.close()


def as_spec_dtypes(specs: list[TensorSpec], feed: dict[str, np.ndarray]) -> dict[str, Any]:
    """A task's real feed in the artifact's own input dtypes: floats to the artifact's
    float type (an FP16 graph may take float16), integers to its integer type (TFLite
    takes int32 ids); a value of another kind is left for the runtime to refuse."""
    out = dict(feed)
    for spec in specs:
        value = out.get(spec.name)
        try:
            target = np.dtype(spec.dtype)
        except TypeError:
            continue
        if value is None or value.dtype == target:
            continue
        same_family = {value.dtype.kind, target.kind} <= {"f"} or {
            value.dtype.kind,
            target.kind,
        } <= {"i", "u"}
        if same_family:
            out[spec.name] = value.astype(target)
    return out


def _measure_batch(
    loaded: LoadedModel,
    config: BenchConfig,
    batch_size: int,
    feeds: Callable[[int], list[dict[str, np.ndarray]] | None] | None = None,
    wrap: bool = False,
) -> Row:
    specs = loaded.inputs
    pool = feeds(batch_size) if feeds else None
    real_shape = tuple(next(iter(pool[0].values())).shape) if pool else None
    note = None
    if pool is None and config.input_plan is not None:
        plan = InputPlan.from_json(config.input_plan)
        pool = make_feeds(specs, batch_size, config.dims, plan, config.pool_size, batch_size)
        real_shape = tuple(next(iter(pool[0].values())).shape) if specs else None
        note = describe(specs, plan)
    elif pool is None:
        pool = make_input_pool(specs, batch_size, config.dims, config.pool_size, seed=batch_size)
    else:
        pool = [as_spec_dtypes(specs, by_input_name(loaded, feed)) for feed in pool]
        _check_fixed_axes(specs, pool[0])
    prepared = [loaded.prepare(feed) for feed in pool]
    sync = loaded.synchronize if parse_device(config.device).is_gpu else None
    reset_peak_rss()
    t0 = time.perf_counter_ns()
    loaded.run(prepared[0])
    if sync:
        sync()
    first_ms = (time.perf_counter_ns() - t0) / 1e6
    run = _slowed(loaded.run_fn(), config.inject_slowdown, wrap)
    results = [
        loaded.measure(prepared, config.rule)
        or time_calls(run, prepared, config.rule, synchronize=sync)
        for _ in range(config.repeats)
    ]
    all_ns = np.concatenate([r.latencies_ns for r in results])
    summary = summarize(all_ns, batch_size)
    own_peaks = [r.peak_rss_bytes for r in results if r.peak_rss_bytes]
    shape = real_shape or (resolve_shape(specs[0], batch_size, config.dims) if specs else ())
    row: Row = {
        "input_shape": "x".join(str(d) for d in shape),
        # the artifact's own input axes: where a format fixes batch or sequence, it shows
        "input_axes": "x".join(str(d) for d in specs[0].shape) if specs else None,
        "input_note": note,
        "n_warmup": sum(r.n_warmup for r in results),
        "duration_s": sum(r.duration_s for r in results),
        "repeats": config.repeats,
        "first_inference_ms": first_ms,
        # A runtime timing itself in another process reports that process's peak.
        "peak_rss_bytes": max(own_peaks) if own_peaks else peak_rss_bytes(),
        "gpu_memory_bytes": loaded.gpu_memory_bytes(),
        "cuda_synchronized": sync is not None,
        "latencies_ms": [round(x / 1e6, 6) for x in all_ns.tolist()],
        **summary.as_fields(),
    }
    notes = []
    stopped = {r.stopped_by for r in results} - {"min_reached"}
    if stopped:
        notes.append(f"stopped by {', '.join(sorted(stopped))} before min iterations/time were met")
    if config.repeats > 1:
        p50s = [float(np.percentile(r.latencies_ns, 50)) / 1e6 for r in results]
        median = float(np.median(p50s))
        max_dev = max(abs(p - median) for p in p50s) / median if median > 0 else 0.0
        row["repeat_p50s_ms"] = p50s
        row["repeat_p50_max_dev"] = max_dev
        if max_dev > REPEAT_P50_MAX_DEV:
            notes.append(
                f"p50 varied by {max_dev:.1%} across {config.repeats} repeats (limit "
                f"{REPEAT_P50_MAX_DEV:.0%}): the host is noisy or the model's speed drifts"
            )
    if notes:
        row["stability_note"] = "; ".join([row["stability_note"], *notes])
        row["stable"] = False
    return row


def _slowed(run: Callable[[Any], Any], fraction: float, wrap: bool = False) -> Callable[[Any], Any]:
    """`run`, each call made `fraction` slower by spinning after it: a real slowdown of the
    timed call. The spin is a fraction of the last whole iteration without its spin (the
    call plus the timing loop's and this wrapper's own cost, what the harness measures),
    not of `run` alone, which on a 20 us call would make a 10 % spin a 4 % slowdown; the
    first call of a block, or after a pause, uses `run`'s own duration. `run` itself when
    `fraction` is 0, unless `wrap`: then the same wrapper with no spin, so an unslowed arm
    pays the wrapper's cost too and two arms differ by the spin alone."""
    if not fraction and not wrap:
        return run
    clock = time.perf_counter_ns
    last = {"start": 0, "spin": 0}

    def slowed(feed: Any) -> Any:
        start = clock()
        out = run(feed)
        own = clock() - start
        period = start - last["start"] - last["spin"]  # the previous iteration, unspun
        base = period if 0 < period < 4 * own + 50_000 else own
        spin = int(base * fraction)
        until = clock() + spin
        while clock() < until:
            pass
        last["start"], last["spin"] = start, spin
        return out

    return slowed


def run_interleaved(
    config_a: BenchConfig,
    config_b: BenchConfig,
    rounds: int,
    emit: Callable[[Row], None],
    model_a: Any = None,
    model_b: Any = None,
    input_specs: list[TensorSpec] | None = None,
    feeds: Callable[[int], list[dict[str, np.ndarray]] | None] | None = None,
) -> None:
    """Time A and B alternately in this process, per batch size: `rounds` rounds of one
    timed block each (A then B, then B then A, ...), both models loaded once, so a host
    drift during the session hits both arms alike. Each block is one row, labelled
    `compare_arm` (A or B) and `compare_round`; `analysis.compare.compare_interleaved`
    judges the per-round ratios."""
    if rounds < 2:
        raise UserError(f"interleaved timing needs at least 2 rounds, got {rounds}")
    arms = []
    for name, config, model in (("A", config_a, model_a), ("B", config_b, model_b)):
        runtime = get_runtime(config.runtime)
        reason = runtime.unavailable_reason(parse_device(config.device))
        if reason:
            for row in outcome_rows(config, "unavailable", reason):
                emit({**row, "compare_arm": name})
            return
        options = RuntimeOptions(
            parse_device(config.device),
            config.threads,
            config.inter_op_threads,
            format=config.format,
            inputs=input_specs,
            settings=config.settings(),
        )
        path = Path(config.path) if config.path else None
        arms.append((name, config, runtime.load(path, options, model=model)))
    # when one arm is slowed, both go through the slowing wrapper (the other with no spin)
    wrap = bool(config_a.inject_slowdown or config_b.inject_slowdown)
    try:
        for batch_size in config_a.batch_sizes:
            for round_ in range(rounds):
                order = arms if round_ % 2 == 0 else arms[::-1]
                for name, config, loaded in order:
                    row = {**_base_row(config, batch_size), "compare_arm": name}
                    row["compare_round"] = round_
                    try:
                        row.update(_measure_batch(loaded, config, batch_size, feeds, wrap))
                        row["status"] = "ok"
                    except Exception as exc:  # noqa: BLE001 - recorded, the rounds go on
                        row.update(status="failed", error=_first_line(exc))
                    emit(row)
    finally:
        for _, _, loaded in arms:
            loaded.close()


def _check_fixed_axes(specs: list[TensorSpec], feed: dict[str, np.ndarray]) -> None:
    """A ValueError when the artifact fixes an axis (batch or sequence) at another size
    than the feed's: its numbers would be labelled with the wrong shape."""
    for spec in specs:
        value = feed.get(spec.name)
        if value is None:
            continue
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, int) and dim >= 0 and axis < value.ndim and value.shape[axis] != dim:
                raise FixedBatchError(
                    f"input {spec.name!r} has axis {axis} fixed at {dim} (shape "
                    f"{list(spec.shape)}), but this row feeds {value.shape[axis]}: re-export "
                    "with dynamic axes or measure at that size"
                )


def _end_to_end_fields(
    loaded: LoadedModel, config: BenchConfig, batch_size: int, pipeline: Pipeline
) -> Row:
    """Stage timings of pre + model + post, or `e2e_error` saying why they are missing
    (the model-only figures of the row stand either way)."""
    try:
        return _measure_end_to_end(loaded, config, batch_size, pipeline)
    except Exception as exc:  # noqa: BLE001 - recorded in the row, the sweep goes on
        return {"e2e_error": _first_line(exc)}


def _measure_end_to_end(
    loaded: LoadedModel, config: BenchConfig, batch_size: int, pipeline: Pipeline
) -> Row:
    """Time raw inputs -> preprocess -> model -> postprocess per call, each stage between
    its own clock readings, over a pool of raw batches made before timing. The model
    stage includes the runtime's input conversion (`prepare`: e.g. the host-to-device
    copy on CUDA), which the model-only loop does before timing."""
    raw_pool = [pipeline.raw_inputs(batch_size, seed) for seed in range(config.pool_size)]
    sync = loaded.synchronize if parse_device(config.device).is_gpu else None
    clock = time.perf_counter_ns
    stages: list[tuple[int, int, int]] = []
    record = stages.append

    def end_to_end(raw: list[Any]) -> None:
        t0 = clock()
        feed, meta = pipeline.preprocess(raw)
        t1 = clock()
        outputs = loaded.run(loaded.prepare(by_input_name(loaded, feed)))
        if sync:
            sync()
        t2 = clock()
        pipeline.postprocess(loaded.to_numpy(outputs), meta)
        record((t1 - t0, t2 - t1, clock() - t2))

    result = time_calls(end_to_end, raw_pool, config.rule)
    timed = np.asarray(stages[result.n_warmup :], dtype=np.float64) / 1e6
    total = result.latencies_ns / 1e6
    p50 = float(np.percentile(total, 50))
    return {
        "pre_ms_p50": float(np.percentile(timed[:, 0], 50)),
        "e2e_model_ms_p50": float(np.percentile(timed[:, 1], 50)),
        "post_ms_p50": float(np.percentile(timed[:, 2], 50)),
        "e2e_ms_p50": p50,
        "e2e_ms_p99": float(np.percentile(total, 99)) if len(total) >= 100 else None,
        "e2e_items_per_s": batch_size / (p50 / 1e3) if p50 > 0 else None,
        "e2e_n_iterations": len(total),
    }
