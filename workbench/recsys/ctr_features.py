"""CTR feature rows for MovieLens-100k: eight fields, a fixed temporal split, validation.

Every rating becomes one row with a click label (rating >= 4) and eight fields: seven
categorical ids -- user, item, age bucket, gender, occupation, zip prefix, release-year
bucket -- in one int32 ``ids`` tensor [B, 7], and the genres as a float32 multi-hot
``genres`` tensor [B, 19] (pooled into one embedding by the model).

Each field reserves row 0 for "unknown". The user and item vocabularies are the ids
seen in the training split: a user or item that only appears later (cold start: 85% of
the test period's ratings come from users absent from training) maps to row 0, which
training teaches by dropping a few known ids to 0 (`deepfm.ID_DROPOUT`).

The split is temporal and fixed: ratings are already sorted by (timestamp, user, item),
the first 80% train, the last 20% test.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from workbench.errors import UserError
from workbench.recsys import movielens

FIELDS = ("user", "item", "age", "gender", "occupation", "zip", "year")
N_GENRES = len(movielens.GENRES)
TRAIN_FRACTION = 0.8
AGE_EDGES = (18, 25, 35, 45, 50, 56)  # MovieLens' own age groups: <18, 18-24, ..., 56+
YEAR_BUCKETS = 9  # 0 unknown, 1 before 1930, 2..8 the decades 1930s..1990s
ZIP_BUCKETS = 12  # 0 unknown, 1..10 the first digit, 11 any other first character


@dataclass(frozen=True)
class FeatureTables:
    """Per-user and per-item encoded fields, so a feature row is two gathers.

    user_fields: [n_users, 5] int64 (user, age, gender, occupation, zip);
    item_fields: [n_items, 2] int64 (item, year); item_genres: [n_items, 19] float32;
    sizes: rows per field in FIELDS order (row 0 = unknown)."""

    user_fields: np.ndarray
    item_fields: np.ndarray
    item_genres: np.ndarray
    sizes: tuple[int, ...]

    def rows(self, users: np.ndarray, items: np.ndarray) -> dict[str, np.ndarray]:
        """Feature rows for (user, item) index pairs (dense MovieLens indices), broadcast:
        one user with many items, or pairs. Fresh arrays: no row shares memory with the
        tables or with another row (the guide's `append(userFeatures, ...)` aliasing)."""
        users, items = np.broadcast_arrays(np.asarray(users), np.asarray(items))
        ids = np.concatenate([self.user_fields[users], self.item_fields[items]], axis=1)
        order = [0, 5, 1, 2, 3, 4, 6]  # (user, age, gender, occ, zip, item, year) -> FIELDS
        return {
            "ids": np.ascontiguousarray(ids[:, order], dtype=np.int32),
            "genres": self.item_genres[items].copy(),
        }


def age_bucket(age: np.ndarray) -> np.ndarray:
    """1..7 for MovieLens' age groups (<18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+)."""
    return np.searchsorted(np.asarray(AGE_EDGES), age, side="right") + 1


def year_bucket(year: np.ndarray) -> np.ndarray:
    """0 for an unknown year, 1 before 1930, 2..8 for the 1930s..1990s (later years: 8)."""
    year = np.asarray(year, dtype=np.float64)
    known = np.isfinite(year)
    decade = np.clip((np.nan_to_num(year) - 1930) // 10, -1, 6).astype(np.int64) + 2
    return np.where(known, decade, 0)


def zip_bucket(zip_codes: list[str]) -> np.ndarray:
    """1..10 for a first digit 0..9, 11 for anything else (Canadian codes), 0 for empty."""
    out = []
    for code in zip_codes:
        first = code[:1]
        out.append(0 if not first else 1 + int(first) if first.isdigit() else 11)
    return np.asarray(out, dtype=np.int64)


def split_index() -> int:
    """The first test rating's position in `movielens.load().ratings`."""
    return int(len(movielens.load().ratings) * TRAIN_FRACTION)


@cache
def tables() -> FeatureTables:
    """The encoded fields of every user and item (vocabularies from the training split)."""
    data = movielens.load()
    train = data.ratings.iloc[: split_index()]
    users, items = data.users, data.items
    seen_users = np.zeros(data.n_users, bool)
    seen_users[train["user"].to_numpy()] = True
    seen_items = np.zeros(data.n_items, bool)
    seen_items[train["item"].to_numpy()] = True
    occupations = sorted(users["occupation"].unique())
    occupation = users["occupation"].map({o: i + 1 for i, o in enumerate(occupations)})
    gender = users["gender"].map({"M": 1, "F": 2}).fillna(0)
    user_fields = np.stack(
        [
            np.where(seen_users, np.arange(data.n_users) + 1, 0),
            age_bucket(users["age"].to_numpy()),
            gender.to_numpy(np.int64),
            occupation.to_numpy(np.int64),
            zip_bucket(list(users["zip_code"])),
        ],
        axis=1,
    ).astype(np.int64)
    item_fields = np.stack(
        [
            np.where(seen_items, np.arange(data.n_items) + 1, 0),
            year_bucket(items["release_year"].to_numpy()),
        ],
        axis=1,
    ).astype(np.int64)
    sizes = (
        data.n_users + 1,
        data.n_items + 1,
        len(AGE_EDGES) + 2,
        3,
        len(occupations) + 1,
        ZIP_BUCKETS,
        YEAR_BUCKETS,
    )
    return FeatureTables(user_fields, item_fields, data.genres.astype(np.float32), sizes)


def field_sizes() -> tuple[int, ...]:
    return tables().sizes


@dataclass(frozen=True)
class Split:
    """One side of the temporal split: feature rows, labels, and who/what each row is."""

    feed: dict[str, np.ndarray]
    labels: np.ndarray  # 1.0 where rating >= 4
    users: np.ndarray  # dense user index per row
    items: np.ndarray  # dense item index per row


@cache
def split(side: str) -> Split:
    """ "train" (the first 80% of ratings in time) or "test" (the last 20%)."""
    ratings = movielens.load().ratings
    cut = split_index()
    part = {"train": ratings.iloc[:cut], "test": ratings.iloc[cut:]}[side]
    users, items = part["user"].to_numpy(), part["item"].to_numpy()
    labels = (part["rating"].to_numpy() >= 4).astype(np.float32)
    return Split(tables().rows(users, items), labels, users, items)


def validate_feed(feed: dict[str, np.ndarray]) -> int:
    """Check a feed before any runtime sees it; return its batch size. A UserError names
    the problem: a missing input, wrong dtype or shape, an id outside its field's table
    (an exported artifact would read out of bounds or crash), NaN or non-binary genres."""
    sizes = np.asarray(field_sizes())
    missing = {"ids", "genres"} - set(feed)
    if missing:
        raise UserError(f"CTR feed lacks {sorted(missing)}: pass 'ids' [B, 7] and 'genres' [B, 19]")
    ids, genres = np.asarray(feed["ids"]), np.asarray(feed["genres"])
    if ids.dtype != np.int32 or ids.ndim != 2 or ids.shape[1] != len(FIELDS):
        raise UserError(
            f"'ids' must be int32 [B, {len(FIELDS)}] ({', '.join(FIELDS)}), got "
            f"{ids.dtype} {list(ids.shape)}"
        )
    if genres.ndim != 2 or genres.shape != (len(ids), N_GENRES):
        raise UserError(
            f"'genres' must be [B, {N_GENRES}] with B = {len(ids)} like 'ids', got "
            f"{list(genres.shape)}"
        )
    if len(ids) == 0:
        raise UserError("the CTR feed is empty: give at least one candidate row")
    bad = (ids < 0) | (ids >= sizes)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise UserError(
            f"{int(bad.sum())} id(s) outside their embedding table, e.g. row {row} field "
            f"{FIELDS[col]!r} = {int(ids[row, col])} (valid 0..{sizes[col] - 1}, 0 = unknown): "
            "encode ids with workbench.recsys.ctr_features.tables()"
        )
    if genres.dtype.kind != "f" or not np.isfinite(genres).all():
        raise UserError(
            "'genres' must be finite floats (a 0/1 multi-hot): it has NaN or infinite values"
        )
    if not ((genres == 0.0) | (genres == 1.0)).all():
        raise UserError("'genres' must be a 0/1 multi-hot: it has other values")
    return len(ids)
