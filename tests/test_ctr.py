"""CTR (guide §7.2): DeepFM's trained quality, torch against Keras, batched ranking against
the guide's per-candidate loop, the task's export and parity, and bad input.

Keras runs in a child process (TensorFlow and PyTorch never share a process). The trained
weights come from the machine-wide cache; a fresh machine trains them once (about 40 s on
2 cores).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.childproc import run_child
from workbench.errors import UserError
from workbench.recsys import ctr_features, ctr_ranking
from workbench.recsys.deepfm import evaluate, trained_weights

# The trained model reaches AUC 0.698 / log loss 0.625 on the temporal test split (the
# issue's reference DeepFM: 0.703 / 0.624); the bounds leave room for another machine's
# training run while still failing a model that learned nothing (AUC 0.5, log loss 0.69).
MIN_AUC = 0.68
MAX_LOG_LOSS = 0.64


@pytest.fixture(scope="module")
def weights():
    return trained_weights()


@pytest.fixture(scope="module")
def model(weights):
    pytest.importorskip("torch")
    from workbench.recsys.deepfm import build_torch

    return build_torch(weights)


def test_split_is_temporal_and_features_are_in_range():
    train, test = ctr_features.split("train"), ctr_features.split("test")
    assert (len(train.labels), len(test.labels)) == (80_000, 20_000)
    ratings = ctr_features.movielens.load().ratings
    assert ratings["timestamp"].iloc[79_999] <= ratings["timestamp"].iloc[80_000]
    assert np.array_equal(test.labels, (ratings["rating"].to_numpy()[80_000:] >= 4))
    sizes = np.asarray(ctr_features.field_sizes())
    for part in (train, test):
        ids = part.feed["ids"]
        assert ids.dtype == np.int32 and ids.shape[1] == len(ctr_features.FIELDS)
        assert (ids >= 0).all() and (ids < sizes).all()
        assert ctr_features.validate_feed(part.feed) == len(ids)
    # users and items first seen in the test period are "unknown" (row 0)
    seen = set(train.users.tolist())
    new_user = np.array([u not in seen for u in test.users])
    assert new_user.any() and (test.feed["ids"][new_user, 0] == 0).all()
    assert (test.feed["ids"][~new_user, 0] == test.users[~new_user] + 1).all()


def test_feature_rows_broadcast_the_user_without_sharing_memory():
    tables = ctr_features.tables()
    feed = tables.rows(5, np.array([0, 1, 2]))
    assert (feed["ids"][:, [0, 2, 3, 4, 5]] == tables.user_fields[5]).all()
    feed["ids"][0, 2] = 99  # writing one row must not reach another row or the tables
    assert feed["ids"][1, 2] == tables.user_fields[5, 1] != 99
    assert not np.shares_memory(feed["genres"], tables.item_genres)


def test_trained_deepfm_auc_and_log_loss_match_scikit_learn(weights, model):
    from sklearn.metrics import log_loss, roc_auc_score

    from workbench.recsys.deepfm import predict_torch

    test = ctr_features.split("test")
    logits = predict_torch(model, test.feed)
    prob = 1 / (1 + np.exp(-logits.astype(np.float64)))
    scores = evaluate(logits, test.labels)
    assert scores["auc"] == pytest.approx(roc_auc_score(test.labels, prob))
    assert scores["log_loss"] == pytest.approx(log_loss(test.labels, prob))
    assert scores["auc"] >= MIN_AUC and scores["log_loss"] <= MAX_LOG_LOSS
    assert scores["auc"] == pytest.approx(float(weights["__meta_test_auc"]), abs=1e-6)
    # the task's accuracy is the same AUC, from logits
    from workbench.tasks.ctr import CtrTask

    assert CtrTask().accuracy(logits, test.labels) == pytest.approx(scores["auc"])


def test_out_of_range_ids_read_the_unknown_row_inside_the_graph(model):
    """The graph never reads outside a table: an id past its field is row 0."""
    from workbench.recsys.deepfm import predict_torch

    feed = {k: v[:4].copy() for k, v in ctr_features.split("test").feed.items()}
    unknown = {k: v.copy() for k, v in feed.items()}
    unknown["ids"][:, 2] = 0
    wild = {k: v.copy() for k, v in feed.items()}
    wild["ids"][:, 2] = [-1, 8, 1000, 2**31 - 1]
    assert np.array_equal(predict_torch(model, wild), predict_torch(model, unknown))


@pytest.mark.slow
def test_keras_deepfm_gives_the_torch_logits(model, tmp_path):
    from workbench.recsys.deepfm import predict_torch

    feed = {k: v[:512].copy() for k, v in ctr_features.split("test").feed.items()}
    feed["ids"][:3, 2] = [-1, 99, 5000]  # the out-of-range guard in both graphs
    expected = predict_torch(model, feed)
    ids, genres = tmp_path / "ids.npy", tmp_path / "genres.npy"
    np.save(ids, feed["ids"])
    np.save(genres, feed["genres"])
    out = tmp_path / "keras.npy"
    code = f"""
        import json, numpy as np
        from workbench.recsys.deepfm import build_keras, trained_weights
        model = build_keras(trained_weights())
        feed = [np.load({str(ids)!r}), np.load({str(genres)!r})]
        np.save({str(out)!r}, np.asarray(model(feed, training=False)))
        print(json.dumps({{"inputs": [[t.name, str(t.dtype), list(t.shape)] for t in model.inputs],
                          "output_names": list(model.output_names)}}))
        """
    info = run_child(code)
    assert info["inputs"] == [["ids", "int32", [None, 7]], ["genres", "float32", [None, 19]]]
    assert info["output_names"] == ["logit"]
    got = np.load(out).reshape(-1)
    assert got.shape == expected.shape == (512,)
    assert np.abs(got - expected).max() < 1e-5


def test_batched_ranking_equals_the_per_candidate_loop(model):
    score = ctr_ranking.torch_scorer(model)
    calls = []

    def counted(feed):
        calls.append(len(feed["ids"]))
        return score(feed)

    items = np.arange(1, 201)  # MovieLens item ids 1..200
    batched = ctr_ranking.rank(counted, 1, items)
    assert calls == [200]
    calls.clear()
    looped = ctr_ranking.rank_per_candidate(counted, 1, items)
    assert calls == [1] * 200
    assert np.array_equal(batched.item_ids, looped.item_ids)
    np.testing.assert_allclose(batched.ctr, looped.ctr, rtol=1e-5, atol=1e-6)
    assert (np.diff(batched.ctr) <= 0).all() and sorted(batched.item_ids) == list(items)
    assert not batched.cold_start_user


def test_ranking_is_the_model_s_own_order_for_every_candidate_count(model):
    score = ctr_ranking.torch_scorer(model)
    for n in (1, 2, 1682):
        items = np.arange(1, n + 1)
        ranking = ctr_ranking.rank(score, 42, items)
        feed, _ = ctr_ranking.candidate_rows(42, items)
        ctr = ctr_ranking.sigmoid(score(feed))
        assert np.array_equal(ranking.item_ids, items[np.argsort(-ctr, kind="stable")])


def test_ranking_agreement_metrics():
    users = np.array([0] * 12 + [1] * 12 + [2] * 3)
    ref = np.concatenate([np.arange(12.0), np.arange(12.0), np.arange(3.0)])
    same = ctr_ranking.per_user_agreement(users, ref, ref)
    assert same == {"kendall_tau": pytest.approx(1.0), "top10_overlap": 1.0, "ranked_users": 2}
    reversed_ = np.concatenate([-np.arange(12.0), np.arange(12.0), np.arange(3.0)])
    half = ctr_ranking.per_user_agreement(users, ref, reversed_)
    # user 0 reversed: tau -1, its top-10 of 12 shares 8 items; user 1 identical
    assert half["kendall_tau"] == pytest.approx(0.0)
    assert half["top10_overlap"] == pytest.approx((0.8 + 1.0) / 2)
    assert ctr_ranking.top_k_overlap(np.array([3.0, 2, 1]), np.array([1.0, 2, 3]), 1) == 0.0


def test_bad_ranking_input_gets_a_clear_error_or_a_defined_result(model):
    score = ctr_ranking.torch_scorer(model)
    with pytest.raises(UserError, match="candidate list is empty"):
        ctr_ranking.rank(score, 1, [])
    with pytest.raises(UserError, match=r"unknown to MovieLens-100k, e.g. \[0, 99999\]"):
        ctr_ranking.rank(score, 1, [5, 0, 99999])
    with pytest.raises(UserError, match="user id must be an integer"):
        ctr_ranking.rank(score, "1", [1, 2])
    # an unknown user is a cold start: every user field "unknown", still ranked
    cold = ctr_ranking.rank(score, 123456, [1, 2, 3])
    assert cold.cold_start_user and sorted(cold.item_ids) == [1, 2, 3]
    feed, _ = ctr_ranking.candidate_rows(123456, [1, 2, 3])
    assert (feed["ids"][:, [0, 2, 3, 4, 5]] == 0).all()


def test_validate_feed_rejects_what_a_runtime_would_misread():
    good = {k: v[:4].copy() for k, v in ctr_features.split("test").feed.items()}
    cases = {
        "outside their embedding table": lambda f: f["ids"].__setitem__((1, 3), 3),
        "NaN or infinite": lambda f: f["genres"].__setitem__((0, 0), np.nan),
        "0/1 multi-hot": lambda f: f["genres"].__setitem__((0, 0), 0.5),
    }
    for message, spoil in cases.items():
        feed = {k: v.copy() for k, v in good.items()}
        spoil(feed)
        with pytest.raises(UserError, match=message):
            ctr_features.validate_feed(feed)
    negative = good["ids"].copy()
    negative[2, 6] = -1
    with pytest.raises(UserError, match="row 2 field 'year' = -1"):
        ctr_features.validate_feed({**good, "ids": negative})
    with pytest.raises(UserError, match="must be int32"):
        ctr_features.validate_feed({**good, "ids": good["ids"].astype(np.int64)})
    with pytest.raises(UserError, match="empty"):
        ctr_features.validate_feed({k: v[:0] for k, v in good.items()})
    with pytest.raises(UserError, match="lacks"):
        ctr_features.validate_feed({"ids": good["ids"]})


def test_pipeline_ranks_a_request_end_to_end(model):
    from workbench.tasks.ctr import CtrTask

    pipeline = CtrTask().pipeline("deepfm")
    raw = pipeline.raw_inputs(50, 0)
    assert len(raw) == 50 and len({user for user, _ in raw}) == 1
    feed, meta = pipeline.preprocess(raw)
    ranking = pipeline.postprocess([ctr_ranking.torch_scorer(model)(feed)], meta)
    expected = ctr_ranking.rank(ctr_ranking.torch_scorer(model), raw[0][0], [i for _, i in raw])
    assert np.array_equal(ranking.item_ids, expected.item_ids)
    with pytest.raises(UserError, match="empty"):
        pipeline.preprocess([])
    with pytest.raises(UserError, match="one user"):
        pipeline.preprocess([(1, 1), (2, 1)])


@pytest.mark.slow
def test_task_exports_onnx_with_ranking_parity(module_workspace):
    """FP32 ONNX through the task's export path: the same logits, AUC and rankings; and
    ONNX Runtime given an out-of-table id maps it to the unknown row (no crash)."""
    from pathlib import Path

    from exporters.base import ArtifactRequest, export
    from workbench.devices import parse_device
    from workbench.registry import get_runtime
    from workbench.runtimes.base import RuntimeOptions

    manifest = export(ArtifactRequest("ctr", "deepfm", "torch", "onnx", "fp32"))
    assert manifest["status"] == "ok", manifest.get("error")
    assert manifest["parity_pass"] is True
    assert manifest["parity_samples"] == 20_000
    assert manifest["parity_metric_name"] == "top10_overlap"
    assert manifest["parity_metric_value"] == 1.0
    assert manifest["parity_kendall_tau"] > 0.999
    assert manifest["parity_ranked_users"] > 100
    assert abs(manifest["parity_auc_delta"]) < 1e-6
    assert manifest["accuracy_source"] == pytest.approx(manifest["accuracy_artifact"], abs=1e-6)
    loaded = get_runtime("onnxruntime").load(
        Path(manifest["path"]), RuntimeOptions(parse_device("cpu"))
    )
    try:
        assert [(s.name, s.dtype) for s in loaded.inputs] == [
            ("ids", "int32"),
            ("genres", "float32"),
        ]
        score = ctr_ranking.loaded_scorer(loaded)
        feed = {k: v[:3].copy() for k, v in ctr_features.split("test").feed.items()}
        unknown = {k: v.copy() for k, v in feed.items()}
        unknown["ids"][:, 1] = 0
        feed["ids"][:, 1] = [-5, 1683, 10**9]
        np.testing.assert_allclose(score(feed), score(unknown), rtol=0, atol=0)
        with pytest.raises(UserError, match="outside their embedding table"):
            ctr_features.validate_feed(feed)  # what rank() checks before any runtime
    finally:
        loaded.close()


@pytest.mark.slow
def test_dynamic_int8_quantizes_the_tables_unless_only_matmul_is_asked(module_workspace, tmp_path):
    """ORT's default op types include Gather (8-bit tables); MatMul only keeps them float.
    Every variant keeps AUC within 0.005 and the held-out rankings close."""
    from workbench.recsys.ctr_quant import study
    from workbench.study.ctr_study import fp32_onnx

    rows = {row["variant"]: row for row in study(fp32_onnx(), tmp_path)}
    assert rows["fp32"]["table_dtype"] == "float32" and rows["fp32"]["auc_delta"] == 0.0
    assert rows["int8 dynamic, ORT default ops"]["table_dtype"] == "uint8"
    assert rows["int8 dynamic, MatMul only (tables float)"]["table_dtype"] == "float32"
    assert rows["int8 dynamic, Gather only (tables 8-bit)"]["table_dtype"] == "uint8"
    default = rows["int8 dynamic, ORT default ops"]
    assert default["size_kb"] < rows["int8 dynamic, MatMul only (tables float)"]["size_kb"]
    for row in rows.values():
        assert abs(row["auc_delta"]) < 0.005 and row["top10_overlap"] > 0.9


def test_sweeps_time_real_requests_not_random_ids():
    """A task sweep times the ctr model on real ranking requests (make_inputs), whose ids
    all lie inside the embedding tables; a task without own inputs leaves the signature
    generator in charge."""
    from workbench.registry import get_task

    task = get_task("ctr")
    feeds = task.bench_feeds("deepfm", 7, None, 3)
    assert len(feeds) == 3
    for seed, feed in enumerate(feeds):
        expected = task.make_inputs("deepfm", 7, seed)
        assert feed.keys() == expected.keys()
        assert all(np.array_equal(feed[k], expected[k]) for k in feed)
        ctr_features.validate_feed(feed)  # ids inside their tables, genres 0/1
    assert get_task("tabular").bench_feeds("mlp", 7, None, 3) is None
