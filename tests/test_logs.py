"""Library code logs and reports progress; the interface decides what is shown: nothing by
default, `configure_logging` for a person, and child processes inherit the choice."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from exporters.base import ArtifactRequest, export_many
from workbench import logs, progress
from workbench.procs import cached_npz, child_env


class Recorder:
    """A renderer that remembers what it was asked to show."""

    def __init__(self) -> None:
        self.bars: list[dict] = []

    def __call__(self, total: int | None, description: str, unit: str) -> Recorder:
        self.bars.append(
            {"total": total, "description": description, "unit": unit, "done": 0, "notes": []}
        )
        return self

    def update(self, n: int = 1) -> None:
        self.bars[-1]["done"] += n

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.bars[-1]["notes"].append(s)

    def close(self) -> None:
        self.bars[-1]["closed"] = True


def test_progress_shows_nothing_by_default_and_passes_items_through(capsys) -> None:
    assert list(progress.progress(range(3), "work")) == [0, 1, 2]
    with progress.progress(5, "count") as work:
        work.advance(2, note="half")
    assert capsys.readouterr() == ("", "")


def test_an_installed_renderer_sees_totals_steps_and_notes() -> None:
    recorder = Recorder()
    progress.set_renderer(recorder)
    assert list(progress.progress([4, 5, 6], "items", unit="row")) == [4, 5, 6]
    with progress.progress(10, "steps", unit="step") as work:
        work.advance()
        work.advance(3, note="loss 0.5")
    assert recorder.bars[0] == {
        "total": 3, "description": "items", "unit": "row", "done": 3, "notes": [], "closed": True
    }  # fmt: skip
    assert recorder.bars[1]["total"] == 10 and recorder.bars[1]["done"] == 4
    assert recorder.bars[1]["notes"] == ["loss 0.5"] and recorder.bars[1]["closed"]
    # an iterable without a length: total unknown
    list(progress.progress(iter([1, 2]), "stream"))
    assert recorder.bars[2]["total"] is None and recorder.bars[2]["done"] == 2


def test_a_count_is_advanced_not_iterated() -> None:
    with pytest.raises(TypeError, match="advanced, not iterated"):
        list(progress.progress(3, "count"))
    with pytest.raises(ValueError, match="unknown progress renderer 'fancy'"):
        progress.use("fancy")


def test_configure_logging_decides_what_a_person_sees() -> None:
    out = io.StringIO()
    logs.configure_logging(0, progress_bars=False, stream=out)
    lib = logging.getLogger("workbench.models.example")
    lib.info("training once")
    lib.debug("epoch 1 loss 0.3")
    lib.warning("host h1 is unreachable")
    logging.getLogger("exporters.example").info("exported")
    assert out.getvalue().splitlines() == [
        "workbench: training once",
        "workbench: warning: host h1 is unreachable",
        "workbench: exported",
    ]
    assert os.environ[logs.LEVEL_VAR] == "INFO" and os.environ[progress.ENV_VAR] == "none"

    louder = io.StringIO()  # again: replaces its own handler, never adds a second one
    logs.configure_logging(1, stream=louder)
    lib.debug("epoch 2 loss 0.2")
    assert louder.getvalue() == "workbench: [workbench.models.example] epoch 2 loss 0.2\n"
    assert out.getvalue().count("\n") == 3
    assert progress.ENV_VAR in os.environ and os.environ[progress.ENV_VAR] == "tqdm"

    quiet = io.StringIO()
    logs.configure_logging(-1, stream=quiet)
    lib.info("not shown")
    assert quiet.getvalue() == ""


def make_npz(path: str) -> None:
    """A producer for `cached_npz` that logs, as the trainers do."""
    logging.getLogger("workbench.tests.producer").info("making %s", Path(path).name)
    np.savez(path, a=np.arange(3))


def test_child_processes_inherit_the_interfaces_choice(tmp_path: Path, capfd) -> None:
    code = "from workbench.logs import inherit; inherit(); import logging; "
    code += "logging.getLogger('workbench.x').info('hello')"
    silent = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, check=True
    )
    assert silent.stderr == ""

    logs.configure_logging(0, progress_bars=False, stream=io.StringIO())
    shown = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, check=True
    )
    assert shown.stderr == "workbench: hello\n"

    # the trainers' child process (workbench.procs.cached_npz) is one of them
    capfd.readouterr()
    arrays = cached_npz(tmp_path / "made.npz", "tests.test_logs:make_npz")
    assert arrays["a"].tolist() == [0, 1, 2]
    assert "workbench: making made.npz" in capfd.readouterr().err


def test_training_reports_its_epochs_through_the_hook() -> None:
    pytest.importorskip("torch")
    from workbench.models import digits_cnn

    recorder = Recorder()
    progress.set_renderer(recorder)
    digits_cnn.train(epochs=1)
    assert recorder.bars == [
        {
            "total": 1,
            "description": "train digits_cnn",
            "unit": "epoch",
            "done": 1,
            "notes": [],
            "closed": True,
        }
    ]


def test_export_many_advances_one_bar_per_artifact(workspace) -> None:
    """Long exports report through the same hook: one bar, one step per artifact."""
    recorder = Recorder()
    progress.set_renderer(recorder)
    requests = [
        ArtifactRequest("tabular", "linear", "torch", "onnx"),
        ArtifactRequest("tabular", "linear", "torch", "torchscript"),
    ]
    manifests = export_many(requests, jobs=1)
    assert [m["status"] for m in manifests] == ["ok", "ok"]
    (bar,) = recorder.bars
    assert (bar["description"], bar["total"], bar["unit"]) == ("export", 2, "artifact")
    assert bar["done"] == 2 and bar["closed"]
    assert bar["notes"] == ["linear onnx fp32", "linear torchscript fp32"]
