"""The `your_model` notebook's steps: a spec from the parameters (a model.yaml, a source
plus a sample, or one of the repository's examples), its preflight, and the sweep."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from workbench.errors import UserError
from workbench.procs import CODE_ROOT
from workbench.usermodel.spec import ModelSpec
from workbench.usermodel.workflow import CheckReport, check_spec, init_spec, prepare

EXAMPLES = CODE_ROOT / "examples" / "make_examples.py"


def example_entry(name: str) -> dict[str, Any]:
    """The repository example `name` (examples/make_examples.py builds it offline on
    first use): its source, sample, calibration and evaluation data and metric."""
    if not EXAMPLES.is_file():
        raise UserError(f"no {EXAMPLES}: this checkout has no examples; give spec or source")
    spec = importlib.util.spec_from_file_location("workbench_examples_make", EXAMPLES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entries = module.manifest()
    if name not in entries:
        raise UserError(f"no example {name!r}: choose one of {', '.join(sorted(entries))}")
    return entries[name]


def spec_from_params(
    folder: Path,
    spec: str = "",
    source: str = "",
    sample: str = "",
    example: str = "",
    max_accuracy_drop: float = 1.0,
) -> tuple[Path, list[str]]:
    """The model.yaml to run: `spec` as given; else one `model init` writes into `folder`
    from `source` and `sample`, or from the example's own source and data. With the
    path, the probe's notes (how each dynamic axis was found)."""
    if spec:
        return Path(spec), []
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "model.yaml"
    if source:
        _, notes = init_spec(
            source, out, sample=sample or None, max_accuracy_drop=max_accuracy_drop
        )
        return out, notes
    entry = example_entry(example)
    _, notes = init_spec(
        entry["source"],
        out,
        sample=entry.get("sample"),
        name=example.replace("-", "_"),
        calibration=entry.get("calibration"),
        evaluation=entry.get("evaluation"),
        metric=entry.get("metric"),
        max_accuracy_drop=max_accuracy_drop,
    )
    return out, notes


def preflight(path: Path) -> CheckReport:
    """`model check`: prints every note and problem; a UserError when there are problems."""
    report = check_spec(path)
    for note in report.notes:
        print(f"note: {note}")
    for problem in report.problems:
        print(f"problem: {problem}")
    if not report.ok:
        raise UserError(f"{path}: {len(report.problems)} problem(s), listed above")
    return report


def register(path: Path, **overrides: Any) -> ModelSpec:
    """The spec checked and registered as a task (sweeps take its name)."""
    return prepare(path, **overrides)
