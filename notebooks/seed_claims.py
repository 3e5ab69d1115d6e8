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
# # The source guide's claims, re-measured on this host
#
# Each claim in docs/claims.md is measured with the workbench's own runs and marked
# **confirmed**, **refuted** or **not measurable here**, with the numbers and the reason; a
# profile that measures another method than the claim's (the ci profile's dynamic INT8 for
# the guide's static INT8) says **not measured in this profile** and never refutes. The
# rules: a ratio claim is confirmed within `ratio_tolerance` of the claimed range, an absolute
# hardware figure within `absolute_tolerance` (it depends on the exact CPU or GPU).

# %%
# %matplotlib inline
from workbench.study import notebook_params

notebook_params.begin(globals())  # names defined before the parameters cell

# %% tags=["parameters"]
profile: str = "ci"  # "ci": tiny, a minute or two on 2 cores; "quick": short; "full": the study
devices: list[str] = []  # devices for the GPU claims; empty: cpu and cuda
ratio_tolerance: float = 0.25  # a ratio claim ("4x", "3-5x") holds within +/- this fraction
absolute_tolerance: float = 0.5  # an absolute figure ("~500 ms") holds within +/- this fraction
compiled_measurements: str = ""  # a compiled_vs_python.py JSON (quiet host) to judge 1.1 from

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

# %%
from workbench.study import claims

settings = claims.SETTINGS[P.profile]
for section, text in claims.CLAIMS.items():
    print(f"{section:>4}  {text}")
print()
for note in settings.notes:
    print("note:", note)

# %%
frames = claims.run_sweeps(
    P.profile,
    devices=P.devices or None,
    compiled_measurements=P.compiled_measurements or None,
)
caption = study.caption(pd.concat([f for k, f in frames.items() if k != "null"]))
print(caption)

# %%
verdicts = claims.judge(frames, P.profile, P.ratio_tolerance, P.absolute_tolerance)
for row in verdicts.itertuples():
    print(
        f"[{row.verdict.upper()}] {row.section} {row.claim}: claimed {row.claimed}; "
        f"measured {row.measured}; {row.why}"
    )

# %%
# NBVAL_CHECK_OUTPUT - which claims this host cannot measure, and why (deterministic)
blocked = verdicts[verdicts["verdict"] == claims.NOT_MEASURABLE]
print(blocked[["section", "claim", "why"]].to_string(index=False))

# %%
verdicts

# %% [markdown]
# ## The measurements behind the verdicts

# %%
all_rows = pd.concat([frames[k] for k in ("cnn", "cnn_precisions", "keras", "small")])
study.table(all_rows)

# %%
plots.by_device(pd.concat([frames["cnn"], frames["small"]]), caption)

# %%
plots.speedup(
    study.speedup_over_fp32(pd.concat([frames["cnn"], frames["cnn_precisions"]])), caption
)

# %% [markdown]
# ## What Python adds per call, against the model's own time
# The same ONNX file through onnxruntime's Python API and through a C++ caller on its C
# API (runtime `onnxruntime-c`), same threads, inputs and stop rule: the difference of the
# p50s is what Python adds per call. MLPs of growing width (`mlp_w*`) span model times from
# microseconds to milliseconds; the right panel shows where Python's share falls under 10 %.

# %%
from workbench.study import compiled

adds = compiled.python_adds(frames["compiled"])
adds

# %%
compiled.plot_python_adds(adds, caption)

# %%
frames["compiled_serving"]

# %%
n = claims.counts(verdicts)
headline = {
    "verdicts": (
        f"{n['confirmed']} confirmed, {n['refuted']} refuted, "
        f"{n['not measurable here']} not measurable here, "
        f"{n['not measured in this profile']} not measured in this profile"
    ),
    **{
        f"{r.section} {r.claim}": f"{r.verdict}: {r.measured if r.measured != '-' else r.why}"
        for r in verdicts.itertuples()
    },
}
study.record_headline("seed_claims", headline, P.profile)
print(headline["verdicts"])

# %% [markdown]
# ## Reading
# The guide's absolute figures come from other hardware: a refuted absolute number mostly says
# this host is faster or slower than the guide's, while the ratios (quantization speedups,
# batching gains, the Python overhead) are the transferable part. GPU claims cannot be
# measured on a host without a GPU and say so. In the `ci` profile the CNN measurements use
# few calls and dynamic INT8 (see the notes above); run the `full` profile for the real study.
