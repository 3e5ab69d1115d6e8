"""DeepFM (Guo et al., 2017) for MovieLens-100k CTR, in PyTorch and Keras with one set of
weights.

Inputs: ``ids`` int32 [B, 7] (the fields of `ctr_features.FIELDS`, row 0 = unknown) and
``genres`` float32 [B, 19] multi-hot. Output: ``logit`` float32 [B, 1] (sigmoid -> CTR).

The seven id fields share one embedding table (each field at its own row offset) and
one first-order weight table; the genres are pooled as the mean of their embeddings
(and of their first-order weights). Eight field embeddings of size EMBED_DIM feed both
parts: the FM (first order + the pairwise interactions, 0.5 * ((sum e)^2 - sum e^2))
and the deep MLP over their concatenation. logit = bias + first + second + deep.

Inside the graph an id outside its field's range is mapped to the unknown row 0, so even
an artifact fed unchecked ids (a benchmark's random ints) never reads out of bounds;
`ctr_features.validate_feed` rejects such ids before a runtime is called.

Training (PyTorch, 2 threads, fixed seeds and shuffles) runs once per machine in a child
process and is cached in `weights_dir()` by WEIGHTS_VERSION; this module imports neither
framework at the top.
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
from workbench.recsys import ctr_features
from workbench.workspace import weights_dir

log = logging.getLogger(__name__)
EMBED_DIM = 16
HIDDEN = (64, 32)
EPOCHS = 3
BATCH = 512
LR = 2e-3
WEIGHT_DECAY = 1e-6
ID_DROPOUT = 0.1  # share of training rows whose user / item id is replaced by "unknown"
SEED = 0
WEIGHTS_VERSION = "1"  # bump when the architecture, features or training change
INPUT_NAMES = ("ids", "genres")
OUTPUT_NAME = "logit"


def offsets(sizes: tuple[int, ...]) -> np.ndarray:
    """Each field's first row in the shared table."""
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)


# ---------------------------------------------------------------------------- PyTorch


def torch_module(sizes: tuple[int, ...]) -> Any:
    """A fresh DeepFM nn.Module for fields with `sizes` rows each."""
    # lazy: torch
    import torch
    from torch import nn

    class DeepFM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            total = int(sum(sizes))
            self.register_buffer("sizes", torch.tensor(sizes, dtype=torch.int32))
            self.register_buffer("offsets", torch.from_numpy(offsets(sizes).astype(np.int32)))
            self.embedding = nn.Embedding(total, EMBED_DIM)
            self.linear = nn.Embedding(total, 1)
            self.genre_embedding = nn.Parameter(torch.empty(ctr_features.N_GENRES, EMBED_DIM))
            self.genre_linear = nn.Parameter(torch.zeros(ctr_features.N_GENRES, 1))
            self.bias = nn.Parameter(torch.zeros(1))
            layers: list[nn.Module] = []
            width = (len(sizes) + 1) * EMBED_DIM
            for hidden in HIDDEN:
                layers += [nn.Linear(width, hidden), nn.ReLU()]
                width = hidden
            layers.append(nn.Linear(width, 1))
            self.mlp = nn.Sequential(*layers)
            nn.init.normal_(self.embedding.weight, std=0.01)
            nn.init.normal_(self.genre_embedding, std=0.01)
            nn.init.zeros_(self.linear.weight)

        def forward(self, ids: Any, genres: Any) -> Any:
            valid = (ids >= 0) & (ids < self.sizes)
            rows = torch.where(valid, ids, torch.zeros_like(ids)) + self.offsets
            count = genres.sum(dim=1, keepdim=True).clamp(min=1.0)
            pooled = (genres @ self.genre_embedding) / count  # [B, k]
            fields = torch.cat([self.embedding(rows), pooled.unsqueeze(1)], dim=1)  # [B, 8, k]
            first = self.linear(rows).sum(dim=1) + (genres @ self.genre_linear) / count + self.bias
            total = fields.sum(dim=1)
            second = 0.5 * (total * total - (fields * fields).sum(dim=1)).sum(dim=1, keepdim=True)
            deep = self.mlp(fields.flatten(1))
            return first + second + deep

    return DeepFM()


