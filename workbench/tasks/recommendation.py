"""Recommendation (guide §7.1): retrieval with matrix factorization and a two-tower model
on MovieLens-100k, trained here, in PyTorch and Keras.

The exported artifacts are the towers, one model variant each: `<kind>_user` maps a
user's ids/features to a 64-vector, `<kind>_item` an item's id/genres; a batch is a batch
of users or items (dynamic axis 0). Retrieval (matmul + argpartition over the catalog,
`workbench.recsys.retrieval`) runs outside the artifact.

Parity, for every artifact, on the whole population (943 users or 1,682 items): the
output errors, the top-10 overlap between the source's exact top 10 and the one the
artifact's vectors give (with the other tower at its source weights, seen items
excluded; the verdict's metric), and recall@10 of the held-out (last) item of each user
for source and artifact. The pipeline times raw user ids -> features -> user tower ->
top 10 over the catalog with exclusion.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import UserError
from workbench.manifests import read_manifest
from workbench.parity import output_errors
from workbench.recsys import movielens, rec_data, recommender, two_tower
from workbench.recsys.metrics import recall_at_k, topk_overlap
from workbench.recsys.retrieval import exact_topk
from workbench.recsys.two_tower import INPUTS, build_keras, build_torch, trained_weights
from workbench.runtimes.tf_runtime import require_keras
from workbench.signature import TensorSpec
from workbench.tasks.base import FULL_BATCHES, Pipeline, Preset, Task

INPUT_SEED = 5151  # separates benchmark feeds from anything else
TOP_K = 10


def model_parts(model: str) -> tuple[str, str]:
    """("mf" | "two_tower", "user" | "item") of a model name such as "two_tower_user"."""
    kind, _, side = model.rpartition("_")
    return kind, side


@cache
def _source_vectors(kind: str, side: str) -> np.ndarray:
    weights = two_tower.trained_weights()
    if side == "user":
        return two_tower.user_embeddings(weights, kind)
    return two_tower.catalog_embeddings(weights, kind)


class RecommendationTask(Task):
    """User and item towers for top-k retrieval over the MovieLens-100k catalog."""

    name = "recommendation"
    models = ("two_tower_user", "two_tower_item", "mf_user", "mf_item")
    bench_on_own_inputs = True  # timed on real users and candidates
    version = "1"
    presets = {
        "ci": Preset(
            models=("two_tower_user",),
            frameworks=("torch",),
            formats=("onnx",),
            precisions=("fp32",),
            batch_sizes=(1, 64),
            devices=("cpu",),
        ),
        "quick": Preset(batch_sizes=(1, 64, 256), devices=("cpu",)),
        "full": Preset(batch_sizes=FULL_BATCHES, devices=("cpu", "cuda")),
    }

    def input_specs(self, model: str, framework: str = "torch") -> list[TensorSpec]:
        kind, side = model_parts(self.check_model(model))
        widths = {
            "user_features": len(rec_data.USER_COLUMNS),
            "item_features": 1 + rec_data.N_GENRES,
        }
        return [
            TensorSpec(name, "int32", ("batch", widths[name]) if name in widths else ("batch",))
            for name in INPUTS[(kind, side)]
        ]

    def _feed(self, model: str, rows: np.ndarray) -> dict[str, np.ndarray]:
        kind, side = model_parts(model)
        if side == "user":
            return rec_data.user_feed(rows, kind)
        return rec_data.item_feed(rows, kind)

    def _population(self, model: str) -> int:
        data = movielens.load()
        return data.n_users if model_parts(model)[1] == "user" else data.n_items

    def make_inputs(
        self, model: str, batch_size: int, seed: int = 0, framework: str = "torch"
    ) -> dict[str, np.ndarray]:
        """Real users (or items), drawn with replacement when the batch outgrows them."""
        n = self._population(self.check_model(model))
        rng = np.random.default_rng(INPUT_SEED + seed)
        rows = rng.choice(n, size=batch_size, replace=batch_size > n)
        return self._feed(model, rows)

    def parity_count(self, model: str) -> int:
        return self._population(self.check_model(model))

    def held_out(
        self, model: str, n: int, framework: str = "torch"
    ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """The first `n` users (or items) in index order: all of them by default."""
        return self._feed(self.check_model(model), np.arange(n)), None

    def build_torch(self, model: str) -> Any:
        return build_torch(trained_weights(), *model_parts(self.check_model(model)))

    def build_keras(self, model: str) -> Any:
        require_keras(f"the Keras model {model!r} of task {self.name!r}")

        return build_keras(trained_weights(), *model_parts(self.check_model(model)))

    def pipeline(self, model: str, framework: str = "torch") -> Pipeline | None:
        """For a user tower: raw MovieLens user ids -> validated features -> tower -> top 10
        over the source catalog vectors, seen items excluded, popularity for unknown users.
        Item towers run offline (indexing the catalog): no request pipeline."""
        kind, side = model_parts(self.check_model(model))
        if side != "user":
            return None

        def preprocess(raw: Sequence[int]) -> tuple[dict[str, np.ndarray], np.ndarray]:
            if len(raw) == 0:
                raise UserError("the request names no user: give at least one user id")
            users = recommender.user_indices(raw)
            feed = rec_data.user_feed(users, kind)
            rec_data.validate_feed(feed)
            return feed, users

        def postprocess(outputs: list[np.ndarray], users: np.ndarray) -> Any:
            vectors = np.asarray(outputs[0], np.float32)
            return recommender.rank(vectors, _source_vectors(kind, "item"), users, TOP_K)

        return Pipeline(raw_inputs=raw_user_ids, preprocess=preprocess, postprocess=postprocess)

    def parity(
        self, reference: list[np.ndarray], candidate: list[np.ndarray], model: str | None = None
    ) -> dict[str, Any]:
        """Output errors, and when the outputs are `model`'s whole population (as `held_out`
        gives them): top-10 overlap with the source's exact top 10 and recall@10 of both."""
        result: dict[str, Any] = dict(output_errors(reference, candidate))
        ref = np.asarray(reference[0], np.float32)
        cand = np.asarray(candidate[0], np.float32).reshape(ref.shape)
        kind, side = self._tower_of(model, len(ref))
        if kind is None:  # not a whole population: no ranking to compare
            result.update(metric_name="top10_overlap", metric_value=None)
            return result
        if not np.isfinite(cand).all():
            result.update(metric_name="top10_overlap", metric_value=0.0, nonfinite_outputs=True)
            return result
        split = rec_data.leave_last_out()
        if side == "user":
            catalog = _source_vectors(kind, "item")
            ref_top = exact_topk(ref, catalog, TOP_K, exclude=split.seen)
            cand_top = exact_topk(cand, catalog, TOP_K, exclude=split.seen)
        else:
            users = _source_vectors(kind, "user")
            ref_top = exact_topk(users, ref, TOP_K, exclude=split.seen)
            cand_top = exact_topk(users, cand, TOP_K, exclude=split.seen)
        recall_source = float(recall_at_k(ref_top.ids, split.test_items, TOP_K))
        recall_artifact = float(recall_at_k(cand_top.ids, split.test_items, TOP_K))
        result.update(
            metric_name="top10_overlap",
            metric_value=float(topk_overlap(ref_top.ids, cand_top.ids)),
            recall_at_10_source=recall_source,
            recall_at_10_artifact=recall_artifact,
            recall_at_10_delta=recall_artifact - recall_source,
        )
        return result

    def _tower_of(self, model: str | None, rows: int) -> tuple[str | None, str | None]:
        """(kind, side) of `model`, e.g. ("two_tower", "user"), when `rows` is that side's
        whole population; (None, None) otherwise (no ranking to compare)."""
        if model not in self.models:
            return None, None
        kind, side = model.rsplit("_", 1)
        data = movielens.load()
        population = data.n_users if side == "user" else data.n_items
        return (kind, side) if rows == population else (None, None)


