"""What the notebook and the benchmark call: a fixed evaluation set of real texts and real
and generated images, decision agreement between pipeline variants, the fastest passing
variant, and per-stage / end-to-end latency percentiles per request kind.

Moderation is a pipeline of five models, not one model with a source to export, so it
is not a registry Task (Task needs build_torch/build_keras, one input signature and one
parity); it is this module plus `pipeline.Moderator`, each stage loading its task's own
artifacts from the export cache.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench.harness.stats import summarize
from workbench.moderation.pipeline import Moderator, decide
from workbench.moderation.policy import DEFAULT_POLICY, Policy
from workbench.moderation.profanity import OnnxProfanity, parity
from workbench.moderation.request import ModerationRequest
from workbench.moderation.stages import FP32, STAGE_CLASSES, STAGES, TEXT_STAGES, Variant
from workbench.nlp.data import ner_sentences, reviews
from workbench.profiles import get_profile
from workbench.vision.photos import photo, photo_names
from workbench.vision.scenes import make_scenes

AGREEMENT_GOAL = 0.99


def eval_texts(n: int) -> list[str]:
    """Real texts, half held-out clothing reviews, half held-out tweets (fixed order)."""
    reviews_ = list(reviews()[1].texts)
    tweets = [s.text for s in ner_sentences()[1]]
    half = n // 2
    return reviews_[:half] + tweets[: n - half]


def eval_images(n_generated: int) -> list[tuple[str, np.ndarray]]:
    """Every bundled photo (scikit-image, scikit-learn), generated detection scenes (shapes
    on photo and terrain backgrounds; crosses are what the default policy forbids) and
    flat, noise and gradient images."""
    images = [(f"photo:{name}", np.array(photo(name))) for name in photo_names()]
    scenes = make_scenes(max(n_generated - 3, 0), 320, seed=99, stream="held_out")
    images += [(f"scene:{i}", s.image) for i, s in enumerate(scenes)]
    rng = np.random.default_rng(5)
    extra = [
        ("flat:grey", np.full((120, 160, 3), 128, np.uint8)),
        ("noise", rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)),
        (
            "gradient",
            np.repeat(np.linspace(0, 255, 256, dtype=np.uint8)[None, :, None], 64, 0).repeat(3, 2),
        ),
    ]
    return images + extra[: max(0, min(3, n_generated))]


def eval_requests(n_texts: int = 120, n_generated: int = 24) -> list[ModerationRequest]:
    """Text-only, image-only and text+image requests, deterministic."""
    texts = eval_texts(n_texts)
    images = eval_images(n_generated)
    requests = [ModerationRequest(text=t) for t in texts[: len(texts) // 2]]
    requests += [ModerationRequest(image=img) for _, img in images]
    rest = texts[len(texts) // 2 :]
    requests += [
        ModerationRequest(text=t, image=images[i % len(images)][1]) for i, t in enumerate(rest)
    ]
    return requests


def decision_key(decision: dict[str, Any]) -> tuple[Any, ...]:
    """What must agree between variants: safe, the violations, and the sensitive findings
    (type and span)."""
    return (
        decision["safe"],
        tuple(sorted(decision["violations"])),
        tuple(sorted((s["finding"], s["start"], s["end"]) for s in decision["sensitive_info"])),
    )


def run_batched(
    moderator: Moderator, requests: Sequence[ModerationRequest], batch: int = 8
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(0, len(requests), batch):
        out += moderator.moderate_batch(requests[i : i + batch])
    return out


def agreement(reference: list[dict[str, Any]], candidate: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [decision_key(d) for d in reference], [decision_key(d) for d in candidate]
    same = [a == b for a, b in zip(*keys, strict=True)]
    differing = [i for i, s in enumerate(same) if not s]
    return {
        "n": len(same),
        "decision_agreement": float(np.mean(same)),
        "safe_agreement": float(np.mean([a[0] == b[0] for a, b in zip(*keys, strict=True)])),
        "differing": differing[:10],
        "unsafe_fp32": int(sum(not k[0] for k in keys[0])),
    }


def stage_timing(stages: Sequence[Any], items: Sequence[Any], repeats: int = 2) -> list[float]:
    """Median ms of one item (batch of 1) through each of `stages`, the stages interleaved
    item by item so load drift on a shared host hits them alike."""
    for stage in stages:
        stage.run([items[0]])  # warm-up
    times: list[list[int]] = [[] for _ in stages]
    for _ in range(repeats):
        for item in items:
            for k, stage in enumerate(stages):
                t0 = time.perf_counter_ns()
                stage.run([item])
                times[k].append(time.perf_counter_ns() - t0)
    return [float(np.median(t)) / 1e6 for t in times]


def _stage_items(stage: str, requests: Sequence[ModerationRequest]) -> list[Any]:
    attr = "text" if stage in TEXT_STAGES else "image"
    return [getattr(r, attr) for r in requests if getattr(r, attr) is not None]


def _stage_key(stage: str, finding: dict[str, Any], policy: Policy, full: bool = False) -> Any:
    """The part of a stage's finding the decision uses under `policy` (with `full`: the
    whole finding's gist -- every label, entity and detected class)."""
    if stage == "profanity":
        return finding["score"] > policy.profanity_threshold
    if stage == "sentiment":
        if full:
            return finding["label"]
        threshold = policy.negative_threshold
        return None if threshold is None else finding["probabilities"]["negative"] > threshold
    if stage == "sensitive":
        return tuple(
            sorted(
                (e["type"], e["start"], e["end"])
                for e in finding["entities"]
                if full or e["type"] in policy.sensitive_entities
            )
        )
    if stage == "nsfw":
        return finding["score"] > policy.nsfw_threshold
    return tuple(
        sorted(
            d["class"]
            for d in finding["detections"]
            if d["score"] >= policy.detection_threshold
            and (full or d["class"] in policy.object_violations)
        )
    )


