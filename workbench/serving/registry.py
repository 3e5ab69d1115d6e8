"""Model versions loaded side by side, each behind its own dynamic batcher.

A version comes from a source: `null` (the null runtime, the server's own cost), a task
artifact `task:TASK[/MODEL]` (exported if missing, from the artifact store), or a model
file path. Versions are loaded, listed and unloaded while the server runs. A request
that names no version goes to one drawn by weight (A/B split) from a seeded generator, so
a replay of the same request sequence routes the same way; with no weights set, it goes
to the default version. Every version is warmed up (its samples run through its batcher)
before it is marked ready; a model file with a symbolic dimension that no `--dim` or
`--shape` sizes has no warm-up samples, so it is marked ready at once and warms up on its
first request (its metadata and config say so, and the load logs it).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from workbench.batching import BatcherConfig, DynamicBatcher
from workbench.errors import UserError
from workbench.input_options import BATCH
from workbench.registry import RUNTIMES
from workbench.scenarios import models
from workbench.scenarios.driver import ServedModel
from workbench.serving.errors import NotFound, NotReady
from workbench.serving.stats import VersionStats
from workbench.serving.tensors import metadata_shape, v2_datatype
from workbench.signature import TensorSpec, make_input_pool

log = logging.getLogger(__name__)  # under workbench.serving: serving/logs.py
Loader = Callable[[str, int], ServedModel]
WARMUP_REQUESTS = 4
SAMPLES = 8


@dataclass(frozen=True)
class WarmupShapes:
    """What sizes a model file's symbolic dimensions for warm-up: `--dim NAME=VALUE` and
    `--shape NAME=AXES` (B: the batch axis), the same options as `bench`."""

    dims: Mapping[str, int] = field(default_factory=dict)
    shapes: Mapping[str, Sequence[int | str]] = field(default_factory=dict)

    def dims_for(self, specs: Sequence[Any]) -> dict[str, int]:
        """`dims` plus the symbolic dims each `--shape` sizes at its position."""
        dims = dict(self.dims)
        for spec in specs:
            axes = self.shapes.get(spec.name)
            if axes is None:
                continue
            if len(axes) != len(spec.shape):
                raise UserError(
                    f"--shape {spec.name}: {len(axes)} axes, but the model's input has "
                    f"{len(spec.shape)} ({metadata_shape(spec.shape)})"
                )
            for i, (axis, dim) in enumerate(zip(axes, spec.shape, strict=True)):
                if i > 0 and isinstance(dim, str) and axis != BATCH:
                    dims.setdefault(dim, int(axis))
        return dims


def load_source(source: str, instances: int = 1, warmup: WarmupShapes | None = None) -> ServedModel:
    """`null`, `task:TASK[/MODEL]` or a model file, optionally `FILE@RUNTIME` to pick its
    runtime (`model.onnx@openvino`) -> a loaded model (scenario loaders).

    A model file's warm-up samples are sized by `warmup`; with a symbolic dimension left
    unsized its samples are empty (it warms up on the first request)."""
    if source == "null":
        return models.load_null(instances=instances, sample_count=SAMPLES)
    if source.startswith("task:"):
        task, _, model = source.removeprefix("task:").partition("/")
        if not task:
            raise UserError(f"model source {source!r}: expected task:TASK[/MODEL]")
        return models.load_task(task, model or None, instances=instances, sample_count=SAMPLES)
    warmup = warmup or WarmupShapes()
    path, at, named = source.rpartition("@")
    runtime: str | None = None
    if at and named in RUNTIMES.names():
        # FILE@RUNTIME: the same file on another runtime (x.onnx@openvino beside x.onnx)
        source, runtime = path, named
    served = models.load_file(
        source,
        runtime=runtime,
        instances=instances,
        dims=dict(warmup.dims),
        sample_count=SAMPLES,
        allow_no_samples=True,
    )
    if not served.samples and warmup.shapes:
        try:
            specs = [TensorSpec(s.name, s.dtype, ("batch", *s.shape[1:])) for s in served.inputs]
            served.samples = make_input_pool(
                specs, 1, warmup.dims_for(served.inputs), pool_size=SAMPLES
            )
        except UserError:
            served.close()
            raise
    return served


@dataclass
class ModelVersion:
    """One loaded version: its batcher, signature and routing weight."""

    name: str
    version: str
    source: str
    served: ServedModel
    batcher: DynamicBatcher
    weight: float = 0.0
    ready: bool = False
    loaded_at: float = field(default_factory=time.time)
    batched: bool = True  # behind a dynamic batcher (False: --no-batcher)
    warmup: str = "done"  # "done", or "first request" until one has run
    stats: VersionStats = field(default_factory=VersionStats)

    def parameters(self) -> dict[str, str]:
        """What a client should know beyond the signature: the source and the warm-up."""
        return {"source": self.source, "warmup": self.warmup}

    def first_request_done(self, shapes: dict[str, list[int]]) -> None:
        """A version without warm-up samples has now run its first request."""
        if self.warmup != "done":
            self.warmup = "done"
            log.info(
                "warmed up on the first request",
                extra={"model": self.name, "version": self.version, "shapes": shapes},
            )

    @property
    def platform(self) -> str:
        labels = self.served.labels
        return f"{labels.get('runtime', 'unknown')}_{labels.get('format', 'unknown')}"

    def metadata(self, versions: list[str]) -> dict[str, Any]:
        """The v2 model metadata response."""

        def tensors(specs: list[Any]) -> list[dict[str, Any]]:
            return [
                {"name": s.name, "datatype": v2_datatype(s.dtype), "shape": metadata_shape(s.shape)}
                for s in specs
            ]

        return {
            "name": self.name,
            "versions": versions,
            "platform": self.platform,
            "inputs": tensors(self.served.inputs),
            "outputs": tensors(self.served.outputs),
            "parameters": self.parameters(),
        }

    def output_names(self, count: int) -> list[str]:
        names = [s.name for s in self.served.outputs]
        return names if len(names) == count else [f"output_{i}" for i in range(count)]

    def close(self) -> None:
        self.batcher.close("the model version was unloaded before this request ran")
        self.served.close()


class ModelRegistry:
    """name -> version -> ModelVersion, with a default version and A/B weights per name."""

    def __init__(
        self,
        batcher: BatcherConfig | None,
        seed: int = 0,
        instances: int = 1,
        loader: Loader = load_source,
    ) -> None:
        self.config = batcher
        self.instances = instances
        self.loader = loader
        self._models: dict[str, dict[str, ModelVersion]] = {}
        self._defaults: dict[str, str] = {}
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    # ---- lifecycle -----------------------------------------------------------------
    def load(
        self,
        name: str,
        source: str,
        version: str = "1",
        weight: float | None = None,
        default: bool = False,
    ) -> ModelVersion:
        """Load (or replace) a version, warm it up, then make it routable."""
        if not name or "/" in name or not version or "/" in version:
            raise UserError(f"model name and version must be non-empty, without '/': {name!r}")
        served = self.loader(source, self.instances)
        config = self._config_for(served)
        runs = served.run_batches
        batcher = DynamicBatcher(
            runs if len(runs) > 1 else runs[0], config, fixed_batch=served.fixed_batch
        )
        entry = ModelVersion(
            name, version, source, served, batcher, batched=self.config is not None
        )
        if not served.samples:
            entry.warmup = "first request"
            log.warning(
                "no warm-up samples: a symbolic input dimension is not sized by --dim or "
                "--shape, so this version warms up on its first request",
                extra={"model": name, "version": version, "source": source},
            )
        try:
            warm_up(entry)
        except Exception:
            entry.close()
            raise
        entry.ready = True
        with self._lock:
            versions = self._models.setdefault(name, {})
            old = versions.get(version)
            entry.weight = float(weight if weight is not None else (old.weight if old else 0.0))
            versions[version] = entry
            if default or name not in self._defaults:
                self._defaults[name] = version
        if old is not None:
            old.close()
        return entry

    def _config_for(self, served: ServedModel) -> BatcherConfig:
        instances = len(served.run_batches)
        if self.config is None:  # every request alone: batch of one request
            return BatcherConfig(max_batch_size=1, max_queue_delay_ms=0.0, instances=instances)
        return replace(self.config, instances=instances)

    def unload(self, name: str, version: str | None = None) -> list[str]:
        """Unload one version (or all of a model's); the versions removed."""
        with self._lock:
            versions = self._models.get(name)
            if not versions or (version is not None and version not in versions):
                raise NotFound(self._unknown(name, version))
            gone = [version] if version is not None else list(versions)
            entries = [versions.pop(v) for v in gone]
            if not versions:
                del self._models[name]
                self._defaults.pop(name, None)
            elif self._defaults.get(name) in gone:
                self._defaults[name] = sorted(versions)[0]
        for entry in entries:
            entry.close()
        return gone

    def set_weights(self, name: str, weights: dict[str, float]) -> None:
        with self._lock:
            versions = self._models.get(name) or {}
            for version, weight in weights.items():
                if version not in versions:
                    raise NotFound(self._unknown(name, version))
                if weight < 0:
                    raise UserError(f"weight of {name}/{version} must be >= 0, got {weight}")
            for version, weight in weights.items():
                versions[version].weight = float(weight)

    def set_default(self, name: str, version: str) -> None:
        with self._lock:
            if version not in self._models.get(name, {}):
                raise NotFound(self._unknown(name, version))
            self._defaults[name] = version

    def close(self) -> None:
        with self._lock:
            entries = [e for versions in self._models.values() for e in versions.values()]
            self._models.clear()
            self._defaults.clear()
        for entry in entries:
            entry.close()

    # ---- lookup --------------------------------------------------------------------
    def resolve(self, name: str, version: str | None = None) -> ModelVersion:
        """The version to run: the one named, else one drawn by weight, else the default."""
        with self._lock:
            versions = self._models.get(name)
            if not versions:
                raise NotFound(self._unknown(name, None))
            if version:
                entry = versions.get(version)
                if entry is None:
                    raise NotFound(self._unknown(name, version))
            else:
                weighted = [e for e in versions.values() if e.weight > 0]
                if weighted:
                    entry = self._rng.choices(weighted, [e.weight for e in weighted])[0]
                else:
                    entry = versions[self._defaults[name]]
        if not entry.ready:
            raise NotReady(f"model {name!r} version {entry.version!r} is not ready yet")
        return entry

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        """The named version, else the default version (no A/B draw)."""
        with self._lock:
            versions = self._models.get(name)
            if not versions or (version and version not in versions):
                raise NotFound(self._unknown(name, version or None))
            return versions[version or self._defaults[name]]

    def versions(self, name: str) -> list[str]:
        with self._lock:
            return sorted(self._models.get(name, {}))

    def entries(self) -> list[ModelVersion]:
        with self._lock:
            return [e for versions in self._models.values() for e in versions.values()]

    def index(self) -> list[dict[str, Any]]:
        """Every loaded version (the v2 repository index, plus weight and default)."""
        with self._lock:
            return [
                {
                    "name": e.name,
                    "version": e.version,
                    "state": "READY" if e.ready else "LOADING",
                    "source": e.source,
                    "weight": e.weight,
                    "default": self._defaults.get(e.name) == e.version,
                }
                for versions in self._models.values()
                for e in versions.values()
            ]

    def all_ready(self) -> bool:
        entries = self.entries()
        return bool(entries) and all(e.ready for e in entries)

    def _unknown(self, name: str, version: str | None) -> str:
        known = sorted(self._models)
        if version is None or name not in self._models:
            return f"unknown model {name!r}: loaded models are {known}"
        return (
            f"model {name!r} has no version {version!r}: loaded versions are "
            f"{sorted(self._models[name])}"
        )


def warm_up(entry: ModelVersion, requests: int = WARMUP_REQUESTS, timeout_s: float = 120.0) -> None:
    """Run a few of the model's own samples through its batcher (first-call costs, lazy
    allocations) so the first real request is not the slow one."""
    samples = entry.served.samples or []
    for sample in samples[:requests]:
        entry.batcher.submit(sample).result(timeout=timeout_s)
