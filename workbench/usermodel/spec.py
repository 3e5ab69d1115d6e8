"""`model.yaml`: a user's model, its inputs, data, metric and budget, in one readable file.

`workbench model init` writes it from a probe of the model; a person may edit it. Paths
in it are relative to the file's own directory. `load_spec` checks every field and
reports every problem at once (one line, `;`-separated), so `workbench model check`
shows the whole list before anything runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import UserError
from workbench.signature import TensorSpec
from workbench.usermodel.source import Source

FRAMEWORKS = ("torch", "keras", "savedmodel", "onnx")
NAME = re.compile(r"[a-z][a-z0-9_-]{0,47}")
DEFAULT_MAX_ACCURACY_DROP = 1.0  # points of the metric (percentage points for fractions)
HEADER = """\
# A model for the workbench, written by `workbench model init`; edit freely, then
# `workbench model check {path}`. Paths are relative to this file.
#   source: what builds the model, and the digest of its code and weights (editing the
#           model changes it, and the next export re-exports)
#   inputs/outputs: names, dtypes and shapes; `batch` and `sequence` axes are dynamic
#   dims: the size benchmarks use for each named axis other than batch
#   data: sample (one real batch), calibration (static INT8), evaluation + labels
#   metric: top-1, top-5, mse, mae, macro-f1, auc, cosine or module:function
#   metric_output: the output the metric scores (default: the first)
#   budget.max_accuracy_drop: the accuracy an artifact may lose, in points
"""


@dataclass
class ModelSpec:
    """The parsed `model.yaml`; `path` is where it was read from (None before writing)."""

    name: str
    source: Source
    digest: str
    framework: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    dims: dict[str, int] = field(default_factory=dict)
    sample: str | None = None
    calibration: str | None = None
    calibration_random: bool = False
    evaluation: str | None = None
    labels: str | None = None
    metric: str | None = None
    metric_output: str | None = None
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP
    hf: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def resolve(self, value: str | None) -> str | None:
        """A path from the file, made absolute against the file's directory."""
        if value is None or ":" in value and not Path(value).exists():
            return value  # None, or a module:function
        base = self.path.parent if self.path else Path.cwd()
        return str((base / value).resolve())

    def absolute_source(self) -> Source:
        """The source with its paths made absolute (against the spec's folder)."""
        s = self.source
        if s.kind == "factory":
            module, _, func = s.target.rpartition(":")
            target = f"{self.resolve(module)}:{func}" if module.endswith(".py") else s.target
        else:
            target = self.resolve(s.target) or s.target
        return Source(s.kind, target, self.resolve(s.weights), s.hf_task)

    def to_yaml(self) -> str:
        # lazy: yaml
        import yaml

        class Flow(list):  # type: ignore[type-arg]
            """A shape: written on one line, [batch, 3, 224, 224]."""

        class Dumper(yaml.SafeDumper):
            pass

        Dumper.add_representer(
            Flow, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
        )

        def tensor(spec: TensorSpec) -> dict[str, Any]:
            return {"name": spec.name, "dtype": spec.dtype, "shape": Flow(spec.shape)}

        data: dict[str, Any] = {
            "name": self.name,
            "source": {**self.source.to_json(), "digest": self.digest},
            "framework": self.framework,
            "inputs": [tensor(s) for s in self.inputs],
            "outputs": [tensor(s) for s in self.outputs],
            "dims": dict(self.dims),
            "data": {
                "sample": self.sample,
                "calibration": self.calibration,
                "calibration_random": self.calibration_random,
                "evaluation": self.evaluation,
                "labels": self.labels,
            },
            "metric": self.metric,
            "metric_output": self.metric_output,
            "budget": {"max_accuracy_drop": self.max_accuracy_drop},
        }
        if self.hf:
            data["hf"] = dict(self.hf)
        text = yaml.dump(data, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=100)
        return HEADER.format(path=self.path.name if self.path else "model.yaml") + text

    def write(self, path: Path) -> None:
        self.path = path
        path.write_text(self.to_yaml())

    def input_specs(self) -> list[TensorSpec]:
        return list(self.inputs)


