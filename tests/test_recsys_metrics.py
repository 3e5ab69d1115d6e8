"""Ranking metrics against hand-computed cases."""

import math

import numpy as np
import pytest

from workbench.errors import UserError
from workbench.recsys.metrics import ndcg_at_k, recall_at_k, topk_overlap


def test_recall_single_held_out_item_is_hit_rate():
    ranked = np.array([[3, 1, 2], [0, 4, 5], [7, 8, 9]])
    held_out = np.array([2, 9, 1])
    # user 0: hit at rank 2; users 1 and 2: miss
    assert recall_at_k(ranked, held_out, 3) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, np.array([3, 0, 7]), 1) == 1.0
    assert list(recall_at_k(ranked, held_out, 2, per_user=True)) == [0.0, 0.0, 0.0]


def test_recall_several_relevant_items_and_users_without_any():
    ranked = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    relevant = [{2, 4, 10}, set()]
    # user 0: 2 of 3 relevant in the top 4; user 1 has none and is left out of the mean
    assert recall_at_k(ranked, relevant, 4) == pytest.approx(2 / 3)
    per_user = recall_at_k(ranked, relevant, 4, per_user=True)
    assert per_user[0] == pytest.approx(2 / 3) and math.isnan(per_user[1])


def test_ndcg_hand_computed():
    ranked = np.array([[5, 3, 9], [1, 2, 3]])
    # user 0: one relevant item (9) at rank 2 -> (1/log2(4)) / 1 = 0.5
    # user 1: relevant {1, 3}: DCG = 1 + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3)
    relevant = [{9}, {1, 3}]
    per_user = ndcg_at_k(ranked, relevant, 3, per_user=True)
    assert per_user[0] == pytest.approx(0.5)
    assert per_user[1] == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(ranked, relevant, 3) == pytest.approx(per_user.mean())
    # a hit at rank 0 is perfect
    assert ndcg_at_k(np.array([[4, 0]]), np.array([4]), 2) == 1.0
    # k=1 cuts off everything below rank 0
    assert ndcg_at_k(ranked, relevant, 1) == pytest.approx(0.5)


def test_topk_overlap_ignores_order():
    a = np.array([[1, 2, 3], [4, 5, 6]])
    b = np.array([[3, 2, 1], [4, 7, 8]])
    assert topk_overlap(a, b) == pytest.approx((1 + 1 / 3) / 2)
    assert topk_overlap(a, b, k=1) == pytest.approx(0.5)


def test_bad_k_and_shapes():
    with pytest.raises(UserError, match="k must be a positive"):
        recall_at_k(np.array([[1, 2]]), np.array([1]), 0)
    with pytest.raises(UserError, match="fewer than k"):
        ndcg_at_k(np.array([[1, 2]]), np.array([1]), 3)
    with pytest.raises(UserError, match="one entry per user"):
        recall_at_k(np.array([[1, 2]]), np.array([1, 2]), 2)
