"""End-to-end recommendation: raw MovieLens user ids -> tower features -> user tower ->
scores over the catalog -> top k, excluding each user's seen items.

Cold start: a user id the data set does not know gets the most-rated items it has not
excluded (popularity fallback), flagged in `Recommendations.cold`. Unknown item ids in an
exclusion list are an error (they are usually ids of another catalog), as are k <= 0 and
k larger than the catalog.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from workbench.errors import UserError
from workbench.recsys import movielens, rec_data
from workbench.recsys.retrieval import TopK, check_k, exact_topk


@dataclass(frozen=True)
class Recommendations:
    """item_ids: raw MovieLens item ids [users, k] (-1 = nothing left), items: their dense
    indices, scores: model scores (popularity counts for cold users), cold: [users]."""

    item_ids: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    cold: np.ndarray


@cache
def _index_of(kind: str) -> dict[int, int]:
    data = movielens.load()
    frame = data.users if kind == "user" else data.items
    return {int(raw): i for i, raw in enumerate(frame[f"{kind}_id"].to_numpy())}


def user_indices(raw_user_ids: Sequence[int] | np.ndarray) -> np.ndarray:
    """Dense user indices for raw ids; -1 for ids the data set does not know (cold)."""
    index = _index_of("user")
    return np.array([index.get(int(u), -1) for u in np.asarray(raw_user_ids).ravel()], np.int64)


def item_indices(raw_item_ids: Sequence[int] | np.ndarray) -> np.ndarray:
    """Dense item indices for raw ids; a UserError naming the ids not in the catalog."""
    index = _index_of("item")
    raw = np.asarray(raw_item_ids, np.int64).ravel()
    unknown = [int(i) for i in raw if int(i) not in index]
    if unknown:
        raise UserError(
            f"item ids {unknown[:5]} are not in the catalog ({len(index)} MovieLens-100k items, "
            f"ids 1..{max(index)}): drop them from the exclusion list"
        )
    return np.array([index[int(i)] for i in raw], np.int64)


def exclusions(
    users: np.ndarray, extra_raw: Sequence[Sequence[int]] | None = None
) -> list[np.ndarray]:
    """Per user: the items rated in training, plus the raw item ids in `extra_raw`."""
    seen = rec_data.leave_last_out().seen
    if extra_raw is not None and len(extra_raw) != len(users):
        raise UserError(
            f"{len(extra_raw)} exclusion lists for {len(users)} users: give one per user"
        )
    out = []
    for row, user in enumerate(users):
        own = seen[user] if user >= 0 else np.empty(0, np.int64)
        if extra_raw is not None:
            own = np.union1d(own, item_indices(extra_raw[row]))
        out.append(own)
    return out


def rank(
    user_vectors: np.ndarray,
    catalog: np.ndarray,
    users: np.ndarray,
    k: int,
    extra_exclude_raw: Sequence[Sequence[int]] | None = None,
) -> Recommendations:
    """Top k per user from the user tower's output, with the popularity fallback for
    cold users (users == -1)."""
    k = check_k(k, len(catalog))
    excluded = exclusions(users, extra_exclude_raw)
    top = exact_topk(user_vectors, catalog, k, exclude=excluded)
    cold = users < 0
    if cold.any():
        rows = np.flatnonzero(cold)
        popular = exact_topk(
            np.ones((rows.size, 1), np.float32),
            rec_data.popularity()[:, None],
            k,
            exclude=[excluded[r] for r in rows],
        )
        top = TopK(top.ids.copy(), top.scores.copy())
        top.ids[rows], top.scores[rows] = popular.ids, popular.scores
    raw = movielens.load().items["item_id"].to_numpy()
    item_ids = np.where(top.ids >= 0, raw[np.maximum(top.ids, 0)], -1)
    return Recommendations(item_ids, top.ids, top.scores, cold)
