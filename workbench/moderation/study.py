"""What the notebook and the benchmark call: a fixed evaluation set of real texts and real
and generated images, decision agreement between pipeline variants, the fastest passing
variant, and per-stage / end-to-end latency percentiles per request kind.

Moderation is a pipeline of five models, not one model with a source to export, so it
is not a registry Task (Task needs build_torch/build_keras, one input signature and one
parity); it is this module plus `pipeline.Moderator`, each stage loading its task's own
artifacts from the export cache.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench.harness.stats import summarize
from workbench.moderation.pipeline import Moderator
from workbench.moderation.policy import DEFAULT_POLICY, Policy
from workbench.moderation.request import ModerationRequest
from workbench.moderation.stages import (
    FP32,
    STAGE_CLASSES,
    STAGES,
    TEXT_STAGES,
    Variant,
    build_stages,
)

AGREEMENT_GOAL = 0.99


def eval_texts(n: int) -> list[str]:
    """Real texts, half held-out clothing reviews, half held-out tweets (fixed order)."""
    from workbench.nlp.data import ner_sentences, reviews

    reviews_ = list(reviews()[1].texts)
    tweets = [s.text for s in ner_sentences()[1]]
    half = n // 2
    return reviews_[:half] + tweets[: n - half]


def eval_images(n_generated: int) -> list[tuple[str, np.ndarray]]:
    """Every bundled photo (scikit-image, scikit-learn), generated detection scenes (shapes
    on photo and terrain backgrounds; crosses are what the default policy forbids) and
    flat, noise and gradient images."""
    from workbench.vision.photos import photo, photo_names
    from workbench.vision.scenes import make_scenes

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


def stage_timing(stage: Any, items: Sequence[Any], repeats: int = 1) -> float:
    """Median ms of one item through `stage` (batch of 1), over `items` x `repeats`."""
    stage.run([items[0]])  # warm-up
    times = []
    for _ in range(repeats):
        for item in items:
            t0 = time.perf_counter_ns()
            stage.run([item])
            times.append(time.perf_counter_ns() - t0)
    return float(np.median(times)) / 1e6


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


def fastest_passing(
    requests: Sequence[ModerationRequest],
    policy: Policy = DEFAULT_POLICY,
    timing_items: int = 8,
    threads: int = 1,
) -> tuple[Variant, list[dict[str, Any]]]:
    """Per stage: FP32 vs INT8 agreement on the evaluation items -- on what the policy's
    decision uses (which passes at >= 99 %) and on the whole finding (reported) -- and
    median latency at batch 1; INT8 is chosen where it passes and is faster."""
    rows, chosen = [], {}
    for name, cls in STAGE_CLASSES.items():
        items = _stage_items(name, requests)
        fp32 = cls("fp32", threads)
        ref_found = _run_chunks(fp32, items)
        ref = [_stage_key(name, f, policy) for f in ref_found]
        row: dict[str, Any] = {
            "stage": name,
            "items": len(items),
            "fp32_ms": stage_timing(fp32, items[:timing_items]),
        }
        if name == "profanity":
            rows.append(
                {
                    **row,
                    "int8": "none: TF-IDF + linear model, nothing for INT8 to speed up",
                    "chosen": "fp32",
                }
            )
            continue
        int8 = cls("int8", threads)
        cand_found = _run_chunks(int8, items)
        cand = [_stage_key(name, f, policy) for f in cand_found]
        agree = float(np.mean([a == b for a, b in zip(ref, cand, strict=True)]))
        full = float(
            np.mean(
                [
                    _stage_key(name, a, policy, True) == _stage_key(name, b, policy, True)
                    for a, b in zip(ref_found, cand_found, strict=True)
                ]
            )
        )
        int8_ms = stage_timing(int8, items[:timing_items])
        passes = agree >= AGREEMENT_GOAL
        pick = "int8" if passes and int8_ms < row["fp32_ms"] else "fp32"
        chosen[name] = pick
        rows.append(
            {
                **row,
                "int8_ms": int8_ms,
                "int8_agreement": agree,
                "int8_full_agreement": full,
                "int8_passes": passes,
                "chosen": pick,
                "int8_artifact": str(int8.path),
            }
        )
    return Variant("fastest-passing", chosen), rows


def _run_chunks(stage: Any, items: Sequence[Any], size: int = 8) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(0, len(items), size):
        out += stage.run(items[i : i + size])
    return out


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
    moderator = Moderator(mode, variant, policy, threads)
    return moderator


__all__ = [
    "build",
    "build_stages",
    "compare_variants",
    "eval_requests",
    "fastest_passing",
    "latency_rows",
]