def stage_findings(
    stage: Any, requests: Sequence[ModerationRequest], batch: int = 8
) -> list[dict[str, Any] | None]:
    """`stage`'s finding for each request (None where the request has no such input),
    batched exactly as `run_batched` batches the pipeline: dynamic INT8 scales its
    activations per batch, so its findings depend on the batch they ran in."""
    attr = "text" if stage.name in TEXT_STAGES else "image"
    out: list[dict[str, Any] | None] = [None] * len(requests)
    for i in range(0, len(requests), batch):
        idx = [
            j
            for j in range(i, min(i + batch, len(requests)))
            if getattr(requests[j], attr) is not None
        ]
        if idx:
            for j, found in zip(
                idx, stage.run([getattr(requests[j], attr) for j in idx]), strict=True
            ):
                out[j] = found
    return out


def fastest_passing(
    requests: Sequence[ModerationRequest],
    policy: Policy = DEFAULT_POLICY,
    timing_items: int = 12,
    threads: int = 1,
) -> tuple[Variant, list[dict[str, Any]]]:
    """Per stage: FP32 and INT8 findings on every evaluation request, their agreement on
    what the decision uses and on the whole finding, and median latency at batch 1.
    Then every mix of precisions is decided from those findings (stages are independent),
    and the mix with the lowest summed stage latency whose whole-pipeline decisions agree
    with FP32 on >= 99 % of the requests wins. Rows: one per stage, plus `mixes`."""
    rows: list[dict[str, Any]] = []
    found: dict[tuple[str, str], list[dict[str, Any] | None]] = {}
    ms: dict[tuple[str, str], float] = {}
    for name, cls in STAGE_CLASSES.items():
        items = _stage_items(name, requests)
        precisions = ("fp32",) if name == "profanity" else ("fp32", "int8")
        row: dict[str, Any] = {"stage": name, "items": len(items)}
        loaded = [cls(precision, threads) for precision in precisions]
        timed = stage_timing(loaded, items[:timing_items]) if items else [0.0] * len(loaded)
        for precision, stage, median in zip(precisions, loaded, timed, strict=True):
            found[name, precision] = stage_findings(stage, requests)
            ms[name, precision] = median
            row[f"{precision}_ms"] = median
            if precision == "int8":
                row["int8_artifact"] = str(stage.path)
        if name == "profanity":
            row["int8"] = "none: TF-IDF + linear model, nothing for INT8 to speed up"
        else:
            pairs = [
                (a, b)
                for a, b in zip(found[name, "fp32"], found[name, "int8"], strict=True)
                if a is not None
            ]
            for label, full in (("int8_agreement", False), ("int8_full_agreement", True)):
                row[label] = (
                    float(
                        np.mean(
                            [
                                _stage_key(name, a, policy, full)
                                == _stage_key(name, b, policy, full)
                                for a, b in pairs
                            ]
                        )
                    )
                    if pairs
                    else None
                )
        rows.append(row)

    def decisions(mix: dict[str, str]) -> list[dict[str, Any]]:
        out = []
        for i, request in enumerate(requests):
            findings = {s: found[s, mix[s]][i] for s in STAGES if found[s, mix[s]][i] is not None}
            out.append(decide(request, findings, policy))
        return out

    reference = decisions({s: "fp32" for s in STAGES})
    quantizable = [s for s in STAGES if s != "profanity"]
    mixes = []
    for choice in itertools.product(("fp32", "int8"), repeat=len(quantizable)):
        mix = {"profanity": "fp32", **dict(zip(quantizable, choice, strict=True))}
        agree = agreement(reference, decisions(mix))["decision_agreement"]
        mixes.append(
            {
                "mix": mix,
                "decision_agreement": agree,
                "stage_ms_sum": sum(ms[s, p] for s, p in mix.items()),
            }
        )
    passing = [m for m in mixes if m["decision_agreement"] >= AGREEMENT_GOAL]
    best = min(passing, key=lambda m: m["stage_ms_sum"])  # all-FP32 always passes
    for row in rows:
        row["chosen"] = best["mix"][row["stage"]]
    chosen = {s: p for s, p in best["mix"].items() if s != "profanity"}
    rows.append({"stage": "mixes", "mixes": mixes, "chosen": best})
    return Variant("fastest-passing", chosen), rows


