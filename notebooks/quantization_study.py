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
# # Quantization study: accuracy x latency x size for every precision
#
# One model exported at FP32, FP16, INT8 (dynamic) and INT8 (static, calibrated on the task's
# own generator), each checked against the source model and measured. The Pareto front marks
# the artifacts no other artifact beats on latency, size and quality at once.

# %%
# %matplotlib inline
from workbench.study import notebook_params

notebook_params.begin(globals())  # names defined before the parameters cell

# %% tags=["parameters"]
profile: str = "ci"  # "ci": tiny, a minute or two on 2 cores; "quick": short; "full": the study
task: str = ""  # empty: the profile's (tabular: a trained model, so accuracy means something)
model: str = ""  # empty: the profile's (tabular mlp)
frameworks: list[str] = []  # empty: ci torch, full torch and keras
formats: list[str] = []  # empty: ci onnx, quick + eager/openvino (bf16, NNCF INT8), full all
batch_sizes: list[int] = []  # empty: 1 and 64

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
sweep = study.quantization_sweep(
    P.profile,
    task=P.task,
    model=P.model,
    frameworks=P.frameworks,
    formats=P.formats,
    batch_sizes=P.batch_sizes,
)
print(study.describe(sweep))
frame = study.run(sweep)
caption = study.caption(frame)
print(caption)

# %%
# NBVAL_CHECK_OUTPUT - parity verdict per precision (deterministic on a host)
print(study.export_matrix(frame).to_string(index=False))

# %% [markdown]
# ## Accuracy, latency and size; the Pareto front

# %%
front = study.pareto(frame)
display(front)
plots.pareto(front, caption)

# %% [markdown]
# ## Speedup and size reduction over FP32

# %%
speedups = study.speedup_over_fp32(frame)
display(
    speedups[speedups["precision"] != "fp32"][
        [
            "model",
            "source_framework",
            "format",
            "precision",
            "batch_size",
            "latency_ms_p50",
            "speedup",
            "size_ratio",
        ]
    ]
)
plots.speedup(speedups, caption)

# %%
plots.latency_cdf(frame, caption)

# %%
on_front = front[front["on_front"]]
quant = speedups[speedups["precision"] != "fp32"]
names = [f"{r.source_framework}/{r.format}/{r.precision}" for r in on_front.itertuples()]
headline = {"on the Pareto front": ", ".join(names) or "-"}
if not quant.empty:
    fastest = quant.loc[quant["speedup"].idxmax()]
    smallest = quant.loc[quant["size_ratio"].idxmax()]
    headline["best speedup over fp32"] = (
        f"{fastest['speedup']:.2f}x: {fastest['format']}/{fastest['precision']} "
        f"at batch {int(fastest['batch_size'])}"
    )
    headline["best size reduction"] = (
        f"{smallest['size_ratio']:.2f}x: {smallest['format']}/{smallest['precision']}"
    )
study.record_headline("quantization_study", headline, P.profile)
for key, value in headline.items():
    print(f"{key}: {value}")

# %% [markdown]
# ## Reading
# Quality is the accuracy on held-out labelled data where the task has labels (tabular), else
# the agreement with the source model (`parity_metric_value`). An artifact off the front is
# beaten on all three axes by some other one; among the front, the choice is a trade-off. INT8
# shrinks files about 4x; whether it is faster depends on the runtime having integer kernels
# for the model's layers on this CPU (see `cpu_int8_support` in the artifact manifest).
# bf16 rows are the runtime's arithmetic on the FP32 file: OpenVINO's bf16 IR and the eager
# model under bf16 autocast; on a CPU without AMX-BF16 or AVX512-BF16 OpenVINO's bf16 rows are
# `unavailable` with the reason. NNCF INT8 (`openvino`/`int8-static`) uses AMX int8 where the
# CPU has it.
