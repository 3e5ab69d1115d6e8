"""The parity verdict: which rule judges an artifact, and that rule applied to its stored numbers.

Two rules, chosen per precision (and per task where a task needs its own floor):

- `tolerance` (fp32, fp16, bf16: the artifact should compute the same function): the worst
  output element, relative to the output scale, within `TOLERANCE`, and the task's decision
  agreement with the source (top-1 labels, BIO tags, boxes at IoU 0.5, top-10 overlap) at
  least `MIN_AGREEMENT`.
- `quality` (INT8: the artifact is allowed to compute a different function if the user loses
  nothing they care about): the task's own quality on true labels (accuracy, entity F1,
  mAP, AUC, recall@10) at most `max_drop_points` below the source's (default
  `DEFAULT_MAX_DROP_POINTS`), and decision agreement at least the precision's floor. One logit
  that moved does not fail an artifact whose decisions and accuracy held. Without true labels
  an INT8 artifact falls back to `tolerance`, and says so.

Kept apart from the measuring code (`workbench.parity`) on purpose: the artifact cache key
covers the code that makes an artifact and its numbers, not this module, and verdicts
are recomputed from the stored numbers whenever they are read (`current_verdict`,
`judge_row`), so changing a threshold or the budget re-judges every cached artifact and
stored row without exporting it again. The thresholds in a table: docs/method.md §10.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Relative-to-output-scale error allowed per precision (max_abs_error / max |reference|).
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 3e-2, "int8-dynamic": 1e-1, "int8-static": 1e-1}
# Decision agreement (top-1 labels, tags, boxes, top-10 overlap) required per precision.
MIN_AGREEMENT = {
    "fp32": 0.999,
    "fp16": 0.99,
    "bf16": 0.98,
    "int8-dynamic": 0.95,
    "int8-static": 0.95,
}
# Precisions judged by the task's quality on true labels instead of numeric equivalence.
QUALITY_RULED = frozenset({"int8-dynamic", "int8-static"})
# A task's own agreement floor where the precision's default does not fit what its metric
# measures: {task: {precision: floor}}. None yet: every task's floor is its precision's.
TASK_MIN_AGREEMENT: dict[str, dict[str, float]] = {}
# Points of quality an INT8 artifact may lose against its source (1 point = 0.01 of a score
# in [0, 1]: accuracy, F1, mAP, AUC, recall).
DEFAULT_MAX_DROP_POINTS = 1.0

TOLERANCE_RULE = "tolerance"
QUALITY_RULE = "quality"


@dataclass(frozen=True)
class Verdict:
    """A pass or fail, the rule that decided it, and the numbers behind it in words."""

    passed: bool
    rule: str  # TOLERANCE_RULE or QUALITY_RULE
    reason: str


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def judge_quality(
    reference: float,
    candidate: float,
    higher_is_better: bool = True,
    max_drop_points: float = DEFAULT_MAX_DROP_POINTS,
) -> Verdict:
    """Pass when `candidate`'s quality is at most `max_drop_points` worse than `reference`'s.

    Scores are fractions in [0, 1] (accuracy, F1, mAP, AUC); a point is 0.01. A candidate
    better than its reference always passes. For a lower-is-better score (an error rate)
    give `higher_is_better=False`. Used for task artifacts and for a user's own model."""
    if max_drop_points < 0:
        raise ValueError(f"max_drop_points must be >= 0, got {max_drop_points}")
    drop = 100.0 * ((reference - candidate) if higher_is_better else (candidate - reference))
    # a float subtraction of two scores must not fail an exactly-at-budget drop
    passed = drop <= max_drop_points + 1e-9
    reason = (
        f"quality {candidate:.4g} vs {reference:.4g} at the source: "
        f"{'drop' if drop > 0 else 'gain' if drop < 0 else 'change'} of {abs(drop):.2f} points "
        f"({'within' if passed else 'over'} the {max_drop_points:g}-point budget)"
    )
    return Verdict(passed, QUALITY_RULE, reason)


