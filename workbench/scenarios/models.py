"""Load a model for a scenario: a model file, a task's artifact, or the null runtime.

Each model instance is its own loaded copy (its own session), as in Triton; the
instances share the host's cores, so each gets `threads` intra-op threads (default:
the available cores split between them). Samples come from the task's own data where
there is a task (real photographs for ImageNet models), else from the signature generator.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from exporters.base import ArtifactRequest, export
from workbench.devices import parse_device
from workbench.errors import UserError
from workbench.formats import detect_format, runtime_for
from workbench.registry import get_runtime, get_task
from workbench.runtimes.base import LoadedModel, RuntimeOptions, by_input_name
from workbench.scenarios.driver import ServedModel
from workbench.signature import TensorSpec, make_input_pool


def default_threads(instances: int) -> int:
    return max(1, len(os.sched_getaffinity(0)) // max(instances, 1))


def _run_batch(loaded: LoadedModel):
    def run(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return loaded.to_numpy(loaded.run(loaded.prepare(by_input_name(loaded, feed))))

    return run


def _fixed_batch(loaded: LoadedModel) -> int | None:
    shape = loaded.inputs[0].shape if loaded.inputs else ()
    dim = shape[0] if shape else None
    return dim if isinstance(dim, int) and dim > 0 else None


def _split_rows(feed: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    n = len(next(iter(feed.values())))
    return [{k: np.ascontiguousarray(v[i : i + 1]) for k, v in feed.items()} for i in range(n)]


def _load_instances(
    runtime_name: str,
    path: Path | None,
    fmt: str | None,
    instances: int,
    device: str,
    threads: int | None,
    settings: dict[str, Any] | None,
    inputs: list[TensorSpec] | None = None,
) -> list[LoadedModel]:
    if instances < 1:
        raise UserError(f"instances must be a positive integer, got {instances}")
    runtime = get_runtime(runtime_name)
    if fmt is not None and fmt not in runtime.formats:
        raise UserError(
            f"runtime {runtime_name!r} cannot run format {fmt!r}: it runs "
            f"{', '.join(runtime.formats)}"
        )
    options = RuntimeOptions(
        device=parse_device(device),
        threads=threads or default_threads(instances),
        format=fmt,
        inputs=inputs,
        settings=runtime.parse_settings(settings or {}),
    )
    runtime.configure_process(options)
    return runtime.load_served(path, options, instances)


def _served(
    loaded: list[LoadedModel], samples: list[dict[str, np.ndarray]], labels: dict[str, Any]
) -> ServedModel:
    first = loaded[0]
    return ServedModel(
        run_batches=[_run_batch(m) for m in loaded],
        samples=samples,
        fixed_batch=_fixed_batch(first),
        labels={"provider": first.provider, **labels},
        closers=[m.close for m in loaded],
        inputs=list(first.inputs),
        outputs=list(first.outputs or []),
    )


def load_null(
    instances: int = 1, sample_count: int = 64, inputs: list[TensorSpec] | None = None
) -> ServedModel:
    """The null runtime: the scenario layer's own cost (LoadGen + batcher + threads)."""
    loaded = _load_instances("null", None, "null", instances, "cpu", 1, None, inputs)
    samples = make_input_pool(loaded[0].inputs, 1, pool_size=sample_count)
    labels = {"runtime": "null", "model": "null", "format": "null", "device": "cpu"}
    return _served(loaded, samples, labels)


def load_file(
    path: str | Path,
    runtime: str | None = None,
    instances: int = 1,
    device: str = "cpu",
    threads: int | None = None,
    dims: dict[str, int] | None = None,
    settings: dict[str, Any] | None = None,
    sample_count: int = 64,
    allow_no_samples: bool = False,
) -> ServedModel:
    """A model file on its runtime; samples from its input signature. With
    `allow_no_samples`, a symbolic dimension no `dims` entry sizes leaves `samples` empty
    (a server sizes its warm-up from the first request) instead of failing."""
    path = Path(path)
    fmt = detect_format(path)
    name = runtime or runtime_for(fmt)
    loaded = _load_instances(name, path, fmt, instances, device, threads, settings)
    specs = [
        TensorSpec(s.name, s.dtype, ("batch", *s.shape[1:])) if s.shape else s
        for s in loaded[0].inputs
    ]
    try:
        samples = make_input_pool(specs, 1, dims or {}, pool_size=sample_count)
    except UserError:
        if not allow_no_samples:
            for model in loaded:
                model.close()
            raise
        samples = []
    labels = {
        "model": path.name,
        "format": fmt,
        "runtime": name,
        "runtime_version": get_runtime(name).version(),
        "device": device,
        "threads": threads or default_threads(instances),
        "artifact_path": str(path),
    }
    return _served(loaded, samples, labels)


def load_task(
    task: str,
    model: str | None = None,
    framework: str | None = None,
    fmt: str = "onnx",
    precision: str = "fp32",
    instances: int = 1,
    device: str = "cpu",
    threads: int | None = None,
    settings: dict[str, Any] | None = None,
    sample_count: int = 64,
    runtime: str | None = None,
) -> ServedModel:
    """A task's exported artifact (exported now if missing; cached by content), with the
    task's own inputs as samples, on `runtime` (default: the format's own; e.g. the ONNX
    file on openvino beside onnxruntime). `framework`: the source framework exported from
    (default the model's first: a user's Keras, SavedModel or ONNX model has no PyTorch one)."""
    task_obj = get_task(task)
    model = task_obj.check_model(model or task_obj.models[0])
    framework = framework or task_obj.frameworks_for(model)[0]
    manifest = export(ArtifactRequest(task, model, framework, fmt, precision))
    if manifest.get("status") != "ok":
        raise UserError(
            f"could not export {task}/{model} to {fmt} {precision}: {manifest.get('error')}"
        )
    path = Path(manifest["path"])
    name = runtime or runtime_for(fmt)
    loaded = _load_instances(name, path, fmt, instances, device, threads, settings)
    samples = _split_rows(task_obj.make_inputs(model, sample_count, seed=3, framework=framework))
    labels = {
        "task": task,
        "model": model,
        "source_framework": framework,
        "format": fmt,
        "precision": precision,
        "runtime": name,
        "runtime_version": get_runtime(name).version(),
        "device": device,
        "threads": threads or default_threads(instances),
        "artifact_path": str(path),
        "artifact_sha256": manifest.get("sha256"),
    }
    return _served(loaded, samples, labels)
