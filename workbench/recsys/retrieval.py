"""Top-k retrieval over a catalog: exact (one matmul + argpartition) and faiss indexes.

The guide (§7.1) scores items one at a time through a map and sorts every score; here a
batch of users is scored against the catalog with one sgemm per block of items, each
block keeps its k best with `np.argpartition` (O(n), no full sort), and only the k
survivors are sorted. Scoring in item blocks keeps the score matrix and argpartition's
int64 index array (2x its size) at `batch x block`, instead of `batch x catalog`
(256 users x 10^6 items would be 1 GiB of scores plus 2 GiB of indices).

Ties are broken by the smaller item id, so the result does not depend on the block size
or on argpartition's internals. Excluded (seen) items never come back; when a user has
fewer than k items left, the tail is padded with id -1 and score -inf.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.errors import UserError

DEFAULT_BLOCK = 1 << 16  # items scored per sgemm: 256 users x 65,536 x 4 B = 64 MiB


@dataclass(frozen=True)
class TopK:
    """ids [users, k] (int64, -1 = no item left), scores [users, k] (float32), best first."""

    ids: np.ndarray
    scores: np.ndarray


def check_k(k: int, n_items: int) -> int:
    """k as an int in 1..n_items, or a UserError saying what to pass."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise UserError(f"k must be an integer, got {k!r}")
    if k <= 0:
        raise UserError(f"k must be at least 1, got {k}")
    if k > n_items:
        raise UserError(
            f"k={k} is larger than the catalog ({n_items} items): ask for at most {n_items}"
        )
    return int(k)


def _check_matrix(
    name: str, array: np.ndarray, dim: int | None = None, check_finite: bool = True
) -> np.ndarray:
    matrix = np.ascontiguousarray(array, dtype=np.float32)
    if matrix.ndim != 2:
        raise UserError(f"{name} must be a 2-D array [rows, dim], got shape {matrix.shape}")
    if dim is not None and matrix.shape[1] != dim:
        raise UserError(
            f"{name} have dimension {matrix.shape[1]} but the items {dim}: use the same tower"
        )
    if check_finite and not np.isfinite(matrix).all():
        raise UserError(
            f"{name} contain NaN or infinite values: check the features fed to the tower"
        )
    return matrix


