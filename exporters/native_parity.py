"""Child process of the sweep for a native row that changes the model's numbers without
an artifact (the `inductor` format's torchao `int8-dynamic`): run the source model
through the torch runtime with that row's settings on the task's held-out inputs and
judge it against the source like an artifact (`exporters.worker.judge_outputs`: the
quality rule for INT8).

Reads one JSON job on stdin ({task, model, source_framework, format, precision,
settings}) and writes the parity fields as JSON on stdout, with `status`.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any

from exporters.worker import judge_outputs, reference_outputs
from workbench.devices import parse_device
from workbench.errors import UnavailableError
from workbench.formats import runtime_for
from workbench.procs import apply_memory_limit, die_with_parent
from workbench.registry import get_runtime, get_task
from workbench.runtimes.base import RuntimeOptions, run_in_batches


def native_parity(
    task_name: str, model: str, framework: str, fmt: str, precision: str, settings: dict[str, Any]
) -> dict[str, Any]:
    """Parity fields (as an artifact manifest has them) of the source model run in `fmt`
    with `settings` on the CPU, against the source itself."""
    task = get_task(task_name)
    source = task.build(framework, model)
    feed, labels = task.held_out(model, task.parity_count(model), framework)
    reference = reference_outputs(framework, source, feed)
    runtime = get_runtime(runtime_for(fmt))
    options = RuntimeOptions(
        parse_device("cpu"),
        format=fmt,
        inputs=task.input_specs(model, framework),
        settings=runtime.parse_settings(settings),
    )
    loaded = runtime.load(None, options, model=source)
    try:
        candidate = run_in_batches(loaded, feed)
    finally:
        loaded.close()
    return judge_outputs(task, model, precision, feed, labels, reference, candidate)


def main() -> int:
    die_with_parent()
    apply_memory_limit()
    job = json.loads(sys.stdin.read())
    try:
        result: dict[str, Any] = {
            "status": "ok",
            **native_parity(
                job["task"],
                job["model"],
                job["source_framework"],
                job["format"],
                job["precision"],
                job.get("settings", {}),
            ),
        }
    except UnavailableError as exc:
        result = {"status": "unavailable", "error": str(exc)}
    except Exception:  # noqa: BLE001 - report anything else as a failed check
        result = {
            "status": "failed",
            "error": traceback.format_exc(limit=2).strip().splitlines()[-1],
        }
    print(json.dumps(result, default=lambda v: v.item() if hasattr(v, "item") else str(v)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
