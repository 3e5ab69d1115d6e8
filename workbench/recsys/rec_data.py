"""MovieLens-100k for retrieval: the leave-last-out split and the towers' input features.

Split: each user's last rating in time is held out (943 test items, one per user); every
earlier rating is a training positive (implicit feedback: a rating, whatever its value,
means the user chose the film). Evaluation ranks the whole catalog for each user,
excluding the items the user rated in training.

Tower inputs are int64 indices with row 0 = "unknown" in every table (so each table has
one row more than its values), plus the genres multi-hot. `validate_feed` rejects ids
outside a table before any runtime sees them; the graphs also map such ids to row 0, so
an unchecked feed (a benchmark's random ints) never reads out of bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from workbench.errors import UserError
from workbench.recsys import movielens

AGE_EDGES = (18, 25, 35, 45, 50, 56)  # MovieLens-1M's age groups: 7 buckets
N_AGE_BUCKETS = len(AGE_EDGES) + 1
N_GENDERS = 2
N_GENRES = len(movielens.GENRES)


@dataclass(frozen=True)
class Split:
    """train_users / train_items: the training interactions (aligned int64 arrays);
    test_items[u]: user u's held-out item; seen[u]: u's training items, sorted."""

    train_users: np.ndarray
    train_items: np.ndarray
    test_items: np.ndarray
    seen: tuple[np.ndarray, ...]


@cache
def leave_last_out() -> Split:
    """Each user's last rating (ratings are sorted by timestamp, then user, then item)."""
    ratings = movielens.load().ratings
    last = ratings.groupby("user", sort=True).tail(1)
    test_items = np.empty(movielens.load().n_users, np.int64)
    test_items[last["user"].to_numpy()] = last["item"].to_numpy()
    train = ratings.drop(index=last.index)
    users = train["user"].to_numpy(np.int64)
    items = train["item"].to_numpy(np.int64)
    order = np.lexsort((items, users))
    bounds = np.searchsorted(users[order], np.arange(len(test_items) + 1))
    seen = tuple(np.sort(items[order][bounds[u] : bounds[u + 1]]) for u in range(len(test_items)))
    return Split(users, items, test_items, seen)


@cache
def occupations() -> tuple[str, ...]:
    """The 21 occupations, sorted (index + 1 is the feature value)."""
    return tuple(sorted(movielens.load().users["occupation"].unique()))


def table_sizes() -> dict[str, int]:
    """Rows of each id input's table, unknown row included."""
    data = movielens.load()
    return {
        "user": data.n_users + 1,
        "age_bucket": N_AGE_BUCKETS + 1,
        "gender": N_GENDERS + 1,
        "occupation": len(occupations()) + 1,
        "item": data.n_items + 1,
    }


@cache
def _user_table() -> dict[str, np.ndarray]:
    users = movielens.load().users
    occupation_of = {name: i + 1 for i, name in enumerate(occupations())}
    return {
        "age_bucket": np.searchsorted(AGE_EDGES, users["age"].to_numpy(), side="right") + 1,
        "gender": np.where(users["gender"].to_numpy() == "M", 1, 2),
        "occupation": np.array([occupation_of[o] for o in users["occupation"]]),
    }


def user_feed(users: np.ndarray, with_features: bool = True) -> dict[str, np.ndarray]:
    """Tower inputs for dense user indices (0-based; -1 = unknown: every input row 0)."""
    users = np.asarray(users, np.int64).reshape(-1)
    known = users >= 0
    feed = {"user": np.where(known, users + 1, 0).astype(np.int64)}
    if with_features:
        table = _user_table()
        for name, column in table.items():
            feed[name] = np.where(known, column[np.maximum(users, 0)], 0).astype(np.int64)
    return feed


def item_feed(items: np.ndarray, with_genres: bool = True) -> dict[str, np.ndarray]:
    """Tower inputs for dense item indices (0-based)."""
    items = np.asarray(items, np.int64).reshape(-1)
    feed = {"item": (items + 1).astype(np.int64)}
    if with_genres:
        feed["genres"] = movielens.load().genres[items].astype(np.float32)
    return feed


def validate_feed(feed: dict[str, np.ndarray]) -> int:
    """The batch size of a tower feed, or a UserError naming the first bad input: an id
    outside its table (which would read out of bounds in a runtime without the graph's
    guard), genres that are not finite, or inputs of different lengths."""
    sizes = table_sizes()
    lengths = {name: len(np.asarray(value)) for name, value in feed.items()}
    if len(set(lengths.values())) > 1:
        raise UserError(
            f"tower inputs have different batch sizes {lengths}: give one row per user/item"
        )
    for name, value in feed.items():
        array = np.asarray(value)
        if name in sizes:
            if array.dtype.kind not in "iu":
                raise UserError(f"input {name!r} must hold integer ids, got {array.dtype}")
            bad = array[(array < 0) | (array >= sizes[name])]
            if bad.size:
                raise UserError(
                    f"input {name!r} holds ids {bad[:5].tolist()} outside its table "
                    f"0..{sizes[name] - 1} (0 = unknown): map raw ids with rec_data.user_feed/item_feed"
                )
        elif name == "genres":
            if array.ndim != 2 or array.shape[1] != N_GENRES or not np.isfinite(array).all():
                raise UserError(
                    f"input 'genres' must be a finite [batch, {N_GENRES}] multi-hot, got shape "
                    f"{array.shape}{' with NaN/inf' if array.size and not np.isfinite(array).all() else ''}"
                )
        else:
            raise UserError(
                f"unknown tower input {name!r}: expected {', '.join([*sizes, 'genres'])}"
            )
    return next(iter(lengths.values()), 0)


@cache
def popularity() -> np.ndarray:
    """Training interactions per item: the cold-start fallback's ranking score."""
    split = leave_last_out()
    return np.bincount(split.train_items, minlength=movielens.load().n_items).astype(np.float32)
