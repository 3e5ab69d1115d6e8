"""Write tests/data/ci_rows/<task>.jsonl: the task's real ci-profile sweep rows (raw
per-call latencies left out), which tests/test_ci_recommend.py runs through `recommend`.

Run (minutes per task on 2 cores; refresh a task's rows when its sweep changes):
    WORKBENCH_HOME=/tmp/wb-rows PYTHONPATH=. .venv/bin/python -m tests.support.store_ci_rows TASK...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from workbench.sweep import from_profile, run_stored

STORED = Path(__file__).resolve().parent.parent / "data" / "ci_rows"


def store(task: str) -> Path:
    """Measure `task`'s ci sweep into a new run and write its rows; the file's path."""
    rows = run_stored(from_profile(task, "ci"), command="store ci rows").rows()
    path = STORED / f"{task}.jsonl"
    with path.open("w") as out:
        for row in rows:
            kept = {k: v for k, v in dict(row).items() if k != "latencies_ms"}
            out.write(json.dumps(kept, default=str) + "\n")
    return path


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(store(name))