def artifact_parity(frame: Any) -> Any:
    """One row per exported artifact in a results frame, with its retrieval parity from
    the artifact's manifest: top-10 overlap with the source, recall@10 of source and
    artifact (the frame itself carries only the verdict's metric)."""
    rows = []
    if frame.empty or "artifact_path" not in frame:
        return pd.DataFrame(rows)
    for path in frame["artifact_path"].dropna().unique():
        manifest = read_manifest(Path(path).parent) or {}
        rows.append(
            {
                key: manifest.get(key)
                for key in (
                    "model",
                    "source_framework",
                    "format",
                    "precision",
                    "parity_pass",
                    "parity_metric_value",
                    "parity_recall_at_10_source",
                    "parity_recall_at_10_artifact",
                    "parity_max_abs_error",
                )
            }
        )
    return pd.DataFrame(rows).rename(columns={"parity_metric_value": "parity_top10_overlap"})


def raw_user_ids(batch_size: int, seed: int) -> list[int]:
    """A request: `batch_size` raw MovieLens user ids of known users."""
    ids = movielens.load().users["user_id"].to_numpy()
    rng = np.random.default_rng(INPUT_SEED + 1000 + seed)
    return [int(u) for u in rng.choice(ids, size=batch_size, replace=batch_size > len(ids))]
