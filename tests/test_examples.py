"""The example models of `examples/` load with their own framework, offline, and their
data passes the usermodel readers: the PyTorch factories build the same weights on every
call, the `.keras` files and the SavedModel load with Keras / TensorFlow, the Hugging
Face directories with AutoModel / AutoTokenizer / AutoImageProcessor, the skl2onnx file
in ONNX Runtime; the trained digits models reach their recorded held-out accuracy."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from tests.support.examples import example_module, examples_manifest
from workbench.signature import TensorSpec
from workbench.usermodel.data import load_items, load_labeled
from workbench.usermodel.metrics import get_metric

DIGITS = [TensorSpec("features", "float32", ("batch", 64))]
TEXT = [TensorSpec(n, "int64", ("batch", "sequence")) for n in ("input_ids", "attention_mask")]
TEXT += [TensorSpec("token_type_ids", "int64", ("batch", "sequence"))]


@pytest.fixture(scope="module")
def examples() -> dict[str, dict[str, Any]]:
    """The built examples (built here on first use, under a lock: a minute once)."""
    return examples_manifest()


@pytest.fixture(scope="module")
def factories() -> ModuleType:
    return example_module("torch_factory")


def test_the_manifest_lists_every_kind(examples: dict[str, dict[str, Any]]) -> None:
    kinds = {entry["kind"] for entry in examples.values()}
    assert kinds == {"torch", "keras", "savedmodel", "hf", "onnx"}
    for name, entry in examples.items():
        for key in ("sample", "evaluation", "calibration"):
            assert Path(entry[key]).exists(), (name, key)


def test_torch_factories_are_deterministic_and_run(factories: ModuleType, examples) -> None:
    import torch  # lazy: torch

    a, b = factories.tiny_cnn(), factories.tiny_cnn()
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    spec = [TensorSpec("pixel_values", "float32", ("batch", 3, 32, 32))]
    (item,) = load_items(examples["torch-tiny-cnn"]["sample"], spec)
    with torch.no_grad():
        assert a(torch.from_numpy(item["pixel_values"])).shape == (4, 10)
    text = factories.text_classifier()
    ids = torch.randint(0, 100, (2, 5))
    with torch.no_grad():
        out = text(ids, attention_mask=torch.ones_like(ids))
        assert sorted(out) == ["logits", "pooled"] and out["logits"].shape == (2, 2)
        assert torch.allclose(text(ids)["logits"], out["logits"])  # mask optional
    (x,) = load_items(
        examples["torch-resnet18"]["sample"], [TensorSpec("x", "float32", ("b", 3, 64, 64))]
    )
    with torch.no_grad():
        assert factories.resnet18()(torch.from_numpy(x["x"])).shape == (4, 10)


def test_trained_torch_digits_reach_their_accuracy(factories: ModuleType, examples) -> None:
    import torch  # lazy: torch

    entry = examples["torch-digits-mlp"]
    data = load_labeled(entry["evaluation"], DIGITS)
    model = factories.digits_mlp_trained()
    with torch.no_grad():
        logits = np.concatenate(
            [model(torch.from_numpy(i["features"])).numpy() for i in data.items]
        )
    accuracy = get_metric("top-1")(logits, data.labels)
    assert accuracy == pytest.approx(entry["accuracy"], abs=1e-6)
    assert accuracy > 0.9


def test_onnx_from_skl2onnx_runs_in_onnxruntime(examples) -> None:
    import onnxruntime as ort  # lazy: onnxruntime

    entry = examples["onnx-sklearn-digits"]
    session = ort.InferenceSession(entry["source"], providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["features"]
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]
    data = load_labeled(entry["evaluation"], DIGITS)
    probs = np.concatenate([session.run(["probabilities"], i)[0] for i in data.items])
    assert get_metric("top-1")(probs, data.labels) == pytest.approx(entry["accuracy"], abs=1e-6)
    for item in load_items(entry["calibration"], DIGITS):
        assert session.run(["label"], item)[0].shape == (len(item["features"]),)


def test_hf_directories_load_offline(examples, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import torch  # lazy: torch
    from transformers import (  # lazy: transformers
        AutoImageProcessor,
        AutoModelForImageClassification,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    bert = examples["hf-bert-tiny"]
    config = json.loads((Path(bert["source"]) / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    tokenizer = AutoTokenizer.from_pretrained(bert["source"])
    texts = json.loads(Path(bert["texts"]).read_text())["texts"]
    (sample,) = load_items(bert["sample"], TEXT)
    encoded = tokenizer(texts[:4], padding="max_length", max_length=16, return_tensors="np")
    np.testing.assert_array_equal(encoded["input_ids"], sample["input_ids"])
    assert tokenizer.convert_ids_to_tokens(int(sample["input_ids"][0, 0])) == "[CLS]"
    model = AutoModelForSequenceClassification.from_pretrained(bert["source"]).eval()
    with torch.no_grad():
        logits = model(**{k: torch.from_numpy(v) for k, v in sample.items()}).logits
    assert logits.shape == (4, 2)

    vit = examples["hf-vit-tiny"]
    processor = AutoImageProcessor.from_pretrained(vit["source"])
    from PIL import Image  # lazy: PIL (a transformers dependency here)

    png = sorted(Path(vit["images"]).glob("*.png"))[0]
    pixels = processor(images=Image.open(png), return_tensors="np")["pixel_values"]
    assert pixels.shape == (1, 3, 32, 32)
    spec = [TensorSpec("pixel_values", "float32", ("batch", 3, 32, 32))]
    (item,) = load_items(vit["sample"], spec)
    np.testing.assert_allclose(pixels[0], item["pixel_values"][0], atol=1e-6)  # same image
    model = AutoModelForImageClassification.from_pretrained(vit["source"]).eval()
    with torch.no_grad():
        assert model(pixel_values=torch.from_numpy(item["pixel_values"])).logits.shape == (4, 10)


@pytest.mark.slow
def test_keras_files_and_savedmodel_load(examples) -> None:
    import keras  # lazy: keras
    import tensorflow as tf  # lazy: tensorflow

    entry = examples["keras-digits"]
    model = keras.saving.load_model(entry["source"])
    assert [t.name for t in model.inputs] == ["features"]
    data = load_labeled(entry["evaluation"], DIGITS)
    logits = np.concatenate([model.predict(i["features"], verbose=0) for i in data.items])
    assert get_metric("top-1")(logits, data.labels) == pytest.approx(entry["accuracy"], abs=1e-6)
    serving = tf.saved_model.load(examples["keras-digits-savedmodel"]["source"])
    fn = serving.signatures["serving_default"]
    out = next(iter(fn(features=tf.constant(data.items[0]["features"])).values())).numpy()
    np.testing.assert_allclose(out, logits[: len(out)], atol=1e-4)
    mobile = examples["keras-mobilenet-v3-small"]
    mobilenet = keras.saving.load_model(mobile["source"])
    (item,) = load_items(mobile["sample"], [TensorSpec("image", "float32", ("b", 96, 96, 3))])
    assert mobilenet.predict(item["image"], verbose=0).shape == (4, 10)
