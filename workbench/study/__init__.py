"""The notebook layer: what the notebooks call, so they stay thin and their logic is tested.

- `sweeps`: a sweep from a profile's presets and the notebook's parameters, run into
  the result store;
- `headlines`: captions (host and date) and the headline numbers each notebook records;
- `claims`: the source guide's claims as data, and their verdicts;
- `demos`: real-photo predictions and detections drawn from exported artifacts;
- `notebook_params`: typed notebook parameters, checked before any work starts;
- `notebooks`: the papermill runner, HTML conversion and output stripping;
- `sections`: the sections every task notebook shares (run the sweep, what to ship,
  speedups, end to end, headline), one call each;
- `task_template`: the task notebook template, filled for a task and checked against
  each task notebook;
- `fleet`: the same sweep over a Dask cluster's hosts, and the hosts side by side.
- `ctr_study`: what the `ctr` notebook shows beyond the generic task sections;
- `scenarios`: the serving study (LoadGen scenarios and peak searches, their figures).

The analyses of result rows it re-exports (tidy tables, `recommend`) live in
`workbench.analysis`, below both this layer and the HTML report.

A notebook imports this package as `from workbench import study` and calls the
functions re-exported below.
"""

from workbench.analysis.recommend import Constraints, per_batch_and_device, recommend
from workbench.analysis.tables import (
    crossover,
    end_to_end,
    export_matrix,
    failures,
    headline_numbers,
    label,
    ok_rows,
    pareto,
    quality_column,
    speedup_over_fp32,
)
from workbench.study.fleet import cross_host, run_on_cluster
from workbench.study.headlines import (
    caption,
    headlines_table,
    host_text,
    read_headlines,
    record_headline,
    reports_dir,
)
from workbench.study.sections import (
    display_options,
    record_task_headline,
    run_task,
    show_end_to_end,
    show_speedups,
    table,
    what_to_ship,
)
from workbench.study.sweeps import (
    cpu_fast_sweep,
    cpu_gpu_sweep,
    describe,
    quantization_sweep,
    run,
    stop_rule,
)
from workbench.sweep import from_profile as sweep_for  # each empty argument: the preset

__all__ = [
    "Constraints",
    "caption",
    "cpu_fast_sweep",
    "cpu_gpu_sweep",
    "cross_host",
    "crossover",
    "describe",
    "display_options",
    "end_to_end",
    "export_matrix",
    "failures",
    "headline_numbers",
    "headlines_table",
    "host_text",
    "label",
    "ok_rows",
    "pareto",
    "per_batch_and_device",
    "quality_column",
    "quantization_sweep",
    "read_headlines",
    "record_headline",
    "recommend",
    "record_task_headline",
    "reports_dir",
    "run",
    "run_on_cluster",
    "run_task",
    "show_end_to_end",
    "show_speedups",
    "speedup_over_fp32",
    "stop_rule",
    "sweep_for",
    "table",
    "what_to_ship",
]
