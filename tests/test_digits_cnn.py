"""The digits CNN: its data split, BatchNorm folding, the trained weights' held-out accuracy,
and the Keras model giving the PyTorch model's logits from the same weights.

Keras runs in a child process: TensorFlow and PyTorch never share a process. The trained
weights come from the machine-wide cache; a fresh machine trains them once (about 10-30 s
on 2 cores).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.childproc import run_child
from workbench.models.digits_cnn import (
    NUM_CLASSES,
    TEST_SIZE,
    digits_split,
    random_shift,
    trained_weights,
    weights_only,
)

# The trained model gets 359/360 (0.997) of the held-out digits; the threshold leaves room
# for another machine's (thread count's) training run.
MIN_ACCURACY = 0.95
PARITY_IMAGES = 32


def test_split_is_deterministic_stratified_and_disjoint():
    from sklearn.datasets import load_digits

    x_train, y_train, x_test, y_test = digits_split()
    again = digits_split()
    for a, b in zip((x_train, y_train, x_test, y_test), again, strict=True):
        assert np.array_equal(a, b)
    assert x_train.shape == (1797 - TEST_SIZE, 1, 8, 8) and x_test.shape == (TEST_SIZE, 1, 8, 8)
    assert x_train.dtype == x_test.dtype == np.float32 and y_train.dtype == np.int64
    assert 0.0 <= x_train.min() and x_train.max() == 1.0
    # a partition: together the two parts are exactly the dataset, each image once
    digits = load_digits()
    whole = np.concatenate([digits.images.reshape(-1, 64) / 16.0, digits.target[:, None]], 1)
    parts = np.concatenate(
        [
            np.concatenate([x_train.reshape(-1, 64), y_train[:, None]], 1),
            np.concatenate([x_test.reshape(-1, 64), y_test[:, None]], 1),
        ]
    )
    assert np.array_equal(np.unique(whole, axis=0), np.unique(parts, axis=0))
    assert len(parts) == len(whole)
    # stratified: every class holds its share of the held-out images (36 each, +-1)
    assert np.abs(np.bincount(y_test, minlength=NUM_CLASSES) - TEST_SIZE / NUM_CLASSES).max() <= 1
    nhwc = digits_split("nhwc")
    assert np.array_equal(nhwc[2], x_test.transpose(0, 2, 3, 1)) and nhwc[2].flags.c_contiguous


def test_random_shift_moves_by_at_most_one_pixel():
    _, _, x, _ = digits_split()
    shifted = random_shift(x[:64], np.random.default_rng(0))
    assert shifted.shape == (64, 1, 8, 8) and shifted.dtype == np.float32
    for image, moved in zip(x[:64, 0], shifted[:, 0], strict=True):
        padded = np.pad(image, 1)
        assert any(
            np.array_equal(moved, padded[dy : dy + 8, dx : dx + 8])
            for dy in range(3)
            for dx in range(3)
        )


def test_batchnorm_folding_keeps_the_output():
    torch = pytest.importorskip("torch")
    from workbench.models.digits_cnn import build_torch, fused_state, torch_net

    torch.manual_seed(0)
    net = torch_net().eval()
    for module in net.modules():  # non-trivial statistics to fold
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    x = torch.rand(4, 1, 8, 8)
    state = fused_state(net)
    assert sorted(state) == sorted(
        f"{layer}.{kind}"
        for layer in ("conv1", "conv2", "conv3", "logits")
        for kind in ("weight", "bias")
    )
    with torch.no_grad():
        assert torch.allclose(net(x), build_torch(state)(x), atol=1e-5)


@pytest.fixture(scope="module")
def weights():
    """The trained weights: from the machine-wide cache; trained there once when missing."""
    return trained_weights()


def test_trained_weights_classify_the_held_out_digits(weights):
    pytest.importorskip("torch")
    from workbench.models.digits_cnn import build_torch, predict_torch

    assert float(weights["__meta_test_accuracy"]) >= MIN_ACCURACY
    assert float(weights["__meta_train_seconds"]) > 0
    _, _, x_test, y_test = digits_split()
    logits = predict_torch(build_torch(weights), x_test)
    assert logits.shape == (TEST_SIZE, NUM_CLASSES) and logits.dtype == np.float32
    accuracy = float(np.mean(logits.argmax(1) == y_test))
    assert accuracy >= MIN_ACCURACY
    assert accuracy == pytest.approx(float(weights["__meta_test_accuracy"]))


@pytest.mark.slow
def test_keras_model_gives_the_torch_logits(weights, tmp_path):
    """Same weights (through the cache's .npz) in Keras, NHWC: same logits within 1e-4."""
    pytest.importorskip("torch")
    from workbench.models.digits_cnn import build_torch, predict_torch

    _, _, x_test, _ = digits_split()
    expected = predict_torch(build_torch(weights), x_test[:PARITY_IMAGES])
    out = tmp_path / "keras.npy"
    code = f"""
        import json, numpy as np
        from workbench.models.digits_cnn import build_keras, digits_split, trained_weights
        model = build_keras(trained_weights())
        x = digits_split("nhwc")[2][:{PARITY_IMAGES}]
        np.save({str(out)!r}, np.asarray(model(x, training=False)))
        print(json.dumps({{"inputs": [list(t.shape) for t in model.inputs],
                          "input_name": model.inputs[0].name,
                          "output_names": list(model.output_names),
                          "params": int(model.count_params())}}))
        """
    info = run_child(code)
    assert info["inputs"] == [[None, 8, 8, 1]] and info["input_name"] == "input"
    assert info["output_names"] == ["logits"]
    assert info["params"] == sum(v.size for v in weights_only(weights).values())
    got = np.load(out)
    assert got.shape == expected.shape == (PARITY_IMAGES, NUM_CLASSES)
    assert np.abs(got - expected).max() < 1e-4
