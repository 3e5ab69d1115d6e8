"""Ranking metrics for recommenders: recall@k, NDCG@k and top-k overlap.

Each takes ranked item lists, one row per user (`ranked[u]` best first), and the
relevant items per user: either one item per user (a 1-D array, as in a leave-last-out
split) or a sequence of arrays/sets (several relevant items, possibly none). A user with
no relevant item is left out of the mean (it has no defined recall); `per_user=True`
gives NaN for those.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from workbench.errors import UserError


def _relevant_sets(relevant: np.ndarray | Sequence[Iterable[int]], n_users: int) -> list[set[int]]:
    if isinstance(relevant, np.ndarray) and relevant.ndim == 1:
        sets = [{int(item)} for item in relevant]
    else:
        sets = [{int(item) for item in np.asarray(list(items)).ravel()} for items in relevant]
    if len(sets) != n_users:
        raise UserError(
            f"{n_users} ranked lists but relevant items for {len(sets)} users: pass one entry per user"
        )
    return sets


def _ranked_rows(ranked: np.ndarray | Sequence[Sequence[int]], k: int) -> np.ndarray:
    if k <= 0:
        raise UserError(f"k must be a positive integer, got {k}")
    rows = np.asarray(ranked)
    if rows.ndim != 2:
        raise UserError(
            f"ranked lists must be a 2-D array [users, positions], got shape {rows.shape}"
        )
    if rows.shape[1] < k:
        raise UserError(
            f"ranked lists hold {rows.shape[1]} items, fewer than k={k}: rank at least k"
        )
    return rows[:, :k]


def _mean(values: np.ndarray, per_user: bool) -> float | np.ndarray:
    if per_user:
        return values
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")


def recall_at_k(
    ranked: np.ndarray | Sequence[Sequence[int]],
    relevant: np.ndarray | Sequence[Iterable[int]],
    k: int,
    per_user: bool = False,
) -> float | np.ndarray:
    """|top-k ∩ relevant| / |relevant|, averaged over users with a relevant item. With one
    held-out item per user this is the hit rate."""
    rows = _ranked_rows(ranked, k)
    sets = _relevant_sets(relevant, len(rows))
    values = np.array(
        [
            len(rel.intersection(row.tolist())) / len(rel) if rel else np.nan
            for row, rel in zip(rows, sets, strict=True)
        ],
        dtype=np.float64,
    )
    return _mean(values, per_user)


def ndcg_at_k(
    ranked: np.ndarray | Sequence[Sequence[int]],
    relevant: np.ndarray | Sequence[Iterable[int]],
    k: int,
    per_user: bool = False,
) -> float | np.ndarray:
    """Binary-relevance NDCG@k: sum of 1/log2(rank + 2) over relevant items in the top k
    (rank 0-based), divided by the same sum for an ideal ranking of min(|relevant|, k)
    items. Averaged over users with a relevant item."""
    rows = _ranked_rows(ranked, k)
    sets = _relevant_sets(relevant, len(rows))
    discounts = 1.0 / np.log2(np.arange(k) + 2.0)
    values = np.empty(len(rows), dtype=np.float64)
    for u, (row, rel) in enumerate(zip(rows, sets, strict=True)):
        if not rel:
            values[u] = np.nan
            continue
        gains = np.fromiter((item in rel for item in row.tolist()), dtype=np.float64, count=k)
        values[u] = float(gains @ discounts) / float(discounts[: min(len(rel), k)].sum())
    return _mean(values, per_user)


def topk_overlap(
    reference: np.ndarray | Sequence[Sequence[int]],
    candidate: np.ndarray | Sequence[Sequence[int]],
    k: int | None = None,
    per_user: bool = False,
) -> float | np.ndarray:
    """|reference top-k ∩ candidate top-k| / k per user, averaged: 1.0 when an artifact (or
    an approximate index) returns the same set as the exact search, in any order."""
    ref = np.asarray(reference)
    cand = np.asarray(candidate)
    if k is None:
        k = ref.shape[1] if ref.ndim == 2 else 0
    ref_rows, cand_rows = _ranked_rows(ref, k), _ranked_rows(cand, k)
    if len(ref_rows) != len(cand_rows):
        raise UserError(
            f"reference has {len(ref_rows)} users but candidate {len(cand_rows)}: compare the same users"
        )
    values = np.array(
        [
            len(set(a.tolist()).intersection(b.tolist())) / k
            for a, b in zip(ref_rows, cand_rows, strict=True)
        ],
        dtype=np.float64,
    )
    return values if per_user else float(values.mean())
