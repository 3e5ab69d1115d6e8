"""Child process of `exporters.base.export`: build the source model, export it, check
parity against the source on held-out inputs, and write the manifest.

Reads one JSON job on stdin. Runs in its own process so that a converter that
aborts or hangs cannot take the caller down, and so only one framework is loaded.
"""

from __future__ import annotations

import json
import resource
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from exporters.base import (
    ArtifactRequest,
    ExportContext,
    export,
    find_pass,
    sha256_of,
    write_manifest,
)
from workbench.devices import parse_device
from workbench.errors import UnavailableError
from workbench.formats import runtime_for
from workbench.manifests import size_of
from workbench.parity_thresholds import judge, quality_pair
from workbench.procs import apply_memory_limit, describe_memory_error, die_with_parent
from workbench.registry import get_runtime, get_task
from workbench.runtimes.base import RuntimeOptions, feed_keys, run_in_batches
from workbench.tasks.base import Task

HINTS = {
    "torch": "if the converter rejects an op or a dynamic shape, try the other exporter "
    "(params: dynamo) or a fixed batch size",
    "keras": "if the converter rejects an op, check TF/Keras versions or use a SavedModel",
    "savedmodel": "if the converter rejects an op, check the TensorFlow version the "
    "SavedModel was written with",
}


