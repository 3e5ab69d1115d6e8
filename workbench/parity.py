"""Compare an artifact's outputs with its source model's outputs.

The errors are always measured and recorded; thresholds per precision
(`workbench.parity_thresholds`) decide the pass/fail verdict, so a failing artifact still
shows how far off it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def output_errors(
    reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]
) -> dict[str, float]:
    """Max absolute error over all outputs, and max relative error where |reference| is
    not tiny (relative to the output's scale, so near-zero logits do not explode it)."""
    if len(reference) != len(candidate):
        raise ValueError(
            f"output count differs: reference {len(reference)}, candidate {len(candidate)}"
        )
    max_abs, max_rel, scale = 0.0, 0.0, 0.0
    for ref, cand in zip(reference, candidate, strict=True):
        ref = np.asarray(ref, dtype=np.float64)
        cand = np.asarray(cand, dtype=np.float64).reshape(ref.shape)
        diff = np.abs(ref - cand)
        max_abs = max(max_abs, float(diff.max(initial=0.0)))
        out_scale = float(np.abs(ref).max(initial=0.0))
        scale = max(scale, out_scale)
        denom = np.maximum(np.abs(ref), 1e-3 * max(out_scale, 1e-12))
        max_rel = max(max_rel, float((diff / denom).max(initial=0.0)))
    return {"max_abs_error": max_abs, "max_rel_error": max_rel, "output_scale": scale}


def argmax_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Fraction of rows whose arg-max class is the same."""
    ref = np.asarray(reference).reshape(len(reference), -1)
    cand = np.asarray(candidate).reshape(len(candidate), -1)
    return float(np.mean(ref.argmax(axis=1) == cand.argmax(axis=1)))
