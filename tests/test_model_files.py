"""Model files like the ones real users have: a state batched on axis 1, a scalar integer
input, token ids that index a table, unnamed dynamic axes, TorchScript under odd
suffixes, a runtime that crashes on the file. Every model is built here."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.support.cli import FAST, run_cli
from tests.support.model_files import stateful_onnx, unnamed_dims_onnx
from workbench.errors import UserError
from workbench.formats import detect_format
from workbench.input_options import parse_batch_axes, parse_int_ranges, parse_shapes
from workbench.model_inputs import (
    InputPlan,
    batch_axes,
    declared_int_ranges,
    describe,
    make_feeds,
    resolve_shapes,
)
from workbench.registry import RUNTIMES
from workbench.signature import FixedBatchError, TensorSpec

STATEFUL = [
    TensorSpec("x", "float32", ("batch", 16)),
    TensorSpec("state", "float32", (2, "batch", 8)),
    TensorSpec("sr", "int64", ()),
    TensorSpec("ids", "int64", ("batch", "seq")),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("model-files")
    return {
        "stateful": stateful_onnx(root / "stateful.onnx"),
        "unnamed": unnamed_dims_onnx(root / "unnamed.onnx"),
        "root": root,
    }


def _rows(proc) -> list[dict]:
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


# ------------------------------------------------------------------- parsing and plans


def test_option_parsers_read_shapes_ranges_and_axes():
    shapes, dtypes = parse_shapes(["state=2xBx128", "ids=Bx512:int32", "sr=scalar", "img=1,3,4"])
    assert shapes == {"state": [2, "B", 128], "ids": ["B", 512], "sr": [], "img": [1, 3, 4]}
    assert dtypes == {"ids": "int32"}
    assert parse_int_ranges(["ids=0:30522", "t=-5:5"]) == {"ids": [0, 30522], "t": [-5, 5]}
    assert parse_batch_axes(["state=1", "sr=none"]) == {"state": 1, "sr": None}
    for bad in (["x"], ["x=0x3"], ["x=BxB"], ["x=1x?"], ["x=Bx3:complex64"], ["=1"]):
        with pytest.raises(UserError):
            parse_shapes(bad)
    for bad in (["x=5:5"], ["x=9:1"], ["x=a:b"], ["x=1"], ["x=0:99999999999999999999"]):
        with pytest.raises(UserError):
            parse_int_ranges(bad)


def test_batch_axis_comes_from_the_symbol_the_inputs_share():
    axes = batch_axes(STATEFUL, InputPlan())
    assert axes == {"x": 0, "state": 1, "sr": None, "ids": 0}
    shapes = resolve_shapes(STATEFUL, 4, {"seq": 7}, InputPlan())
    assert shapes == {"x": (4, 16), "state": (2, 4, 8), "sr": (), "ids": (4, 7)}
    # explicit axes and a --shape B win over the detection
    plan = InputPlan(batch_axes={"state": None}, shapes={"x": [3, "B"]})
    assert batch_axes(STATEFUL, plan)["state"] is None
    assert resolve_shapes(STATEFUL, 5, {"seq": 2}, plan)["x"] == (3, 5)
    # a fully fixed model keeps its fixed batch: another batch size fails the row
    fixed = [TensorSpec("x", "float32", (1, 3))]
    with pytest.raises(FixedBatchError):
        resolve_shapes(fixed, 4, {}, InputPlan())


def test_feeds_respect_ranges_and_cut_or_tile_real_data(tmp_path):
    plan = InputPlan(declared_ranges={"ids": [0, 50, "indexes a 50-row table"]})
    pool = make_feeds(STATEFUL, 4, {"seq": 9}, plan, pool_size=3)
    for feed in pool:
        assert feed["ids"].dtype == np.int64 and feed["ids"].max() < 50
        assert feed["state"].shape == (2, 4, 8) and feed["sr"].shape == ()
    pool = make_feeds(STATEFUL, 4, {"seq": 9}, InputPlan(int_ranges={"sr": [16000, 16001]}))
    assert all(int(f["sr"]) == 16000 for f in pool)
    # 3 real states at batch 4: tiled round along the state's batch axis (1)
    state = np.arange(2 * 3 * 8, dtype=np.float64).reshape(2, 3, 8)
    np.save(tmp_path / "state.npy", state)
    plan = InputPlan(data={"state": str(tmp_path / "state.npy")})
    first, second = make_feeds(STATEFUL, 4, {"seq": 2}, plan, pool_size=2)
    assert first["state"].dtype == np.float32
    np.testing.assert_array_equal(first["state"], state[:, [0, 1, 2, 0]])
    np.testing.assert_array_equal(second["state"], state[:, [1, 2, 0, 1]])
    # and cut when there are more items than the batch
    np.testing.assert_array_equal(
        make_feeds(STATEFUL, 1, {"seq": 2}, plan)[0]["state"], state[:, :1]
    )
    note = describe(STATEFUL, plan)
    assert "state: user data, batch axis 1" in note and "sr: ints [0, 100) by default" in note


def test_bad_plans_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no input 'nope'"):
        make_feeds(STATEFUL, 1, {"seq": 2}, InputPlan(int_ranges={"nope": [0, 1]}))
    with pytest.raises(UserError, match="not an integer"):
        make_feeds(STATEFUL, 1, {"seq": 2}, InputPlan(int_ranges={"x": [0, 1]}))
    with pytest.raises(UserError, match="does not fit"):
        spec = [TensorSpec("u", "uint8", ("batch",))]
        make_feeds(spec, 1, {}, InputPlan(int_ranges={"u": [0, 300]}))
    with pytest.raises(UserError, match="GiB"):
        make_feeds(STATEFUL, 1, {"seq": 2}, InputPlan(shapes={"x": ["B", 1 << 30]}))
    np.save(tmp_path / "words.npy", np.full((2, 16), "a"))
    with pytest.raises(UserError, match="is <U1 but the model takes float32"):
        make_feeds(STATEFUL, 1, {"seq": 2}, InputPlan(data={"x": str(tmp_path / "words.npy")}))


def test_onnx_gather_on_a_table_declares_the_id_range(files):
    ranges, none_declared = declared_int_ranges(files["stateful"], "onnx")
    assert ranges == {"ids": [0, 50, "indexes a 50-row table (table)"]} and not none_declared
    assert declared_int_ranges(files["stateful"], "tflite") == ({}, True)


# ------------------------------------------------------------------ formats by content


def test_formats_are_recognised_by_content_not_suffix(files, tmp_path):
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(files["stateful"].read_bytes())
    assert detect_format(renamed) == "onnx"
    tflite = tmp_path / "model.dat"
    tflite.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    assert detect_format(tflite) == "tflite"
    for name, entries, fmt in [
        ("m.jit", ["m/data.pkl", "m/code/__torch__.py", "m/version"], "torchscript"),
        ("m.zip", ["m/models/model.json", "m/archive_format"], "pt2"),
    ]:
        with zipfile.ZipFile(tmp_path / name, "w") as archive:
            for entry in entries:
                archive.writestr(entry, "x")
        assert detect_format(tmp_path / name) == fmt
    with zipfile.ZipFile(tmp_path / "weights.pt", "w") as archive:
        archive.writestr("weights/data.pkl", "x")
    with pytest.raises(UserError, match="torch.save checkpoint"):
        detect_format(tmp_path / "weights.pt")
    # a central directory claiming zip version 8.4 (zipfile: NotImplementedError; fuzzing)
    data = bytearray((tmp_path / "m.jit").read_bytes())
    central = data.index(b"PK\x01\x02")
    data[central + 6] = 84
    (tmp_path / "v84.jit").write_bytes(bytes(data))
    with pytest.raises(UserError, match="damaged zip archive"):
        detect_format(tmp_path / "v84.jit")
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"\x08\x01\x12\x00")
    assert detect_format(saved) == "savedmodel"
    (saved / "saved_model.pb").write_bytes(b"garbage")
    with pytest.raises(UserError, match="not a SavedModel protobuf"):
        detect_format(saved)


# ---------------------------------------------------------------------- through the CLI


def test_stateful_model_with_real_data_and_ranges(files, tmp_path):
    state = np.ones((2, 3, 8), dtype=np.float32)
    np.save(tmp_path / "state.npy", state)
    np.savez(tmp_path / "feeds.npz", x=np.zeros((5, 16), dtype=np.float32))
    proc = run_cli(
        ["bench", str(files["stateful"]), *FAST, "--batch", "1,3", "--dim", "seq=6",
         "--input", f"state={tmp_path / 'state.npy'}", "--inputs", str(tmp_path / "feeds.npz"),
         "--int-range", "sr=16000:16001", "--output", "json"],
        tmp_path,
    )  # fmt: skip
    rows = _rows(proc)
    assert [(r["batch_size"], r["status"]) for r in rows] == [(1, "ok"), (3, "ok")]
    note = rows[1]["input_note"]
    assert "state: user data, batch axis 1" in note and "x: user data, batch axis 0" in note
    assert "sr: ints [16000, 16001) from --int-range, not batched" in note
    assert "ids: ints [0, 50): the model indexes a 50-row table" in note
    assert rows[1]["input_shape"] == "3x16"


def test_unnamed_dims_are_set_by_position(files, tmp_path):
    proc = run_cli(["bench", str(files["unnamed"]), *FAST, "--batch", "2"], tmp_path)
    assert proc.returncode == 2 and "--shape image=Bx3xNxN" in proc.stderr
    proc = run_cli(
        ["bench", str(files["unnamed"]), *FAST, "--batch", "2",
         "--shape", "image=Bx3x8x12", "--output", "json"],
        tmp_path,
    )  # fmt: skip
    (row,) = _rows(proc)
    assert row["status"] == "ok" and row["input_shape"] == "2x3x8x12"


def test_torchscript_under_odd_suffixes(tmp_path):
    pytest.importorskip("torch")
    script = f"""
