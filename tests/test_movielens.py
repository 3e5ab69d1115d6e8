"""MovieLens-100k as read from recbole's wheel: the published counts, dense ids."""

from __future__ import annotations

import numpy as np

from workbench.recsys import movielens


def test_movielens_100k_has_its_published_shape():
    data = movielens.load()
    assert (len(data.ratings), data.n_users, data.n_items) == (100_000, 943, 1682)
    assert data.ratings.groupby("user").size().min() >= 20  # every user rated >= 20 movies
    assert set(data.ratings["rating"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    # dense ids follow the raw ids, and every rating points at a known user and item
    assert (data.users["user_id"].to_numpy() == np.arange(1, 944)).all()
    assert (
        data.ratings["user"].between(0, 942).all() and data.ratings["item"].between(0, 1681).all()
    )
    assert (data.ratings["timestamp"].diff().dropna() >= 0).all()


def test_genres_are_multi_hot_in_the_dataset_order():
    data = movielens.load()
    toy_story = data.items.index[data.items["title"] == "Toy Story"][0]
    named = {movielens.GENRES[i] for i in np.flatnonzero(data.genres[toy_story])}
    assert named == {"Animation", "Children's", "Comedy"}
    assert data.genres.sum(axis=0)[movielens.GENRES.index("Drama")] == 725