def build_torch(weights: Mapping[str, np.ndarray]) -> Any:
    """The trained model in eval mode: (ids [B, 7] int32, genres [B, 19]) -> logit [B, 1]."""
    # lazy: torch
    import torch

    state = weights_only(weights)
    model = torch_module(tuple(int(s) for s in state["sizes"]))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    return model.eval()


def predict_torch(model: Any, feed: Mapping[str, np.ndarray], batch: int = 8192) -> np.ndarray:
    """Logits [N] of a PyTorch DeepFM, in chunks."""
    # lazy: torch
    import torch

    ids, genres = feed["ids"], feed["genres"]
    with torch.no_grad():
        parts = [
            model(torch.from_numpy(ids[i : i + batch]), torch.from_numpy(genres[i : i + batch]))
            for i in range(0, len(ids), batch)
        ]
    return torch.cat(parts).numpy().reshape(-1)


def weights_only(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The state without its ``__meta_*`` entries (training time, AUC, log loss)."""
    return {k: np.asarray(v) for k, v in state.items() if not k.startswith("__meta")}


def train(epochs: int = EPOCHS, seed: int = SEED) -> Any:
    """Adam on binary cross-entropy over the training split, fixed seed and shuffles.
    Epochs are reported through `workbench.progress`, each one's loss at debug level."""
    # lazy: torch
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(seed)
    data = ctr_features.split("train")
    ids_all, genres_all, labels_all = data.feed["ids"], data.feed["genres"], data.labels
    model = torch_module(ctr_features.field_sizes()).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    for epoch in progress(range(epochs), "train deepfm", unit="epoch"):
        order = rng.permutation(len(labels_all))
        ids = ids_all[order].copy()
        drop = rng.random((len(ids), 2)) < ID_DROPOUT  # user (col 0), item (col 1) -> unknown
        ids[:, :2][drop] = 0
        genres, labels = genres_all[order], labels_all[order]
        total = 0.0
        for i in range(0, len(ids), BATCH):
            logit = model(
                torch.from_numpy(ids[i : i + BATCH]), torch.from_numpy(genres[i : i + BATCH])
            )
            loss = F.binary_cross_entropy_with_logits(
                logit.squeeze(1), torch.from_numpy(labels[i : i + BATCH])
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(logit)
        log.debug("deepfm epoch %d/%d train log loss %.4f", epoch + 1, epochs, total / len(ids))
    return model.eval()


def evaluate(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """AUC and log loss (scikit-learn) of logits against 0/1 labels."""
    # lazy: sklearn
    from sklearn.metrics import log_loss, roc_auc_score

    prob = 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))
    return {"auc": float(roc_auc_score(labels, prob)), "log_loss": float(log_loss(labels, prob))}


def train_to(path: str, seed: int | str = SEED) -> None:
    """Train, evaluate on the test split and write the weights to `path` (.npz,
    atomically) with __meta entries: seconds, threads, test AUC and log loss."""
    # lazy: torch
    import torch

    torch.set_num_threads(
        int(os.environ.get("WORKBENCH_TRAIN_THREADS", min(2, os.cpu_count() or 1)))
    )
    log.info("deepfm: training once (%d epochs); cached in %s", EPOCHS, path)
    started = time.perf_counter()
    model = train(seed=int(seed))
    seconds = time.perf_counter() - started
    state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    test = ctr_features.split("test")
    scores = evaluate(predict_torch(build_torch(state), test.feed), test.labels)
    log.info(
        "deepfm: trained in %.1f s, test AUC %.4f log loss %.4f",
        seconds,
        scores["auc"],
        scores["log_loss"],
    )
    state["__meta_train_seconds"] = np.asarray(seconds)
    state["__meta_test_auc"] = np.asarray(scores["auc"])
    state["__meta_test_log_loss"] = np.asarray(scores["log_loss"])
    state["__meta_torch_threads"] = np.asarray(torch.get_num_threads())
    tmp = Path(path).with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **state)
    os.replace(tmp, path)


