"""The moderator: runs a request's stages sequentially (as the guide) or concurrently
(every model behind its own dynamic batcher, the text and image branches in parallel),
then makes the decision under the policy.

A stage that raises does not stop the others: its name and error go into
``failed_stages`` and the decision can then never be ``safe`` (an unchecked input is not
a safe one). Each decision carries the policy (version, digest, rules), the artifacts
the stages ran on, and each stage's latency.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench.batching import BatcherConfig, DynamicBatcher
from workbench.errors import UserError
from workbench.moderation.policy import DEFAULT_POLICY, Policy
from workbench.moderation.request import ModerationRequest
from workbench.moderation.stages import (
    FP32,
    IMAGE_STAGES,
    STAGES,
    TEXT_STAGES,
    Stage,
    Variant,
    build_stages,
    cores,
    redact,
)

MODES = ("sequential", "concurrent")
Findings = dict[str, Any]


def _reason(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _object_batch(stage: Stage):
    """A batcher `run_batch` over object arrays: items in, findings out, row for row."""

    def run(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        found = stage.run(list(feed["item"]))
        out = np.empty(len(found), dtype=object)
        out[:] = found
        return [out]

    return run


class Moderator:
    """Loaded stages + an execution mode. `threads` intra-op threads per model (default:
    all cores when sequential, 1 when concurrent so the models share the cores)."""

    def __init__(
        self,
        mode: str = "sequential",
        variant: Variant = FP32,
        policy: Policy = DEFAULT_POLICY,
        threads: int | None = None,
        batcher: BatcherConfig | None = None,
        stages: dict[str, Stage] | None = None,
    ) -> None:
        if mode not in MODES:
            raise UserError(f"unknown moderation mode {mode!r}: choose one of {', '.join(MODES)}")
        self.mode, self.variant, self.policy = mode, variant, policy
        self.threads = threads or (cores() if mode == "sequential" else 1)
        self.stages = stages if stages is not None else build_stages(variant, self.threads)
        self.batcher_config = batcher or BatcherConfig(max_batch_size=8, max_queue_delay_ms=2.0)
        self.batchers: dict[str, DynamicBatcher] = {}
        if mode == "concurrent":
            self.batchers = {
                name: DynamicBatcher(_object_batch(stage), self.batcher_config)
                for name, stage in self.stages.items()
            }

    def close(self) -> None:
        for batcher in self.batchers.values():
            batcher.close()

    def __enter__(self) -> Moderator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "variant": self.variant.name,
            "threads_per_model": self.threads,
            "stages": [s.describe() for s in self.stages.values()],
            "batcher": self.batcher_config.to_json() if self.batchers else None,
        }

    # ---- running --------------------------------------------------------------------
    def _wanted(self, request: ModerationRequest) -> list[tuple[str, Any]]:
        out = []
        if request.text is not None:
            out += [(s, request.text) for s in TEXT_STAGES if s in self.stages]
        if request.image is not None:
            out += [(s, request.image) for s in IMAGE_STAGES if s in self.stages]
        return out

    def _run_sequential(self, wanted: list[tuple[str, Any]]) -> dict[str, tuple[Any, float]]:
        results = {}
        for name, item in wanted:
            began = time.perf_counter()
            try:
                found: Any = self.stages[name].run([item])[0]
            except Exception as exc:  # a stage failing is reported, never fatal
                found = exc
            results[name] = (found, (time.perf_counter() - began) * 1e3)
        return results

    def _run_concurrent(self, wanted: list[tuple[str, Any]]) -> dict[str, tuple[Any, float]]:
        began = time.perf_counter()
        pending = {}
        for name, item in wanted:
            feed = {"item": np.empty(1, dtype=object)}
            feed["item"][0] = item
            pending[name] = self.batchers[name].submit(feed)
        results = {}
        for name, handle in pending.items():
            try:
                found: Any = handle.result(timeout=60.0)[0][0]
            except Exception as exc:
                found = exc
            ended = handle.finished or time.perf_counter()
            results[name] = (found, (ended - began) * 1e3)
        return results

    def moderate(self, request: ModerationRequest) -> dict[str, Any]:
        """One request -> its decision (see `decide`), with per-stage and total latency."""
        began = time.perf_counter()
        wanted = self._wanted(request)
        runner = self._run_sequential if self.mode == "sequential" else self._run_concurrent
        results = runner(wanted)
        total = (time.perf_counter() - began) * 1e3
        findings = {k: v[0] for k, v in results.items()}
        decision = decide(request, findings, self.policy)
        decision["latency_ms"] = {**{k: v[1] for k, v in results.items()}, "total": total}
        decision["mode"], decision["variant"] = self.mode, self.variant.name
        return decision

    def moderate_batch(self, requests: Sequence[ModerationRequest]) -> list[dict[str, Any]]:
        """Many requests at once: each stage runs once over all the items that need it (a
        failing stage fails only its findings). Latency is the batch's, per stage."""
        began = time.perf_counter()
        per_stage: dict[str, list[int]] = {s: [] for s in STAGES}
        for i, request in enumerate(requests):
            for name, _ in self._wanted(request):
                per_stage[name].append(i)
        findings: list[dict[str, Any]] = [{} for _ in requests]
        stage_ms: dict[str, float] = {}
        for name, indices in per_stage.items():
            if not indices:
                continue
            items = [
                requests[i].text if name in TEXT_STAGES else requests[i].image for i in indices
            ]
            t0 = time.perf_counter()
            try:
                found: list[Any] = self.stages[name].run(items)
            except Exception as exc:
                found = [exc] * len(indices)
            stage_ms[name] = (time.perf_counter() - t0) * 1e3
            for i, f in zip(indices, found, strict=True):
                findings[i][name] = f
        total = (time.perf_counter() - began) * 1e3
        out = []
        for request, found in zip(requests, findings, strict=True):
            decision = decide(request, found, self.policy)
            decision["latency_ms"] = {**stage_ms, "total": total, "batch_size": len(requests)}
            decision["mode"], decision["variant"] = "batched", self.variant.name
            out.append(decision)
        return out


