"""Accuracy-aware INT8: when an ONNX Runtime INT8 artifact loses more of the task's quality
than the budget allows, keep its most sensitive nodes in float until it fits.

The budget is the `quality` parity rule's (`workbench.parity_thresholds`): the task's own
metric on true labels (accuracy, entity F1, box F1, AUC) at most `max_accuracy_drop`
points below the FP32 ONNX model the pass quantizes. The search, bounded in items and
steps so that a `ci` sweep pays seconds (`SEARCH_SIZES`):

1. quality of the FP32 model and of the plain INT8 model on a labelled slice (the first
   `search_items` of the task's held-out set); within budget: nothing to do;
2. sensitivity of each quantized node, in one run of each model on a few items: the
   noise it adds, i.e. the relative error power of its output against the FP32 model's
   minus the worst of its inputs' (the per-tensor comparison of ORT's
   `qdq_loss_debug`, restricted to the tensors around the candidates so that a
   detector's activations fit in memory; its SQNR helper gives the ratios);
3. greedy: keep the 1, 2, 4, ... most sensitive nodes in float (re-quantizing with ORT's
   own `nodes_to_exclude`) until the slice's quality fits, then bisect the count down
   with the steps left, never past `max_excluded_fraction` of the nodes (beyond that the
   "INT8" model is mostly FP32). Every step's count and quality are recorded.

The ranking is a proxy, measured once: on NER's MiniLM it put the node that alone costs
the budget (layer 0's FFN up-projection: 0.58 points lost with it alone in float, 2.57
with none) 6th to 9th behind the attention value projections, so the search kept 6 nodes
in float where 1 would have done. A leave-one-out ranking on the task metric would find
it, at one re-quantization and evaluation per node.

When the steps run out first, the plain INT8 artifact is kept and the manifest says, in
numbers, how far the best step got. Everything that shapes the result is a pass parameter
(in the artifact's cache key).

Why a hand-written ranking here: `nncf.quantize_with_accuracy_control` quantizes with
NNCF's own scheme (FakeQuantize ops) and can only revert what NNCF inserted, so it cannot
search ORT's QOperator (dynamic) or QDQ (static) graphs; for those ORT offers the tensor
comparison only, which step 2 uses. The OpenVINO INT8 pass (`openvino_int8_static`) does
use NNCF's function, with these same options and budget (`exporters.nncf_accuracy`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import UserError
from workbench.options import Options, option
from workbench.parity_thresholds import DEFAULT_MAX_DROP_POINTS
from workbench.runtimes.base import feed_keys

# (validation items, greedy steps) per profile: what a sweep passes the INT8 passes.
# Items are capped at the task's held-out parity set; "full" takes all of it.
SEARCH_SIZES: dict[str, tuple[int, int]] = {"ci": (64, 3), "quick": (200, 5), "full": (4096, 8)}
RANK_ITEMS = 8  # items the sensitivity ranking runs both models on
RUN_CHUNK = 16  # items per session run (bounds a detector's memory)


@dataclass(frozen=True)
class AccuracySearch(Options):
    """Parameters of the accuracy-aware INT8 passes: the ORT search (module doc) and NNCF's
    accuracy control (`exporters.nncf_accuracy`)."""

    accuracy_aware: bool = option(
        True,
        "when the INT8 model loses more than max_accuracy_drop points of the task's quality "
        "on true labels, keep its most sensitive nodes in float until it fits",
    )
    max_accuracy_drop: float = option(
        DEFAULT_MAX_DROP_POINTS, "the search's budget: points of quality below the FP32 model"
    )
    search_items: int = option(128, "labelled held-out items the search measures quality on")
    search_steps: int = option(5, "re-quantizations the search may try")
    # Keeping (nearly) every node in float "meets" any budget with an FP32 model in INT8
    # clothes (the 320-px detector fitted only with 239 of 239 nodes in float): past this
    # share the search gives up and says so.
    max_excluded_fraction: float = option(
        0.5, "the largest share of the quantized nodes the search may keep in float"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.max_accuracy_drop >= 0:
            raise UserError(f"max_accuracy_drop must be >= 0 points, got {self.max_accuracy_drop}")
        if not 0 < self.max_excluded_fraction <= 1:
            raise UserError(
                f"max_excluded_fraction must be in (0, 1], got {self.max_excluded_fraction}"
            )
        for name in ("search_items", "search_steps"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be a positive integer, got {getattr(self, name)}")


def search_params(profile: str | None, max_accuracy_drop: float) -> dict[str, Any]:
    """The search parameters a sweep of `profile` gives the INT8 passes."""
    items, steps = SEARCH_SIZES.get(profile or "full", SEARCH_SIZES["full"])
    return {"max_accuracy_drop": max_accuracy_drop, "search_items": items, "search_steps": steps}


# --------------------------------------------------------------------------- running


def _chunks(feed: Mapping[str, np.ndarray], size: int) -> Iterator[dict[str, np.ndarray]]:
    total = len(next(iter(feed.values())))
    for start in range(0, total, size):
        yield {k: np.ascontiguousarray(v[start : start + size]) for k, v in feed.items()}


def _session(path: Path | bytes) -> Any:
    # lazy: onnxruntime
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(
        path if isinstance(path, bytes) else str(path), options, providers=["CPUExecutionProvider"]
    )


def _model_feed(session: Any, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = [i.name for i in session.get_inputs()]
    return {name: feed[key] for name, key in zip(names, feed_keys(names, list(feed)), strict=True)}


def outputs(path: Path, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The model's outputs on the whole feed in one call, as the parity check runs it
    (`run_in_batches`): dynamic INT8 scales each activation tensor over the whole call, so
    its quality depends on the batch it runs in (NER, 400 tweets: entity F1 0.482 run 16 at
    a time, 0.460 in one call) and the search must see what the verdict sees. A fixed batch
    axis runs chunk by chunk."""
    session = _session(path)
    fixed = session.get_inputs()[0].shape[0] if session.get_inputs()[0].shape else None
    size = fixed if isinstance(fixed, int) and fixed > 0 else len(next(iter(feed.values())))
    parts = [session.run(None, _model_feed(session, c)) for c in _chunks(feed, size)]
    return [np.concatenate([p[i] for p in parts], axis=0) for i in range(len(parts[0]))]