import torch
class M(torch.nn.Module):
    def forward(self, x, n):
        return x * n
m = torch.jit.trace(M(), (torch.ones(2, 4), torch.tensor(3)))
for suffix in ("jit", "pth", "torchscript"):
    torch.jit.save(m, {str(tmp_path)!r} + "/model." + suffix)
"""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    for suffix in ("jit", "pth", "torchscript"):
        assert detect_format(tmp_path / f"model.{suffix}") == "torchscript"
    proc = run_cli(
        ["bench", str(tmp_path / "model.jit"), *FAST, "--batch", "1,2", "--runtime", "torch",
         "--shape", "x=Bx4", "--shape", "n=scalar:int64", "--output", "json"],
        tmp_path,
    )  # fmt: skip
    rows = _rows(proc)
    assert [(r["format"], r["status"], r["input_shape"]) for r in rows] == [
        ("torchscript", "ok", "1x4"),
        ("torchscript", "ok", "2x4"),
    ]
    # the signature given by --shape is part of the run: --rerun measures the same
    again = _rows(run_cli(["bench", "--rerun", rows[0]["run_id"], "--output", "json"], tmp_path))
    assert [(r["status"], r["input_shape"]) for r in again] == [("ok", "1x4"), ("ok", "2x4")]


def test_a_runtime_crash_costs_its_row_not_the_cli(files, tmp_path, load_plugin):
    load_plugin("tests.support.crashing_runtime", RUNTIMES)
    dense = tmp_path / "dense.onnx"
    dense.write_bytes(files["unnamed"].read_bytes())
    proc = run_cli(
        ["bench", str(dense), *FAST, "--batch", "1,4", "--runtime", "crash",
         "--setting", "crash.crash_at_batch=4", "--output", "json"],
        tmp_path,
    )  # fmt: skip
    rows = _rows(proc)
    assert [(r["batch_size"], r["status"]) for r in rows] == [(1, "ok"), (4, "failed")]
    assert "benchmark worker died (killed by signal 6)" in rows[1]["error"]
