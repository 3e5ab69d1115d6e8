"""Task sweeps: export what is missing, then benchmark every artifact x runtime x device x
thread count over the batch sizes, one worker process per combination.

A sweep is built in one place (`from_profile`: the task's preset for a profile, with
the caller's explicit values on top) and run into a stored run in one place
(`run_stored`), for the CLI and the notebooks alike. The run's manifest keeps the
sweep as data (`TaskSweep.to_json`), so `workbench bench --rerun RUN_ID` repeats it.

Rows are stored by the workers as each configuration finishes; if a worker
dies, the configurations it did not finish become `failed` rows here, and the
sweep goes on. If the sweep itself is killed, `resume(run_id)` (`workbench bench
--resume RUN_ID`) measures exactly the configurations with no row yet (`missing_keys`),
into the same run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

from exporters.base import ArtifactRequest, NoPassError, all_passes, export_many, find_pass
from exporters.int8_search import AccuracySearch, search_params
from workbench import workspace
from workbench.errors import UserError
from workbench.formats import PRECISIONS, SOURCE_FRAMEWORK_OF_NATIVE, runtime_for
from workbench.harness.runner import BenchConfig, outcome_rows
from workbench.harness.timing import StopRule
from workbench.parity_thresholds import DEFAULT_MAX_DROP_POINTS, current_judgement
from workbench.procs import memory_limit_env, worker_env
from workbench.profiles import get_profile
from workbench.registry import RUNTIMES, get_runtime, get_task
from workbench.results import RunStore

# Formats each source framework can yield (native first). A (format, precision) pair is
# planned only where an exporter pass makes it (`exporters.base.find_pass`).
FORMATS_BY_FRAMEWORK = {
    "torch": ("eager", "inductor", "onnx", "torchscript", "pt2", "tflite", "openvino"),
    "keras": ("keras", "savedmodel", "tflite", "onnx", "openvino"),
}
WORKER_TIMEOUT_S = 1800
# Native formats that compile the framework's model (planned like opt-in passes).
COMPILED_NATIVE = ("inductor",)
# Native precisions that quantize the model (torchao int8-dynamic): compiled formats only.
QUANTIZED_NATIVE = ("int8-dynamic",)


def formats_for(framework: str) -> tuple[str, ...]:
    """The formats a `framework` model can yield: the built-in ones (native first), then
    the formats of any plugin pass from that framework."""
    builtin = FORMATS_BY_FRAMEWORK.get(framework, ())
    extra = sorted(
        {p.format for p in all_passes().values() if framework in p.source_frameworks} - set(builtin)
    )
    return (*builtin, *extra)


@dataclass
class TaskSweep:
    """What to measure for one task. None means every applicable value."""

    task: str
    models: list[str] | None = None
    frameworks: list[str] | None = None
    formats: list[str] | None = None
    precisions: list[str] = field(default_factory=lambda: list(PRECISIONS))
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 64])
    threads: list[int | None] = field(default_factory=lambda: [len(os.sched_getaffinity(0))])
    devices: list[str] = field(default_factory=lambda: ["cpu"])
    # For tasks with a "sequence" input axis: each length is measured (rows record seq_len)
    seq_lens: list[int] | None = None
    rule: StopRule = field(default_factory=StopRule)
    # Each runtime's own settings, by runtime name, e.g. {"onnxruntime": {"tensorrt": True}}
    runtime_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Runtimes measured beside each format's default one, on the same artifacts, e.g.
    # {"onnx": ["onnxruntime-c"]}: the compiled caller's rows beside the Python API's.
    extra_runtimes: dict[str, list[str]] = field(default_factory=dict)
    repeats: int = 1
    end_to_end: bool = True  # also time pre + model + post where the task has a pipeline
    profile: str | None = None  # the profile whose preset filled the unset fields
    # Each export and each benchmark worker gets its own time limit and, when set, an
    # address-space limit (RLIMIT_AS): a runaway costs its own rows, not the machine.
    export_timeout_s: float = 1800.0  # a first export may include training the model
    worker_timeout_s: float = WORKER_TIMEOUT_S
    memory_limit_bytes: int | None = None
    # Points of quality an INT8 artifact may lose against its source (the `quality` parity
    # rule, workbench.parity_thresholds); rows are judged with it
    max_accuracy_drop: float = DEFAULT_MAX_DROP_POINTS

    def __post_init__(self) -> None:
        if isinstance(self.rule, dict):
            self.rule = StopRule(**self.rule)
        if not self.max_accuracy_drop >= 0:
            raise UserError(f"max_accuracy_drop must be >= 0 points, got {self.max_accuracy_drop}")
        for name in ("export_timeout_s", "worker_timeout_s"):
            if not getattr(self, name) > 0:
                raise UserError(f"{name} must be a positive number of seconds")
        if self.memory_limit_bytes is not None and self.memory_limit_bytes < 2**28:
            raise UserError(
                f"memory_limit_bytes={self.memory_limit_bytes} is below 256 MiB: no Python "
                "worker starts in that; give the limit in bytes"
            )
        for runtime, settings in self.runtime_settings.items():
            get_runtime(runtime).parse_settings(settings)  # unknown or ill-typed: fail now
        for fmt, runtimes in self.extra_runtimes.items():
            for runtime in runtimes:
                if fmt not in get_runtime(runtime).formats:
                    raise UserError(f"runtime {runtime!r} cannot run format {fmt!r}")
        task = get_task(self.task)
        self.models = [task.check_model(m) for m in (self.models or task.models)]
        self.frameworks = self.frameworks or list(task.frameworks)
        for fw in self.frameworks:
            if fw not in task.frameworks:
                raise UserError(
                    f"task {self.task!r} has no {fw!r} model: "
                    f"choose from {', '.join(task.frameworks)}"
                )
        known = {f for fw in self.frameworks for f in formats_for(fw)}
        for fmt in self.formats or []:
            if fmt not in known:
                raise UserError(f"unknown format {fmt!r}: choose from {', '.join(sorted(known))}")
        for p in self.precisions:
            if p not in PRECISIONS:
                raise UserError(f"unknown precision {p!r}: choose from {', '.join(PRECISIONS)}")

    def to_json(self) -> dict[str, Any]:
        """The sweep as plain data (what a run's manifest stores)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["rule"] = asdict(self.rule)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskSweep:
        """The sweep `to_json` wrote (e.g. read back from a run's manifest)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(
                f"the stored sweep has unknown field(s) {', '.join(unknown)}: it was written by "
                "another version of the workbench"
            )
        return cls(**{**data, "rule": StopRule(**data.get("rule", {}))})


def from_profile(
    task: str,
    profile: str,
    *,
    models: Iterable[str] = (),
    frameworks: Iterable[str] = (),
    formats: Iterable[str] = (),
    precisions: Iterable[str] = (),
    batch_sizes: Iterable[int] = (),
    devices: Iterable[str] = (),
    threads: Iterable[int | None] = (),
    seq_lens: Iterable[int] = (),
    rule: StopRule | None = None,
    unset_means_all: bool = False,
    **options: Any,
) -> TaskSweep:
    """A TaskSweep for `task` under `profile`: each empty argument takes the task's preset
    for that profile (see `Task.presets`; with `unset_means_all`, an empty framework or
    format list means all of them instead), the timing rule the profile's own; `options`
    are the other TaskSweep fields (runtime_settings, repeats, end_to_end)."""
    preset = get_task(task).preset(profile)
    if unset_means_all:
        preset = replace(preset, frameworks=None, formats=None)

    def pick(given: Iterable[Any], default: Iterable[Any] | None) -> list[Any] | None:
        given = list(given)
        return given or (list(default) if default is not None else None)

    settings: dict[str, Any] = {
        "models": pick(models, preset.models),
        "frameworks": pick(frameworks, preset.frameworks),
        "formats": pick(formats, preset.formats),
        "precisions": pick(precisions, preset.precisions) or list(PRECISIONS),
        "batch_sizes": pick(batch_sizes, preset.batch_sizes),
        "devices": pick(devices, preset.devices),
        "seq_lens": pick(seq_lens, preset.seq_lens),
    }
    if list(threads):
        settings["threads"] = list(threads)
    return TaskSweep(
        task=task,
        rule=rule or get_profile(profile).rule,
        profile=profile,
        **settings,
        **options,
    )


@dataclass
class Job:
    """One worker's work: an artifact (or the native model) on one runtime setting."""

    model: str
    source_framework: str
    format: str
    precision: str
    device: str
    threads: int | None
    request: ArtifactRequest | None  # None for the framework's own (eager/keras) model
    runtime: str | None = None  # None: the format's default runtime

    def runtime_name(self) -> str:
        return self.runtime or runtime_for(self.format)


def plan(sweep: TaskSweep) -> list[Job]:
    """Every (model, framework, format, precision, device, threads) the sweep asks for that an
    exporter can make."""
    task = get_task(sweep.task)
    jobs = []
    for model in sweep.models or []:
        for fw in [f for f in sweep.frameworks or [] if f in task.frameworks_for(model)]:
            for fmt in formats_for(fw):
                if sweep.formats and fmt not in sweep.formats:
                    continue
                explicit = bool(sweep.formats and fmt in sweep.formats)
                for precision in sweep.precisions:
                    native = fmt in SOURCE_FRAMEWORK_OF_NATIVE
                    if native and not _plan_native(task, fmt, precision, explicit):
                        continue
                    if not native and not has_pass(fw, fmt, precision, task, explicit):
                        continue
                    request = (
                        None
                        if native
                        else ArtifactRequest(
                            sweep.task,
                            model,
                            fw,
                            fmt,
                            precision,
                            _pass_params(sweep, fw, fmt, precision),
                        )
                    )
                    extra = [None, *sweep.extra_runtimes.get(fmt, [])]
                    for device in sweep.devices:
                        for threads in sweep.threads:
                            jobs += [
                                Job(model, fw, fmt, precision, device, threads, request, rt)
                                for rt in extra
                            ]
    return jobs


def _pass_params(sweep: TaskSweep, framework: str, fmt: str, precision: str) -> dict[str, Any]:
    """A pass's parameters from the sweep: the accuracy-aware INT8 search's budget (the
    sweep's `max_accuracy_drop`) and its size (the profile's, `SEARCH_SIZES`)."""
    if issubclass(find_pass(framework, fmt, precision).Params, AccuracySearch):
        return search_params(sweep.profile, sweep.max_accuracy_drop)
    return {}


def runtime_precision(fmt: str, precision: str) -> dict[str, Any]:
    """The settings a row of `precision` forces on the runtime of `fmt`
    (`Runtime.precision_settings`: e.g. torch autocast bf16 for an eager bf16 row, an
    OpenVINO fp32 row pinned to f32); empty when the runtime declares none. A quantizing
    setting (torchao `int8-dynamic`) is the compiled native format's alone: a TorchScript
    or ExportedProgram artifact of that precision is already quantized by its pass."""
    if precision in QUANTIZED_NATIVE and fmt not in COMPILED_NATIVE:
        return {}
    return dict(RUNTIMES.get(runtime_for(fmt)).precision_settings.get(precision, {}))


def _artifact_key(job: Job) -> tuple[str, str, str, str]:
    return (job.model, job.source_framework, job.format, job.precision)


def _plan_native(task: Any, fmt: str, precision: str, explicit: bool) -> bool:
    """Whether a sweep measures the framework's own model in `fmt` at `precision`: fp32
    eager/keras always; a precision that is the runtime's arithmetic (eager bf16 autocast)
    and the compiled `inductor` format where the task asks for PyTorch's fast CPU rows
    (`Task.torch_cpu_rows`) or the sweep names the format, including its torchao
    `int8-dynamic` row."""
    if precision != "fp32" and not runtime_precision(fmt, precision):
        return False
    if precision in QUANTIZED_NATIVE and fmt not in COMPILED_NATIVE:
        return False  # torchao int8 is measured compiled (inductor), not eager
    if precision == "fp32" and fmt not in COMPILED_NATIVE:
        return True
    return explicit or bool(getattr(task, "torch_cpu_rows", False))


def has_pass(
    framework: str, fmt: str, precision: str, task: Any = None, explicit: bool = False
) -> bool:
    """A pass makes (framework, fmt, precision), and neither it nor a pass it builds on is
    opt-in (`Pass.opt_in`) without `task` listing it in its `pass_params` or the sweep
    naming the format (`explicit`)."""
    try:
        pass_ = find_pass(framework, fmt, precision)
        while True:
            if pass_.opt_in and not explicit and pass_.name not in getattr(task, "pass_params", {}):
                return False
            if pass_.upstream is None:
                return True
            pass_ = find_pass(framework, *pass_.upstream)
    except NoPassError:  # a plugin that fails to import is an error, not "no pass"
        return False


INT8_SEARCH_FIELDS = (
    "int8_search",
    "int8_search_reason",
    "int8_excluded_count",
    "int8_excluded_nodes",
    "int8_search_steps",
)


def int8_search_labels(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the accuracy-aware INT8 search did, as flat row fields: the excluded nodes
    comma-joined and each step as `excluded:quality(drop points)` and, where measured,
    `a` and the decision agreement, e.g. `0:0.4604(2.57)a0.9958 8:0.4925(-0.64)a0.9967`."""
    labels = {
        k: manifest[k]
        for k in INT8_SEARCH_FIELDS
        if manifest.get(k) is not None and manifest.get(k) == manifest.get(k)  # not NaN
    }
    # a row read back (already flat) passes through as it is
    if isinstance(labels.get("int8_excluded_nodes"), list):
        labels["int8_excluded_nodes"] = ",".join(labels["int8_excluded_nodes"])
    if isinstance(labels.get("int8_search_steps"), list):
        labels["int8_search_steps"] = " ".join(
            f"{s['excluded']}:{s['quality']:.4f}({s['drop_points']:.2f})"
            + (f"a{s['agreement']:.4f}" if s.get("agreement") is not None else "")
            for s in labels["int8_search_steps"]
        )
    return labels


def job_labels(sweep: TaskSweep, job: Job, manifest: dict[str, Any] | None) -> dict[str, Any]:
    """The columns a job's rows carry from the sweep and its artifact's manifest (parity,
    accuracy, hash), so a row says what it measured without the manifest beside it."""
    labels: dict[str, Any] = {
        "task": sweep.task,
        "model": job.model,
        "source_framework": job.source_framework,
        "precision": job.precision,
    }
    if manifest:
        for key in (
            "parity_max_abs_error",
            "parity_max_rel_error",
            "parity_metric_name",
            "parity_metric_value",
            "parity_output_scale",
            "parity_pass",
            "parity_rule",
            "parity_reason",
            "accuracy_source",
        ):
            labels[key] = manifest.get(key)
        labels["accuracy"] = manifest.get("accuracy_artifact")
        labels.update(int8_search_labels(manifest))
        for key in ("accuracy_drop", "calibration"):  # a user model's gate and stamps
            if manifest.get(key) is not None:
                labels[key] = manifest[key]
        judged = current_judgement(manifest, sweep.max_accuracy_drop)
        if judged is not None:  # the sweep's own budget, from the stored numbers
            labels.update(
                parity_pass=judged.passed, parity_rule=judged.rule, parity_reason=judged.reason
            )
        labels["artifact_sha256"] = manifest.get("sha256")
    return labels


# One measured configuration of a sweep, as its row records it.
ConfigKey = tuple[str, str, str, str, str, int | None, int | None, int, str]


def config_key(job: Job, seq_len: int | None, batch_size: int) -> ConfigKey:
    """The identity of one row a sweep plans: what `resume` compares stored rows with."""
    return (
        job.model,
        job.source_framework,
        job.format,
        job.precision,
        job.device,
        job.threads,
        seq_len,
        batch_size,
        job.runtime_name(),
    )


def row_key(row: dict[str, Any]) -> ConfigKey:
    """The `config_key` of a stored row."""

    def opt_int(value: Any) -> int | None:
        return None if value is None else int(value)

    return (
        row.get("model"),
        row.get("source_framework"),
        row.get("format"),
        row.get("precision"),
        row.get("device"),
        opt_int(row.get("threads")),
        opt_int(row.get("seq_len")),
        int(row.get("batch_size")),
        row.get("runtime"),
    )  # type: ignore[return-value]


def planned_keys(sweep: TaskSweep) -> list[ConfigKey]:
    """Every row `sweep` makes, in the order it makes them."""
    return [
        config_key(job, seq_len, b)
        for job in plan(sweep)
        for seq_len in sweep.seq_lens or [None]
        for b in sweep.batch_sizes
    ]


def missing_keys(sweep: TaskSweep, store: RunStore) -> list[ConfigKey]:
    """The configurations of `sweep` that have no row (of any status) in `store` yet."""
    have = {row_key(row) for row in store.rows()}
    return [key for key in planned_keys(sweep) if key not in have]


def run_sweep(
    sweep: TaskSweep,
    store: RunStore,
    on_progress: Callable[[str], None] | None = None,
    only: set[ConfigKey] | None = None,
) -> None:
    """Export everything `sweep` asks for (in parallel; exports never overlap a timed
    run), then benchmark each job in its own worker, storing rows in `store`. With
    `only`, just those configurations (what `resume` measures) and their exports."""
    jobs = [j for j in plan(sweep) if only is None or _wanted(sweep, j, only)]
    requests = {_artifact_key(j): j.request for j in jobs if j.request is not None}
    exported = export_many(
        list(requests.values()),
        timeout_s=sweep.export_timeout_s,
        memory_limit_bytes=sweep.memory_limit_bytes,
    )
    manifests = dict(zip(requests, exported, strict=True))
    for job in jobs:  # native quantized rows: parity of the source run that way (no artifact)
        key = _artifact_key(job)
        if job.request is None and job.precision in QUANTIZED_NATIVE and key not in manifests:
            manifests[key] = native_parity(sweep, job)
    for job in jobs:
        label = (
            f"{job.model}/{job.source_framework}/{job.format}/{job.precision}/"
            f"{job.device}/t{job.threads or 'default'}"
        ) + (f"/{job.runtime}" if job.runtime else "")
        if on_progress:
            on_progress(label)
        manifest = manifests.get(_artifact_key(job))
        for seq_len in sweep.seq_lens or [None]:
            sizes = [
                b for b in sweep.batch_sizes if only is None or config_key(job, seq_len, b) in only
            ]
            if sizes:
                _run_job(sweep, store, job, manifest, seq_len, sizes)


def native_parity(sweep: TaskSweep, job: Job) -> dict[str, Any]:
    """A native quantized row's parity (the torchao `int8-dynamic` inductor row), judged
    like an artifact's (`exporters.native_parity`, in its own process), as the manifest
    fields its rows carry; a check that fails or cannot run makes the rows say so."""
    payload = {
        "task": sweep.task,
        "model": job.model,
        "source_framework": job.source_framework,
        "format": job.format,
        "precision": job.precision,
        "settings": runtime_precision(job.format, job.precision),
    }
    env = worker_env(**memory_limit_env(sweep.memory_limit_bytes))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "exporters.native_parity"],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            timeout=sweep.export_timeout_s,
            env=env,
        )
        lines = proc.stdout.strip().splitlines()
        result = json.loads(lines[-1]) if lines else None
    except subprocess.TimeoutExpired:
        result = {"status": "failed", "error": f"parity check over {sweep.export_timeout_s} s"}
    except ValueError:
        result = None
    if not isinstance(result, dict):
        tail = (proc.stderr or "").strip().splitlines()
        result = {"status": "failed", "error": tail[-1] if tail else f"exit {proc.returncode}"}
    return {**payload, "path": None, "sha256": None, **result}


def _wanted(sweep: TaskSweep, job: Job, only: set[ConfigKey]) -> bool:
    return any(
        config_key(job, s, b) in only for s in sweep.seq_lens or [None] for b in sweep.batch_sizes
    )


def _run_job(
    sweep: TaskSweep,
    store: RunStore,
    job: Job,
    manifest: dict[str, Any] | None,
    seq_len: int | None,
    batch_sizes: list[int] | None = None,
) -> None:
    """One job at one sequence length (None: the task has no sequence axis)."""
    labels = job_labels(sweep, job, manifest)
    if seq_len is not None:
        labels["seq_len"] = seq_len
    config = BenchConfig(
        runtime=job.runtime_name(),
        format=job.format,
        path=manifest["path"] if manifest else None,
        device=job.device,
        threads=job.threads,
        batch_sizes=list(batch_sizes or sweep.batch_sizes),
        rule=sweep.rule,
        runtime_settings={
            **sweep.runtime_settings.get(job.runtime_name(), {}),
            **runtime_precision(job.format, job.precision),
        },
        repeats=sweep.repeats,
        labels=labels,
        end_to_end=sweep.end_to_end,
        dims={"sequence": seq_len} if seq_len is not None else {},
    )
    if manifest is not None and manifest.get("status") != "ok":
        status = manifest.get("status", "failed")
        error = manifest.get("error") if status == "unavailable" else None
        error = error or f"export failed: {manifest.get('error')}"
        for row in outcome_rows(config, status, error):
            store.append(row)
        return
    run_worker(
        store,
        config,
        {"task": sweep.task, "model": job.model, "source_framework": job.source_framework},
        sweep.worker_timeout_s,
        sweep.memory_limit_bytes,
    )


def run_worker(
    store: RunStore,
    config: BenchConfig,
    extra: dict[str, Any],
    timeout_s: float = WORKER_TIMEOUT_S,
    memory_limit_bytes: int | None = None,
) -> None:
    """Measure `config` in a fresh harness worker process that appends its rows to `store`;
    a batch size the worker did not finish (crash, timeout) gets a failed row with the
    reason, so a dead worker never loses a configuration silently."""
    job = {"run_dir": str(store.path), "config": config.to_json(), **extra}
    env = worker_env(TF_CPP_MIN_LOG_LEVEL="3", **memory_limit_env(memory_limit_bytes))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "workbench.harness.worker"],
            input=json.dumps(job),
            text=True,
            capture_output=True,
            timeout=timeout_s,
            env=env,
        )
        stdout, code = proc.stdout, proc.returncode
        tail = " | ".join([ln for ln in proc.stderr.splitlines() if ln.strip()][-2:])
        reason = f"benchmark worker died ({_describe(code)})" + (f": {tail}" if tail else "")
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        code, reason = -9, f"benchmark worker timed out after {timeout_s:g} s (hung?)"
    done = {int(line.split()[1]) for line in stdout.splitlines() if line.startswith("ROW ")}
    if code == 0 and done >= set(config.batch_sizes):
        return
    missing = [b for b in config.batch_sizes if b not in done]
    for row in outcome_rows(config, "failed", reason, missing):
        store.append(row)


def _describe(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"


def run_stored(
    sweep: TaskSweep,
    command: str = "bench",
    on_progress: Callable[[int, int, str], None] | None = None,
) -> RunStore:
    """Run `sweep` into a new stored run (its manifest keeps the sweep as data) and return
    the finished store. `on_progress(done, total, label)` is called before each job. The
    run is marked failed if anything escapes (e.g. Ctrl-C); finished rows are kept."""
    jobs = plan(sweep)
    if not jobs:
        raise UserError("nothing to measure: the filters exclude every format and precision")
    store = RunStore.create({"command": command, "task": sweep.task, "sweep": sweep.to_json()})
    with store.exclusive():
        _run_into(sweep, store, len(jobs), on_progress)
    return store


def _run_into(
    sweep: TaskSweep,
    store: RunStore,
    total: int,
    on_progress: Callable[[int, int, str], None] | None,
    only: set[ConfigKey] | None = None,
) -> None:
    done = 0

    def progress(label: str) -> None:
        nonlocal done
        done += 1
        if on_progress:
            on_progress(done, total, label)

    status = "failed"
    try:
        run_sweep(sweep, store, progress, only)
        status = "ok"
    finally:
        store.finish(status)


def resume(
    run_id: str, on_progress: Callable[[int, int, str], None] | None = None
) -> tuple[RunStore, list[ConfigKey]]:
    """Finish a stored task sweep that was cut short (killed, Ctrl-C, a crash): measure
    exactly the configurations that have no row yet, into the same run, and update its
    manifest (status, row count, a `resumed` entry). Returns the store and the
    configurations it measured (empty when nothing was missing). Fails with a UserError
    while another process is still writing the run."""
    path = workspace.runs_dir() / run_id
    if not run_id or "/" in run_id or not path.is_dir():
        raise UserError(f"no run {run_id!r} in this workspace: `ls .workbench/runs` lists them")
    store = RunStore.open(path)
    sweep_data = store.manifest.get("config", {}).get("sweep")
    if not isinstance(sweep_data, dict):
        raise UserError(
            f"run {run_id} is not a task sweep (it was made by "
            f"{store.manifest.get('config', {}).get('command', 'another command')!r}): only "
            "task sweeps can be resumed"
        )
    if isinstance(store.manifest.get("config", {}).get("fleet"), dict):
        raise UserError(
            f"run {run_id} was a fleet sweep (--cluster): resume it over its cluster with "
            "`workbench bench --resume` or workbench.fleet.sweep.resume_fleet"
        )
    sweep = TaskSweep.from_json(sweep_data)
    with store.exclusive():
        store.repair()
        missing = missing_keys(sweep, store)
        store.manifest.setdefault("resumed", []).append(
            {"at": datetime.now(UTC).isoformat(), "missing": len(missing)}
        )
        if not missing:
            store.finish("ok")
            return store, []
        only = set(missing)
        total = sum(1 for j in plan(sweep) if _wanted(sweep, j, only))
        _run_into(sweep, store, total, on_progress, only)
    return store, missing
