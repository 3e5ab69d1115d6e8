"""Tests for the result store: schema, roundtrip, durability under SIGKILL, export."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest

from workbench import results
from workbench.errors import UserError
from workbench.results import (
    RESULT_FIELDS,
    RunStore,
    export,
    load,
    load_manifests,
    make_row,
)

REPO = Path(__file__).resolve().parents[1]


def _row(i: int, n_lat: int = 5) -> dict:
    return make_row(
        status="ok",
        task="tabular",
        model="mlp",
        source_framework="torch",
        format="onnx",
        precision="fp32",
        runtime="onnxruntime",
        device="cpu",
        scenario="single_stream",
        batch_size=i + 1,
        input_shape=f"{i + 1}x10",
        latency_ms_p50=0.5 + i,
        stable=True,
        latencies_ms=[0.1 * k + i for k in range(n_lat)],
    )


def test_make_row_fills_all_fields():
    row = make_row(task="tabular")
    assert list(row) == RESULT_FIELDS
    assert row["task"] == "tabular" and row["latency_ms_p99"] is None


def test_make_row_rejects_unknown_fields():
    with pytest.raises(ValueError, match="bogus_field"):
        make_row(task="tabular", bogus_field=1)


def test_make_row_rejects_bad_status():
    with pytest.raises(ValueError, match="status"):
        make_row(status="great")


def test_run_ids_sort_by_creation_time(tmp_path):
    ids = [RunStore.create({"n": i}, root=tmp_path).run_id for i in range(3)]
    assert ids == sorted(ids)


def test_append_load_roundtrip(tmp_path):
    store = RunStore.create({"task": "tabular"}, root=tmp_path)
    written = [store.append(_row(i)) for i in range(3)]
    store.finish("ok")
    df = load(tmp_path)
    assert list(df.columns) == RESULT_FIELDS
    assert len(df) == 3
    assert set(df["run_id"]) == {store.run_id}
    assert list(df["row_id"]) == [w["row_id"] for w in written]
    assert df["row_id"].is_unique
    assert list(df["batch_size"]) == [1, 2, 3]
    assert list(df.loc[2, "latencies_ms"]) == pytest.approx(_row(2)["latencies_ms"])
    assert df["timestamp"].notna().all()
    assert (df["fingerprint_id"] == store.manifest["fingerprint_id"]).all()


def test_load_selects_runs(tmp_path):
    a = RunStore.create({}, root=tmp_path)
    b = RunStore.create({}, root=tmp_path)
    a.append(_row(0))
    b.append(_row(1))
    b.append(_row(2))
    assert len(load(tmp_path, run_ids=[b.run_id])) == 2
    assert len(load(tmp_path)) == 3
    with pytest.raises(UserError):
        load(tmp_path, run_ids=["nope"])


def test_load_empty_has_columns(tmp_path):
    df = load(tmp_path)
    assert df.empty and list(df.columns) == RESULT_FIELDS


def test_manifest_has_fingerprint_and_finish(tmp_path):
    store = RunStore.create({"batch_sizes": [1, 8]}, root=tmp_path)
    store.append(_row(0))
    store.finish("ok")
    manifest = json.loads((store.path / "manifest.json").read_text())
    assert manifest["run_id"] == store.run_id
    assert manifest["config"] == {"batch_sizes": [1, 8]}
    assert "cpu" in manifest["fingerprint"] and "libraries" in manifest["fingerprint"]
    assert len(manifest["fingerprint_id"]) >= 8
    assert manifest["status"] == "ok" and manifest["row_count"] == 1
    assert manifest["finished"] is not None
    assert [m["run_id"] for m in load_manifests(tmp_path)] == [store.run_id]
    assert not list(store.path.glob("*.tmp"))


def test_dir_without_manifest_is_skipped(tmp_path):
    store = RunStore.create({}, root=tmp_path)
    store.append(_row(0))
    (tmp_path / "stray").mkdir()
    with pytest.warns(UserWarning, match="manifest"):
        df = load(tmp_path)
    assert len(df) == 1


def test_torn_last_line_is_skipped_with_warning(tmp_path):
    store = RunStore.create({}, root=tmp_path)
    store.append(_row(0))
    store.append(_row(1))
    full = json.dumps(make_row(task="tabular", latencies_ms=[1.0] * 50))
    with open(store.rows_path, "a") as fh:
        fh.write(full[: len(full) // 2])  # a write cut short by a crash
    with pytest.warns(UserWarning, match="torn"):
        df = load(tmp_path)
    assert len(df) == 2


N_LAT = 20_000  # long lines, so a kill is likely to land mid-write

WRITER = textwrap.dedent(
    f"""
    import sys
    from workbench.results import RunStore, make_row
    store = RunStore.create({{"crash": True}}, root=sys.argv[1])
    i = 0
    while True:
        lat = [float(i) + k * 1e-3 for k in range({N_LAT})]
        store.append(make_row(status="ok", task="tabular", batch_size=i, latencies_ms=lat))
        i += 1
    """
)


def _complete_lines(path: Path) -> int:
    """Lines that end in a newline and parse: what a crash must never lose."""
    data = path.read_bytes()
    body = data[: data.rfind(b"\n") + 1]
    return sum(1 for line in body.split(b"\n") if line and _parses(line))


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def test_sigkill_mid_run_keeps_every_finished_row(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        rows_file = None
        while time.monotonic() < deadline:
            found = list(tmp_path.glob("*/rows.jsonl"))
            if found and found[0].read_bytes().count(b"\n") >= 5:
                rows_file = found[0]
                break
            assert proc.poll() is None, "writer exited early"
            time.sleep(0.02)
        assert rows_file is not None, "writer produced no rows in time"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a torn last line may or may not exist
        df = load(tmp_path)
    assert len(df) >= 5
    assert len(df) == _complete_lines(rows_file)
    assert list(df.columns) == RESULT_FIELDS
    for _, row in df.iterrows():
        assert row["status"] == "ok" and row["task"] == "tabular"
        assert isinstance(row["row_id"], str) and row["fingerprint_id"]
        assert len(row["latencies_ms"]) == N_LAT
        assert row["latencies_ms"][-1] == pytest.approx(row["batch_size"] + (N_LAT - 1) * 1e-3)
    assert list(df["batch_size"]) == list(range(len(df)))


@pytest.fixture
def frame(tmp_path) -> pd.DataFrame:
    store = RunStore.create({}, root=tmp_path / "runs")
    for i in range(3):
        store.append(_row(i))
    store.append(make_row(status="unavailable", error="no GPU", device="cuda", task="tabular"))
    return load(tmp_path / "runs")


def _same_cell(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return a == b


def test_export_csv_roundtrip(frame, tmp_path):
    path = export(frame, tmp_path / "out" / "rows.csv")
    back = pd.read_csv(path)
    assert list(back.columns) == RESULT_FIELDS
    assert len(back) == len(frame)
    assert list(back["row_id"]) == list(frame["row_id"])
    assert list(back["batch_size"].iloc[:3]) == [1, 2, 3]
    assert back["latency_ms_p50"].iloc[:3].tolist() == pytest.approx([0.5, 1.5, 2.5])
    for original, text in zip(frame["latencies_ms"], back["latencies_ms"], strict=True):
        if original is None:
            assert pd.isna(text)
        else:
            assert json.loads(text) == pytest.approx(list(original))
    assert back.loc[3, "error"] == "no GPU"


def test_export_parquet_roundtrip(frame, tmp_path):
    path = export(frame, tmp_path / "rows.parquet")
    back = pd.read_parquet(path)
    assert list(back.columns) == RESULT_FIELDS
    assert len(back) == len(frame)
    for col in ("row_id", "status", "task", "device", "input_shape", "error"):
        assert all(_same_cell(a, b) for a, b in zip(frame[col], back[col], strict=True)), col
    assert back["latency_ms_p50"].iloc[:3].tolist() == pytest.approx([0.5, 1.5, 2.5])
    for original, got in zip(frame["latencies_ms"], back["latencies_ms"], strict=True):
        if original is None:
            assert got is None
        else:
            assert list(got) == pytest.approx(list(original))


def test_export_rejects_other_suffix(frame, tmp_path):
    with pytest.raises(UserError, match="csv"):
        export(frame, tmp_path / "rows.xlsx")


def test_default_root_is_workspace(workspace):
    store = RunStore.create({})
    assert store.path.parent == workspace / "runs"
    store.append(_row(0))
    assert len(results.load()) == 1