def exclusion_coords(
    exclude: Sequence[Sequence[int] | np.ndarray] | None, n_users: int, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """(user rows, item ids) of every excluded pair; a UserError for an exclusion list
    naming an item outside the catalog (probably ids of another catalog or raw ids)."""
    if exclude is None:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    if len(exclude) != n_users:
        raise UserError(
            f"{len(exclude)} exclusion lists for {n_users} users: pass one (possibly empty) per user"
        )
    lists = [np.asarray(items, dtype=np.int64).ravel() for items in exclude]
    cols = np.concatenate(lists) if lists else np.empty(0, np.int64)
    rows = np.repeat(np.arange(n_users), [len(ids) for ids in lists])
    bad = (cols < 0) | (cols >= n_items)
    if bad.any():
        row = int(rows[np.argmax(bad)])
        names = cols[bad & (rows == row)][:5].tolist()
        raise UserError(
            f"exclusion list of user row {row} names unknown items {names}: "
            f"item indices must lie in 0..{n_items - 1}"
        )
    return rows, cols


def _block_candidates(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k best scores, ties at the k-th score resolved towards
    the smaller column (argpartition alone picks an arbitrary subset of tied entries)."""
    n = scores.shape[1]
    if k >= n:
        return np.broadcast_to(np.arange(n), scores.shape).copy()
    part = np.argpartition(scores, n - k, axis=1)[:, n - k :]
    threshold = np.take_along_axis(scores, part, axis=1).min(axis=1)
    at_least = np.count_nonzero(scores >= threshold[:, None], axis=1)
    for row in np.flatnonzero(at_least > k):  # ties straddle the cut: rare with float scores
        above = np.flatnonzero(scores[row] > threshold[row])
        ties = np.flatnonzero(scores[row] == threshold[row])[: k - above.size]
        part[row] = np.concatenate([above, ties])
    return part


def _order(ids: np.ndarray, scores: np.ndarray, k: int) -> TopK:
    """The k best of each row by (score desc, id asc); excluded (-inf) become id -1."""
    order = np.lexsort((ids, -scores), axis=1)[:, :k]
    top_ids = np.take_along_axis(ids, order, axis=1).astype(np.int64)
    top_scores = np.take_along_axis(scores, order, axis=1).astype(np.float32)
    top_ids[np.isneginf(top_scores)] = -1
    return TopK(top_ids, top_scores)


def exact_topk(
    queries: np.ndarray,
    items: np.ndarray,
    k: int,
    exclude: Sequence[Sequence[int] | np.ndarray] | None = None,
    block: int = DEFAULT_BLOCK,
) -> TopK:
    """The k items with the largest inner product for each query row, best first,
    skipping each row's `exclude` items. Deterministic: ties go to the smaller item id."""
    # The catalog is not scanned for NaN up front (a pass over 10^6 x 64 floats costs
    # about a tenth of the search): a NaN or +inf item surfaces among the candidates.
    items = _check_matrix("item embeddings", items, check_finite=False)
    queries = _check_matrix("user embeddings", queries, items.shape[1])
    n_users, n_items = len(queries), len(items)
    k = check_k(k, n_items)
    ex_rows, ex_cols = exclusion_coords(exclude, n_users, n_items)
    cand_ids, cand_scores = [], []
    for start in range(0, n_items, block):
        stop = min(n_items, start + block)
        scores = queries @ items[start:stop].T
        if ex_cols.size:
            inside = (ex_cols >= start) & (ex_cols < stop)
            scores[ex_rows[inside], ex_cols[inside] - start] = -np.inf
        local = _block_candidates(scores, min(k, stop - start))
        cand_ids.append(local + start)
        cand_scores.append(np.take_along_axis(scores, local, axis=1))
    scores = np.concatenate(cand_scores, axis=1)
    if np.isnan(scores).any() or np.isposinf(scores).any():
        raise UserError(
            "item embeddings contain NaN or infinite values: check the item tower's inputs"
        )
    return _order(np.concatenate(cand_ids, axis=1), scores, k)


def brute_force_topk(
    queries: np.ndarray, items: np.ndarray, k: int, exclude: Sequence[Sequence[int]] | None = None
) -> TopK:
    """Reference for tests: every score, a full stable sort per user in pure Python order."""
    ids_out, scores_out = [], []
    for row, q in enumerate(np.asarray(queries, np.float32)):
        banned = set() if exclude is None else {int(i) for i in exclude[row]}
        scored = [
            (-float(np.float32(s)), i)
            for i, s in enumerate(np.asarray(items, np.float32) @ q)
            if i not in banned
        ]
        scored.sort()
        best = scored[:k] + [(np.inf, -1)] * max(0, k - len(scored))
        ids_out.append([i for _, i in best])
        scores_out.append([-s for s, _ in best])
    return TopK(np.array(ids_out, np.int64), np.array(scores_out, np.float32))


# ---------------------------------------------------------------------- faiss indexes


@dataclass
class AnnIndex:
    """A faiss index over a catalog, with what it cost to build."""

    kind: str
    params: dict[str, Any]
    index: Any
    n_items: int
    build_s: float
    # max item norm when the catalog went through the MIPS -> L2 transform, else None
    max_norm: float | None = None

    @property
    def nbytes(self) -> int:
        """Serialized size: the vectors (or codes) plus the graph / inverted lists."""
        # lazy: faiss
        import faiss

        return int(faiss.serialize_index(self.index).nbytes)

    def set_search_params(self, **params: Any) -> None:
        """efSearch (hnsw) or nprobe (ivf_*): the recall/speed knob at query time."""
        if "ef_search" in params:
            self.index.hnsw.efSearch = int(params["ef_search"])
        if "nprobe" in params:
            # lazy: faiss
            import faiss

            faiss.extract_index_ivf(self.index).nprobe = int(params["nprobe"])
        self.params.update(params)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        exclude: Sequence[Sequence[int] | np.ndarray] | None = None,
    ) -> TopK:
        """The index's top k per query, skipping excluded items: it asks faiss for
        k + (longest exclusion list) and filters, so an exclusion never shortens the
        list unless the catalog runs out (then ids are -1)."""
        dim = self.index.d - (self.max_norm is not None)
        queries = _check_matrix("user embeddings", queries, dim)
        k = check_k(k, self.n_items)
        ex_rows, ex_cols = exclusion_coords(exclude, len(queries), self.n_items)
        extra = int(np.bincount(ex_rows, minlength=len(queries)).max()) if ex_rows.size else 0
        fetch = min(self.n_items, k + extra)
        if self.max_norm is None:
            scores, ids = self.index.search(queries, fetch)
        else:  # L2 index over augmented vectors: ||q - x'||^2 = |q|^2 + M^2 - 2 q.x
            padded = np.hstack([queries, np.zeros((len(queries), 1), np.float32)])
            distances, ids = self.index.search(padded, fetch)
            norms = (queries.astype(np.float64) ** 2).sum(axis=1, keepdims=True)
            scores = (norms + self.max_norm**2 - distances) / 2
        scores = np.where(ids < 0, -np.inf, scores).astype(np.float32)
        if ex_rows.size:
            banned = np.zeros(ids.shape, bool)
            for row in np.unique(ex_rows):
                banned[row] = np.isin(ids[row], ex_cols[ex_rows == row])
            scores[banned] = -np.inf
        return _order(ids.astype(np.int64), scores, k)


def build_index(items: np.ndarray, kind: str = "hnsw", **params: Any) -> AnnIndex:
    """A faiss inner-product index over `items`:

    - "flat": IndexFlatIP, exact (the baseline faiss itself offers);
    - "hnsw": IndexHNSWFlat, graph search; params m (links per node, 32), ef_construction
      (200), ef_search (128);
    - "ivf_flat": IndexIVFFlat, k-means cells scanned exactly; nlist (sqrt(n)*4), nprobe (32);
    - "ivf_pq": IndexIVFPQ, cells with product-quantized codes; nlist, nprobe, m_pq
      (sub-quantizers, dim/4), nbits (8), refine (0: off; r: re-rank r*k candidates
      by their exact scores, keeping the float vectors beside the codes).
    Training samples at most 64 points per cell, from a fixed seed. transform="l2" turns
    the inner-product search into an L2 one over augmented vectors (scores returned are
    still inner products)."""
    # lazy: faiss
    import faiss

    items = _check_matrix("item embeddings", items)
    start = time.perf_counter()
    max_norm = None
    if params.get("transform") == "l2":
        # MIPS -> nearest neighbour (Bachrach et al., 2014): append sqrt(M^2 - |x|^2) to each
        # item (M = the largest norm) and 0 to each query; the L2 order is then the inner-
        # product order, and graph / k-means indexes no longer favour large-norm items blindly.
        norms = np.linalg.norm(items.astype(np.float64), axis=1)
        max_norm = float(norms.max())
        extra = np.sqrt(np.maximum(max_norm**2 - norms**2, 0.0)).astype(np.float32)
        items = np.hstack([items, extra[:, None]])
    elif params.get("transform") not in (None, "none"):
        raise UserError(f"unknown transform {params['transform']!r}: use 'l2' or leave it out")
    n, dim = items.shape
    metric = faiss.METRIC_L2 if max_norm is not None else faiss.METRIC_INNER_PRODUCT
    if kind == "flat":
        index = faiss.IndexFlat(dim, metric)
        settings: dict[str, Any] = {**params}
    elif kind == "hnsw":
        settings = {"m": 32, "ef_construction": 200, "ef_search": 128, **params}
        index = faiss.IndexHNSWFlat(dim, int(settings["m"]), metric)
        index.hnsw.efConstruction = int(settings["ef_construction"])
        index.hnsw.efSearch = int(settings["ef_search"])
    elif kind in ("ivf_flat", "ivf_pq"):
        nlist = int(params.get("nlist", max(1, min(n // 39, int(4 * np.sqrt(n))))))
        settings = {"nlist": nlist, "nprobe": min(nlist, 32), **params}
        quantizer = faiss.IndexFlat(dim, metric)
        if kind == "ivf_flat":
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, metric)
        else:
            settings.setdefault("m_pq", max(1, dim // 4))
            settings.setdefault("nbits", 8)
            if dim % int(settings["m_pq"]):
                raise UserError(
                    f"ivf_pq needs m_pq dividing the dimension {dim}, got {settings['m_pq']}"
                )
            index = faiss.IndexIVFPQ(
                quantizer, dim, nlist, int(settings["m_pq"]), int(settings["nbits"]), metric
            )
        rng = np.random.default_rng(0)
        sample = items[rng.choice(n, size=min(n, 64 * nlist), replace=False)]
        index.cp.seed = 0
        index.train(sample)
        index.nprobe = int(settings["nprobe"])
        if settings.get("refine"):  # re-rank the PQ candidates by their exact scores
            index = faiss.IndexRefineFlat(index)
            index.k_factor = float(settings["refine"])
    else:
        raise UserError(f"unknown index kind {kind!r}: choose flat, hnsw, ivf_flat or ivf_pq")
    index.add(items)
    return AnnIndex(kind, settings, index, n, time.perf_counter() - start, max_norm)
