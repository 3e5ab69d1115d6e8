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
# # Summary: the headline numbers of every report
#
# Each notebook records a few headline numbers when it runs; this one gathers them, with the
# status of the last notebook run. It runs last in `workbench notebooks run`.

# %%
# %matplotlib inline
from workbench.study import notebook_params

notebook_params.begin(globals())  # names defined before the parameters cell

# %% tags=["parameters"]
profile: str = "ci"  # "ci": tiny, a minute or two on 2 cores; "quick": short; "full": the study
include: list[str] = []  # notebooks to show; empty: every one that recorded headlines

# %%
# Fails fast, naming the parameter and its type, on an unknown name or a wrong type.
P = notebook_params.check(globals())

import pandas as pd

from workbench import study

pd.set_option("display.max_columns", 40)
pd.set_option("display.width", 200)
pd.set_option("display.max_colwidth", 80)
P

# %%
import json

records = study.read_headlines()
if P.include:
    records = {k: v for k, v in records.items() if k in P.include}
status_path = study.reports_dir() / "notebooks.json"
status = json.loads(status_path.read_text()) if status_path.exists() else {"notebooks": []}
runs = pd.DataFrame(status["notebooks"], columns=["name", "status", "duration_s", "error"])
print(
    f"last notebook run: profile {status.get('profile')}, {status.get('started')} UTC, "
    f"{status.get('host')}"
)
runs

# %%
table = study.headlines_table(records)
print(f"{len(records)} notebooks recorded headline numbers")
table

# %% [markdown]
# ## Reading
# Each row is one headline of one notebook, with the profile it ran with and when: numbers
# from the `ci` profile are smoke-test sizes, not the study. Failed notebooks appear in the
# run table above with their error; their headlines are missing or from an earlier run (see
# the time).
