"""The Keras 3 port of the all-MiniLM-L6-v2 encoder against transformers' BertModel on the
same weights, and its exports through the workbench's Keras passes (SavedModel, TFLite,
tf2onnx) with dynamic batch and sequence axes, run by the workbench's runtimes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from exporters.base import ExportContext
from workbench.devices import parse_device
from workbench.errors import UserError
from workbench.formats import runtime_for
from workbench.models import minilm_encoder as me
from workbench.registry import PASSES, get_runtime
from workbench.runtimes.base import RuntimeOptions, by_input_name, feed_keys

pytestmark = pytest.mark.slow

SENTENCES = [
    "Love this dress!",
    "",
    "The fabric is thin and the zipper broke after one wash, so I sent it back to the shop.",
    "Runs small; très jolie 👗 — 日本語のレビュー",
]


@pytest.fixture(scope="module")
def bert():
    return me.load_bert("eager")


@pytest.fixture(scope="module")
def keras_encoder(bert):
    from workbench.models.minilm_keras import build_keras_encoder

    return build_keras_encoder(bert.state_dict(), me.minilm_config())


def _torch(bert, feed: dict[str, np.ndarray]) -> np.ndarray:
    import torch

    with torch.inference_mode():
        ids, mask = (torch.from_numpy(v) for v in feed.values())
        return bert(input_ids=ids, attention_mask=mask).last_hidden_state.numpy()


def _close(candidate: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> None:
    """Within 1e-4 on real tokens. Padded positions (queries no consumer reads: pooling
    and token heads mask them) get 1e-3: their values hinge on how each framework adds
    the large negative mask (torch finfo.min, Keras -1e9), ~6e-5 apart here."""
    real = mask.astype(bool)
    assert candidate.shape == reference.shape
    assert np.abs(candidate - reference)[real].max() < 1e-4
    assert np.abs(candidate - reference)[~real].max() < 1e-3


def test_keras_port_matches_bert(bert, keras_encoder):
    assert [i.name for i in keras_encoder.inputs] == ["input_ids", "attention_mask"]
    # every encoder weight but the pooler and the unused token-type-1 row
    config = me.minilm_config()
    unused = config["hidden_size"] * (config["type_vocab_size"] - 1)
    assert (
        keras_encoder.count_params()
        == sum(p.numel() for n, p in bert.named_parameters() if not n.startswith("pooler."))
        - unused
    )
    for seq_len, count in ((40, 4), (7, 3)):  # padding, and truncation of long texts
        feed = me.tokenize(SENTENCES[:count], seq_len)
        out = np.asarray(keras_encoder(list(feed.values()), training=False))
        _close(out, _torch(bert, feed), feed["attention_mask"])


def test_state_dict_of_a_wrapped_encoder_needs_its_prefix(bert):
    from workbench.models.minilm_keras import build_keras_encoder

    wrapped = {f"bert.{k}": v for k, v in bert.state_dict().items()}
    with pytest.raises(UserError, match="prefix='bert.'"):
        build_keras_encoder(wrapped, me.minilm_config())


def test_feed_keys_match_decorated_tflite_names():
    feed = ["input_ids", "attention_mask"]
    tflite = ["serving_default_attention_mask:0", "serving_default_input_ids:0"]
    assert feed_keys(tflite, feed) == ["attention_mask", "input_ids"]
    assert feed_keys(["a", "b"], feed) == feed  # unrelated names: by position


@pytest.mark.parametrize("pass_name", ["keras_savedmodel", "keras_tflite", "keras_onnx"])
def test_exports_keep_batch_and_sequence_dynamic(pass_name, bert, keras_encoder, tmp_path):
    pass_ = PASSES.create(pass_name)
    task = me.EncoderExportTask(16)
    ctx = ExportContext(task, "m", "keras", "fp32", pass_.check_params({}), keras_encoder, None)
    out = tmp_path / pass_.filename
    pass_.export(ctx, out)
    loaded = get_runtime(runtime_for(pass_.format)).load(
        out,
        RuntimeOptions(parse_device("cpu"), format=pass_.format, inputs=task.input_specs()),
    )
    try:
        for spec in loaded.inputs:  # no format here fixes batch or sequence
            assert len(spec.shape) == 2 and not any(isinstance(d, int) for d in spec.shape)
        for count, seq_len in ((4, 24), (2, 9)):
            feed = me.tokenize(SENTENCES[:count], seq_len)
            got = loaded.to_numpy(loaded.run(loaded.prepare(by_input_name(loaded, feed))))[0]
            _close(got, _torch(bert, feed), feed["attention_mask"])
    finally:
        loaded.close()


def test_minilm_dir_has_the_weights():
    assert (Path(me.minilm_dir()) / "model.safetensors").is_file()
    assert me.minilm_config()["num_hidden_layers"] == 6
