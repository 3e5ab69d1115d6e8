"""Accuracy-aware NNCF INT8 of an OpenVINO model: `nncf.quantize_with_accuracy_control`
held to the task's quality budget and decision-agreement floor, as the verdict holds them.

NNCF does the search itself: it quantizes the model, validates the FP32 and the INT8 model
with `validation_fn` on the labelled slice, and while the drop exceeds `max_drop` (absolute,
`max_accuracy_drop` / 100) it reverts the group of quantizers (FakeQuantize ops and the
operations they feed) that ranks worst to float, one group per iteration, at most
`max_num_iterations` (`search_steps`) times (with SmoothQuant, the activation quantizers
only: `int8_search_restore`, note at `ENGINE`). Ranking: each group reverted alone, the
normalized MSE of the model's outputs against the FP32 model's on the `RANK_ITEMS` items
where the INT8 outputs differ most (`Validation` says why it scores ranking this way).

Afterwards the result is judged here the way the verdict judges it: the task's quality on
the slice within budget of the FP32 model's and the task's decision agreement with it
(`task.parity`'s metric) at least the precision's floor. NNCF checks quality only and
returns its last iteration even when that misses; so when the result misses either, or
NNCF reverted more than `max_excluded_fraction` of the quantized operations, the plain
INT8 model (NNCF's own, saved through `intermediate_model_dir`) is kept, as the ONNX
Runtime search keeps its plain model. What was reverted comes from the two graphs: the
operations fed by a FakeQuantize in the plain model and not in the result.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from exporters.int8_search import RANK_ITEMS, RUN_CHUNK, AccuracySearch, Budget
from workbench.runtimes.base import feed_keys
from workbench.runtimes.openvino_runtime import QUANTIZED_OPS

ENGINE = "nncf.quantize_with_accuracy_control"
# NNCF's default revert (RestoreMode.ACTIVATIONS_AND_WEIGHTS) puts back the FP32 model's
# weights, but SmoothQuant divided the activations feeding them by per-channel factors that
# it folded into those weights, and its Multiply stays: on NER's MiniLM, layer 0's FFN
# down-projection reverted that way took entity F1 (against the FP32 tags) from 3.9 to 18.2
# points below FP32. With SmoothQuant the pass reverts activations only
# (RestoreMode.ONLY_ACTIVATIONS: the operation keeps its smoothed int8 weights).
Quality = Callable[[list[np.ndarray], Any], float]
Agreement = Callable[[list[np.ndarray], list[np.ndarray]], float | None]


def quantized_operations(model: Any) -> list[str]:
    """Friendly names of the operations that take an input from a FakeQuantize (through a
    Convert where weights are stored compressed): what runs in INT8, in graph order."""
    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() in QUANTIZED_OPS or op.get_type_name() in ("Constant", "Convert"):
            continue
        for port in op.inputs():
            source = port.get_source_output().get_node()
            if source.get_type_name() == "Convert":
                source = source.input_value(0).get_node()
            if source.get_type_name() in QUANTIZED_OPS:
                names.append(op.get_friendly_name())
                break
    return names


def fake_quantize_count(model: Any) -> int:
    return sum(op.get_type_name() in QUANTIZED_OPS for op in model.get_ops())


def validation_items(
    feed: Mapping[str, np.ndarray], input_names: list[str]
) -> list[tuple[int, dict[str, np.ndarray]]]:
    """The labelled slice as NNCF validation items: (index, one item's inputs keyed by the
    model's input names, batch 1); the index ties outputs back to the slice's labels."""
    keys = feed_keys(input_names, list(feed))
    count = len(next(iter(feed.values())))
    return [
        (
            i,
            {
                name: np.asarray(feed[key][i : i + 1])
                for name, key in zip(input_names, keys, strict=True)
            },
        )
        for i in range(count)
    ]


def run_items(compiled: Any, items: Sequence[dict[str, np.ndarray]]) -> list[np.ndarray]:
    """`compiled` (an ov.CompiledModel) on the items, `RUN_CHUNK` at a time where the batch
    axis is dynamic (else one item at a time); outputs concatenated in the model's order."""
    first = compiled.inputs[0].get_partial_shape()
    dynamic = first.rank.is_static and first.rank.get_length() > 0 and first[0].is_dynamic
    size = RUN_CHUNK if dynamic else 1
    parts: list[list[np.ndarray]] = []
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        feed = {name: np.concatenate([item[name] for item in chunk]) for name in chunk[0]}
        result = compiled(feed)
        parts.append([np.asarray(result[port]) for port in compiled.outputs])
    return [np.concatenate([p[i] for p in parts], axis=0) for i in range(len(parts[0]))]


def nmse(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> float:
    """Normalized mean squared error of one item's outputs, averaged over outputs (NNCF's
    `normalized_mse`, guarded against an all-zero reference)."""
    errors = []
    for ref, got in zip(reference, candidate, strict=True):
        ref64, diff = np.asarray(ref, np.float64).ravel(), np.asarray(got, np.float64).ravel()
        diff = diff - ref64
        errors.append(float(diff @ diff) / max(float(ref64 @ ref64), 1e-12))
    return sum(errors) / len(errors)


@dataclass
class Validation:
    """NNCF's `validation_fn` (NNCF's metric mode: a score and one float per item).

    On the whole slice the score is the task's quality; each such validation is recorded:
    the first is the FP32 model's (its outputs become the reference), then the plain INT8
    model's and one per NNCF iteration. Per item, and as the score of a part of the slice
    (NNCF ranks each group of quantizers by validating the model with that group reverted
    on the `RANK_ITEMS` items whose per-item values fell most), it is minus the normalized
    MSE of the outputs against the FP32 model's: a task metric such as box F1 or AUC has
    no per-item value, and NNCF 3.4's own outputs mode (per-item outputs instead of
    floats) sorts that error ascending and reverts the group whose reversion leaves the
    largest error first (on the planted-outlier MLP of tests/test_nncf_accuracy.py it
    reverted the broken layer last)."""

    labels: Any
    count: int
    quality: Quality
    agreement: Agreement | None
    reverted: Callable[[], int]
    reference: list[np.ndarray] | None = None
    reference_quality: float | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)

    def __call__(
        self, compiled: Any, data: Iterable[tuple[int, dict[str, np.ndarray]]]
    ) -> tuple[float, list[float]]:
        pairs = list(data)
        indices, items = [i for i, _ in pairs], [item for _, item in pairs]
        outputs = run_items(compiled, items)
        whole = indices == list(range(self.count))
        if self.reference is None:
            if not whole:  # NNCF's probe of the return type, before any validation
                return 0.0, [0.0] * len(items)
            self.reference = outputs
        per_item = [
            -nmse([ref[i : i + 1] for ref in self.reference], [out[j : j + 1] for out in outputs])
            for j, i in enumerate(indices)
        ]
        if not whole:
            return float(np.mean(per_item)), per_item
        score = float(self.quality(outputs, self.labels))
        if self.reference_quality is None:
            self.reference_quality = score
            return score, per_item
        step: dict[str, Any] = {"excluded": self.reverted(), "quality": round(score, 6)}
        if self.agreement is not None:
            agreed = self.agreement(self.reference, outputs)
            step["agreement"] = None if agreed is None else round(float(agreed), 6)
        self.steps.append(step)
        return score, per_item


class RevertLog(logging.Handler):
    """Counts the operations NNCF has reverted to float so far, from its log: "Reverted N
    operations ..." per iteration, and "Re-calculating ranking scores" after it undid the
    last iteration (its accuracy got worse). NNCF exposes no other running count."""

    REVERTED = re.compile(r"Reverted (\d+) operations")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.groups: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        found = self.REVERTED.search(message)
        if found:
            self.groups.append(int(found.group(1)))
        elif message.startswith("Re-calculating ranking scores") and self.groups:
            self.groups.pop()

    def count(self) -> int:
        return sum(self.groups)


def quantize_with_control(
    model: Any,
    calibration: Any,
    slice_: tuple[dict[str, np.ndarray], Any],
    quality: Quality,
    agreement: Agreement | None,
    min_agreement: float | None,
    config: AccuracySearch,
    quantize_kwargs: dict[str, Any],
    smooth_quant: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """The INT8 model to save and the manifest fields `int8_search*`, `int8_excluded_*`
    (module doc). `quantize_kwargs`: preset, model_type, ... as `nncf.quantize` takes them,
    `advanced_parameters` included. `smooth_quant`: the quantization applies SmoothQuant,
    so a reverted operation keeps its (smoothed) int8 weights (the note at `ENGINE`)."""
    # lazy: nncf, openvino
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import (
        AdvancedAccuracyRestorerParameters,
        RestoreMode,
    )
    from openvino._offline_transformations import compress_quantize_weights_transformation

    feed, labels = slice_
    names = [port.get_any_name() for port in model.inputs]
    items = validation_items(feed, names)
    log = RevertLog()
    validate = Validation(labels, len(items), quality, agreement, log.count)
    kwargs = dict(quantize_kwargs)
    advanced = kwargs.pop("advanced_parameters", None)
    nncf_log = logging.getLogger("nncf")
    nncf_log.addHandler(log)
    try:
        with tempfile.TemporaryDirectory(prefix="nncf-plain-") as tmp:
            result = nncf.quantize_with_accuracy_control(
                model,
                calibration,
                nncf.Dataset(items, lambda item: item[1]),
                validate,
                max_drop=config.max_accuracy_drop / 100.0,
                drop_type=nncf.DropType.ABSOLUTE,
                advanced_quantization_parameters=advanced,
                advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                    max_num_iterations=config.search_steps,
                    ranking_subset_size=min(RANK_ITEMS, len(items)),
                    num_ranking_workers=1,
                    intermediate_model_dir=tmp,
                    restore_mode=RestoreMode.ONLY_ACTIVATIONS
                    if smooth_quant
                    else RestoreMode.ACTIVATIONS_AND_WEIGHTS,
                ),
                **kwargs,
            )
            plain = ov.Core().read_model(str(Path(tmp) / "intermediate_model.xml"))
        # NNCF saves its plain model before folding the weights' FakeQuantize ops into
        # int8 constants, and folds them (this same OpenVINO transformation) only in the
        # model it returns: folded here too, the plain model is what nncf.quantize makes
        compress_quantize_weights_transformation(plain)
    finally:
        nncf_log.removeHandler(log)
    model, record = judge(plain, result, validate, config, min_agreement)
    mode = "activations only" if smooth_quant else "activations and weights"
    return model, {**record, "int8_search_restore": mode}


def judge(
    plain: Any,
    result: Any,
    validate: Validation,
    config: AccuracySearch,
    min_agreement: float | None,
) -> tuple[Any, dict[str, Any]]:
    """Hold NNCF's result to the budget and the agreement floor (module doc)."""
    assert validate.reference_quality is not None, "NNCF never validated the FP32 model"
    budget = Budget(validate.reference_quality, config.max_accuracy_drop, min_agreement)
    steps = validate.steps
    for step in steps:
        step["drop_points"] = round(budget.drop(step["quality"]), 4)
    candidates = quantized_operations(plain)
    left = set(quantized_operations(result))
    reverted = [name for name in candidates if name not in left]
    items = validate.count
    record: dict[str, Any] = {
        "int8_search_engine": ENGINE,
        "int8_search_items": items,
        "int8_search_budget_points": config.max_accuracy_drop,
        "int8_search_min_agreement": min_agreement,
        "int8_search_reference": round(budget.reference, 6),
        "int8_candidate_nodes": len(candidates),
        "int8_fake_quantize_plain": fake_quantize_count(plain),
        "int8_search_steps": steps,
        "int8_excluded_nodes": [],
        "int8_excluded_count": 0,
    }
    first, last = steps[0], steps[-1]
    best = max(steps[1:], key=lambda s: s["quality"], default=first)
    budget_text = f"budget {config.max_accuracy_drop:g} points" + (
        f", agreement >= {min_agreement:g}" if min_agreement is not None else ""
    )
    if not reverted:
        fits = budget.fits(first)
        return result, {
            **record,
            "int8_search": "not needed" if fits else "not met",
            "int8_search_reason": (
                f"plain INT8 within budget on {items} items ({budget.words(first)}; "
                f"{budget_text}): NNCF reverted nothing"
                if fits
                else f"plain INT8 misses the budget on {items} items ({budget.words(first)}; "
                f"{budget_text}) and NNCF reverted no operation to float (it checks quality "
                "only, and the quality is within its budget); the plain INT8 model is kept"
            ),
        }
    cap = max(1, int(config.max_excluded_fraction * len(candidates)))
    iterations = len(steps) - 1
    if budget.fits(last) and len(reverted) <= cap:
        return result, {
            **record,
            "int8_search": "met",
            "int8_excluded_nodes": reverted,
            "int8_excluded_count": len(reverted),
            "int8_search_reason": f"NNCF kept {len(reverted)} of {len(candidates)} quantized "
            f"operations in float after {iterations} iteration(s): {budget.words(last)} on "
            f"{items} items (plain INT8 {budget.words(first)}; {budget_text})",
        }
    why = (
        f"NNCF reverted {len(reverted)} of {len(candidates)} quantized operations, over the "
        f"{cap} allowed (max_excluded_fraction {config.max_excluded_fraction:g})"
        if len(reverted) > cap
        else f"no iteration within budget: the best of NNCF's {iterations} (at most "
        f"{config.search_steps}) got {budget.words(best)} with {best['excluded']} of "
        f"{len(candidates)} operations in float"
    )
    return plain, {
        **record,
        "int8_search": "not met",
        "int8_search_reason": f"{why} on {items} items ({budget_text}; plain INT8 "
        f"{budget.words(first)}); the plain INT8 model is kept",
    }