def _tensors(value: Any, what: str, problems: list[str]) -> list[TensorSpec]:
    if not isinstance(value, list) or not value:
        problems.append(f"{what}: a list of {{name, dtype, shape}} is required")
        return []
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not {"name", "dtype", "shape"} <= set(item):
            problems.append(f"{what}[{i}]: needs name, dtype and shape")
            continue
        shape = item["shape"]
        if not isinstance(shape, list) or not all(
            (isinstance(d, int) and d > 0) or (isinstance(d, str) and d) for d in shape
        ):
            problems.append(
                f"{what}[{i}] {item['name']}: shape {shape!r} must list positive sizes or axis "
                "names (batch, sequence)"
            )
            continue
        out.append(TensorSpec(str(item["name"]), str(item["dtype"]), tuple(shape)))
    return out


def parse_spec(data: Any, path: Path | None = None) -> tuple[ModelSpec | None, list[str]]:
    """(the spec, []) or (None or a partial spec, every problem found)."""
    problems: list[str] = []
    if not isinstance(data, dict):
        return None, ["the file is not a YAML mapping: write it with `workbench model init`"]
    name = data.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        problems.append(
            f"name {name!r}: lowercase letters, digits, _ and -, starting with a letter"
        )
    source_data = data.get("source") or {}
    try:
        source = Source.from_json(source_data)
    except UserError as exc:
        problems.append(str(exc))
        source = None
    framework = data.get("framework")
    if framework not in FRAMEWORKS:
        problems.append(f"framework {framework!r}: one of {', '.join(FRAMEWORKS)}")
    inputs = _tensors(data.get("inputs"), "inputs", problems)
    outputs = _tensors(data.get("outputs"), "outputs", problems)
    dims = data.get("dims") or {}
    if not isinstance(dims, dict) or not all(isinstance(v, int) and v > 0 for v in dims.values()):
        problems.append(f"dims {dims!r}: a mapping of axis name -> positive size")
        dims = {}
    named = {d for s in inputs for d in s.shape[1:] if isinstance(d, str)} - {"batch"}
    for axis in sorted(named - set(dims)):
        problems.append(
            f"dynamic axis {axis!r} has no benchmark size: add `dims: {{{axis}: SIZE}}` "
            f"to the spec (or --dim {axis}=SIZE)"
        )
    section = data.get("data") or {}
    budget = data.get("budget") or {}
    drop = budget.get("max_accuracy_drop", DEFAULT_MAX_ACCURACY_DROP)
    if not isinstance(drop, (int, float)) or drop < 0:
        problems.append(f"budget.max_accuracy_drop {drop!r}: a number of points >= 0")
        drop = DEFAULT_MAX_ACCURACY_DROP
    if section.get("evaluation") and not data.get("metric"):
        problems.append("data.evaluation is given but no metric: set metric (e.g. top-1)")
    if data.get("metric") and not section.get("evaluation"):
        problems.append("a metric is set but no data.evaluation with labels to compute it on")
    scored = data.get("metric_output")
    if scored is not None and scored not in [o.name for o in outputs]:
        problems.append(
            f"metric_output {scored!r} is not an output: one of "
            f"{', '.join(o.name for o in outputs)}"
        )
    if source is None or problems and not (name and inputs):
        return None, problems
    spec = ModelSpec(
        name=str(name),
        source=source,
        digest=str((source_data or {}).get("digest", "")),
        framework=str(framework),
        inputs=inputs,
        outputs=outputs,
        dims={str(k): int(v) for k, v in dims.items()},
        sample=section.get("sample"),
        calibration=section.get("calibration"),
        calibration_random=bool(section.get("calibration_random", False)),
        evaluation=section.get("evaluation"),
        labels=section.get("labels"),
        metric=data.get("metric"),
        metric_output=scored,
        max_accuracy_drop=float(drop),
        hf=dict(data.get("hf") or {}),
        path=path,
    )
    return spec, problems


def read_spec(path: str | Path) -> tuple[ModelSpec | None, list[str]]:
    """Parse the file at `path` (problems listed, nothing raised but for an unreadable file)."""
    # lazy: yaml
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"no model spec {str(path)!r}: write one with `workbench model init`")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({' '.join(str(exc).split())[:200]})") from None
    return parse_spec(data, path.resolve())


def load_spec(path: str | Path) -> ModelSpec:
    """The spec at `path`; a UserError listing every problem when it has any."""
    spec, problems = read_spec(path)
    if problems or spec is None:
        raise UserError(f"{path}: " + "; ".join(problems or ["not a model spec"]))
    return spec


def is_spec_path(text: str | None) -> bool:
    return bool(text) and str(text).endswith((".yaml", ".yml"))
