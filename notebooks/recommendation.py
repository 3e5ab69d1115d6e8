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
# # Task `recommendation`: formats x precisions x runtimes x batch sizes
#
# User and item towers for top-k retrieval over the MovieLens-100k catalog. Models: `two_tower_user`, `two_tower_item`, `mf_user`, `mf_item`. The notebook exports each model to
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
TASK = "recommendation"
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
# ## Retrieval quality
# Leave-last-out split: each user's last rating in time is held out; the model ranks the
# whole catalog (1,682 films) for each user, excluding the films rated in training.
# recall@10 is the share of users whose held-out film is in their top 10. Popularity (most
# rated first) is what a model has to beat.

# %%
import pandas as pd

from workbench.recsys import catalog_scale, two_tower

weights = two_tower.trained_weights()
quality = pd.DataFrame(two_tower.quality_table(weights))
quality

# %% [markdown]
# ## Retrieval parity per artifact
# Each tower artifact is checked on the whole population (943 users or 1,682 items): the
# top-10 overlap with the source model's exact top 10 (the other tower at its source
# weights), and recall@10 of the held-out films with the artifact's vectors.

# %%
from workbench.tasks.recommendation import artifact_parity

artifact_parity(frame)

# %% [markdown]
# ## End to end: raw user ids to recommendations
# Raw MovieLens user ids -> tower features -> user tower -> scores over the catalog -> top
# 10 excluding seen films. A user id the data set does not know (here 99999) gets the most
# rated films instead (popularity fallback, flagged `cold`).

# %%
from workbench.recsys import movielens
from workbench.registry import get_task

task = get_task(TASK)
pipeline = task.pipeline("two_tower_user")
feed, users = pipeline.preprocess([1, 2, 99999])
vectors = two_tower.numpy_tower(weights, "two_tower", "user", feed)
picked = pipeline.postprocess([vectors], users)
titles = movielens.load().items["title"].to_numpy()
pd.DataFrame(
    {
        f"user {raw} ({'cold' if cold else 'known'})": titles[row]
        for raw, cold, row in zip([1, 2, 99999], picked.cold, picked.items, strict=True)
    }
)

# %% [markdown]
# ## Scoring fused into the graph
# The FP32 ONNX user tower with MatMul over the 1,682 catalog vectors, an additive exclusion
# mask and TopK appended (`workbench.recsys.fused_scoring`), against the same tower followed
# by `exact_topk` in NumPy, for all 943 users.

# %%
from pathlib import Path

from IPython.display import display

from workbench.recsys import fused_scoring

onnx_rows = frame[
    (frame["status"] == "ok")
    & (frame["format"] == "onnx")
    & (frame["precision"] == "fp32")
    & frame["model"].str.endswith("_user")
]
if onnx_rows.empty:
    print("no FP32 ONNX user tower in this run: nothing to fuse")
else:
    row = onnx_rows.iloc[0]
    display(
        pd.DataFrame(
            [
                {
                    "model": row["model"],
                    **fused_scoring.fused_vs_separate(
                        Path(row["artifact_path"]), row["model"].rsplit("_", 1)[0]
                    ),
                }
            ]
        )
    )

# %% [markdown]
# ## Catalog scale: exact top-k against catalog size
# Synthetic catalogs drawn from a Gaussian fitted to the trained item vectors (64
# dimensions). `exact` is `workbench.recsys.retrieval.exact_topk` (item blocks of 65,536:
# one sgemm + argpartition each, ties by id, optional exclusion); `bare` is one sgemm over
# the whole catalog + argpartition, the plainest correct baseline. Peak bytes are NumPy's
# allocations during one call: the bare baseline holds the full score matrix (4 B per
# user x item) and argpartition's int64 indices (8 B), the blocked search one block of each.
# The ci profile stops at 10^4 items; `benchmarks/recsys_retrieval.py` measures up to 10^6.

# %%
import matplotlib.pyplot as plt

sizes = {"ci": [1_000, 10_000], "quick": [1_000, 10_000, 100_000]}.get(
    P.profile, [1_000, 10_000, 100_000, 1_000_000]
)
scale = pd.DataFrame(catalog_scale.scale_study(sizes, [1, 64], reps=3))
display(scale)

fig, ax = plt.subplots(figsize=(6, 4))
for batch, part in scale[scale["seen_per_user"] == 0].groupby("users"):
    ax.loglog(part["items"], part["exact_p50_ms"], "o-", label=f"exact, {batch} users")
    ax.loglog(part["items"], part["bare_p50_ms"], "x--", label=f"bare NumPy, {batch} users")
ax.set_xlabel("catalog size (items)")
ax.set_ylabel("p50 latency (ms)")
ax.set_title(caption, fontsize=8)
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Catalog scale: approximate indexes
# faiss at the largest catalog above, 64 users: exact IndexFlatIP, HNSW (efSearch sweep) and
# IVF-Flat (nprobe sweep), each on the raw inner product and after the MIPS -> L2 transform
# (`transform` "l2": each item gets an extra coordinate sqrt(M^2 - |x|^2), so nearest in L2
# means largest inner product). recall@10 is measured against the exact top 10.

# %%
user_fit, item_fit = catalog_scale.trained_fits()
items = item_fit.sample(max(sizes), seed=1)
queries = user_fit.sample(64, seed=3)
indexes = pd.DataFrame(
    catalog_scale.index_trade_offs(
        queries,
        items,
        10,
        reps=3,
        configs=catalog_scale.default_index_configs(
            len(items), kinds=("flat", "hnsw", "hnsw_l2", "ivf_flat", "ivf_flat_l2")
        ),
    )
)
indexes

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
