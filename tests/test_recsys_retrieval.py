"""Exact top-k with exclusion against a brute-force reference (ties included), and faiss."""

import numpy as np
import pytest

from workbench.errors import UserError
from workbench.recsys.metrics import topk_overlap
from workbench.recsys.retrieval import brute_force_topk, build_index, exact_topk


def _integer_embeddings(seed: int, n_users: int, n_items: int, dim: int):
    """Small integers: exact float32 dot products, with many tied scores."""
    rng = np.random.default_rng(seed)
    users = rng.integers(-2, 3, size=(n_users, dim)).astype(np.float32)
    items = rng.integers(-2, 3, size=(n_items, dim)).astype(np.float32)
    return users, items


@pytest.mark.parametrize("block", [7, 64, 1 << 16])
def test_exact_topk_matches_brute_force_with_ties_and_exclusions(block):
    users, items = _integer_embeddings(0, 12, 150, 3)  # 3 dims of -2..2: ties everywhere
    rng = np.random.default_rng(1)
    exclude = [rng.choice(150, size=rng.integers(0, 40), replace=False) for _ in range(12)]
    for k in (1, 5, 10, 150):
        got = exact_topk(users, items, k, exclude=exclude, block=block)
        want = brute_force_topk(users, items, k, exclude=exclude)
        np.testing.assert_array_equal(got.ids, want.ids)
        np.testing.assert_array_equal(got.scores, want.scores)
        for row, banned in enumerate(exclude):
            assert not set(got.ids[row].tolist()) & set(banned.tolist())


def test_all_tied_scores_take_smallest_ids_first():
    items = np.ones((20, 4), np.float32)
    got = exact_topk(np.ones((2, 4), np.float32), items, 5, exclude=[[0, 2], []], block=8)
    assert got.ids.tolist() == [[1, 3, 4, 5, 6], [0, 1, 2, 3, 4]]


def test_user_with_fewer_items_left_than_k_gets_padding():
    items = np.eye(4, dtype=np.float32)
    got = exact_topk(np.ones((1, 4), np.float32), items, 4, exclude=[[0, 1, 3]])
    assert got.ids.tolist() == [[2, -1, -1, -1]]
    assert np.isneginf(got.scores[0, 1:]).all()


def test_bad_inputs_get_clear_errors():
    users, items = _integer_embeddings(0, 2, 10, 3)
    with pytest.raises(UserError, match="at least 1"):
        exact_topk(users, items, 0)
    with pytest.raises(UserError, match="larger than the catalog"):
        exact_topk(users, items, 11)
    with pytest.raises(UserError, match="unknown items \\[10\\]"):
        exact_topk(users, items, 3, exclude=[[1], [10]])
    with pytest.raises(UserError, match="one \\(possibly empty\\) per user"):
        exact_topk(users, items, 3, exclude=[[1]])
    bad = users.copy()
    bad[0, 0] = np.nan
    with pytest.raises(UserError, match="NaN"):
        exact_topk(bad, items, 3)
    bad_items = items.copy()
    bad_items[7, 1] = np.nan
    with pytest.raises(UserError, match="item embeddings contain NaN"):
        exact_topk(users, bad_items, 3)
    with pytest.raises(UserError, match="dimension"):
        exact_topk(users[:, :2], items, 3)


def test_faiss_flat_is_exact_and_approximate_indexes_recall_well():
    rng = np.random.default_rng(0)
    items = rng.standard_normal((4000, 16)).astype(np.float32)
    users = rng.standard_normal((64, 16)).astype(np.float32)
    exclude = [rng.choice(4000, size=20, replace=False) for _ in range(64)]
    exact = exact_topk(users, items, 10, exclude=exclude)
    flat = build_index(items, "flat").search(users, 10, exclude=exclude)
    assert topk_overlap(exact.ids, flat.ids) == 1.0
    hnsw = build_index(items, "hnsw", m=16, ef_construction=100, ef_search=64)
    assert topk_overlap(exact.ids, hnsw.search(users, 10, exclude=exclude).ids) >= 0.9
    ivf = build_index(items, "ivf_flat", nlist=32, nprobe=8)
    assert topk_overlap(exact.ids, ivf.search(users, 10, exclude=exclude).ids) >= 0.8
    assert hnsw.nbytes > items.nbytes  # vectors plus the graph
    for index in (hnsw, ivf):
        got = index.search(users, 10, exclude=exclude)
        for row, banned in enumerate(exclude):
            assert not set(got.ids[row].tolist()) & set(banned.tolist())


def test_synthetic_catalog_follows_the_fit_and_bare_baseline_agrees():
    from workbench.recsys.catalog_scale import GaussianFit, bare_numpy_topk, exact_vs_bare

    rng = np.random.default_rng(3)
    source = rng.standard_normal((2000, 8)) @ rng.standard_normal((8, 8)) + 2.0
    fit = GaussianFit.of(source)
    sample = fit.sample(50_000, seed=0, chunk=4096)
    assert sample.dtype == np.float32 and sample.shape == (50_000, 8)
    np.testing.assert_allclose(sample.mean(0), source.mean(0), atol=0.1)
    np.testing.assert_allclose(np.cov(sample, rowvar=False), np.cov(source, rowvar=False), atol=0.3)
    users = fit.sample(16, seed=1)
    exact = exact_topk(users, sample, 10, block=4096)
    assert topk_overlap(bare_numpy_topk(users, sample, 10), exact.ids) == 1.0
    row = exact_vs_bare(users, sample[:5000], 10, reps=1, seen_per_user=20)
    assert row["items"] == 5000 and row["exact_peak_bytes"] > 0 and row["overlap_with_bare"] is None


def test_ivf_pq_with_refinement_recovers_exact_scores():
    rng = np.random.default_rng(0)
    items = rng.standard_normal((3000, 16)).astype(np.float32)
    users = rng.standard_normal((32, 16)).astype(np.float32)
    exact = exact_topk(users, items, 10)
    index = build_index(items, "ivf_pq", nlist=16, nprobe=16, m_pq=8, nbits=6, refine=16)
    got = index.search(users, 10)
    assert topk_overlap(exact.ids, got.ids) >= 0.9
    index.set_search_params(nprobe=1)
    assert topk_overlap(exact.ids, index.search(users, 10).ids) < topk_overlap(exact.ids, got.ids)


def test_mips_to_l2_transform_returns_inner_products():
    rng = np.random.default_rng(5)
    # item norms that vary a lot, as trained item vectors' do
    items = (rng.standard_normal((5000, 16)) * rng.uniform(0.2, 3.0, (5000, 1))).astype(np.float32)
    users = rng.standard_normal((64, 16)).astype(np.float32)
    exclude = [rng.choice(5000, size=30, replace=False) for _ in range(64)]
    exact = exact_topk(users, items, 10, exclude=exclude)
    flat = build_index(items, "flat", transform="l2").search(users, 10, exclude=exclude)
    np.testing.assert_array_equal(flat.ids, exact.ids)
    np.testing.assert_allclose(flat.scores, exact.scores, rtol=1e-4, atol=1e-3)
    every_cell = build_index(items, "ivf_flat", nlist=32, nprobe=32, transform="l2")
    assert topk_overlap(exact.ids, every_cell.search(users, 10, exclude=exclude).ids) == 1.0
    hnsw = build_index(items, "hnsw", m=16, ef_construction=100, ef_search=512, transform="l2")
    assert topk_overlap(exact.ids, hnsw.search(users, 10, exclude=exclude).ids) >= 0.9
    with pytest.raises(UserError, match="unknown transform"):
        build_index(items, "flat", transform="cosine")
