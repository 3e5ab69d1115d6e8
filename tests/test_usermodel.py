"""Your own model end to end (#23): a PyTorch factory probed on one real batch into
model.yaml, checked, exported with parity, and the bad inputs each a one-line error.

Tiny models; every probe and export runs in its own worker process, as in use."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import yaml

from workbench.errors import UserError
from workbench.procs import child_env
from workbench.usermodel.probe import run_probe
from workbench.usermodel.source import parse_source
from workbench.usermodel.spec import parse_spec
from workbench.usermodel.workflow import init_spec

NETS = textwrap.dedent(
    """
    import time
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(50, 8)
            self.fc = nn.Linear(12, 3)

        def forward(self, ids, feats):
            pooled = self.emb(ids).mean(1)
            return {"logits": self.fc(torch.cat([pooled, feats], 1)), "pooled": pooled}

    def make():
        torch.manual_seed(0)
        return Net()

    def floats_only():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(6, 4))

    def broken():
        raise RuntimeError("weights server is down")

    def hangs():
        time.sleep(60)

    def not_a_model():
        return {"weights": 1}

    NOT_CALLABLE = 3
    """
)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    (root / "nets.py").write_text(NETS)
    rng = np.random.default_rng(0)
    np.savez(
        root / "batch.npz",
        ids=rng.integers(0, 50, (4, 7)).astype("int64"),
        feats=rng.standard_normal((4, 4)).astype("float32"),
    )
    np.savez(
        root / "wrong_keys.npz", tokens=np.zeros((4, 7), "int64"), feats=np.zeros((4, 4), "float32")
    )
    np.savez(root / "ints.npz", x=np.zeros((4, 6), "int64"))
    return root


def cli(args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        cwd=cwd,
        text=True,
        capture_output=True,
        env=child_env(WORKBENCH_HOME=str(home)),
        timeout=600,
    )


def one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith("workbench: error:"), proc.stderr
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])


def test_init_infers_names_dynamic_axes_and_flattened_outputs_then_exports(project, tmp_path):
    proc = cli(
        ["model", "init", "nets.py:make", "--sample", "batch.npz", "-o", "net.yaml"],
        project,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = yaml.safe_load((project / "net.yaml").read_text())
    assert data["source"]["kind"] == "factory" and len(data["source"]["digest"]) == 16
    assert [(i["name"], i["dtype"], i["shape"]) for i in data["inputs"]] == [
        ("ids", "int64", ["batch", "sequence"]),
        ("feats", "float32", ["batch", 4]),
    ]
    assert [(o["name"], o["shape"]) for o in data["outputs"]] == [
        ("logits", ["batch", 3]),
        ("pooled", ["batch", 8]),
    ]
    assert data["dims"] == {"sequence": 7}
    check = cli(["model", "check", "net.yaml"], project, tmp_path)
    assert check.returncode == 0, check.stderr
    assert "static INT8 rows will be `unavailable`" in check.stdout
    export = cli(
        [
            "export",
            "net.yaml",
            "--formats",
            "onnx",
            "--precisions",
            "fp32,int8-static",
            "--output",
            "json",
        ],
        project,
        tmp_path,
    )
    rows = {r["precision"]: r for r in map(yaml.safe_load, export.stdout.splitlines())}
    assert rows["fp32"]["status"] == "ok" and rows["fp32"]["parity_pass"] is True
    assert rows["fp32"]["parity_max_abs_error"] < 1e-4
    # the ONNX file's outputs carry the model's own names (what `serve` then answers with)
    graph = onnx.load(rows["fp32"]["path"]).graph
    assert [o.name for o in graph.output] == ["logits", "pooled"]
    assert graph.output[0].type.tensor_type.shape.dim[0].dim_param  # a dynamic batch axis
    assert rows["int8-static"]["status"] == "unavailable"
    assert "calibration" in rows["int8-static"]["error"]
    assert export.returncode == 1  # not every export is ok


SPEC = {
    "name": "broken",
    "source": {"kind": "factory", "target": "nets.py:broken"},
    "framework": "torch",
    "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 6]}],
    "outputs": [{"name": "output", "dtype": "float32", "shape": ["batch", 4]}],
}


def test_a_factory_that_raises_is_a_failed_row_with_its_reason(project, tmp_path):
    (project / "broken.yaml").write_text(yaml.safe_dump(SPEC))
    export = cli(
        ["export", "broken.yaml", "--formats", "onnx", "--precisions", "fp32", "--output", "json"],
        project,
        tmp_path,
    )
    rows = [yaml.safe_load(line) for line in export.stdout.splitlines()]
    assert len(rows) == 1 and rows[0]["status"] == "failed", export.stderr[-2000:]
    assert "weights server is down" in rows[0]["error"]


def test_sample_keys_not_matching_forward_is_a_one_line_error(project, tmp_path):
    proc = cli(
        ["model", "init", "nets.py:make", "--sample", "wrong_keys.npz", "-o", "x.yaml"],
        project,
        tmp_path,
    )
    one_line_error(proc, "tokens", "not inputs of the model", "ids, feats")


@pytest.mark.parametrize(
    ("source", "sample", "words"),
    [
        ("nets.py:nope", "batch.npz", ["has no 'nope'"]),
        ("nets.py:NOT_CALLABLE", "batch.npz", ["not a function"]),
        ("nets.py:not_a_model", "batch.npz", ["not a torch.nn.Module"]),
        ("nets.py:floats_only", "ints.npz", ["rejected the sample", "int64"]),
    ],
    ids=["no-function", "not-callable", "wrong-type", "dtype-rejected"],
)
def test_bad_sources_are_errors_naming_the_fix(project, source, sample, words):
    with pytest.raises(UserError) as caught:
        init_spec(str(project / source), project / "x.yaml", sample=str(project / sample))
    for word in words:
        assert word.lower() in str(caught.value).lower(), (word, str(caught.value))


def test_a_hanging_factory_is_stopped(project):
    source = parse_source(str(project / "nets.py") + ":hangs")
    with pytest.raises(UserError, match="within 5 s"):
        run_probe({"source": source.to_json(), "sample": str(project / "batch.npz")}, timeout_s=5)


def test_source_kinds_refused_with_the_way_forward(tmp_path):
    tflite = tmp_path / "m.tflite"
    tflite.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 64)
    with pytest.raises(UserError, match="timed .* but not converted"):
        try:
            parse_source(str(tflite))
        except UserError as exc:
            if "not a TFLite" in str(exc):
                pytest.skip("the fixture bytes are not a valid TFLite header here")
            raise
    with pytest.raises(UserError, match="cannot find module"):
        parse_source("no_such_pkg_xyz.mod:make")
    hf = tmp_path / "hf"
    hf.mkdir()
    with pytest.raises(UserError, match="config.json"):
        parse_source(str(hf))


def test_check_lists_every_problem_at_once():
    spec, problems = parse_spec(
        {
            "name": "Bad Name",
            "source": {"kind": "factory", "target": "x.py:f"},
            "framework": "jax",
            "inputs": [{"name": "ids", "dtype": "int64", "shape": ["batch", "tokens"]}],
            "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", 2]}],
            "metric": "top-1",
        }
    )
    text = " | ".join(problems)
    assert "name 'Bad Name'" in text
    assert "framework 'jax'" in text
    assert "'tokens' has no benchmark size" in text and "dims" in text
    assert "no data.evaluation" in text


def _task(tmp_path: Path, **changes):
    from workbench.usermodel.task import task_class

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "s.npz", x=rng.standard_normal((3, 6)).astype("float32"))
    data = {**SPEC, "name": "tiny", "data": {"sample": "s.npz"}, **changes}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(data))
    return task_class(str(tmp_path / "tiny.yaml"))()


def test_static_int8_without_calibration_is_unavailable_and_random_is_stamped(tmp_path):
    from workbench.errors import UnavailableError

    task = _task(tmp_path)
    with pytest.raises(UnavailableError, match="--calibration random"):
        task.calibration_inputs("tiny", 8)
    assert task.manifest_extras("int8-static") == {}
    (tmp_path / "r").mkdir()
    stamped = _task(
        tmp_path / "r", name="tinyr", data={"sample": "s.npz", "calibration_random": True}
    )
    feed = stamped.calibration_inputs("tinyr", 8)
    assert feed["x"].shape == (8, 6) and feed["x"].dtype == np.float32
    assert stamped.manifest_extras("int8-static") == {"calibration": "synthetic calibration"}


def test_sample_rows_feed_every_batch_size_and_parity_agrees_per_output(tmp_path):
    task = _task(tmp_path)
    feed = task.make_inputs("tiny", 5, seed=1)
    assert feed["x"].shape == (5, 6)
    sample = np.load(tmp_path / "s.npz")["x"]
    assert all(any(np.array_equal(row, s) for s in sample) for row in feed["x"])  # real rows
    logits = np.array([[1.0, 2.0], [3.0, 0.0]], "float32")
    labels = np.array([1, 0])
    same = task.parity([logits, labels], [logits + 1e-6, labels])
    assert same["metric_value"] == 1.0 and "exact_match" in same["metric_name"]
    flipped = task.parity([logits, labels], [logits[:, ::-1].copy(), labels[::-1].copy()])
    assert flipped["metric_value"] == 0.0


def test_a_constant_output_is_flagged_since_parity_on_it_proves_little():
    from workbench.usermodel.infer import infer

    class Constant:  # a random-weight net whose softmax is uniform on the sample
        input_names = ["x"]
        accepted = ["x"]

        def run(self, feed):
            return [("probs", np.full((feed["x"].shape[0], 10), 0.1, "float32"))]

    notes = infer(Constant(), {"x": np.zeros((4, 2), "float32")}).notes
    assert any("'probs' is the same value" in n and "proves little" in n for n in notes)


def test_error_metrics_are_stored_higher_is_better_as_recommend_reads_them(tmp_path):
    """MSE/MAE rows hold the negated error in `accuracy`, so the gate, the quality rule
    and `recommend` (best FP32 accuracy minus the row's, x100) all see a grown error as
    a drop, never a gain."""
    from workbench.analysis.recommend import Constraints, recommend
    from workbench.parity_thresholds import judge_quality
    from workbench.results import make_row

    labels = np.zeros((4, 4), "float32")
    np.savez(tmp_path / "ev.npz", x=np.ones((4, 6), "float32"), labels=labels)
    task = _task(
        tmp_path, name="tinymse", metric="mse", data={"sample": "s.npz", "evaluation": "ev.npz"}
    )
    source = task.accuracy(labels + 0.1, labels)  # MSE 0.01
    worse = task.accuracy(labels + 0.3, labels)  # MSE 0.09
    assert source == pytest.approx(-0.01) and worse == pytest.approx(-0.09)
    gate = task.accuracy_gate(source, worse)
    assert gate["accuracy_drop"] == pytest.approx(8.0) and gate["accuracy_gate_pass"] is False
    assert task.accuracy_gate(worse, source)["accuracy_drop"] == pytest.approx(-8.0)
    assert not judge_quality(source, worse, True, 1.0).passed  # the quality rule agrees
    base = {
        "status": "ok",
        "task": "tinymse",
        "model": "tinymse",
        "source_framework": "torch",
        "format": "onnx",
        "runtime": "onnxruntime",
        "device": "cpu",
        "threads": 2,
        "batch_size": 1,
        "latency_ms_p50": 1.0,
        "model_size_bytes": 1_000,
        "parity_pass": True,
        "timestamp": "2030-01-01T00:00:00",
    }
    frame = pd.DataFrame(
        [
            make_row(
                **base, precision=p, latency_ms_p99=ms, throughput_items_per_s=1e3 / ms, accuracy=a
            )  # fmt: skip
            for p, ms, a in (("fp32", 3.0, source), ("int8-dynamic", 1.0, worse))
        ]
    )
    result = recommend(frame, Constraints(max_accuracy_drop=1.0))
    assert result.best is not None and result.best["precision"] == "fp32"
    assert "accuracy drop 8.00 points" in " ".join(result.rejected["why"])


def test_the_digest_covers_the_modules_beside_the_factory(tmp_path: Path) -> None:
    """Editing a helper module the factory imports from its folder re-exports the model;
    a data file beside it does not."""
    (tmp_path / "blocks.py").write_text("WIDTH = 8\n")
    (tmp_path / "nets.py").write_text("from blocks import WIDTH\n\ndef make():\n    return WIDTH\n")
    (tmp_path / "notes.txt").write_text("a")
    source = parse_source(str(tmp_path / "nets.py") + ":make")
    before = source.digest()
    (tmp_path / "notes.txt").write_text("b")
    assert source.digest() == before
    (tmp_path / "blocks.py").write_text("WIDTH = 16\n")
    assert source.digest() != before
