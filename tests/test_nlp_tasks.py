"""The text tasks: trained weights load with their held-out scores, an exported ONNX
artifact agrees with its source on real sentences at several sequence lengths, the
pipelines handle bad inputs, and the sweep covers sequence lengths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.childproc import run_child
from workbench.errors import UserError
from workbench.registry import get_task

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

SENTENCES = [
    "Absolutely love this top, fits perfectly and the color is gorgeous.",
    "The fabric was thin and it ripped after one wash. Returning it.",
    "It's okay. Nothing special, a bit boxy on me.",
    "",
]


@pytest.fixture(scope="module")
def classifier() -> object:
    return get_task("text_classification").build_torch("minilm_classifier")


def test_cached_weights_carry_their_held_out_scores() -> None:
    from workbench.models.minilm import meta, trained_weights

    scores = meta(trained_weights("minilm_classifier"))
    # 77 % of the held-out reviews are positive: a model must beat always saying so
    assert scores["accuracy"] > 0.7735 and scores["macro_f1"] > 0.55  # 0.7735: majority class
    ner = meta(trained_weights("minilm_ner"))
    assert ner["entity_f1"] > 0.2  # a head on a frozen-free encoder learned entities


def test_onnx_export_agrees_on_real_sentences(classifier, tmp_path: Path) -> None:
    from exporters.base import ExportContext
    from exporters.torch_onnx import TorchOnnx, TorchOnnxParams
    from workbench.tasks.text_task import tokenizer

    task = get_task("text_classification")
    params = TorchOnnxParams(dynamo=False)  # the faster exporter; `auto` tries dynamo first
    ctx = ExportContext(task, "minilm_classifier", "torch", "fp32", params, classifier)
    out = tmp_path / "model.onnx"
    TorchOnnx().export(ctx, out)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.shape for i in session.get_inputs()] == [["batch", "sequence"]] * 2
    for padding, length in (("longest", 128), ("max_length", 32), ("max_length", 96)):
        feed = tokenizer(length).encode(SENTENCES, padding, length).feed()
        got = session.run(None, feed)[0]
        with torch.inference_mode():
            want = classifier(**{k: torch.from_numpy(v) for k, v in feed.items()}).numpy()
        parity = task.parity([want], [got])
        assert parity["max_abs_error"] < 1e-4 and parity["metric_value"] == 1.0
        assert parity["max_prob_error"] < 1e-5


def test_classifier_pipeline_bad_inputs(classifier) -> None:
    task = get_task("text_classification")
    pipeline = task.pipeline("minilm_classifier")
    texts = ["", "   \n", "😀😀 東京 Ünïcödé", "word " * 3000, "ok", "café".encode()]
    feed, _ = pipeline.preprocess(texts)
    assert feed["input_ids"].shape == (6, 128)  # the long one, cut at 128 (and recorded)
    with torch.inference_mode():
        logits = classifier(**{k: torch.from_numpy(v) for k, v in feed.items()}).numpy()
    labels = pipeline.postprocess([logits], None)
    assert len(labels) == 6 and all(0 < p <= 1 for _, p in labels)
    for bad, message in (([None, "x"], "text #0 is None"), ([b"\xc3("], "not valid UTF-8")):
        with pytest.raises(UserError, match=message):
            pipeline.preprocess(bad)


def test_ner_pipeline_returns_spans_of_the_original_text() -> None:
    task = get_task("ner")
    net = task.build_torch("minilm_ner")
    pipeline = task.pipeline("minilm_ner")
    texts = pipeline.raw_inputs(16, 0) + ["", "😀 Obama met Merkel in Berlin 😀"]
    feed, batch = pipeline.preprocess(texts)
    with torch.inference_mode():
        logits = net(**{k: torch.from_numpy(v) for k, v in feed.items()}).numpy()
    found = pipeline.postprocess([logits], batch)
    assert len(found) == len(texts) and found[-2] == []
    assert sum(len(e) for e in found) > 0
    for text, ents in zip(texts, found, strict=True):
        for e in ents:
            assert text[e.start : e.end] == e.text and e.text.strip() == e.text


def test_ner_metrics_on_the_source_itself() -> None:
    task = get_task("ner")
    net = task.build_torch("minilm_ner")
    feed, labels = task.held_out("minilm_ner", 64)
    with torch.inference_mode():
        logits = net(**{k: torch.from_numpy(v) for k, v in feed.items()}).numpy()
    same = task.parity([logits], [logits.copy()])
    assert same["metric_value"] == 1.0 and same["entity_f1_vs_source"] in (0.0, 1.0)
    noisy = logits + np.random.default_rng(0).normal(0, 2.0, logits.shape).astype(np.float32)
    worse = task.parity([logits], [noisy])
    assert worse["metric_value"] < 1.0
    assert 0.0 <= task.accuracy(logits, labels) <= 1.0


def test_bench_feeds_are_real_text_at_each_length() -> None:
    task = get_task("text_classification")
    for length in (16, 64, 256):
        feeds = task.bench_feeds("minilm_classifier", 4, length, 2)
        assert len(feeds) == 2 and feeds[0]["input_ids"].shape == (4, length)
        assert (feeds[0]["input_ids"][:, 0] == 101).all()  # [CLS]: tokenized, not random
        assert feeds[0]["attention_mask"].sum() > 4 * 3
    assert not np.array_equal(feeds[0]["input_ids"], feeds[1]["input_ids"])


def test_sweep_covers_sequence_lengths() -> None:
    from workbench.sweep import from_profile

    sweep = from_profile("text_classification", "ci")
    assert sweep.seq_lens == [32, 64] and sweep.batch_sizes == [1, 8]
    assert from_profile("ner", "full").seq_lens == [16, 32, 64, 128, 256]
    assert from_profile("tabular", "ci").seq_lens is None


@pytest.mark.parametrize(
    ("task_name", "model", "shape"),
    [
        ("text_classification", "bag_of_embeddings", [6, 3]),
        ("text_classification", "minilm_classifier", [6, 3]),
        ("ner", "minilm_ner", [6, 48, 21]),
    ],
)
def test_keras_copy_matches_torch(tmp_path: Path, task_name: str, model: str, shape) -> None:
    """The Keras copy holds the same weights (MiniLM: the layer-for-layer port of
    workbench.models.minilm_keras): logits within 1e-4 on real padded text."""
    import importlib.util

    if importlib.util.find_spec("keras") is None:  # never import Keras beside PyTorch
        pytest.skip("keras is not installed")

    task = get_task(task_name)
    feed = task.bench_feeds(model, 6, 48, 1)[0]
    np.savez(tmp_path / "feed.npz", **feed)
    net = task.build_torch(model)
    with torch.inference_mode():
        want = net(**{k: torch.from_numpy(v) for k, v in feed.items()}).numpy()
    np.save(tmp_path / "want.npy", want)
    result = run_child(
        f"""
        import json, numpy as np
        from workbench.registry import get_task
        feed = dict(np.load("{tmp_path / "feed.npz"}"))
        model = get_task("{task_name}").build_keras("{model}")
        got = np.asarray(model([feed["input_ids"], feed["attention_mask"]], training=False))
        want = np.load("{tmp_path / "want.npy"}")
        print(json.dumps({{"max_abs": float(np.abs(got - want).max()), "shape": got.shape}}))
        """
    )
    assert result["shape"] == shape and result["max_abs"] < 1e-4
