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
# # Content moderation (guide §10.1): five real models, a policy as data, sequential vs concurrent
#
# Text goes through offensive-language scoring (alt-profanity-check converted to ONNX),
# sentiment (the text_classification MiniLM) and sensitive-information NER (the ner
# MiniLM); an image through Open-NSFW and the object_detection detector. The policy
# (thresholds, entity and object maps, version) is data returned with every decision. The
# notebook measures the profanity ONNX parity, FP32 vs INT8 per stage and for the whole
# pipeline, and latency per stage and end to end, with the stages one after another or
# the text and image branches in parallel. It runs after the task notebooks, whose
# exports it reuses. The HTTP front's numbers come from `benchmarks/moderation.py`.

# %%
# %matplotlib inline
from workbench.study import notebook_params

notebook_params.begin(globals())  # names defined before the parameters cell

# %% tags=["parameters"]
profile: str = "ci"  # "ci": 30 texts, 15 images; "quick": 120 and 33; "full": 400 and 69
redact: bool = True  # the demo decision returns the text with sensitive spans replaced

# %%
# Fails fast, naming the parameter and its type, on an unknown name or a wrong type.
P = notebook_params.check(globals())

import pandas as pd

from workbench import study
from workbench.moderation import study as moderation
from workbench.moderation.policy import Policy
from workbench.moderation.request import make_request
from workbench.vision.photos import photo_bytes

pd.set_option("display.max_columns", 40)
pd.set_option("display.width", 200)
size = moderation.sizes(P.profile)
requests = moderation.eval_requests(size["n_texts"], size["n_generated"])
print(
    f"{len(requests)} evaluation requests:",
    pd.Series([r.kind for r in requests]).value_counts().to_dict(),
)

# %% [markdown]
# ## The policy, and one decision

# %%
policy = Policy(redact=P.redact)
moderator = moderation.build("sequential", policy=policy)
demo = moderator.moderate(
    make_request(
        "You stupid idiot, John Smith from London sold me junk", photo_bytes("astronaut"), policy
    )
)
{k: v for k, v in demo.items() if k != "policy"}

# %% [markdown]
# ## Offensive language: ONNX vs scikit-learn
# ORT's string tokenizer treats non-ASCII characters differently from scikit-learn's
# regex, so probabilities can differ there; measured on the evaluation texts plus a few
# non-ASCII probes.

# %%
texts = [r.text for r in requests if r.text is not None]
parity = moderation.profanity_parity(texts, policy)
pd.DataFrame({k: parity[k] for k in ("all", "ascii", "non_ascii")}).T

# %%
parity.get("worst")

# %% [markdown]
# ## FP32 vs INT8, stage by stage, then the whole pipeline
# Each stage's FP32 and INT8 findings on every request (agreement on what the decision
# uses, and on the whole finding), then every mix of precisions decided from them: the
# mix with the lowest summed stage latency whose decisions (safe, violations, sensitive
# spans) agree with FP32 on >= 99 % of the requests wins. The pipeline is then rerun
# with that mix to confirm.

# %%
variant, stage_rows = moderation.fastest_passing(requests, policy)
stages = pd.DataFrame(stage_rows[:-1])
stages

# %%
mixes = pd.DataFrame(
    [
        {**m["mix"], "agreement": m["decision_agreement"], "stage ms (sum)": m["stage_ms_sum"]}
        for m in stage_rows[-1]["mixes"]
    ]
)
mixes.sort_values("stage ms (sum)")

# %%
agreement = moderation.compare_variants(requests, variant, policy)
agreement

# %% [markdown]
# ## Latency: per stage and end to end, sequential vs concurrent
# One request at a time (no queueing): sequential stages with every core per model, vs
# concurrent stages (one thread per model, each behind its own batcher; the text and
# image branches in parallel). p99 is missing below 100 requests per kind.

# %%
rows = moderation.latency_rows(moderator, requests, size["repeats"])
moderator.close()
with moderation.build("concurrent", policy=policy) as concurrent:
    rows += moderation.latency_rows(concurrent, requests, size["repeats"])
with moderation.build("sequential", variant, policy) as fastest:
    rows += moderation.latency_rows(fastest, requests, size["repeats"])
latency = pd.DataFrame(rows)
latency["run"] = latency["mode"] + " / " + latency["variant"]
table = latency.pivot_table(index=["request", "part"], columns="run", values=["p50_ms", "p90_ms"])
table

# %%
# NBVAL_CHECK_OUTPUT - which request kinds and parts were timed
print(sorted(set(zip(latency["request"], latency["part"], strict=True))))

# %%
ends = latency[latency["part"] == "total"].set_index(["request", "run"])["p50_ms"].unstack()
ax = ends.plot.bar(title="end-to-end p50 per request (ms), in process", rot=0)
ax.set_ylabel("ms")

# %%
both = ends.loc["text+image"] if "text+image" in ends.index else None
chosen = {s: variant.precision(s) for s in moderation.STAGES}
headline = {
    "decision agreement FP32 vs fastest passing": f"{agreement['decision_agreement']:.3f} on {agreement['n']} requests",
    "fastest passing precisions": ", ".join(f"{k}={v}" for k, v in chosen.items()),
    "text+image p50 ms sequential / concurrent / sequential fastest-passing (in process)": (
        " / ".join(
            f"{both[k]:.0f}"
            for k in ("sequential / fp32", "concurrent / fp32", "sequential / fastest-passing")
        )
        if both is not None
        else "-"
    ),
    "profanity ONNX max abs error, ASCII / non-ASCII": (
        f"{parity['ascii'].get('max_abs_error', float('nan')):.2g} / "
        f"{parity['non_ascii'].get('max_abs_error', float('nan')):.2g}"
    ),
}
study.record_headline("moderation", headline, P.profile)
for key, value in headline.items():
    print(f"{key}: {value}")

# %% [markdown]
# ## Reading
# The detector knows four shapes (circle, square, triangle, cross), so the policy maps
# `cross` to a violation as a stand-in for the guide's weapons; the NER model knows ten
# tweet entity types, of which `person` and `geo-loc` are sensitive by default. Latency
# here is in process; `benchmarks/moderation.py` measures the same requests through
# `POST /api/v1/moderate` under LoadGen at 1 QPS and at the max QPS under a p99 bound.