def compare_variants(
    requests: Sequence[ModerationRequest], variant: Variant, policy: Policy = DEFAULT_POLICY
) -> dict[str, Any]:
    """Whole-pipeline decisions of FP32 vs `variant` on the evaluation requests."""
    with Moderator("sequential", FP32, policy, threads=1) as ref:
        reference = run_batched(ref, requests)
    with Moderator("sequential", variant, policy, threads=1) as cand:
        candidate = run_batched(cand, requests)
    return {
        "variant": variant.name,
        "precisions": {s: variant.precision(s) for s in STAGES},
        **agreement(reference, candidate),
        "goal": AGREEMENT_GOAL,
    }


def latency_rows(
    moderator: Moderator, requests: Sequence[ModerationRequest], repeats: int = 1
) -> list[dict[str, Any]]:
    """Each request moderated one at a time (closed loop, no queueing): per request kind,
    the per-stage and end-to-end percentiles (missing where too few samples)."""
    by_kind: dict[str, dict[str, list[int]]] = {}
    moderator.moderate(requests[0])  # warm-up
    for _ in range(repeats):
        for request in requests:
            decision = moderator.moderate(request)
            bucket = by_kind.setdefault(request.kind, {})
            for part, ms in decision["latency_ms"].items():
                bucket.setdefault(part, []).append(int(ms * 1e6))
    rows = []
    for kind, parts in by_kind.items():
        for part, ns in parts.items():
            s = summarize(ns, 1, resamples=200)
            rows.append(
                {
                    "mode": moderator.mode,
                    "variant": moderator.variant.name,
                    "threads_per_model": moderator.threads,
                    "request": kind,
                    "part": part,
                    "n": s.count,
                    "p50_ms": s.percentiles[50],
                    "p90_ms": s.percentiles[90],
                    "p99_ms": s.percentiles[99],
                    "missing": "; ".join(f"{k}: {v}" for k, v in s.missing.items()) or None,
                }
            )
    return rows


def build(
    mode: str, variant: Variant = FP32, policy: Policy = DEFAULT_POLICY, threads: int | None = None
) -> Moderator:
    """A moderator (stages loaded) for the notebook and the benchmark."""
    return Moderator(mode, variant, policy, threads)


# Evaluation and timing sizes per profile (texts, generated images, latency repeats).
SIZES: dict[str, dict[str, int]] = {
    "ci": {"n_texts": 30, "n_generated": 6, "repeats": 1},
    "quick": {"n_texts": 120, "n_generated": 24, "repeats": 2},
    "full": {"n_texts": 400, "n_generated": 60, "repeats": 5},
}


def sizes(profile: str) -> dict[str, int]:
    get_profile(profile)
    return SIZES[profile]


def profanity_parity(texts: Sequence[str], policy: Policy = DEFAULT_POLICY) -> dict[str, Any]:
    """ONNX vs scikit-learn on `texts` plus a few non-ASCII probes (accents, German, CJK)."""
    probes = [
        "Café naïve résumé shit",
        "Ich hasse dich, du Arschloch",
        "日本語 fuck",
        "¡Qué idiota!",
    ]
    texts = list(texts) + probes
    return parity(texts, OnnxProfanity().scores(texts), policy.profanity_threshold)