def weights_path(seed: int = SEED) -> Path:
    return weights_dir() / f"ctr-deepfm-w{WEIGHTS_VERSION}-{seed}.npz"


def trained_weights(seed: int = SEED) -> dict[str, np.ndarray]:
    """The trained weights (keyed like the PyTorch state dict, plus ``__meta_*``): trained
    once per machine in a child process, then read from the cache."""
    return cached_npz(weights_path(seed), "workbench.recsys.deepfm:train_to", str(seed))


# ---------------------------------------------------------------------------- Keras


def build_keras(weights: Mapping[str, np.ndarray], name: str = "deepfm") -> Any:
    """The same network in Keras 3, the PyTorch weights copied in (Linear [out, in] ->
    Dense [in, out]): inputs "ids" int32 [B, 7] and "genres" float32 [B, 19] -> [B, 1]."""
    # lazy: keras
    import keras
    from keras import ops

    state = weights_only(weights)
    sizes = tuple(int(s) for s in state["sizes"])
    ids = keras.Input((len(sizes),), name="ids", dtype="int32")
    genres = keras.Input((ctr_features.N_GENRES,), name="genres", dtype="float32")
    size_row = ops.convert_to_tensor(np.asarray(sizes, np.int32)[None, :])
    # subtracting the negated offsets: TensorFlow rewrites an int Add of a row constant
    # into BiasAdd, which TFLite has no kernel for
    minus_offset_row = ops.convert_to_tensor(-offsets(sizes).astype(np.int32)[None, :])
    valid = ops.logical_and(ops.greater_equal(ids, 0), ops.less(ids, size_row))
    rows = ops.subtract(ops.where(valid, ids, ops.zeros_like(ids)), minus_offset_row)
    embedding = keras.layers.Embedding(int(sum(sizes)), EMBED_DIM, name="embedding")
    linear = keras.layers.Embedding(int(sum(sizes)), 1, name="linear")
    genre_embedding = keras.layers.Dense(EMBED_DIM, use_bias=False, name="genre_embedding")
    genre_linear = keras.layers.Dense(1, use_bias=False, name="genre_linear")
    bias = ops.convert_to_tensor(state["bias"].reshape(1, 1))  # the FM's global bias
    count = ops.maximum(ops.sum(genres, axis=1, keepdims=True), 1.0)
    pooled = genre_embedding(genres) / count
    fields = ops.concatenate([embedding(rows), ops.expand_dims(pooled, 1)], axis=1)
    first = ops.sum(linear(rows), axis=1) + genre_linear(genres) / count + bias
    total = ops.sum(fields, axis=1)
    second = 0.5 * ops.sum(total * total - ops.sum(fields * fields, axis=1), axis=1, keepdims=True)
    h = ops.reshape(fields, (-1, (len(sizes) + 1) * EMBED_DIM))
    dense_layers = []
    for i, hidden in enumerate((*HIDDEN, 1)):
        layer = keras.layers.Dense(
            hidden, activation="relu" if i < len(HIDDEN) else None, name=f"mlp_{i}"
        )
        h = layer(h)
        dense_layers.append(layer)
    logit = keras.layers.Identity(name=OUTPUT_NAME)(first + second + h)
    model = keras.Model([ids, genres], logit, name=name)
    embedding.set_weights([state["embedding.weight"]])
    linear.set_weights([state["linear.weight"]])
    genre_embedding.set_weights([state["genre_embedding"]])
    genre_linear.set_weights([state["genre_linear"]])
    for i, layer in enumerate(dense_layers):
        layer.set_weights([state[f"mlp.{2 * i}.weight"].T, state[f"mlp.{2 * i}.bias"]])
    return model