def reference_outputs(framework: str, source: Any, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The source model's own outputs for `feed` (inputs in the task's order); a source
    that is no framework model (a user's ONNX file) runs itself (`reference_outputs`)."""
    if callable(getattr(source, "reference_outputs", None)):
        return source.reference_outputs(feed)
    if framework == "torch":
        # lazy: torch
        import torch

        with torch.inference_mode():
            out = source(*[torch.from_numpy(v) for v in feed.values()])
        outs = out if isinstance(out, (list, tuple)) else [out]
        return [o.detach().cpu().numpy() for o in outs]
    out = source(
        list(feed.values()) if len(feed) > 1 else next(iter(feed.values())), training=False
    )
    outs = out if isinstance(out, (list, tuple)) else [out]
    return [np.asarray(o) for o in outs]


def quantize(value: np.ndarray, q: dict[str, Any] | None) -> np.ndarray:
    """A float array in an integer tensor's encoding (q: dtype, scale, zero_point)."""
    if q is None:
        return value
    info = np.iinfo(q["dtype"])
    scaled = np.round(np.asarray(value, dtype=np.float64) / q["scale"]) + q["zero_point"]
    return np.clip(scaled, info.min, info.max).astype(q["dtype"])


def dequantize(value: np.ndarray, q: dict[str, Any] | None) -> np.ndarray:
    if q is None:
        return value
    return ((np.asarray(value, dtype=np.float32) - q["zero_point"]) * q["scale"]).astype(np.float32)


def artifact_outputs(
    fmt: str,
    path: Path,
    task: Task,
    model: str,
    framework: str,
    feed: dict[str, np.ndarray],
    input_quantization: list[dict[str, Any] | None] | None = None,
    output_quantization: list[dict[str, Any] | None] | None = None,
) -> list[np.ndarray]:
    """Run the exported artifact on the CPU through the workbench's own runtime. An
    artifact with integer inputs/outputs (TFLite int8 io) gets its float inputs quantized
    and its outputs dequantized with the manifest's scales and zero points."""
    runtime = get_runtime(runtime_for(fmt))
    options = RuntimeOptions(
        parse_device("cpu"), format=fmt, inputs=task.input_specs(model, framework)
    )
    loaded = runtime.load(path, options)
    try:
        names = [spec.name for spec in loaded.inputs]
        values = [feed[key] for key in feed_keys(names, list(feed))]
        if input_quantization:
            values = [quantize(v, q) for v, q in zip(values, input_quantization, strict=True)]
        native = {name: values[i] for i, name in enumerate(names)}
        for spec in loaded.inputs:
            # A reduced-precision artifact may take float16 inputs (FP16 ONNX without
            # keep_io_types): feed it the same values in its own float type.
            value = native[spec.name]
            if value.dtype.kind == "f" and spec.dtype in ("float16", "float32", "float64"):
                native[spec.name] = value.astype(spec.dtype, copy=False)
            # ...and int32 ids where the converter narrowed int64 ones (LiteRT), when the
            # values fit (token ids and indices do)
            elif value.dtype == np.int64 and spec.dtype == "int32" and value.size:
                if np.abs(value).max() < 2**31:
                    native[spec.name] = value.astype(np.int32)
        outputs = run_in_batches(loaded, native)
        if output_quantization:
            outputs = [dequantize(o, q) for o, q in zip(outputs, output_quantization, strict=True)]
        return outputs
    finally:
        loaded.close()


def check_parity(
    task: Task,
    model: str,
    framework: str,
    source: Any,
    fmt: str,
    path: Path,
    precision: str,
    input_quantization: list[dict[str, Any] | None] | None = None,
    output_quantization: list[dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """Parity of the artifact against its source on held-out inputs, plus accuracy where
    the task has true labels."""
    feed, labels = task.held_out(model, task.parity_count(model), framework)
    reference = reference_outputs(framework, source, feed)
    candidate = artifact_outputs(
        fmt, path, task, model, framework, feed, input_quantization, output_quantization
    )
    return judge_outputs(task, model, precision, feed, labels, reference, candidate)


def judge_outputs(
    task: Task,
    model: str,
    precision: str,
    feed: dict[str, np.ndarray],
    labels: np.ndarray | None,
    reference: list[np.ndarray],
    candidate: list[np.ndarray],
) -> dict[str, Any]:
    """The parity fields of a candidate's outputs on the held-out `feed` against the
    source's `reference`, judged under `precision`'s rule (shared by artifacts and the
    native quantized rows, `exporters.native_parity`)."""
    measured = task.parity(reference, candidate, model=model)
    result: dict[str, Any] = {
        "parity_max_abs_error": measured["max_abs_error"],
        "parity_max_rel_error": measured["max_rel_error"],
        # max |reference| over the outputs, and the error relative to it: the quantity
        # the per-precision thresholds in workbench.parity judge
        "parity_output_scale": measured["output_scale"],
        "parity_scaled_error": measured["max_abs_error"] / max(measured["output_scale"], 1e-12),
        "parity_metric_name": measured["metric_name"],
        "parity_metric_value": measured["metric_value"],
        "parity_samples": len(next(iter(feed.values()))),
    }
    standard = {"max_abs_error", "max_rel_error", "output_scale", "metric_name", "metric_value"}
    for key, value in measured.items():  # the task's extra figures, e.g. top-5 overlap
        if key not in standard:
            result[f"parity_{key}"] = value
    if labels is not None:
        result["accuracy_source"] = task.accuracy(task.scored_output(reference), labels)
        result["accuracy_artifact"] = task.accuracy(task.scored_output(candidate), labels)
        gate = getattr(task, "accuracy_gate", None)
        if gate is not None:  # a user model: one accuracy budget for every format and quantizer
            result.update(gate(result["accuracy_source"], result["accuracy_artifact"]))
    source_quality, artifact_quality = quality_pair(result)
    judged = judge(
        precision,
        measured,
        measured["metric_value"],
        task=task.name,
        quality_source=source_quality,
        quality_artifact=artifact_quality,
    )
    result.update(parity_pass=judged.passed, parity_rule=judged.rule, parity_reason=judged.reason)
    if result.get("accuracy_gate_pass") is False:
        result.update(
            parity_pass=False,
            parity_rule="quality",  # QUALITY_RULE
            parity_reason=f"{result['accuracy_metric']} drop {result['accuracy_drop']:.2f} points "
            "over the model's budget",
        )
    return result


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    task = get_task(job["task"])
    pass_ = find_pass(job["source_framework"], job["format"], job["precision"])
    out = Path(job["path"])
    manifest = {
        k: job[k]
        for k in (
            "task",
            "model",
            "source_framework",
            "format",
            "precision",
            "pass",
            "params",
            "path",
        )
    }
    manifest["framework_version"] = _version(
        {"torch": "torch", "keras": "tensorflow", "savedmodel": "tensorflow"}.get(
            job["source_framework"], "onnxruntime-gpu"
        )
    )
    extras = getattr(task, "manifest_extras", None)
    if extras is not None:  # e.g. a user model's "synthetic calibration" stamp
        manifest.update(extras(job["precision"]))
    source = task.build(job["source_framework"], job["model"])
    upstream_path = None
    upstream = ArtifactRequest(
        job["task"], job["model"], job["source_framework"], job["format"], job["precision"]
    ).upstream_request(pass_)
    if upstream is not None:
        upstream_manifest = export(upstream)
        if upstream_manifest.get("status") != "ok":
            return {
                **manifest,
                "status": "failed",
                "error": f"the {upstream.format}/{upstream.precision} artifact this pass "
                f"transforms failed: {upstream_manifest.get('error')}",
            }
        upstream_path = Path(upstream_manifest["path"])
        manifest["upstream"] = {"path": str(upstream_path), "sha256": upstream_manifest["sha256"]}
    ctx = ExportContext(
        task,
        job["model"],
        job["source_framework"],
        job["precision"],
        pass_.check_params(job["params"]),
        source,
        upstream_path,
    )
    started = time.perf_counter()
    try:
        extras = pass_.export(ctx, out)
    except UnavailableError as exc:  # e.g. static INT8 without calibration data
        return {**manifest, "status": "unavailable", "error": str(exc)}
    except MemoryError as exc:
        return {
            **manifest,
            "status": "failed",
            "export_time_s": time.perf_counter() - started,
            "error": describe_memory_error(exc),
        }
    except Exception as exc:  # noqa: BLE001 - the converter's own message is the result
        message = " ".join(str(exc).split())[:600] or type(exc).__name__
        return {
            **manifest,
            "status": "failed",
            "export_time_s": time.perf_counter() - started,
            "error": f"{type(exc).__name__}: {message}",
            "hint": HINTS.get(job["source_framework"]),
        }
    manifest.update(extras)
    manifest.update(
        export_time_s=time.perf_counter() - started,
        size_bytes=size_of(out),
        sha256=sha256_of(out),
        status="ok",
        error=None,
    )
    try:
        manifest.update(
            check_parity(
                task,
                job["model"],
                job["source_framework"],
                source,
                job["format"],
                out,
                job["precision"],
                manifest.get("input_quantization"),
                manifest.get("output_quantization"),
            )
        )
    except UnavailableError as exc:
        # The file is fine but this host cannot run it (bf16 without bf16 instructions):
        # its rows say so rather than fail.
        manifest.update(status="unavailable", parity_pass=None, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - an artifact that cannot run fails parity
        manifest.update(
            status="failed",
            parity_pass=False,
            error=f"exported, but running it for parity failed: "
            f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}",
        )
    return manifest


def main() -> int:
    die_with_parent()
    apply_memory_limit()
    job = json.loads(sys.stdin.read())
    try:
        manifest = run_job(job)
    except Exception:  # noqa: BLE001 - report anything else as a failed artifact
        manifest = {
            **job,
            "status": "failed",
            "error": traceback.format_exc(limit=2).strip().splitlines()[-1],
        }
    manifest.pop("directory", None)
    # This export's own peak resident memory (an upstream export it made ran in its own
    # process and has its own manifest).
    manifest["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    write_manifest(Path(job["directory"]), manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
