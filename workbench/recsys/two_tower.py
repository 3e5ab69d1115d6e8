"""Matrix factorization and a two-tower retrieval model on MovieLens-100k, each as a
user tower and an item tower, in PyTorch and Keras with one set of weights.

- mf: user tower = the user's id embedding; item tower = the item's id embedding.
- two_tower: user tower = MLP over [id, age bucket, gender, occupation] embeddings;
  item tower = MLP over [id embedding, a linear projection of the genres].
A user's score for an item is the dot product of the two towers' DIM-vectors, so
retrieval is a matmul over precomputed item vectors (`workbench.recsys.retrieval`).

Inputs are int32 ids with row 0 = unknown (`rec_data`); inside every graph an id outside
its table is mapped to row 0, so no runtime ever reads out of bounds. The two-tower model
is trained with 10% of ids replaced by "unknown", so its towers still work from the
features alone for a new user or item.

Training: sampled softmax (each batch's positives against NEGATIVES uniformly sampled
items shared by the batch; accidental hits masked) with Adam, fixed seeds and shuffles,
both models in one child process on one thread (`cached_npz`), cached in `weights_dir()`
by WEIGHTS_VERSION. This module imports neither framework at the top.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from workbench.procs import cached_npz
from workbench.progress import progress
from workbench.recsys import movielens, rec_data
from workbench.recsys.metrics import ndcg_at_k, recall_at_k
from workbench.recsys.retrieval import exact_topk
from workbench.workspace import weights_dir

log = logging.getLogger(__name__)

DIM = 64  # output embedding size of every tower
ID_DIM = 32  # two-tower id embeddings
FEATURE_DIM = 8  # two-tower age / gender / occupation embeddings, and the genre projection
HIDDEN = 128
KINDS = ("mf", "two_tower")
SIDES = ("user", "item")
INPUTS = {
    ("mf", "user"): ("user",),
    ("mf", "item"): ("item",),
    ("two_tower", "user"): ("user_features",),  # [B, 4]: rec_data.USER_COLUMNS
    ("two_tower", "item"): ("item_features",),  # [B, 20]: item id, 19 genre flags
}
EPOCHS = {"mf": 12, "two_tower": 12}
BATCH = 1024
NEGATIVES = 256  # uniformly sampled items shared by a batch (sampled softmax)
LR = {"mf": 1e-2, "two_tower": 3e-3}
WEIGHT_DECAY = {"mf": 0.0, "two_tower": 0.0}
L2 = {"mf": 1e-6, "two_tower": 1e-6}  # on the embedding rows of each batch
ID_DROPOUT = 0.1
SEED = 0
WEIGHTS_VERSION = "2"  # 2: int32 ids, one input tensor per two-tower side; bump when an architecture, the features or the training change
OUTPUT_NAME = "embedding"


def weights_path(seed: int = SEED) -> Path:
    return weights_dir() / f"recommendation-towers-w{WEIGHTS_VERSION}-{seed}.npz"


def trained_weights(seed: int = SEED) -> dict[str, np.ndarray]:
    """Both models' weights (keys "<kind>.<side>.<param>", like the PyTorch state dicts)
    plus ``__meta_*`` entries (training seconds, recall@10 and NDCG@10): trained once per
    machine in a child process, then read from the cache."""
    return cached_npz(weights_path(seed), "workbench.recsys.two_tower:train_to", str(seed))


def tower_weights(weights: Mapping[str, np.ndarray], kind: str, side: str) -> dict[str, np.ndarray]:
    """One tower's parameters, without the "<kind>.<side>." prefix."""
    prefix = f"{kind}.{side}."
    return {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}


# ---------------------------------------------------------------------------- PyTorch


