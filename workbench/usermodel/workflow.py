"""`model init` and `model check` as library calls (the CLI and the notebook share them).

`init_spec` probes the model in a worker and writes `model.yaml`; `check_spec` is the
preflight: it reads the spec, its data and its source, probes the model on the sample,
and returns every problem found (nothing stops at the first).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench import workspace
from workbench.errors import UserError
from workbench.input_options import parse_shapes
from workbench.registry import builtin_task_names
from workbench.signature import TensorSpec
from workbench.usermodel import data, metrics
from workbench.usermodel.probe import read_sample, run_probe
from workbench.usermodel.source import Source, parse_source
from workbench.usermodel.spec import ModelSpec, read_spec
from workbench.usermodel.task import register


def default_name(source: Source) -> str:
    """A spec name from the source: the factory's function or the file's stem."""
    text = (
        source.target.rpartition(":")[2] if source.kind == "factory" else Path(source.target).stem
    )
    name = re.sub(r"[^a-z0-9_-]+", "_", text.lower()).strip("_-") or "model"
    return name if name[0].isalpha() else f"m_{name}"


def _relative(path: str | None, base: Path) -> str | None:
    if not path or (":" in path and not Path(path).exists()):
        return path
    absolute = Path(path).resolve()
    try:
        relative = os.path.relpath(absolute, base.resolve())
    except ValueError:
        return str(absolute)
    # beside or below the spec: relative (the folder can move); elsewhere: absolute
    return str(absolute) if relative.startswith("..") else relative


def init_spec(
    source_text: str,
    out: str | Path = "model.yaml",
    *,
    sample: str | None = None,
    name: str | None = None,
    inputs: list[str] | None = None,
    texts: list[str] | None = None,
    images: list[str] | None = None,
    weights: str | None = None,
    hf_task: str | None = None,
    calibration: str | None = None,
    calibration_random: bool = False,
    evaluation: str | None = None,
    labels: str | None = None,
    metric: str | None = None,
    max_accuracy_drop: float = 1.0,
    metric_output: str | None = None,
) -> tuple[ModelSpec, list[str]]:
    """Probe `source_text` (in a worker) on the sample and write the spec to `out`;
    the spec and the probe's notes (how each dynamic axis was found)."""
    out = Path(out)
    source = parse_source(source_text, weights, hf_task)
    spec_name = name or default_name(source)
    shapes, dtypes = parse_shapes(inputs or [])
    sample_out = out.parent / f"{spec_name}.sample.npz"
    job = {
        "source": source.to_json(),
        "sample": str(Path(sample).resolve()) if sample else None,
        "texts": texts,
        "images": [str(Path(p).resolve()) for p in images or []],
        "overrides": {k: [v, dtypes.get(k)] for k, v in shapes.items()},
        "sample_out": str(sample_out.resolve()),
    }
    result = run_probe(job)
    sample_path = sample or (str(sample_out) if sample_out.exists() else None)
    base = out.parent

    def tensors(items: list[dict[str, Any]]) -> list[TensorSpec]:
        return [TensorSpec(i["name"], i["dtype"], tuple(i["shape"])) for i in items]

    outputs = tensors(result["outputs"])
    notes = list(result.get("notes", []))
    scored = scored_output_name(metric, metric_output, outputs, notes)

    spec = ModelSpec(
        name=spec_name,
        source=Source(
            source.kind,
            _relative(source.target, base)
            if source.kind != "factory"
            else _factory_rel(source.target, base),
            _relative(source.weights, base),
            source.hf_task,
        ),
        digest=source.digest(),
        framework=result["framework"],
        inputs=tensors(result["inputs"]),
        outputs=outputs,
        dims=result["dims"],
        sample=_relative(sample_path, base),
        calibration=_relative(calibration, base),
        calibration_random=calibration_random,
        evaluation=_relative(evaluation, base),
        labels=_relative(labels, base),
        metric=metric,
        metric_output=scored,
        max_accuracy_drop=max_accuracy_drop,
        hf=result.get("hf") or {},
    )
    spec.write(out)
    return spec, notes


CLASS_METRICS = ("top-1", "top-5", "macro-f1")


def scored_output_name(
    metric: str | None, asked: str | None, outputs: list[TensorSpec], notes: list[str]
) -> str | None:
    """The output the metric scores: the one asked for, else the first, except that a
    class metric skips a first output with no class axis (scikit-learn's ONNX classifiers
    put an int64 `label` before `probabilities`) and says so in `notes`."""
    names = [o.name for o in outputs]
    if asked is not None:
        if metric is None:
            raise UserError("--metric-output names the output a metric scores: give --metric too")
        if asked not in names:
            raise UserError(
                f"--metric-output {asked!r} is not an output: one of {', '.join(names)}"
            )
        return asked
    if metric not in CLASS_METRICS or not outputs:
        return None
    first = outputs[0]
    if first.dtype.startswith("float") and len(first.shape) >= 2:
        return None
    scores = [o for o in outputs if o.dtype.startswith("float") and len(o.shape) >= 2]
    if not scores:
        return None
    notes.append(
        f"metric {metric} scores output {scores[0].name!r} (the first, {first.name!r}, has no "
        "class axis); set metric_output in the spec to change it"
    )
    return scores[0].name


