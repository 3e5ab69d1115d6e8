"""Export passes, artifact manifests, the content-keyed cache and process isolation.

A Pass turns a task's source model (PyTorch or Keras) into one artifact file.
Each export runs in its own Python process with a timeout (`export`), because
converters can raise, abort the interpreter or hang, and because PyTorch and
TensorFlow are best kept out of each other's process. The child writes the
artifact and its manifest; the parent turns a crash or timeout into a
`failed` manifest, so the other exports go on.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from exporters.cache_key import code_digest, library_versions
from exporters.memory_budget import MemoryGate, default_budget, estimate_peak
from workbench import workspace
from workbench.errors import UserError
from workbench.formats import runtime_for
from workbench.manifests import MANIFEST, read_manifest, sha256_of, write_manifest
from workbench.options import NoOptions, Options
from workbench.parity_thresholds import current_judgement
from workbench.procs import file_lock, memory_limit_env, worker_env
from workbench.progress import progress
from workbench.registry import PASSES, RUNTIMES, get_task
from workbench.workspace import artifacts_dir

DEFAULT_TIMEOUT_S = 1800.0  # a first export may include training the task's model


@dataclass
class ExportContext:
    """Everything a pass may use: the task, its source model, the chosen precision and
    parameters, and (for passes that transform another artifact) the upstream file."""

    task: Any
    model: str
    source_framework: str
    precision: str
    params: Any  # the pass's typed parameters (an instance of its `Params`)
    source_model: Any
    upstream_path: Path | None = None

    def example_inputs(self, batch_size: int = 2) -> dict[str, Any]:
        return self.task.make_inputs(self.model, batch_size, framework=self.source_framework)

    def calibration_inputs(self, n: int) -> dict[str, Any]:
        """Calibration data from the task's own generator (never the held-out parity set)."""
        return self.task.calibration_inputs(self.model, n, framework=self.source_framework)

    def input_specs(self) -> list[Any]:
        """The source model's inputs (in its framework's layout)."""
        return self.task.input_specs(self.model, self.source_framework)


class Pass(ABC):
    """One source -> target conversion, registered by name."""

    name: ClassVar[str]
    source_frameworks: ClassVar[tuple[str, ...]]  # ("torch",), ("keras",) or both
    format: ClassVar[str]  # target format name
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    filename: ClassVar[str]  # file (or directory) name inside the artifact directory
    # The pass's parameters, typed and with their defaults (an `Options` dataclass).
    Params: ClassVar[type[Options]] = NoOptions
    # (format, precision) of the artifact this pass transforms, e.g. ("onnx", "fp32") for
    # ONNX Runtime quantization; None when it converts the source model itself.
    upstream: ClassVar[tuple[str, str] | None] = None
    # True: a sweep plans this pass (and the passes on top of its artifact) only for tasks
    # that list it in `Task.pass_params`, e.g. a transformer-only graph rewrite.
    opt_in: ClassVar[bool] = False

    @abstractmethod
    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        """Write the artifact to `out`; return manifest extras (exporter, version, opset...)."""

    def check_params(self, params: dict[str, Any] | None) -> Options:
        """The typed parameters: `params` over the defaults; a UserError naming an unknown
        or ill-typed one and listing what the pass takes."""
        return self.Params.parse(params, owner=f"pass {self.name!r}", noun="parameter")


def effective_params(pass_: Pass, params: dict[str, Any] | None, task_obj: Any) -> Options:
    """The pass's typed parameters for a task: the task's own defaults for that pass
    (`Task.pass_params`, e.g. the TorchScript-based ONNX exporter for a transformer whose
    attention must fuse) under the request's explicit ones."""
    defaults = dict(getattr(task_obj, "pass_params", {}).get(pass_.name, {}))
    return pass_.check_params({**defaults, **(params or {})})


def all_passes() -> dict[str, type[Pass]]:
    """Every registered pass (`workbench.registry.PASSES`), imported: the built-in ones,
    entry points, and modules named in $WORKBENCH_EXTRA_PASSES."""
    return PASSES.all()


class NoPassError(UserError):
    """No registered pass makes this (framework, format, precision)."""


