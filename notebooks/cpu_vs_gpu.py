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
# # CPU vs GPU: latency and throughput by batch size
#
# One artifact measured over batch sizes on the CPU and on each GPU, and the batch size from
# which the GPU's throughput overtakes the CPU's. On a host without a GPU the GPU rows are
# `unavailable` with the reason, and only the CPU side is shown.

# %%
# %matplotlib inline
from workbench.study import notebook_params

notebook_params.begin(globals())  # names defined before the parameters cell

# %% tags=["parameters"]
profile: str = "ci"  # "ci": tiny, a minute or two on 2 cores; "quick": short; "full": the study
task: str = ""  # empty: ci tabular, full image_classification
model: str = ""  # empty: ci mlp, full resnet50
format: str = ""  # empty: onnx
precision: str = ""  # empty: fp32
batch_sizes: list[int] = []  # empty: ci 1, 8, 64, 256; full 1..64
devices: list[str] = []  # empty: cpu and cuda

# %%
# Fails fast, naming the parameter and its type, on an unknown name or a wrong type.
P = notebook_params.check(globals())

import pandas as pd
from IPython.display import display

from workbench import study
from workbench.report import plots

pd.set_option("display.max_columns", 40)
pd.set_option("display.width", 200)
pd.set_option("display.max_colwidth", 80)
P

# %%
sweep = study.cpu_gpu_sweep(
    P.profile,
    task=P.task,
    model=P.model,
    fmt=P.format,
    precision=P.precision,
    batch_sizes=P.batch_sizes,
    devices=P.devices,
)
print(study.describe(sweep))
frame = study.run(sweep)
caption = study.caption(frame)
print(caption)

# %%
# NBVAL_CHECK_OUTPUT - which devices could run here (deterministic on a host)
print(study.export_matrix(frame).to_string(index=False))

# %%
crossing, reading = study.crossover(frame)
print(reading)
if not crossing.empty:
    display(crossing)

# %%
study.table(frame)

# %%
# The CPU's own fast paths beside the GPU (quick, full): OpenVINO bf16 (AMX or AVX512-BF16;
# `unavailable` with the reason on a CPU without) and NNCF INT8 of the same model.
fast_sweep = study.cpu_fast_sweep(P.profile, sweep)
if fast_sweep is None:
    print("the ci profile measures ONNX Runtime only; quick and full add OpenVINO bf16 and INT8")
else:
    print(study.describe(fast_sweep))
    fast = study.run(fast_sweep)
    display(study.table(fast))

# %%
plots.by_device(frame, caption)

# %%
plots.latency_cdf(frame, caption)

# %%
best_cpu = study.headline_numbers(frame[frame["device"] == "cpu"]).get("best throughput", "-")
headline = {"GPU vs CPU": reading, "best CPU throughput": best_cpu}
study.record_headline("cpu_vs_gpu", headline, P.profile)
for key, value in headline.items():
    print(f"{key}: {value}")

# %% [markdown]
# ## Reading
# A GPU call carries a fixed cost (launches, copies, synchronization), so at small batches the
# CPU is often faster; the GPU pays off from the batch size where its throughput line crosses
# the CPU's. Dashed lines are GPU rows. Without a GPU the sentence above says so and why.
