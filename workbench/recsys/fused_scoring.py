"""Scoring fused into the exported graph: user tower -> MatMul over a fixed catalog ->
exclusion -> TopK, as one ONNX model.

The catalog's item vectors become a constant [DIM, n_items] initializer, so the model
serves one catalog only (re-export it when the catalog changes). Exclusion is an additive
float input `exclude` [batch, n_items] (0, or -inf for an item not to return), which keeps
the graph to standard ops; ONNX TopK returns ties lowest index first, the same rule as
`retrieval.exact_topk`. Outputs: `scores` [batch, k] float32 and `items` [batch, k]
int64 (dense item indices), best first.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from workbench.errors import UserError
from workbench.recsys.catalog_scale import time_call
from workbench.recsys.metrics import recall_at_k, topk_overlap
from workbench.recsys.retrieval import exact_topk


def scoring_graph(catalog: np.ndarray, k: int, input_name: str = "embedding", opset: int = 17):
    """The ONNX model embedding [batch, DIM] + exclude [batch, n] -> (scores, items)."""
    # lazy: onnx
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    catalog = np.ascontiguousarray(catalog, np.float32)
    n_items, dim = catalog.shape
    if not 1 <= k <= n_items:
        raise UserError(f"k={k} must lie in 1..{n_items} (the catalog's size)")
    nodes = [
        helper.make_node("MatMul", [input_name, "catalog_t"], ["raw_scores"]),
        helper.make_node("Add", ["raw_scores", "exclude"], ["masked_scores"]),
        helper.make_node(
            "TopK", ["masked_scores", "k"], ["scores", "items"], axis=1, largest=1, sorted=1
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "fused_scoring",
        [
            helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", dim]),
            helper.make_tensor_value_info("exclude", TensorProto.FLOAT, ["batch", n_items]),
        ],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", k]),
            helper.make_tensor_value_info("items", TensorProto.INT64, ["batch", k]),
        ],
        initializer=[
            numpy_helper.from_array(np.ascontiguousarray(catalog.T), "catalog_t"),
            numpy_helper.from_array(np.array([k], np.int64), "k"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    return model


def fuse_with_tower(tower_path: Path, catalog: np.ndarray, k: int, out: Path) -> Path:
    """Append the scoring graph to an exported ONNX user tower (its single output feeds
    the MatMul) and write the fused model to `out`."""
    # lazy: onnx
    import onnx
    from onnx import compose

    tower = onnx.load(str(tower_path))
    (output,) = [o.name for o in tower.graph.output]
    opset = next(o.version for o in tower.opset_import if o.domain in ("", "ai.onnx"))
    scoring = scoring_graph(catalog, k, input_name="embedding", opset=opset)
    if tower.ir_version != scoring.ir_version:
        scoring.ir_version = tower.ir_version
    fused = compose.merge_models(tower, scoring, io_map=[(output, "embedding")])
    onnx.checker.check_model(fused)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(fused, str(out))
    return out


def exclusion_mask(exclude: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """The `exclude` input: -inf at each user's excluded items, 0 elsewhere."""
    mask = np.zeros((len(exclude), n_items), np.float32)
    for row, items in enumerate(exclude):
        mask[row, np.asarray(items, np.int64)] = -np.inf
    return mask


def fused_vs_separate(tower_path: Path, kind: str, k: int = 10, reps: int = 5) -> dict[str, float]:
    """All 943 users through (a) the fused ONNX graph and (b) the ONNX tower, then
    `exact_topk` in NumPy: top-k overlap, recall@k of each, p50 ms of each (ONNX Runtime,
    CPU, default threads)."""
    # lazy: onnxruntime, pandas (via workbench.recsys.two_tower)
    import onnxruntime as ort

    from workbench.recsys import movielens, rec_data, two_tower

    weights = two_tower.trained_weights()
    catalog = two_tower.catalog_embeddings(weights, kind)
    split = rec_data.leave_last_out()
    (name,) = two_tower.INPUTS[(kind, "user")]
    feed = rec_data.user_feed(np.arange(movielens.load().n_users), kind)[name]
    with tempfile.TemporaryDirectory() as tmp:
        fused_path = fuse_with_tower(Path(tower_path), catalog, k, Path(tmp) / "fused.onnx")
        fused = ort.InferenceSession(str(fused_path), providers=["CPUExecutionProvider"])
    tower = ort.InferenceSession(str(tower_path), providers=["CPUExecutionProvider"])
    mask = exclusion_mask(split.seen, len(catalog))

    def run_fused() -> np.ndarray:
        return fused.run(["items"], {name: feed, "exclude": mask})[0]

    def run_separate() -> np.ndarray:
        vectors = tower.run(None, {name: feed})[0]
        return exact_topk(vectors, catalog, k, exclude=split.seen).ids

    a, b = run_fused(), run_separate()
    return {
        "users": len(feed),
        "top10_overlap": float(topk_overlap(b, a)),
        "recall_at_10_fused": float(recall_at_k(a, split.test_items, k)),
        "recall_at_10_separate": float(recall_at_k(b, split.test_items, k)),
        "fused_p50_ms": time_call(run_fused, reps)["p50_ms"],
        "separate_p50_ms": time_call(run_separate, reps)["p50_ms"],
    }