def torch_tower(kind: str, side: str) -> Any:
    """A fresh tower nn.Module whose forward takes INPUTS[(kind, side)] in order."""
    # lazy: torch
    import torch
    from torch import nn

    sizes = rec_data.table_sizes()

    def guard(ids: torch.Tensor, rows: int) -> torch.Tensor:
        return torch.where((ids >= 0) & (ids < rows), ids, torch.zeros_like(ids))

    class MFTower(nn.Module):
        def __init__(self, rows: int) -> None:
            super().__init__()
            self.rows = rows
            self.id = nn.Embedding(rows, DIM)
            nn.init.normal_(self.id.weight, std=0.1)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.id(guard(ids, self.rows))

    class UserTower(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rows = [sizes[c] for c in rec_data.USER_COLUMNS]
            self.id = nn.Embedding(sizes["user"], ID_DIM)
            self.age = nn.Embedding(sizes["age_bucket"], FEATURE_DIM)
            self.gender = nn.Embedding(sizes["gender"], FEATURE_DIM)
            self.occupation = nn.Embedding(sizes["occupation"], FEATURE_DIM)
            self.hidden = nn.Linear(ID_DIM + 3 * FEATURE_DIM, HIDDEN)
            self.out = nn.Linear(HIDDEN, DIM)

        def forward(self, user_features: torch.Tensor) -> torch.Tensor:
            tables = (self.id, self.age, self.gender, self.occupation)
            x = torch.cat(
                [
                    table(guard(user_features[:, i], rows))
                    for i, (table, rows) in enumerate(zip(tables, self.rows, strict=True))
                ],
                dim=1,
            )
            return self.out(torch.relu(self.hidden(x)))

    class ItemTower(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rows = sizes["item"]
            self.id = nn.Embedding(sizes["item"], ID_DIM)
            self.genres = nn.Linear(rec_data.N_GENRES, FEATURE_DIM, bias=False)
            self.hidden = nn.Linear(ID_DIM + FEATURE_DIM, HIDDEN)
            self.out = nn.Linear(HIDDEN, DIM)

        def forward(self, item_features: torch.Tensor) -> torch.Tensor:
            ids = guard(item_features[:, 0], self.rows)
            genres = self.genres(item_features[:, 1:].to(torch.float32))
            x = torch.cat([self.id(ids), genres], dim=1)
            return self.out(torch.relu(self.hidden(x)))

    if kind == "mf":
        return MFTower(sizes[side])
    return UserTower() if side == "user" else ItemTower()


def build_torch(weights: Mapping[str, np.ndarray], kind: str, side: str) -> Any:
    """The trained tower in eval mode."""
    # lazy: torch
    import torch

    module = torch_tower(kind, side)
    state = {
        k: torch.from_numpy(np.array(v)) for k, v in tower_weights(weights, kind, side).items()
    }
    module.load_state_dict(state)
    return module.eval()


# ---------------------------------------------------------------------------- Keras


def build_keras(weights: Mapping[str, np.ndarray], kind: str, side: str) -> Any:
    """The same tower in Keras 3, inputs named as in INPUTS, output [B, DIM]."""
    # lazy: keras
    import keras

    params = tower_weights(weights, kind, side)
    sizes = rec_data.table_sizes()
    names = INPUTS[(kind, side)]
    width = {"user_features": len(rec_data.USER_COLUMNS), "item_features": 1 + rec_data.N_GENRES}
    inputs = {
        name: keras.Input(shape=(width[name],) if name in width else (), name=name, dtype="int32")
        for name in names
    }

    def lookup(ids: Any, rows: int, table: np.ndarray, layer_name: str) -> Any:
        safe = keras.ops.where(
            keras.ops.logical_and(ids >= 0, ids < rows), ids, keras.ops.zeros_like(ids)
        )
        layer = keras.layers.Embedding(table.shape[0], table.shape[1], name=layer_name)
        out = layer(safe)
        layer.set_weights([table])
        return out

    def dense(x: Any, w: np.ndarray, b: np.ndarray | None, name: str, activation: Any) -> Any:
        layer = keras.layers.Dense(
            w.shape[0], activation=activation, use_bias=b is not None, name=name
        )
        out = layer(x)
        layer.set_weights([w.T] if b is None else [w.T, b])
        return out

    if kind == "mf":
        output = lookup(inputs[names[0]], sizes[side], params["id.weight"], "id_embedding")
    elif side == "user":
        features = inputs["user_features"]
        tables = ("id", "age", "gender", "occupation")
        parts = [
            lookup(features[:, i], sizes[column], params[f"{table}.weight"], f"{table}_embedding")
            for i, (column, table) in enumerate(zip(rec_data.USER_COLUMNS, tables, strict=True))
        ]
        hidden = dense(
            keras.layers.Concatenate(axis=1)(parts),
            params["hidden.weight"],
            params["hidden.bias"],
            "hidden",
            "relu",
        )
        output = dense(hidden, params["out.weight"], params["out.bias"], "out", None)
    else:
        features = inputs["item_features"]
        flags = keras.ops.cast(features[:, 1:], "float32")
        genres = dense(flags, params["genres.weight"], None, "genre_projection", None)
        ids = lookup(features[:, 0], sizes["item"], params["id.weight"], "id_embedding")
        x = keras.layers.Concatenate(axis=1)([ids, genres])
        hidden = dense(x, params["hidden.weight"], params["hidden.bias"], "hidden", "relu")
        output = dense(hidden, params["out.weight"], params["out.bias"], "out", None)
    output = keras.layers.Identity(name=OUTPUT_NAME)(output)
    return keras.Model([inputs[name] for name in names], output, name=f"{kind}_{side}_tower")


# ---------------------------------------------------------------------------- NumPy


def numpy_tower(
    weights: Mapping[str, np.ndarray], kind: str, side: str, feed: Mapping[str, np.ndarray]
) -> np.ndarray:
    """The tower's output computed in NumPy (float32): the source embeddings for parity
    and evaluation in any process, whatever framework it has loaded."""
    params = tower_weights(weights, kind, side)
    sizes = rec_data.table_sizes()

    def lookup(ids: np.ndarray, rows: int, table: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, np.int64)
        return table[np.where((ids >= 0) & (ids < rows), ids, 0)]

    if kind == "mf":
        return lookup(feed[side], sizes[side], params["id.weight"]).astype(np.float32)
    if side == "user":
        features = np.asarray(feed["user_features"])
        tables = ("id", "age", "gender", "occupation")
        x = np.concatenate(
            [
                lookup(features[:, i], sizes[column], params[f"{table}.weight"])
                for i, (column, table) in enumerate(zip(rec_data.USER_COLUMNS, tables, strict=True))
            ],
            axis=1,
        )
    else:
        features = np.asarray(feed["item_features"])
        genres = features[:, 1:].astype(np.float32) @ params["genres.weight"].T
        x = np.concatenate(
            [lookup(features[:, 0], sizes["item"], params["id.weight"]), genres], axis=1
        )
    hidden = np.maximum(x @ params["hidden.weight"].T + params["hidden.bias"], 0)
    return (hidden @ params["out.weight"].T + params["out.bias"]).astype(np.float32)


def catalog_embeddings(weights: Mapping[str, np.ndarray], kind: str) -> np.ndarray:
    """[n_items, DIM] item vectors of the whole catalog (item index order)."""
    items = np.arange(movielens.load().n_items)
    return numpy_tower(weights, kind, "item", rec_data.item_feed(items, kind))


def user_embeddings(weights: Mapping[str, np.ndarray], kind: str) -> np.ndarray:
    """[n_users, DIM] vectors of every known user (user index order)."""
    users = np.arange(movielens.load().n_users)
    return numpy_tower(weights, kind, "user", rec_data.user_feed(users, kind))


def evaluate(user_vectors: np.ndarray, item_vectors: np.ndarray, k: int = 10) -> dict[str, float]:
    """recall@k and NDCG@k of the leave-last-out held-out items, ranking the whole
    catalog per user and excluding each user's training items."""
    split = rec_data.leave_last_out()
    top = exact_topk(user_vectors, item_vectors, k, exclude=split.seen)
    return {
        f"recall@{k}": float(recall_at_k(top.ids, split.test_items, k)),
        f"ndcg@{k}": float(ndcg_at_k(top.ids, split.test_items, k)),
    }


def popularity_baseline(k: int = 10) -> dict[str, float]:
    """The same metrics for "most rated items first": what a model must beat."""
    split = rec_data.leave_last_out()
    scores = rec_data.popularity()[None, :]
    top = exact_topk(np.ones((len(split.seen), 1), np.float32), scores.T, k, exclude=split.seen)
    return {
        f"recall@{k}": float(recall_at_k(top.ids, split.test_items, k)),
        f"ndcg@{k}": float(ndcg_at_k(top.ids, split.test_items, k)),
    }


def quality_table(weights: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """recall@10 / NDCG@10 of each model and of the popularity baseline, with training time."""
    rows: list[dict[str, Any]] = []
    for kind in KINDS:
        metrics = evaluate(user_embeddings(weights, kind), catalog_embeddings(weights, kind))
        seconds = weights.get(f"__meta_{kind}_train_seconds")
        rows.append(
            {"model": kind, **metrics, "train_s": None if seconds is None else float(seconds)}
        )
    rows.append({"model": "popularity", **popularity_baseline(), "train_s": None})
    return rows


# ---------------------------------------------------------------------------- training


def _train(kind: str, seed: int) -> dict[str, np.ndarray]:
    """One model's towers, trained with a sampled softmax (epochs reported through
    `workbench.progress`, each one's loss at debug level)."""
    # lazy: torch
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    split = rec_data.leave_last_out()
    data = movielens.load()
    user_tower, item_tower = torch_tower(kind, "user"), torch_tower(kind, "item")
    params = [*user_tower.parameters(), *item_tower.parameters()]
    optimizer = torch.optim.Adam(params, lr=LR[kind], weight_decay=WEIGHT_DECAY[kind])
    (item_input,) = INPUTS[(kind, "item")]
    (user_input,) = INPUTS[(kind, "user")]
    catalog = torch.from_numpy(rec_data.item_feed(np.arange(data.n_items), kind)[item_input])
    n = len(split.train_users)
    for epoch in progress(range(EPOCHS[kind]), f"train {kind}", unit="epoch"):
        order = rng.permutation(n)
        for start in range(0, n, BATCH):
            rows = order[start : start + BATCH]
            users = split.train_users[rows]
            user_in = rec_data.user_feed(users, kind)[user_input]
            targets = split.train_items[rows]
            negatives = rng.integers(0, data.n_items, size=NEGATIVES)
            # the batch's positives and the shared negatives, each scored once
            scored = np.concatenate([targets, negatives])
            items_in = catalog[scored].clone()
            if kind == "two_tower":  # teach the towers to work without the id
                drop = rng.random(len(users)) < ID_DROPOUT
                user_in[drop, 0] = 0
                items_in[torch.from_numpy(rng.random(len(scored)) < ID_DROPOUT), 0] = 0
            user_vec = user_tower(torch.from_numpy(user_in))
            item_vec = item_tower(items_in)
            positive = (user_vec * item_vec[: len(rows)]).sum(dim=1, keepdim=True)
            negative = user_vec @ item_vec[len(rows) :].T
            # a sampled "negative" that is the row's own positive is no negative
            hits = torch.from_numpy(negatives[None, :] == targets[:, None])
            negative = negative.masked_fill(hits, float("-inf"))
            logits = torch.cat([positive, negative], dim=1)
            loss = F.cross_entropy(logits, torch.zeros(len(rows), dtype=torch.long))
            loss = loss + L2[kind] * (user_vec.pow(2).sum() + item_vec[: len(rows)].pow(2).sum())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        log.debug("%s epoch %d/%d loss %.4f", kind, epoch + 1, EPOCHS[kind], loss.item())
    state = {}
    for side, tower in (("user", user_tower), ("item", item_tower)):
        for key, value in tower.state_dict().items():
            state[f"{kind}.{side}.{key}"] = value.detach().numpy().astype(np.float32)
    return state


def train_to(path: str, seed: int | str = SEED) -> None:
    """Train both models and write their weights to `path` (.npz, atomically), with
    __meta entries: seconds, threads, recall@10 / NDCG@10 of each and of popularity."""
    seed = int(seed)
    # lazy: torch
    import torch

    # One intra-op thread unless $WORKBENCH_TRAIN_THREADS says otherwise: the matmuls are
    # small (1,024 x 64 x 1,280), so a second thread gains little, and on a busy 2-core host
    # two OpenMP threads made the two-tower run 10x slower (132 s against 13 s); one
    # thread also gives the same weights whatever the machine's core count.
    torch.set_num_threads(int(os.environ.get("WORKBENCH_TRAIN_THREADS", 1)))
    log.info("two_tower: training mf and two_tower once; cached in %s", path)
    state: dict[str, np.ndarray] = {}
    for kind in KINDS:
        started = time.perf_counter()
        state.update(_train(kind, seed))
        seconds = time.perf_counter() - started
        metrics = evaluate(user_embeddings(state, kind), catalog_embeddings(state, kind))
        log.info("two_tower: %s trained in %.1f s, %s", kind, seconds, metrics)
        state[f"__meta_{kind}_train_seconds"] = np.asarray(seconds)
        for name, value in metrics.items():
            state[f"__meta_{kind}_{name.replace('@', '_at_')}"] = np.asarray(value)
    for name, value in popularity_baseline().items():
        state[f"__meta_popularity_{name.replace('@', '_at_')}"] = np.asarray(value)
    state["__meta_torch_threads"] = np.asarray(torch.get_num_threads())
    tmp = Path(path).with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **state)
    os.replace(tmp, path)
