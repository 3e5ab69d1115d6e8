"""Cache correctness (issue 15): the artifact key covers the code and libraries that
shape the file and is the same in every process and clone; verdicts follow today's
thresholds; a corrupted artifact is re-exported, never measured; `workbench cache
ls|verify|gc` list, check and prune."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import exporters.base as base
from exporters.base import ArtifactRequest, export, find_pass, sha256_of
from exporters.cache_key import module_closure
from workbench import parity_thresholds
from workbench.harness.runner import BenchConfig
from workbench.harness.timing import StopRule
from workbench.registry import get_task
from workbench.results import RunStore
from workbench.sweep import run_worker

REPO = Path(__file__).resolve().parents[1]
REQUEST = ArtifactRequest("tabular", "linear", "torch", "onnx")
KEY_SCRIPT = (
    "from exporters.base import ArtifactRequest, find_pass; from workbench.registry import "
    "get_task; r = ArtifactRequest('tabular', 'linear', 'torch', 'onnx'); "
    "print(r.key(find_pass('torch', 'onnx', 'fp32'), get_task('tabular')))"
)


def _key() -> str:
    return REQUEST.key(find_pass("torch", "onnx", "fp32"), get_task("tabular"))


def _key_in(root: Path, cwd: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-c", KEY_SCRIPT],
        cwd=cwd,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_key_is_stable_across_processes_and_clones_and_follows_the_code(tmp_path):
    clone = tmp_path / "clone"
    for package in ("workbench", "exporters"):
        shutil.copytree(
            REPO / package, clone / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    here = _key()
    assert _key_in(clone, tmp_path) == here  # another process, another path, another cwd
    # Editing a module the task imports (not the task's own file) changes the key.
    assert "workbench.signature" in module_closure(["workbench.tasks.tabular"])
    with (clone / "workbench" / "signature.py").open("a") as fh:
        fh.write("\n# an edit\n")
    assert _key_in(clone, tmp_path) != here


def test_key_covers_model_code_and_libraries_but_not_thresholds(monkeypatch):
    closure = module_closure(["workbench.tasks.object_detection"])
    assert {"workbench.models.yolo_torch", "workbench.models.yolo_keras"} <= set(closure)
    assert "workbench.parity" in closure  # measuring code: part of the key
    assert "workbench.parity_thresholds" not in module_closure(["exporters.worker"])
    before = _key()
    versions = dict(base.library_versions())
    monkeypatch.setattr(base, "library_versions", lambda: {**versions, "torch": "0.0.1"})
    assert _key() != before


@pytest.mark.parametrize("dist", ["openvino", "nncf", "onnxruntime-gpu"])
def test_key_covers_openvino_nncf_and_ort_gpu(dist, monkeypatch):
    # An OpenVINO or NNCF upgrade re-converts the IR / re-quantizes the INT8 IR; the GPU
    # wheel of ORT (the venv's, unlike the CPU `onnxruntime`) runs ORT quantization/parity.
    try:
        installed = metadata.version(dist)
    except metadata.PackageNotFoundError:
        installed = None
    versions = dict(base.library_versions())
    assert versions[dist] == installed
    before = _key()
    monkeypatch.setattr(base, "library_versions", lambda: {**versions, dist: "0.0.1"})
    assert _key() != before


@pytest.fixture(scope="module")
def exported(module_workspace: Path) -> dict:
    manifest = export(REQUEST)
    assert manifest["status"] == "ok", manifest.get("error")
    assert manifest["peak_rss_bytes"] > 10 * 2**20  # the export's own peak, recorded
    return manifest


def test_verdict_is_recomputed_from_stored_numbers(exported, monkeypatch):
    assert export(REQUEST)["parity_pass"] is True
    monkeypatch.setitem(parity_thresholds.MIN_AGREEMENT, "fp32", 1.01)  # unreachable
    again = export(REQUEST)
    assert again["cache_hit"] is True and again["parity_pass"] is False


@pytest.mark.parametrize("damage", ["flip", "truncate", "no-manifest"])
def test_corrupt_artifact_is_found_and_exported_again(exported, damage, capsys):
    from workbench.cli import main

    path = Path(exported["path"])
    manifest_file = path.parent / "manifest.json"
    original, original_manifest = path.read_bytes(), manifest_file.read_bytes()
    if damage == "flip":
        data = bytearray(original)
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(original[:-100])
    else:
        manifest_file.unlink()
    assert base.cached_manifest(path.parent) is None  # never served from the cache
    assert main(["cache", "verify", "--output", "json"]) == 1
    states = [json.loads(line)["state"] for line in capsys.readouterr().out.splitlines()]
    assert states == ["corrupt" if damage != "no-manifest" else "no-manifest"]
    if damage == "flip":  # one real re-export (~10 s): the others restore the files
        fresh = export(REQUEST)
        assert fresh["status"] == "ok" and fresh["cache_hit"] is False
        assert sha256_of(path) == fresh["sha256"]
    else:
        path.write_bytes(original)
        manifest_file.write_bytes(original_manifest)
    assert main(["cache", "verify", "--output", "json"]) == 0


def test_a_changed_artifact_is_never_measured(exported, tmp_path):
    store = RunStore.create({"test": "changed artifact"}, root=tmp_path / "runs")
    config = BenchConfig(
        runtime="onnxruntime",
        format="onnx",
        path=exported["path"],
        batch_sizes=[1, 2],
        threads=1,
        rule=StopRule(warmup_iters=1, min_iters=5, min_time_s=0.0, max_time_s=2),
        labels={"artifact_sha256": "0" * 64},
    )
    run_worker(store, config, {})
    rows = store.rows()
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert all("changed on disk since its export" in r["error"] for r in rows)


def test_cache_ls_and_gc(exported, capsys, monkeypatch):
    from workbench.cli import main

    root = Path(exported["path"]).parents[1]
    (root / ("0" * 20)).mkdir()  # an export killed before its manifest
    assert main(["cache", "ls", "--output", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["state"] for r in rows) == ["no-manifest", "ok"]
    # Today's libraries differ from the ones that made the file: the entry is stale.
    versions = dict(base.library_versions())
    monkeypatch.setattr(base, "library_versions", lambda: {**versions, "onnx": "0.0.1"})
    assert main(["cache", "gc", "--dry-run", "--output", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["state"] for r in rows) == ["no-manifest", "stale"]
    assert (root / ("0" * 20)).exists()
    monkeypatch.undo()
    assert main(["cache", "gc", "--output", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["state"] for r in rows] == ["no-manifest"]
    assert not (root / ("0" * 20)).exists() and Path(exported["path"]).exists()
