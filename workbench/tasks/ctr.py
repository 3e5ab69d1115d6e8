"""CTR ranking (guide §7.2): DeepFM on MovieLens-100k, trained here, in PyTorch and Keras.

Inputs: ``ids`` int32 [B, 7] (user, item, age, gender, occupation, zip prefix, release
year; row 0 = unknown) and ``genres`` float32 [B, 19] multi-hot; output: the click logit
[B, 1]. A batch is one user's candidates: the guide calls the model once per candidate,
this task ranks all of them in one call (`workbench.recsys.ctr_ranking`).

Feeds are real feature rows, never random ids: `make_inputs` is one test-period user
with `batch_size` catalog items, `held_out` the whole test split (the last 20% of
ratings in time, 20,000 rows with their labels rating >= 4). Parity reports, beside the
output errors, the AUC and log loss of source and artifact and how alike they rank each
held-out user's rated items (Kendall tau and top-10 overlap, over users with more than
ten test ratings); the verdict's metric is the top-10 overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench.errors import UserError
from workbench.parity import output_errors
from workbench.recsys import ctr_features, ctr_ranking, movielens
from workbench.recsys.deepfm import build_keras, build_torch, evaluate, trained_weights
from workbench.runtimes.tf_runtime import require_keras
from workbench.signature import TensorSpec
from workbench.tasks.base import Pipeline, Preset, Task

CANDIDATE_SEED = 4242  # separates benchmark/calibration candidates from anything else


class CtrTask(Task):
    """Rank a user's candidate items by predicted click-through rate."""

    name = "ctr"
    models = ("deepfm",)
    bench_on_own_inputs = True  # timed on real users and candidates
    version = "1"
    presets = {
        # ci: the exported ONNX at FP32 and dynamic INT8, two batch sizes
        "ci": Preset(
            frameworks=("torch",),
            formats=("onnx",),
            precisions=("fp32", "int8-dynamic"),
            batch_sizes=(1, 256),
            devices=("cpu",),
        ),
        # a ranking request is 1 .. 4,096 candidates; the figure is 1,000
        "quick": Preset(batch_sizes=(1, 100, 1000), devices=("cpu",)),
        "full": Preset(batch_sizes=(1, 10, 100, 1000, 4096), devices=("cpu", "cuda")),
    }

    def input_specs(self, model: str, framework: str = "torch") -> list[TensorSpec]:
        self.check_model(model)
        return [
            TensorSpec("ids", "int32", ("batch", len(ctr_features.FIELDS))),
            TensorSpec("genres", "float32", ("batch", ctr_features.N_GENRES)),
        ]

    def make_inputs(
        self, model: str, batch_size: int, seed: int = 0, framework: str = "torch"
    ) -> dict[str, np.ndarray]:
        """One ranking request: a test-period user (chosen by `seed`) with `batch_size`
        catalog items as candidates (distinct while the catalog lasts)."""
        self.check_model(model)
        rng = np.random.default_rng(CANDIDATE_SEED + seed)
        users = np.unique(ctr_features.split("test").users)
        n_items = len(ctr_features.tables().item_fields)
        user = int(rng.choice(users))
        items = rng.choice(n_items, size=batch_size, replace=batch_size > n_items)
        return ctr_features.tables().rows(user, items)

    def parity_count(self, model: str) -> int:
        return len(ctr_features.split("test").labels)

    def held_out(
        self, model: str, n: int, framework: str = "torch"
    ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """The first `n` rows of the test split (all 20,000 by default) and their labels."""
        test = ctr_features.split("test")
        return {k: v[:n] for k, v in test.feed.items()}, test.labels[:n]

    def accuracy(self, outputs: np.ndarray, labels: np.ndarray) -> float:
        """AUC of the logits against the click labels (scikit-learn)."""
        # lazy: sklearn
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(labels, np.asarray(outputs, np.float64).reshape(-1)))

    def build_torch(self, model: str) -> Any:
        self.check_model(model)
        return build_torch(trained_weights())

    def build_keras(self, model: str) -> Any:
        require_keras(f"the Keras model {model!r} of task {self.name!r}")

        self.check_model(model)
        return build_keras(trained_weights())

    def pipeline(self, model: str, framework: str = "torch") -> Pipeline | None:
        """(user id, candidate item ids) -> feature rows (validated) -> model -> sigmoid ->
        candidates ranked by CTR."""
        self.check_model(model)
        return Pipeline(
            raw_inputs=ranking_request,
            preprocess=_preprocess,
            postprocess=lambda outputs, meta: _postprocess(outputs[0], *meta),
        )

    def parity(
        self, reference: list[np.ndarray], candidate: list[np.ndarray], model: str | None = None
    ) -> dict[str, Any]:
        """Output errors; AUC and log loss of both (and their deltas) and per-user ranking
        agreement when the outputs are the held-out split's."""
        result: dict[str, Any] = dict(output_errors(reference, candidate))
        ref = np.asarray(reference[0], np.float64).reshape(-1)
        cand = np.asarray(candidate[0], np.float64).reshape(ref.shape)
        test = ctr_features.split("test")
        n = len(ref)
        users = test.users[:n]
        agreement = ctr_ranking.per_user_agreement(users, ref, cand, k=10)
        result.update(metric_name="top10_overlap", metric_value=agreement["top10_overlap"])
        result["kendall_tau"] = agreement["kendall_tau"]
        result["ranked_users"] = agreement["ranked_users"]
        labels = test.labels[:n]
        if 0 < labels.sum() < n:
            source, artifact = evaluate(ref, labels), evaluate(cand, labels)
            result.update(
                auc_source=source["auc"],
                auc_artifact=artifact["auc"],
                auc_delta=artifact["auc"] - source["auc"],
                log_loss_source=source["log_loss"],
                log_loss_artifact=artifact["log_loss"],
                log_loss_delta=artifact["log_loss"] - source["log_loss"],
            )
        return result


def ranking_request(n_candidates: int, seed: int) -> list[tuple[int, int]]:
    """A raw request: (MovieLens user id, item id) for `n_candidates` candidate items of
    one test-period user."""
    data = movielens.load()
    rng = np.random.default_rng(CANDIDATE_SEED + 1000 + seed)
    user = int(data.users["user_id"].iloc[int(rng.choice(ctr_features.split("test").users))])
    item_ids = data.items["item_id"].to_numpy()
    items = rng.choice(item_ids, size=n_candidates, replace=n_candidates > len(item_ids))
    return [(user, int(item)) for item in items]


def _preprocess(
    raw: Sequence[tuple[int, int]],
) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, bool]]:
    """One user's request -> validated feature rows, and (the candidates' item ids,
    whether the user is a cold start)."""
    if not raw:
        raise UserError("the candidate list is empty: give at least one item id to rank")
    users = {user for user, _ in raw}
    if len(users) != 1:
        raise UserError(f"a ranking request is for one user, got {len(users)}")
    item_ids = np.asarray([item for _, item in raw], np.int64)
    feed, cold = ctr_ranking.candidate_rows(users.pop(), item_ids)
    ctr_features.validate_feed(feed)
    return feed, (item_ids, cold)


def _postprocess(logits: np.ndarray, item_ids: np.ndarray, cold: bool) -> ctr_ranking.Ranking:
    ctr = ctr_ranking.sigmoid(logits)
    order = ctr_ranking.order_by_ctr(ctr)
    return ctr_ranking.Ranking(item_ids[order], ctr[order], cold)
