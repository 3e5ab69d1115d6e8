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
# # Task `{{task}}`: formats x precisions x runtimes x batch sizes
#
# {{description}} Models: {{models}}. The notebook exports each model to
# every requested format and precision, checks each artifact against its source model, and
# measures latency and throughput per batch size, device and thread count.

# %%
# %matplotlib inline
from workbench.study import notebook_params

notebook_params.begin(globals())  # names defined before the parameters cell

# %% tags=["parameters"]
profile: str = "ci"  # "ci": tiny, a minute or two on 2 cores; "quick": short; "full": the study
models: list[str] = []  # model variants of the task; empty: the profile's choice
frameworks: list[str] = []  # source frameworks "torch", "keras"; empty: the profile's choice
formats: list[str] = []  # onnx torchscript pt2 tflite savedmodel eager keras; empty: the profile's
precisions: list[str] = []  # fp32, fp16, int8-dynamic, int8-static; empty: the profile's
batch_sizes: list[int] = []  # items per call; empty: the profile's
devices: list[str] = []  # "cpu", "cuda", "cuda:1"; empty: ci cpu, full cpu + cuda
threads: list[int] = []  # intra-op thread counts; empty: every core available
max_accuracy_drop: float = 1.0  # INT8 parity: points of accuracy (F1, mAP, AUC) below the source

# %%
# Fails fast, naming the parameter and its type, on an unknown name or a wrong type.
P = notebook_params.check(globals())

from workbench import study
from workbench.report import plots

study.display_options()  # wide tables: up to 40 columns, 200 characters a line
P

# %%
TASK = "{{task}}"
# The profile's sweep with the parameters above on top: what it measures, its progress,
# then the caption (host and date) every figure carries.
frame, caption = study.run_task(TASK, P)

# %% [markdown]
# ## What to ship
# Per model, device and batch size: the lowest p99 among the configurations whose parity
# passed, and its speedup over the source model (the run report opens with the same table).
# FP32/FP16 pass parity by numeric tolerance; INT8 passes when its accuracy on true labels is
# within `max_accuracy_drop` points of the source and its decisions agree (`parity_rule`).
# Then the one configuration `workbench recommend` would pick at the smallest batch measured;
# `study.recommend` takes budgets (p99, throughput, size, accuracy drop) like the CLI.

# %%
choice = study.what_to_ship(frame)

# %% [markdown]
# ## Export matrix
# What was measured, its status and the parity verdict (the artifact against its source model on held-out inputs).

# %%
# NBVAL_CHECK_OUTPUT - statuses and parity verdicts are deterministic on a host
print(study.export_matrix(frame).to_string(index=False))

# %% [markdown]
# ## All rows

# %%
study.table(frame)

# %% [markdown]
# ## Latency distribution per configuration

# %%
plots.latency_cdf(frame, caption)

# %% [markdown]
# ## Throughput against batch size

# %%
plots.throughput_vs_batch(frame, caption)

# %% [markdown]
# ## Speedup over FP32

# %%
speedups = study.show_speedups(frame, caption)

# %%
# The run report's heatmap: format x precision against FP32, geometric mean over batch sizes.
plots.speedup_heatmap(speedups, caption)

# %% [markdown]
# ## End to end: pre-processing, model, post-processing
# Where the task has pre- and post-processing (decoding images, resizing, normalizing;
# softmax and top-k, or box decoding and NMS), each call is also timed end to end from the
# raw input, stage by stage. The model stage there includes the runtime's input conversion,
# which the model-only figures leave out.

# %%
study.show_end_to_end(frame, caption)

# %% [markdown]
# ## Memory

# %%
plots.memory(frame, caption)

# %%
# The headline numbers the summary notebook and the reports index show.
study.record_task_headline(TASK, frame, choice, P.profile)

# %% [markdown]
# ## Reading
# The export matrix says what could be produced and whether it still agrees with its source
# model; a configuration is only worth its speed when parity passes. The CDF shows each
# configuration's spread of call latencies (a step far to the right is a slow tail). The
# throughput plot shows where batching stops paying; the speedup plot compares each precision
# with FP32 of the same format, runtime and batch (above 1: faster). The memory plot puts the
# measuring process's peak RSS next to the file size.
