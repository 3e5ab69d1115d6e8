"""A recommendation for every task and profile (issue 25): each task's ci-profile rows go
through `recommend`, the run report's what-to-ship table and the index headline. Whenever
a configuration qualifies (ok, timed, parity passed or the source model itself) the answer
names one, ranked by the percentile the profile could measure; otherwise it says why.

Fast: the real ci rows stored under tests/data/ci_rows/ (written by
`python -m tests.support.store_ci_rows TASK` on the 2-core dev host: `run_stored` of the
task's ci sweep, raw latencies left out). Slow: a registered task without stored rows has
its ci sweep measured afresh (minutes per task on 2 cores; the notebooks run every task's
ci sweep again, so stored rows keep `make test` from paying for each sweep twice)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from workbench.analysis.recommend import Constraints, per_batch_and_device, recommend
from workbench.formats import SOURCE_FRAMEWORK_OF_NATIVE
from workbench.registry import TASKS
from workbench.report.run_headline import headline
from workbench.results import RESULT_FIELDS
from workbench.sweep import from_profile, run_stored

STORED = Path(__file__).parent / "data" / "ci_rows"


def _stored(task: str) -> pd.DataFrame:
    rows = [json.loads(line) for line in (STORED / f"{task}.jsonl").read_text().splitlines()]
    return pd.DataFrame.from_records(rows, columns=RESULT_FIELDS)


def _qualifies(frame: pd.DataFrame) -> pd.Series:
    """Rows a reader would accept: ok, timed, and parity passed (or the source model)."""
    native = frame["format"].isin(list(SOURCE_FRAMEWORK_OF_NATIVE))
    parity = frame["parity_pass"].map(lambda v: v is True or v == 1.0)
    return (frame["status"] == "ok") & frame["latency_ms_p50"].notna() & (native | parity)


def check_every_answer(frame: pd.DataFrame) -> None:
    qualifies = _qualifies(frame)
    smallest = int(frame.loc[frame["status"] == "ok", "batch_size"].min())
    rec = recommend(frame, Constraints(batch_size=smallest))
    at_smallest = qualifies & (frame["batch_size"] == smallest)
    if at_smallest.any():
        assert rec.best is not None, rec.summary()
        assert rec.summary().startswith("Ship ") and rec.latency_stat in rec.summary()
    else:
        assert "No configuration meets" in rec.summary() and "rows)" in rec.summary()
    table = per_batch_and_device(frame)
    for row in table.to_dict(orient="records"):
        mine = (frame["model"] == row["model"]) & (frame["batch_size"] == row["batch"])
        if (qualifies & mine).any():
            assert not row["recommended"].startswith("none"), row
            assert row["latency"] in ("p99", "p95", "p90", "p50")
        else:
            assert (
                row["recommended"].startswith("none qualifies: ") and "rows)" in row["recommended"]
            )
    line = headline(frame, {"run_id": "r"})["recommended"]
    assert not line.startswith("none") if qualifies.any() else line.startswith("none: ")


@pytest.mark.parametrize("task", sorted(p.stem for p in STORED.glob("*.jsonl")))
def test_stored_ci_rows_get_an_answer(task: str) -> None:
    frame = _stored(task)
    assert (frame["task"] == task).all() and len(frame) >= 2
    check_every_answer(frame)


def test_the_ci_profile_ranks_by_what_it_measured() -> None:
    """The tabular ci rows: the slowest configurations made fewer than 100 calls, so no p99;
    recommend ranks by the highest percentile they all have, and names it."""
    frame = _stored("tabular")
    assert frame["latency_ms_p99"].isna().any()
    batch = int(frame.loc[frame["latency_ms_p99"].isna(), "batch_size"].iloc[0])
    rec = recommend(frame, Constraints(batch_size=batch))
    assert rec.best is not None and rec.latency_stat in ("p95", "p90", "p50")
    assert f"ranked by {rec.latency_stat} latency" in " ".join(rec.notes)
    assert rec.margin.startswith(f"{rec.latency_stat} ")
    # a p99 budget is never judged on a lower percentile
    strict = recommend(frame, Constraints(batch_size=batch, p99_ms=1e6))
    assert strict.latency_stat == "p99"
    assert "no p99 measured" in " ".join(strict.rejected["why"])


UNSTORED = sorted(set(TASKS.names()) - {p.stem for p in STORED.glob("*.jsonl")})


@pytest.mark.slow
@pytest.mark.parametrize("task", UNSTORED)
def test_every_task_ci_sweep_gets_an_answer(task: str, workspace: Path) -> None:
    store = run_stored(from_profile(task, "ci"), command="test ci recommend")
    check_every_answer(pd.DataFrame.from_records(store.rows(), columns=RESULT_FIELDS))
