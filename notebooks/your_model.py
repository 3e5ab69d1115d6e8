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
# # Your own model: check, export matrix with parity, latency and throughput, what to ship
#
# Give a `model.yaml` (`workbench model init`), or a source and one real batch, or leave
# both empty for one of the repository's examples (`examples/`, built offline). The
# workbench exports the model to every format and precision it can, checks each artifact
# against your model (and against your labels, under one accuracy budget), measures it,
# and says what to ship.

# %%
# %matplotlib inline
from workbench.study import notebook_params

notebook_params.begin(globals())  # names defined before the parameters cell

# %% tags=["parameters"]
profile: str = "ci"  # "ci": tiny, about a minute on 2 cores; "quick": short; "full": the study
spec: str = ""  # a model.yaml; empty: one written from `source` + `sample` or the example
source: str = ""  # module:function, file.py:function, .keras, HF directory or .onnx
sample: str = ""  # one real batch for `source`: an .npz of arrays named as the inputs
example: str = "torch-digits-mlp"  # the repository example used when spec and source are empty
formats: list[str] = []  # e.g. ["onnx", "torchscript"]; empty: ci onnx, quick/full every one
precisions: list[str] = []  # e.g. ["fp32", "int8-dynamic"]; empty: ci fp32 + int8, else all
batch_sizes: list[int] = []  # items per call; empty: the profile's
max_accuracy_drop: float = 1.0  # points any artifact may lose against your model's metric

# %%
# Fails fast, naming the parameter and its type, on an unknown name or a wrong type.
P = notebook_params.check(globals())

import pandas as pd

from workbench import study
from workbench.study import your_model

pd.set_option("display.max_columns", 40)
pd.set_option("display.width", 200)
pd.set_option("display.max_colwidth", 80)
P

# %% [markdown]
# ## 1. The spec and its preflight
# `model init` probes the model in a worker process on the sample: names from the model,
# dtypes and shapes from the batch, dynamic axes found by running other sizes. `model
# check` then lists every problem at once.

# %%
path, notes = your_model.spec_from_params(
    study.reports_dir() / "your_model",
    spec=P.spec,
    source=P.source,
    sample=P.sample,
    example=P.example,
    max_accuracy_drop=P.max_accuracy_drop,
)
for note in notes:
    print(note)
print(path.read_text())
report = your_model.preflight(path)

# %% [markdown]
# ## 2. Export matrix with parity
# Every format x precision: `ok` with its parity verdict (errors against your model, and
# with labels the metric drop under the budget), `failed` with the exporter's reason, or
# `unavailable` saying why (e.g. static INT8 without calibration data).

# %%
model_spec = your_model.register(path)
precisions = P.precisions or (["fp32", "int8-dynamic", "int8-static"] if P.profile == "ci" else [])
sweep = study.sweep_for(
    model_spec.name,
    P.profile,
    formats=P.formats,
    precisions=precisions,
    batch_sizes=P.batch_sizes,
)
print(study.describe(sweep))
frame = study.run(sweep)
caption = study.caption(frame)
matrix = study.export_matrix(frame)
matrix

# %%
# NBVAL_CHECK_OUTPUT
print(matrix[["format", "precision", "status"]].to_string(index=False))

# %%
study.failures(frame)

# %% [markdown]
# ## 3. Latency and throughput

# %%
study.table(frame)

# %% [markdown]
# ## 4. What to ship
# The best configuration per batch size, then the pick at the smallest batch: fastest
# among the artifacts that pass parity (and the accuracy budget).

# %%
choice = study.what_to_ship(frame)
print(caption)