def decide(request: ModerationRequest, findings: Findings, policy: Policy) -> dict[str, Any]:
    """Findings (a dict per stage, or the exception it raised) -> the decision."""
    violations: list[str] = []
    failed = [
        {"stage": name, "error": _reason(f)}
        for name, f in findings.items()
        if isinstance(f, BaseException)
    ]
    ok = {name: f for name, f in findings.items() if not isinstance(f, BaseException)}
    scores: dict[str, float] = {}
    if "profanity" in ok:
        scores["profanity"] = ok["profanity"]["score"]
        if scores["profanity"] > policy.profanity_threshold:
            violations.append("offensive_language")
    sentiment = ok.get("sentiment")
    if sentiment is not None:
        scores["negative_sentiment"] = sentiment["probabilities"]["negative"]
        threshold = policy.negative_threshold
        if threshold is not None and scores["negative_sentiment"] > threshold:
            violations.append("negative_sentiment")
    sensitive = []
    if "sensitive" in ok:
        for e in ok["sensitive"]["entities"]:
            finding = policy.sensitive_entities.get(e["type"])
            if finding:
                sensitive.append({**e, "finding": finding})
        if sensitive and policy.sensitive_is_violation:
            violations.append("sensitive_information")
    if "nsfw" in ok:
        scores["nsfw"] = ok["nsfw"]["score"]
        if scores["nsfw"] > policy.nsfw_threshold:
            violations.append("nsfw_content")
    objects = []
    if "objects" in ok:
        for det in ok["objects"]["detections"]:
            name = policy.object_violations.get(det["class"])
            if name and det["score"] >= policy.detection_threshold:
                objects.append({**det, "violation": name})
                if f"detected_{name}" not in violations:
                    violations.append(f"detected_{name}")
    decision: dict[str, Any] = {
        "safe": not violations and not failed,
        "status": "failed" if failed else "complete",
        "request": request.kind,
        "violations": violations,
        "failed_stages": failed,
        "scores": scores,
        "sensitive_info": sensitive,
        "objects": objects,
        "sentiment": sentiment,
        "policy": policy.summary(),
    }
    if request.image_note:
        decision["image_note"] = request.image_note
    if policy.redact and request.text is not None and "sensitive" in ok:
        decision["redacted_text"] = redact(
            request.text, [(e["start"], e["end"], e["finding"]) for e in sensitive]
        )
    return decision
