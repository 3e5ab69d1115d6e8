"""`workbench recommend`: the best configuration within a budget, its margin, the
runners-up with what each gives up, rejections with reasons, and the Pareto front."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from workbench.analysis.recommend import Constraints, per_batch_and_device, recommend
from workbench.cli import main
from workbench.errors import UserError
from workbench.results import RunStore, make_row


def _row(fmt: str, precision: str, batch: int, p99: float, **fields: object) -> dict:
    base = {
        "status": "ok",
        "task": "tabular",
        "model": "mlp",
        "source_framework": "torch",
        "format": fmt,
        "precision": precision,
        "runtime": "torch" if fmt == "eager" else "onnxruntime",
        "device": "cpu",
        "threads": 2,
        "batch_size": batch,
        "latency_ms_p50": p99 * 0.8,
        "latency_ms_p99": p99,
        "throughput_items_per_s": batch * 1000 / (p99 * 0.8),
        "model_size_bytes": 4_000_000 if precision == "fp32" else 1_000_000,
        "parity_pass": None if fmt == "eager" else True,
        "accuracy": 0.90,
        "timestamp": "2030-01-01T00:00:00",
    }
    return make_row(**{**base, **fields})


ROWS = [
    _row("eager", "fp32", 1, 2.0),
    _row("onnx", "fp32", 1, 1.0),
    _row("onnx", "int8-dynamic", 1, 0.6, accuracy=0.88),
    _row("onnx", "int8-static", 1, 0.4, parity_pass=False, accuracy=0.80),
    _row("eager", "fp32", 8, 6.0),
    _row("onnx", "fp32", 8, 3.0),
    _row("onnx", "int8-dynamic", 8, 2.5, accuracy=0.88),
    _row("onnx", "fp32", 1, 9.9, status="failed", error="boom"),
]
FRAME = pd.DataFrame(ROWS)


def test_lowest_p99_with_parity_and_a_margin_to_the_budget() -> None:
    rec = recommend(FRAME, Constraints(p99_ms=1.5, batch_size=1, objective="latency"))
    assert (rec.best["format"], rec.best["precision"]) == ("onnx", "int8-dynamic")
    assert "p99 0.6 ms (60% under the 1.5 ms budget)" in rec.margin
    # static INT8 is faster but failed parity; eager misses the budget
    why = dict(
        zip(
            rec.rejected["precision"]
            + "/"
            + rec.rejected["format"]
            + "/"
            + rec.rejected["batch_size"].astype(str),
            rec.rejected["why"],
            strict=True,
        )
    )
    assert why["int8-static/onnx/1"] == "parity failed"
    assert why["fp32/eager/1"] == "p99 2 ms > 1.5 ms"
    assert list(rec.runners_up["precision"]) == ["fp32"]
    assert "p99 +67% (worse)" in rec.runners_up["gives up"].iloc[0]
    assert "size +300% (worse)" in rec.runners_up["gives up"].iloc[0]
    assert "accuracy +2.00 points" in rec.runners_up["gives up"].iloc[0]
    assert rec.summary().startswith(
        "Ship mlp torch/onnx/int8-dynamic on onnxruntime (cpu), batch 1"
    )


def test_throughput_under_a_budget_and_accuracy_drop_instead_of_parity() -> None:
    rec = recommend(FRAME, Constraints(p99_ms=5.0))  # a budget: most items/s wins
    assert (rec.best["precision"], rec.best["batch_size"]) == ("int8-dynamic", 8)
    rec = recommend(FRAME, Constraints(batch_size=1, max_accuracy_drop=15))
    assert rec.best["precision"] == "int8-static"  # parity no longer required, 10 points drop
    rec = recommend(FRAME, Constraints(batch_size=1, max_accuracy_drop=5))
    assert rec.best["precision"] == "int8-dynamic"
    assert "accuracy drop 10.00 points > 5" in set(rec.rejected["why"])


def test_size_limit_front_and_nothing_feasible() -> None:
    rec = recommend(FRAME, Constraints(batch_size=1, max_size_mb=2))
    assert rec.best["precision"] == "int8-dynamic"
    front = rec.front[rec.front["on_front"]]
    assert list(front["precision"]) == ["int8-dynamic"]
    none = recommend(FRAME, Constraints(p99_ms=0.1, device="cuda:0"))
    assert none.best is None and "no row on device cuda:0" in none.summary()


def test_per_batch_and_device_table() -> None:
    table = per_batch_and_device(FRAME)
    assert list(table["batch"]) == [1, 8] and list(table["over"]) == ["source model, fp32"] * 2
    assert table["accuracy"].tolist() == [0.88, 0.88]
    assert table["recommended"].str.contains("int8-dynamic").all()
    assert table["speedup"].tolist() == pytest.approx([2.0 / 0.6, 6.0 / 2.5])


def test_bad_constraints_are_user_errors() -> None:
    with pytest.raises(UserError, match="p99_ms"):
        Constraints(p99_ms=-1)
    with pytest.raises(UserError, match="objective"):
        Constraints(objective="cheapest")


def test_cli_on_a_stored_run(workspace: Path, capsys) -> None:
    store = RunStore.create({"task": "tabular"})
    for row in ROWS:
        store.append(row)
    store.finish("ok")
    assert main(["recommend", "--p99-ms", "1.5", "--batch", "1", "--objective", "latency"]) == 0
    out = capsys.readouterr().out
    assert "Ship mlp torch/onnx/int8-dynamic" in out and "runners-up (1)" in out
    assert "Pareto front" in out and "parity failed" in out
    assert main(["recommend", "--run", store.run_id, "--p99-ms", "0.01", "--output", "json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["best"] is None and payload["rejected"]


def test_numpy_booleans_from_a_bool_column_still_fail_parity() -> None:
    frame = pd.DataFrame(ROWS[1:4])  # no eager row: parity_pass is a pure bool column
    frame["parity_pass"] = frame["parity_pass"].astype(bool)
    rec = recommend(frame, Constraints(batch_size=1))
    assert rec.best["precision"] == "int8-dynamic"  # not the faster int8-static
    assert "parity failed" in set(rec.rejected["why"])