def find_pass(source_framework: str, fmt: str, precision: str) -> Pass:
    """The pass exporting `source_framework` models to `fmt` at `precision`."""
    for cls in all_passes().values():
        if (
            source_framework in cls.source_frameworks
            and cls.format == fmt
            and precision in cls.precisions
        ):
            return cls()
    known = sorted(
        {
            (fw, c.format, p)
            for c in all_passes().values()
            for fw in c.source_frameworks
            for p in c.precisions
        }
    )
    raise NoPassError(
        f"no exporter for {source_framework} -> {fmt} at {precision}: available are "
        + ", ".join(f"{s}->{f}/{p}" for s, f, p in known)
    )


@dataclass
class ArtifactRequest:
    """What to export: the task's model from one framework into one format and precision."""

    task: str
    model: str
    source_framework: str
    format: str
    precision: str = "fp32"
    params: dict[str, Any] = field(default_factory=dict)

    def upstream_request(self, pass_: Pass) -> ArtifactRequest | None:
        """The artifact `pass_` transforms (e.g. the FP32 ONNX file it quantizes)."""
        if pass_.upstream is None:
            return None
        fmt, precision = pass_.upstream
        return ArtifactRequest(self.task, self.model, self.source_framework, fmt, precision)

    def key(self, pass_: Pass, task_obj: Any) -> str:
        """Content key of everything that shapes the file: task and model version, pass,
        parameters, the code of the pass, the task and the export worker with every
        in-repo module they import, the versions of the converter libraries, and the
        upstream artifact's key. Stable across processes and clones (no paths, no
        mtimes; see `exporters.cache_key`)."""
        roots = [type(pass_).__module__, type(task_obj).__module__, "exporters.worker"]
        runtime = _runtime_module(self.format)
        if runtime:
            roots.append(runtime)  # the parity numbers come from running the artifact
        upstream = self.upstream_request(pass_)
        upstream_key = (
            upstream.key(
                find_pass(upstream.source_framework, upstream.format, upstream.precision),
                task_obj,
            )
            if upstream
            else None
        )
        blob = json.dumps(
            {
                "task": self.task,
                "task_version": task_obj.version,
                "model": self.model,
                "source": self.source_framework,
                "format": self.format,
                "precision": self.precision,
                "pass": pass_.name,
                "params": effective_params(pass_, self.params, task_obj).to_dict(),
                "code": code_digest(roots),
                "libraries": library_versions(),
                "upstream": upstream_key,
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _runtime_module(fmt: str) -> str | None:
    """The module of the runtime that runs `fmt` (parity runs the artifact through it)."""
    try:
        return RUNTIMES.all()[runtime_for(fmt)].__module__
    except (UserError, KeyError):
        return None


def cached_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest of an ok artifact in `directory` whose file still matches its hash,
    or None: the cache serves only what it can verify."""
    manifest = read_manifest(directory)
    if not manifest or manifest.get("status") != "ok":
        return None
    path = Path(manifest["path"])
    if not path.exists() or sha256_of(path) != manifest.get("sha256"):
        return None
    return manifest


def rejudged(manifest: dict[str, Any]) -> dict[str, Any]:
    """The verdict fields of a stored manifest under today's rules (unchanged when it has
    no parity numbers)."""
    judged = current_judgement(manifest)
    if judged is None:
        return {}
    return {
        "parity_pass": judged.passed,
        "parity_rule": judged.rule,
        "parity_reason": judged.reason,
    }


def export(
    request: ArtifactRequest,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    force: bool = False,
    memory_limit_bytes: int | None = None,
) -> dict[str, Any]:
    """Export `request` (or reuse the cached artifact) and return its manifest. Never
    raises for a converter failure: the manifest's status says `failed` and why. The
    converter process gets `timeout_s` and, when given, an address-space limit."""
    task_obj = get_task(request.task)
    task_obj.check_model(request.model)
    pass_ = find_pass(request.source_framework, request.format, request.precision)
    params = effective_params(pass_, request.params, task_obj).to_dict()
    directory = artifacts_dir() / f"{request.task}-{request.model}" / request.key(pass_, task_obj)
    directory.mkdir(parents=True, exist_ok=True)
    # One exporter per artifact at a time, across threads and processes: parallel exports
    # that share an upstream artifact wait for it instead of writing it twice.
    with file_lock(directory / ".lock"):
        if not force and (hit := cached_manifest(directory)):
            return {**hit, **rejudged(hit), "cache_hit": True}
        return _export_locked(request, pass_, params, directory, timeout_s, memory_limit_bytes)


def export_many(
    requests: list[ArtifactRequest],
    jobs: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_limit_bytes: int | None = None,
    memory_budget_bytes: int | None = None,
) -> list[dict[str, Any]]:
    """Export several artifacts side by side, at most `jobs` (default: one per core) and
    only as many as fit the memory budget by their estimated peak RSS
    (`exporters.memory_budget`; default 80% of the available memory); order is kept.
    Artifacts already in the cache are served without waiting. Each finished artifact
    advances a `workbench.progress` bar (shown where the interface installed one)."""
    jobs = jobs or max(1, len(os.sched_getaffinity(0)))
    gate = MemoryGate(memory_budget_bytes or default_budget())

    def one(request: ArtifactRequest) -> dict[str, Any]:
        if not _is_cached(request):
            with gate.hold(estimate_peak(request)):
                manifest = export(request, timeout_s, memory_limit_bytes=memory_limit_bytes)
        else:
            manifest = export(request, timeout_s, memory_limit_bytes=memory_limit_bytes)
        work.advance(note=f"{request.model} {request.format} {request.precision}")
        return manifest

    with (
        progress(len(requests), "export", unit="artifact") as work,
        ThreadPoolExecutor(max_workers=jobs) as pool,
    ):
        return list(pool.map(one, requests))


def _is_cached(request: ArtifactRequest) -> bool:
    """A valid cached artifact answers `request` (a quick look, without the lock)."""
    try:
        task_obj = get_task(request.task)
        pass_ = find_pass(request.source_framework, request.format, request.precision)
    except UserError:
        return False  # export() says why
    directory = artifacts_dir() / f"{request.task}-{request.model}" / request.key(pass_, task_obj)
    return cached_manifest(directory) is not None


def _export_locked(
    request: ArtifactRequest,
    pass_: Pass,
    params: dict[str, Any],
    directory: Path,
    timeout_s: float,
    memory_limit_bytes: int | None = None,
) -> dict[str, Any]:
    base = {
        "task": request.task,
        "model": request.model,
        "source_framework": request.source_framework,
        "format": request.format,
        "precision": request.precision,
        "pass": pass_.name,
        "params": params,
        "path": str(directory / pass_.filename),
        "cache_hit": False,
    }
    job = json.dumps({**base, "directory": str(directory)})
    started = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST).unlink(missing_ok=True)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "exporters.worker"],
            input=job,
            text=True,
            capture_output=True,
            timeout=timeout_s,
            # Converters drop temporary files in the working directory (ORT's symbolic
            # shape inference, external-data files): keep them in the artifact's folder.
            cwd=directory,
            # ...and pin the workspace, which defaults to a path relative to the cwd.
            env=worker_env(
                **{workspace.ENV_VAR: str(workspace.workspace_dir())},
                **memory_limit_env(memory_limit_bytes),
            ),
        )
        reason = _child_failure(proc)
    except subprocess.TimeoutExpired:
        reason = f"export timed out after {timeout_s:.0f} s (converter hung?)"
    manifest = read_manifest(directory)
    if manifest is None:
        manifest = {
            **base,
            "status": "failed",
            "error": reason or "exporter wrote no manifest",
            "export_time_s": time.perf_counter() - started,
        }
        write_manifest(directory, manifest)
    return {**manifest, "cache_hit": False}


def _child_failure(proc: subprocess.CompletedProcess[str]) -> str | None:
    if proc.returncode == 0:
        return None
    if proc.returncode < 0:
        detail = f"exporter process killed by signal {-proc.returncode}"
    else:
        detail = f"exporter process exited with code {proc.returncode}"
    tail = [line for line in proc.stderr.strip().splitlines() if line.strip()][-3:]
    return detail + (": " + " | ".join(tail) if tail else "")
