# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python (workbench)
#     language: python
#     name: workbench
# ---

# %% [markdown]
# # Quickstart: the environment, one benchmark, the results DataFrame
#
# The workbench exports a model, checks the artifact against its source, and measures every
# call's latency. This notebook shows the three steps on the smallest model: where it runs,
# one measurement, and how to read the result rows.

# %%
# %matplotlib inline
from workbench.study import notebook_params

notebook_params.begin(globals())  # names defined before the parameters cell

# %% tags=["parameters"]
profile: str = "ci"  # "ci": tiny, a minute or two on 2 cores; "quick": short; "full": the study
task: str = "tabular"  # a registered task (workbench.registry.TASKS.names())
model: str = "mlp"  # one of the task's models
framework: str = "torch"  # source framework: "torch" or "keras"
format: str = "onnx"  # onnx, torchscript, pt2, tflite, savedmodel, eager, keras
batch_sizes: list[int] = []  # items per call; empty: ci 1, 8, 64; full 1..256

# %%
# Fails fast, naming the parameter and its type, on an unknown name or a wrong type.
P = notebook_params.check(globals())

import pandas as pd

from workbench import study
from workbench.report import plots

pd.set_option("display.max_columns", 40)
pd.set_option("display.width", 200)
pd.set_option("display.max_colwidth", 80)
P

# %% [markdown]
# ## 1. Where it runs
# Every number below belongs to this host: CPU flags, cores, GPU, library versions and the code's git commit.

# %%
from workbench.env import fingerprint, format_fingerprint

print(format_fingerprint(fingerprint()))

# %% [markdown]
# ## 2. Benchmark one model
# Export (cached by content hash), parity check, then the timed loop in a worker process per configuration.

# %%
sweep = study.sweep_for(
    P.task,
    P.profile,
    models=[P.model],
    frameworks=[P.framework],
    formats=[P.format],
    precisions=["fp32"],
    batch_sizes=P.batch_sizes,
)
print(study.describe(sweep))
frame = study.run(sweep)
caption = study.caption(frame)
study.table(frame)

# %% [markdown]
# ## 3. Read the results
# Rows are stored under `.workbench/runs/<run_id>/` and load as one DataFrame; `latencies_ms` keeps every timed call.

# %%
from workbench import results

df = results.load(run_ids=frame["run_id"].unique())
df[
    [
        "format",
        "precision",
        "runtime",
        "batch_size",
        "latency_ms_p50",
        "latency_ms_p99",
        "throughput_items_per_s",
        "n_iterations",
        "stable",
    ]
]

# %%
# NBVAL_CHECK_OUTPUT - the shape of the result rows (deterministic)
print(
    f"{df.shape[1]} fields per row; statuses {sorted(df['status'].unique())}; "
    f"batch sizes {sorted(int(b) for b in df['batch_size'])}"
)

# %%
plots.latency_cdf(frame, caption)

# %%
plots.throughput_vs_batch(frame, caption)

# %%
headline = study.headline_numbers(frame)
study.record_headline("00_quickstart", headline, P.profile)
for key, value in headline.items():
    print(f"{key}: {value}")

# %% [markdown]
# ## Reading
# The table gives the p50 and p99 latency per call and the throughput at each batch size; the
# CDF shows the whole distribution of calls, so a long tail (p99 far from p50) is visible at a
# glance; `stable` is false when the p50's confidence interval is wide (rerun on a quieter
# host, or with the `full` profile's longer measurement). Throughput grows with the batch size
# until the model saturates the cores.
