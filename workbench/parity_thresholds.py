"""The parity verdict: thresholds per precision applied to an artifact's stored errors.

Kept apart from the measuring code (`workbench.parity`) on purpose: the artifact cache key
covers the code that makes an artifact and its numbers, not this module, and verdicts
are recomputed from the stored numbers whenever they are read (`current_verdict`), so
changing a threshold re-judges every cached artifact without exporting it again. The
thresholds in a table: docs/method.md §10.
"""

from __future__ import annotations

from typing import Any

# Relative-to-output-scale error allowed per precision (max_abs_error / max |reference|).
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 3e-2, "int8-dynamic": 1e-1, "int8-static": 1e-1}
# Task metric (e.g. argmax agreement) required per precision.
MIN_AGREEMENT = {
    "fp32": 0.999,
    "fp16": 0.99,
    "bf16": 0.98,
    "int8-dynamic": 0.95,
    "int8-static": 0.95,
}


def verdict(precision: str, errors: dict[str, float], agreement: float | None) -> bool:
    """Pass when the scaled error and the task metric are within the precision's limits."""
    scaled = errors["max_abs_error"] / max(errors.get("output_scale", 1.0), 1e-12)
    ok = scaled <= TOLERANCE.get(precision, TOLERANCE["fp32"])
    if agreement is not None:
        ok = ok and agreement >= MIN_AGREEMENT.get(precision, MIN_AGREEMENT["fp32"])
    return bool(ok)


def current_verdict(manifest: dict[str, Any]) -> bool | None:
    """The verdict under today's thresholds for an artifact's manifest (its stored
    `parity_*` numbers and precision); None when it has no parity numbers."""
    error = manifest.get("parity_max_abs_error")
    if error is None:
        return manifest.get("parity_pass")
    errors = {"max_abs_error": error, "output_scale": manifest.get("parity_output_scale") or 1.0}
    if manifest.get("accuracy_gate_pass") is False:  # over a user model's accuracy budget
        return False
    return verdict(manifest.get("precision", "fp32"), errors, manifest.get("parity_metric_value"))