def _factory_rel(target: str, base: Path) -> str:
    module, _, func = target.rpartition(":")
    if module.endswith(".py"):
        return f"{_relative(module, base)}:{func}"
    return target


@dataclass
class CheckReport:
    """What `model check` found: problems stop a run; notes are for information."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_spec(path: str | Path, probe: bool = True) -> CheckReport:
    """Every problem with the spec at `path`, its files, data and model, at once."""
    report = CheckReport()
    spec, problems = read_spec(path)
    report.problems.extend(problems)
    if spec is None:
        return report

    if spec.name in builtin_task_names():
        report.problems.append(f"name {spec.name!r} is a built-in task's: rename it")
    source = spec.absolute_source()
    try:
        digest = source.digest()
    except (OSError, UserError) as exc:
        report.problems.append(f"source: {exc}")
        return report
    if spec.digest and digest != spec.digest:
        report.notes.append(
            "the model's code or weights changed since `model init` (digest "
            f"{spec.digest} -> {digest}): its artifacts will be exported again"
        )
    sample = None
    if spec.sample:
        try:
            sample = read_sample(str(spec.resolve(spec.sample)))
            report.problems.extend(_sample_problems(sample, spec))
        except UserError as exc:
            report.problems.append(str(exc))
    else:
        report.notes.append("no data.sample: benchmarks draw random inputs from the spec")
    report.problems.extend(_data_problems(spec))
    if spec.calibration is None and not spec.calibration_random:
        report.notes.append(
            "no data.calibration: static INT8 rows will be `unavailable` (set it, or "
            "calibration_random: true for synthetic calibration, stamped on the rows)"
        )
    if probe and sample is not None and not report.problems:
        try:
            result = run_probe(
                {"source": source.to_json(), "sample": str(spec.resolve(spec.sample))}
            )
            have = [(i["name"], i["dtype"]) for i in result["inputs"]]
            want = [(s.name, s.dtype) for s in spec.inputs]
            if have != want:
                report.problems.append(
                    f"the model now takes {have}, the spec says {want}: run `model init` again"
                )
            report.notes.extend(result.get("notes", []))
        except UserError as exc:
            report.problems.append(str(exc))
    return report


def _sample_problems(sample: dict[str, np.ndarray], spec: ModelSpec) -> list[str]:
    problems = []
    names = [s.name for s in spec.inputs]
    keys = list(sample)
    if set(names) <= set(keys):
        arrays = [sample[n] for n in names]
    elif len(keys) == len(names):
        arrays = [sample[k] for k in keys]
    else:
        return [f"data.sample holds {', '.join(keys)}, the model takes {', '.join(names)}"]
    for spec_t, array in zip(spec.inputs, arrays, strict=True):
        if str(array.dtype) != spec_t.dtype:
            problems.append(
                f"data.sample {spec_t.name}: dtype {array.dtype}, the spec says {spec_t.dtype}"
            )
        if array.ndim != len(spec_t.shape):
            problems.append(
                f"data.sample {spec_t.name}: rank {array.ndim}, the spec says {len(spec_t.shape)}"
            )
    return problems


def _data_problems(spec: ModelSpec) -> list[str]:
    """Calibration and evaluation data and the metric, each checked by its reader."""
    problems = []
    if spec.calibration:
        try:
            data.load_items(spec.resolve(spec.calibration), spec.input_specs())
        except UserError as exc:
            problems.append(f"data.calibration: {exc}")
    if spec.evaluation:
        try:
            data.load_labeled(
                spec.resolve(spec.evaluation), spec.input_specs(), labels=spec.resolve(spec.labels)
            )
        except UserError as exc:
            problems.append(f"data.evaluation: {exc}")
    if spec.metric:
        try:
            metrics.get_metric(spec.metric)
        except UserError as exc:
            problems.append(f"metric: {exc}")
    return problems


def prepare(path: str | Path, **overrides: Any) -> ModelSpec:
    """The spec at `path` ready for a run: checked (no probe), with `overrides`
    (max_accuracy_drop, calibration_random, dims) written into a resolved copy in the
    workspace, and registered as a task in this process and its workers."""

    report = check_spec(path, probe=False)
    if not report.ok:
        raise UserError(f"{path}: " + "; ".join(report.problems))
    spec, _ = read_spec(path)
    assert spec is not None
    changes = {k: v for k, v in overrides.items() if v not in (None, {}, False)}
    if changes:
        for key, value in changes.items():
            if key == "dims":
                spec.dims = {**spec.dims, **value}
            else:
                setattr(spec, key, value)
        folder = workspace.workspace_dir() / "models"
        folder.mkdir(parents=True, exist_ok=True)
        resolved = _absolute_copy(spec)
        resolved.write(folder / f"{spec.name}.yaml")
        spec = resolved
    register(spec)
    return spec


def _absolute_copy(spec: ModelSpec) -> ModelSpec:
    source = spec.absolute_source()
    return ModelSpec(
        **{
            **spec.__dict__,
            "source": source,
            "sample": spec.resolve(spec.sample),
            "calibration": spec.resolve(spec.calibration),
            "evaluation": spec.resolve(spec.evaluation),
            "labels": spec.resolve(spec.labels),
        }
    )
