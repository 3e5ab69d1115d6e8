"""MovieLens-100k for retrieval: the leave-last-out split and the towers' input features.

Split: each user's last rating in time is held out (943 test items, one per user); every
earlier rating is a training positive (implicit feedback: a rating, whatever its value,
means the user chose the film). Evaluation ranks the whole catalog for each user,
excluding the items the user rated in training.

Tower inputs are int32 indices with row 0 = "unknown" in every table (so each table has
one row more than its values), plus the genre flags; the two-tower model takes each
side's columns as ONE tensor (a runtime may list several inputs in any order). `validate_feed` rejects ids
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


USER_COLUMNS = ("user", "age_bucket", "gender", "occupation")
ITEM_FEATURES_WIDTH = 1 + N_GENRES  # item id, then the 19 genre flags


def user_columns(users: np.ndarray) -> dict[str, np.ndarray]:
    """USER_COLUMNS as int32 arrays for dense user indices (0-based; -1 = unknown: every
    column row 0)."""
    users = np.asarray(users, np.int64).reshape(-1)
    known = users >= 0
    columns = {"user": np.where(known, users + 1, 0).astype(np.int32)}
    for name, column in _user_table().items():
        columns[name] = np.where(known, column[np.maximum(users, 0)], 0).astype(np.int32)
    return columns


def user_feed(users: np.ndarray, kind: str) -> dict[str, np.ndarray]:
    """A user tower's feed: mf {"user": [B]}; two_tower {"user_features": [B, 4]} (the
    columns of USER_COLUMNS in one tensor: one input, so no runtime can reorder inputs)."""
    columns = user_columns(users)
    if kind == "mf":
        return {"user": columns["user"]}
    return {"user_features": np.stack([columns[c] for c in USER_COLUMNS], axis=1)}


def item_feed(items: np.ndarray, kind: str) -> dict[str, np.ndarray]:
    """An item tower's feed for dense item indices: mf {"item": [B]}; two_tower
    {"item_features": [B, 20]} (id + 1, then the genre flags, int32)."""
    items = np.asarray(items, np.int64).reshape(-1)
    ids = (items + 1).astype(np.int32)
    if kind == "mf":
        return {"item": ids}
    genres = movielens.load().genres[items].astype(np.int32)
    return {"item_features": np.concatenate([ids[:, None], genres], axis=1)}


def _check_ids(name: str, ids: np.ndarray, rows: int) -> None:
    bad = ids[(ids < 0) | (ids >= rows)]
    if bad.size:
        raise UserError(
            f"input {name!r} holds ids {bad[:5].tolist()} outside its table 0..{rows - 1} "
            "(0 = unknown): map raw ids with rec_data.user_feed/item_feed"
        )


def validate_feed(feed: dict[str, np.ndarray]) -> int:
    """The batch size of a tower feed, or a UserError naming the first bad input: an id
    outside its table (which would read out of bounds in a runtime without the graph's
    guard), genre flags other than 0/1, a wrong shape or dtype."""
    sizes = table_sizes()
    widths = {"user": None, "item": None, "user_features": 4, "item_features": ITEM_FEATURES_WIDTH}
    batch = None
    for name, value in feed.items():
        array = np.asarray(value)
        if name not in widths:
            raise UserError(f"unknown tower input {name!r}: expected one of {', '.join(widths)}")
        want = (widths[name],) if widths[name] else ()
        if array.ndim != 1 + len(want) or array.shape[1:] != want:
            raise UserError(
                f"input {name!r} must have shape [batch{', ' + str(want[0]) if want else ''}], got {array.shape}"
            )
        if array.dtype.kind not in "iu":
            raise UserError(f"input {name!r} must hold integers, got {array.dtype}")
        if batch is not None and len(array) != batch:
            raise UserError("tower inputs have different batch sizes: give one row per user/item")
        batch = len(array)
        if name in ("user", "item"):
            _check_ids(name, array, sizes[name])
        elif name == "user_features":
            for i, column in enumerate(USER_COLUMNS):
                _check_ids(f"user_features[:, {i}] ({column})", array[:, i], sizes[column])
        else:
            _check_ids("item_features[:, 0] (item)", array[:, 0], sizes["item"])
            flags = array[:, 1:]
            if ((flags != 0) & (flags != 1)).any():
                raise UserError("item_features[:, 1:] must be 0/1 genre flags")
    return batch or 0


@cache
def popularity() -> np.ndarray:
    """Training interactions per item: the cold-start fallback's ranking score."""
    split = leave_last_out()
    return np.bincount(split.train_items, minlength=movielens.load().n_items).astype(np.float32)
