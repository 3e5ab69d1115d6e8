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
# # Serving: max QPS under a p99 bound, with and without the dynamic batcher
#
# MLPerf LoadGen drives the server scenario (Poisson arrivals, latency from each query's
# scheduled issue time) against a model behind the workbench's dynamic batcher (Triton's
# semantics: max batch size, max queue delay, preferred sizes; a bounded queue). For each
# batcher setting a bounded search on the target QPS finds the highest load whose p99
# stays under the bound; then latency against offered load shows the knee.

# %%
# %matplotlib inline
from workbench.study import notebook_params

notebook_params.begin(globals())  # names defined before the parameters cell

# %% tags=["parameters"]
profile: str = "ci"  # "ci": 1 s LoadGen runs, ~70 s; "quick": 5 s runs; "full": more probes
task: str = "image_classification"  # a registered task with an ONNX export
model: str = "efficientnet_lite0"  # the task's model
latency_bound_ms: float = 100.0  # the p99 bound of the server scenario
instances: int = 1  # model instances (worker threads), each with its own session
measure_fronts: bool = True  # also time what workbench serve's HTTP and gRPC fronts add

# %%
# Fails fast, naming the parameter and its type, on an unknown name or a wrong type.
P = notebook_params.check(globals())

import pandas as pd
from IPython.display import display

from workbench import study
from workbench.study import scenarios as serving

pd.set_option("display.max_columns", 40)
pd.set_option("display.width", 200)
pd.set_option("display.max_colwidth", 80)
P

# %%
print(serving.SERVING_PROFILES[P.profile].note)
batchers = serving.batcher_settings(P.instances, P.profile, P.latency_bound_ms)
for label, config in batchers.items():
    print(f"{label:>24}: {config.to_json() if config else 'every request alone (batch 1)'}")
served = serving.load(P.task, P.model, P.profile, instances=P.instances)
print(served.labels)

# %%
peak_rows = serving.peaks(served, P.profile, batchers, P.latency_bound_ms)
caption = study.caption(peak_rows)
summary = serving.peak_summary(peak_rows)
print(caption)
summary

# %%
# NBVAL_CHECK_OUTPUT - which batcher settings were searched, and how many LoadGen runs each
print(summary[["batcher", "probes"]].to_string(index=False))

# %%
serving.plot_peaks(summary, caption, P.latency_bound_ms)

# %% [markdown]
# ## Latency against offered load
# The best batcher setting and no batcher, each at fractions of its own peak (or of the
# other's where it found none): below the knee latency is flat, past it the queue grows.

# %%
ranked = summary.dropna(subset=["peak QPS"]).sort_values("peak QPS", ascending=False)
best = ranked["batcher"].iloc[0] if not ranked.empty else serving.NO_BATCHER
reference = float(ranked["peak QPS"].iloc[0]) if not ranked.empty else 10.0
curves = []
for label in dict.fromkeys([best, serving.NO_BATCHER]):
    peak = summary.set_index("batcher")["peak QPS"].get(label)
    curves.append(
        serving.load_curve(
            served,
            P.profile,
            batchers[label],
            float(peak) if pd.notna(peak) else reference,
            P.latency_bound_ms,
            label=label,
        )
    )
curve = pd.concat(curves, ignore_index=True)
display(serving.load_curve_table(curve))
serving.plot_load_curve(curve, study.caption(curve), P.latency_bound_ms)

# %%
served.close()
gain = summary.set_index("batcher")["gain over none"].dropna()
headline = {
    f"max QPS with p99 < {P.latency_bound_ms:g} ms, {P.model}, no batcher": summary.set_index(
        "batcher"
    )["peak QPS"].get(serving.NO_BATCHER),
    "best batcher setting": best,
    "best batcher gain over none": f"{gain.max():.2f}x" if not gain.empty else "-",
}
study.record_headline("serving", headline, P.profile)
for key, value in headline.items():
    print(f"{key}: {value}")

# %% [markdown]
# ## What the server's fronts add per request
# `workbench serve` puts this batcher behind KServe v2 HTTP (FastAPI on uvicorn) and gRPC
# (grpcio). LoadGen single_stream, in this process, drives the server in its own process
# over loopback (client and server on different cores where there are two): the null
# model through each front, the same client against a trivial server that answers a
# fixed reply (the client's own cost), and the server called in-process. What a front adds
# is `front - baseline - (in-process - driver)` at each percentile: a difference of
# percentiles, so an estimate; on a busy shared host the p99 differences are noise.

# %%
if P.measure_fronts:
    from workbench.serving import measure

    fronts = measure.overhead(P.profile, min_duration_ms=500 if P.profile == "ci" else None)
    display(pd.DataFrame(fronts["rows"]).set_index("path")[["p50_ms", "p99_ms", "queries"]])
    print({k: round(v, 3) for k, v in fronts["added"].items()})
    print(
        f"client cores {fronts['client_cores']}, server cores {fronts['server_cores']}, "
        f"load average {fronts['load_average'][0]:.2f}"
    )

# %% [markdown]
# ## Reading
# A request waits in the queue for a batch to form and then for the batch to compute; the
# batcher trades the first for throughput. In the `ci` profile each LoadGen run lasts 1 s,
# so its p99 is the tail of a few dozen queries and no run is LoadGen-compliant (the rows say
# `full_length: false`); `workbench bench --scenario server --find-peak --profile full`
# runs the 600 s searches. `benchmarks/serving_overhead.py` measures the fronts with longer
# runs and the max QPS under the bound through each front, with and without the batcher.