def min_agreement(precision: str, task: str | None = None) -> float:
    """The decision-agreement floor of `precision` (a task's own where it sets one)."""
    own = TASK_MIN_AGREEMENT.get(task or "", {})
    return own.get(precision, MIN_AGREEMENT.get(precision, MIN_AGREEMENT["fp32"]))


def judge(
    precision: str,
    errors: Mapping[str, float],
    agreement: float | None,
    *,
    task: str | None = None,
    quality_source: float | None = None,
    quality_artifact: float | None = None,
    max_drop_points: float | None = None,
) -> Verdict:
    """The verdict of one artifact from its measured numbers (see the module doc)."""
    budget = DEFAULT_MAX_DROP_POINTS if max_drop_points is None else max_drop_points
    floor = min_agreement(precision, task)
    parts: list[str] = []
    ok = True
    if precision in QUALITY_RULED and not (_missing(quality_source) or _missing(quality_artifact)):
        quality = judge_quality(float(quality_source), float(quality_artifact), True, budget)  # type: ignore[arg-type]
        ok, rule = quality.passed, QUALITY_RULE
        parts.append(quality.reason)
    else:
        rule = TOLERANCE_RULE
        scaled = errors["max_abs_error"] / max(errors.get("output_scale") or 1.0, 1e-12)
        limit = TOLERANCE.get(precision, TOLERANCE["fp32"])
        ok = scaled <= limit
        parts.append(
            f"max error {scaled:.3g} of the output scale ({'<=' if ok else '>'} {limit:g})"
        )
        if precision in QUALITY_RULED:
            parts.append("no true labels to judge quality")
    if not _missing(agreement):
        agrees = float(agreement) >= floor  # type: ignore[arg-type]
        ok = ok and agrees
        parts.append(f"agreement {float(agreement):.4g} ({'>=' if agrees else '<'} {floor:g})")  # type: ignore[arg-type]
    return Verdict(bool(ok), rule, "; ".join(parts))


def verdict(precision: str, errors: dict[str, float], agreement: float | None) -> bool:
    """The `tolerance` rule alone (no quality numbers): pass when the scaled error and the
    task metric are within the precision's limits."""
    return judge(precision, errors, agreement).passed


def quality_pair(numbers: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """(source, artifact) quality from a manifest or row: accuracy on true labels, else the
    task's own labelled figure (recall@10 of a retrieval tower)."""
    for source, artifact in (
        ("accuracy_source", "accuracy_artifact"),
        ("accuracy_source", "accuracy"),
        ("parity_recall_at_10_source", "parity_recall_at_10_artifact"),
    ):
        a, b = numbers.get(source), numbers.get(artifact)
        if not _missing(a) and not _missing(b):
            return float(a), float(b)
    return None, None


def current_judgement(
    manifest: Mapping[str, Any], max_drop_points: float | None = None
) -> Verdict | None:
    """The verdict under today's rules for an artifact's manifest or a result row (its
    stored `parity_*` and accuracy numbers and precision); None when it has no parity
    numbers to judge."""
    error = manifest.get("parity_max_abs_error")
    if _missing(error):
        return None
    scale = manifest.get("parity_output_scale")
    if _missing(scale):  # a row stored before rows carried the scale: keep its verdict
        return None
    if manifest.get("accuracy_gate_pass") is False:  # over a user model's own budget
        return Verdict(
            False,
            QUALITY_RULE,
            f"accuracy drop {manifest.get('accuracy_drop')} points over the model's budget",
        )
    errors = {"max_abs_error": float(error), "output_scale": float(scale)}
    source, artifact = quality_pair(manifest)
    return judge(
        manifest.get("precision") or "fp32",
        errors,
        manifest.get("parity_metric_value"),
        task=manifest.get("task"),
        quality_source=source,
        quality_artifact=artifact,
        max_drop_points=max_drop_points,
    )


def current_verdict(
    manifest: Mapping[str, Any], max_drop_points: float | None = None
) -> bool | None:
    """The verdict under today's rules for an artifact's manifest; the stored `parity_pass`
    when it has no parity numbers."""
    judged = current_judgement(manifest, max_drop_points)
    return manifest.get("parity_pass") if judged is None else judged.passed