# --------------------------------------------------------------------------- candidates


def quantized_nodes(fp32: Any, int8: Any) -> list[str]:
    """Names of the FP32 graph's nodes the quantizer made compute on 8-bit data, in graph
    order: a node the dynamic quantizer replaced (its name is gone, its output now comes
    from an integer op chain) or a QDQ node fed by a DequantizeLinear."""
    kept = {node.name: node for node in int8.graph.node}
    dq_out = {o for n in int8.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    names = []
    for node in fp32.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        same = kept.get(node.name)
        if same is None or same.op_type != node.op_type:
            names.append(node.name)
        elif any(i in dq_out for i in same.input):
            names.append(node.name)
    return names


def _with_outputs(model: Any, tensors: Sequence[str]) -> bytes:
    """`model` serialized with `tensors` as extra graph outputs (float32)."""
    # lazy: onnx
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    present = {o.name for o in copy.graph.output}
    for name in tensors:
        if name not in present:
            copy.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
    return copy.SerializeToString()


def _float_tensors(model: Any) -> set[str]:
    # lazy: onnx
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    graph = inferred.graph
    return {
        v.name
        for v in (*graph.value_info, *graph.input, *graph.output)
        if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    }


def sensitivities(
    fp32: Any, int8: Any, candidates: Sequence[str], feed: Mapping[str, np.ndarray]
) -> dict[str, float]:
    """Noise each candidate node adds, from one run of each model on `feed`: its output's
    relative error power against the FP32 model minus the worst of its float inputs'
    (error power = 10^(-SQNR/10), SQNR as ORT's qdq_loss_debug computes it). Nodes whose
    tensors the INT8 graph does not expose score by their output alone."""
    # lazy: onnxruntime
    from onnxruntime.quantization.qdq_loss_debug import (
        compute_signal_to_quantization_noice_ratio as sqnr,
    )

    by_name = {n.name: n for n in fp32.graph.node}
    floats = _float_tensors(fp32)
    int8_tensors = {o for n in int8.graph.node for o in n.output} | {
        i.name for i in int8.graph.input
    }
    wanted: dict[str, tuple[list[str], str]] = {}
    for name in candidates:
        node = by_name[name]
        out = node.output[0]
        if out not in floats or out not in int8_tensors:
            continue
        ins = [i for i in node.input if i in floats and i in int8_tensors]
        wanted[name] = (ins, out)
    tensors = sorted({t for ins, out in wanted.values() for t in (*ins, out)})
    runs = []
    for model in (fp32, int8):
        session = _session(_with_outputs(model, tensors))
        got: dict[str, list[np.ndarray]] = {t: [] for t in tensors}
        for chunk in _chunks(feed, RUN_CHUNK):
            for t, value in zip(
                tensors, session.run(tensors, _model_feed(session, chunk)), strict=True
            ):
                got[t].append(np.asarray(value, dtype=np.float32))
        runs.append(got)

    def power(t: str) -> float:
        ref, cand = runs[0][t], runs[1][t]
        if sum(np.abs(r).sum() for r in ref) == 0:
            return 0.0
        return 10 ** (-sqnr(ref, cand) / 10)

    noise = {t: power(t) for t in tensors}
    return {
        name: max(noise[out] - max((noise[i] for i in ins), default=0.0), 0.0)
        for name, (ins, out) in wanted.items()
    } | {name: 0.0 for name in candidates if name not in wanted}


# --------------------------------------------------------------------------- the search


@dataclass
class Budget:
    """What a step must keep: the FP32 model's quality on the slice less the budget, and
    (where the task measures one) its decision agreement with the FP32 model at least the
    precision's floor, as the verdict asks."""

    reference: float
    max_drop_points: float
    min_agreement: float | None = None

    def drop(self, quality: float) -> float:
        return 100.0 * (self.reference - quality)

    def fits(self, step: Mapping[str, Any]) -> bool:
        agreement = step.get("agreement")
        agrees = self.min_agreement is None or agreement is None or agreement >= self.min_agreement
        return self.drop(step["quality"]) <= self.max_drop_points + 1e-9 and agrees

    def words(self, step: Mapping[str, Any]) -> str:
        drop = self.drop(step["quality"])
        if drop > 0.005:
            text = f"{drop:.2f} points below FP32"
        elif drop < -0.005:
            text = f"{-drop:.2f} points above FP32"
        else:
            text = "level with FP32"
        if step.get("agreement") is not None:
            text += f", agreement {step['agreement']:.4g}"
        return text


Agreement = Callable[[list[np.ndarray], list[np.ndarray]], float | None]


def run_search(
    config: AccuracySearch,
    quantize: Callable[[list[str], Path], None],
    fp32_path: Path,
    out: Path,
    slice_: tuple[dict[str, np.ndarray], Any] | None,
    quality: Callable[[list[np.ndarray], Any], float] | None,
    agreement: Agreement | None = None,
    min_agreement: float | None = None,
) -> dict[str, Any]:
    """Write the INT8 model to `out` (`quantize(extra_excluded, path)` makes one) and, when
    it misses the budget on `slice_` (inputs, true labels), search as the module doc says.
    `agreement(fp32 outputs, int8 outputs)` is the task's decision agreement, held to
    `min_agreement`. Returns the manifest fields `int8_search*` and `int8_excluded_*`."""
    # lazy: onnx
    import onnx

    quantize([], out)
    if not config.accuracy_aware:
        return {"int8_search": "off"}
    if slice_ is None or quality is None:
        return {
            "int8_search": "skipped",
            "int8_search_reason": "the task has no true labels: nothing to keep within budget",
        }
    feed, labels = slice_
    items = len(next(iter(feed.values())))
    reference = outputs(fp32_path, feed)
    budget = Budget(quality(reference, labels), config.max_accuracy_drop, min_agreement)

    def measure(path: Path, excluded: int) -> dict[str, Any]:
        got = outputs(path, feed)
        score = quality(got, labels)
        step = {
            "excluded": excluded,
            "quality": round(score, 6),
            "drop_points": round(budget.drop(score), 4),
        }
        if agreement is not None:
            agreed = agreement(reference, got)
            step["agreement"] = None if agreed is None else round(float(agreed), 6)
        return step

    plain = measure(out, 0)
    fp32, int8 = onnx.load(str(fp32_path)), onnx.load(str(out))
    candidates = quantized_nodes(fp32, int8)
    steps = [plain]
    record: dict[str, Any] = {
        "int8_search_items": items,
        "int8_search_budget_points": config.max_accuracy_drop,
        # the agreement floor comes from workbench.parity_thresholds, which the cache key
        # leaves out: recorded so a later change of the floor shows against it
        "int8_search_min_agreement": min_agreement,
        "int8_search_reference": round(budget.reference, 6),
        "int8_candidate_nodes": len(candidates),
        "int8_search_steps": steps,
        "int8_excluded_nodes": [],
        "int8_excluded_count": 0,
    }
    if budget.fits(plain):
        return {
            **record,
            "int8_search": "not needed",
            "int8_search_reason": f"plain INT8 within budget on {items} items "
            f"({budget.words(plain)}; budget {config.max_accuracy_drop:g} points)",
        }
    if not candidates:
        return {
            **record,
            "int8_search": "not met",
            "int8_search_reason": f"plain INT8 misses the budget on {items} items "
            f"({budget.words(plain)}) but no node of it is quantized to keep in float",
        }
    rank_feed = {k: v[:RANK_ITEMS] for k, v in feed.items()}
    scores = sensitivities(fp32, int8, candidates, rank_feed)
    ranked = sorted(candidates, key=lambda n: -scores[n])
    tried: dict[int, dict[str, Any]] = {0: plain}
    trial = out.with_name(out.stem + ".search" + out.suffix)

    def attempt(count: int) -> bool:
        quantize(ranked[:count], trial)
        tried[count] = measure(trial, count)
        steps.append(tried[count])
        return budget.fits(tried[count])

    best: int | None = None
    low, count = 0, 1
    left = config.search_steps
    cap = max(1, int(config.max_excluded_fraction * len(ranked)))
    while left and best is None:
        count = min(count, cap)
        left -= 1
        if attempt(count):
            best = count
        elif count == cap:
            break
        else:
            low, count = count, count * 2
    if best is not None:  # bisect the count down between the last miss and the first fit
        while left and best - low > 1:
            mid = (low + best) // 2
            left -= 1
            if attempt(mid):
                best = mid
            else:
                low = mid
        quantize(ranked[:best], out)
        trial.unlink(missing_ok=True)
        return {
            **record,
            "int8_search": "met",
            "int8_excluded_nodes": ranked[:best],
            "int8_excluded_count": best,
            "int8_search_reason": f"kept {best} of {len(candidates)} quantized nodes in float: "
            f"{budget.words(tried[best])} on {items} items (plain INT8 {budget.words(plain)}; "
            f"budget {config.max_accuracy_drop:g} points)",
        }
    trial.unlink(missing_ok=True)
    top = max(tried, key=lambda c: tried[c]["quality"])
    return {
        **record,
        "int8_search": "not met",
        "int8_search_reason": f"no step within budget: best {budget.words(tried[top])} with "
        f"{top} of {len(candidates)} nodes in float, after {len(steps) - 1} step(s) "
        f"of at most {cap} nodes (budget {config.max_accuracy_drop:g} points"
        + (f", agreement >= {min_agreement:g}" if min_agreement is not None else "")
        + f"; plain INT8 {budget.words(plain)}); the plain INT8 model is kept",
    }


def labelled_slice(ctx: Any, n: int) -> tuple[dict[str, np.ndarray], Any] | None:
    """The first `n` labelled held-out items of the pass's task, or None without labels."""
    task = ctx.task
    if not callable(getattr(task, "held_out", None)) or not callable(
        getattr(task, "accuracy", None)
    ):
        return None  # not a task with a held-out set and a quality metric
    count = min(n, task.parity_count(ctx.model))
    feed, labels = task.held_out(ctx.model, count, ctx.source_framework)
    if labels is None:
        return None
    return feed, labels
