"""A small CNN trained here on scikit-learn's bundled handwritten digits, in PyTorch and
Keras 3 with the same weights -- a classifier with real labels, so that the accuracy of a
quantized or converted artifact means something (random-weight ImageNet models only
allow agreement with their own source).

Data: `sklearn.datasets.load_digits` (1797 grey 8x8 images, pixel values 0..16, ten
classes; bundled with scikit-learn, nothing is downloaded), split once into 1437
training and 360 held-out images, stratified with a fixed seed. The model's input is
``x / 16`` in float32: NCHW ``[B, 1, 8, 8]`` for PyTorch, NHWC ``[B, 8, 8, 1]`` for
Keras.

Network: conv3x3(1->32)+BN+ReLU, conv3x3(32->64)+BN+ReLU, 2x2 max-pool,
conv3x3(64->128)+ReLU, global average pool, dropout, linear(128->10) -> logits. Inference
models have BatchNorm folded into the convolutions and no dropout (an identity at
inference), so both frameworks hold the same eight arrays: ``conv{1,2,3}.{weight,bias}``
and ``logits.{weight,bias}``.

Training is deterministic (fixed seeds, fixed shuffles, at most 2 threads), on CPU, with
random one-pixel shifts as augmentation; it takes seconds and runs once per machine in a
child process (PyTorch must never load into a Keras process), cached in
`workbench.workspace.weights_dir()`. This module imports neither framework at the top.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from workbench.deps import require
from workbench.procs import cached_npz
from workbench.progress import progress
from workbench.workspace import weights_dir

log = logging.getLogger(__name__)

NUM_CLASSES = 10
IMAGE_SIZE = 8
TEST_SIZE = 360
SPLIT_SEED = 0
TRAIN_SEED = 0
EPOCHS = 40
BATCH = 64
LR = 3e-3
WEIGHTS_VERSION = "1"  # bump when the architecture, data or training change (retrains)
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


# ---------------------------------------------------------------------------- data

SKLEARN_MISSING = (
    "scikit-learn is not installed: the digits CNN trains and is tested on scikit-learn's "
    "bundled digits (pip install scikit-learn)"
)


def _require_sklearn() -> None:
    require("sklearn", SKLEARN_MISSING)


def digits_split(
    layout: str = "nchw",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): the fixed stratified split of the digits, images
    as float32 ``x / 16`` in [0, 1] in `layout` ("nchw" or "nhwc"), labels int64."""
    _require_sklearn()
    # lazy: sklearn
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    images = (data.images.astype(np.float32) / 16.0)[:, None]  # [N, 1, 8, 8]
    labels = data.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=TEST_SIZE, stratify=labels, random_state=SPLIT_SEED
    )
    return to_layout(x_train, layout), y_train, to_layout(x_test, layout), y_test


def to_layout(images: np.ndarray, layout: str) -> np.ndarray:
    """NCHW images -> `layout` ("nchw" unchanged, "nhwc" transposed), contiguous."""
    if layout not in ("nchw", "nhwc"):
        raise ValueError(f"layout must be 'nchw' or 'nhwc', not {layout!r}")
    return np.ascontiguousarray(images if layout == "nchw" else images.transpose(0, 2, 3, 1))


def random_shift(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shift each NCHW image by -1..1 pixels in x and y (zero fill): digits are not always
    centred, and with 1437 images the network otherwise memorizes positions."""
    n, _, h, w = images.shape
    padded = np.pad(images[:, 0], ((0, 0), (1, 1), (1, 1)))
    dy, dx = rng.integers(0, 3, n), rng.integers(0, 3, n)
    rows = dy[:, None, None] + np.arange(h)[None, :, None]
    cols = dx[:, None, None] + np.arange(w)[None, None, :]
    return padded[np.arange(n)[:, None, None], rows, cols][:, None]


# ---------------------------------------------------------------------------- PyTorch


def torch_net(fused: bool = False) -> Any:
    """The network as an nn.Sequential: with BatchNorm and dropout for training, or
    (fused=True) as deployed -- convolutions with biases, no BatchNorm, no dropout."""
    # lazy: torch
    from torch import nn

    layers: list[tuple[str, nn.Module]] = []
    for i, (c_in, c_out) in enumerate(((1, 32), (32, 64), (64, 128)), start=1):
        batchnorm = i < 3 and not fused
        layers.append((f"conv{i}", nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batchnorm)))
        if batchnorm:
            layers.append((f"bn{i}", nn.BatchNorm2d(c_out)))
        layers.append((f"relu{i}", nn.ReLU()))
        if i == 2:
            layers.append(("pool", nn.MaxPool2d(2)))
    layers += [("gap", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten())]
    if not fused:
        layers.append(("dropout", nn.Dropout(0.2)))
    layers.append((OUTPUT_NAME, nn.Linear(128, NUM_CLASSES)))
    return nn.Sequential(OrderedDict(layers))


def fused_state(net: Any) -> dict[str, np.ndarray]:
    """A training net's weights with each BatchNorm folded into the convolution before it,
    as float32 NumPy arrays keyed like `torch_net(fused=True)`'s state dict (OIHW)."""
    # lazy: torch
    from torch import nn

    out: dict[str, np.ndarray] = {}
    modules = dict(net.named_children())
    for name, module in modules.items():
        if isinstance(module, nn.Conv2d):
            w = module.weight.detach().double()
            bn = modules.get(name.replace("conv", "bn"))
            if isinstance(bn, nn.BatchNorm2d):
                factor = bn.weight.detach().double() / (bn.running_var.double() + bn.eps).sqrt()
                bias = bn.bias.detach().double() - bn.running_mean.double() * factor
                w = w * factor[:, None, None, None]
            else:
                bias = module.bias.detach().double()
            out[f"{name}.weight"], out[f"{name}.bias"] = w.float().numpy(), bias.float().numpy()
        elif isinstance(module, nn.Linear):
            out[f"{name}.weight"] = module.weight.detach().float().numpy().copy()
            out[f"{name}.bias"] = module.bias.detach().float().numpy().copy()
    return out


def weights_only(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The state without its ``__meta_*`` entries (training time, accuracy)."""
    return {k: np.asarray(v) for k, v in state.items() if not k.startswith("__meta")}


def build_torch(weights: Mapping[str, np.ndarray]) -> Any:
    """The inference model (BatchNorm folded, eval mode): [B, 1, 8, 8] -> logits [B, 10]."""
    # lazy: torch
    import torch

    net = torch_net(fused=True)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in weights_only(weights).items()})
    return net.eval()


def predict_torch(model: Any, images: np.ndarray, batch: int = 512) -> np.ndarray:
    """Logits of a PyTorch model for NCHW images, as a NumPy array."""
    # lazy: torch
    import torch

    with torch.no_grad():
        parts = [
            model(torch.from_numpy(images[i : i + batch])) for i in range(0, len(images), batch)
        ]
    return torch.cat(parts).numpy()


def train(seed: int = TRAIN_SEED, epochs: int = EPOCHS) -> Any:
    """Train the network on the training split; returns it in eval mode (with BatchNorm).
    AdamW, one-cycle-like schedule (linear warm-up, cosine decay), label smoothing.
    Epochs are reported through `workbench.progress`, the loss every 10 at debug level."""
    # lazy: torch
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_train, y_train, _, _ = digits_split("nchw")
    net = torch_net().train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(x_train) / BATCH)
    total, warmup = epochs * steps_per_epoch, steps_per_epoch
    step = 0
    for epoch in progress(range(epochs), "train digits_cnn", unit="epoch"):
        order = rng.permutation(len(x_train))
        images = random_shift(x_train[order], rng)
        labels = y_train[order]
        for i in range(0, len(order), BATCH):
            scale = (
                (step + 1) / warmup
                if step < warmup
                else 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
            )
            for group in optimizer.param_groups:
                group["lr"] = LR * scale
            logits = net(torch.from_numpy(images[i : i + BATCH]))
            loss = F.cross_entropy(
                logits, torch.from_numpy(labels[i : i + BATCH]), label_smoothing=0.05
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        if (epoch + 1) % 10 == 0 or epoch == 0:
            log.debug("digits_cnn epoch %d/%d loss %.4f", epoch + 1, epochs, loss.item())
    return net.eval()


def train_to(path: str, seed: int | str = TRAIN_SEED) -> None:
    """Train and write the fused weights to `path` (.npz, atomically), with __meta entries:
    training seconds, thread count, and the fused model's held-out accuracy."""
    seed = int(seed)
    # lazy: torch
    import torch

    # At most 2 intra-op threads unless $WORKBENCH_TRAIN_THREADS says otherwise: spinning
    # OpenMP threads on a busy small machine slow training down.
    torch.set_num_threads(
        int(os.environ.get("WORKBENCH_TRAIN_THREADS", min(2, os.cpu_count() or 1)))
    )
    log.info("digits_cnn: training once (%d epochs); cached in %s", EPOCHS, path)
    started = time.perf_counter()
    net = train(seed)
    seconds = time.perf_counter() - started
    state = fused_state(net)
    _, _, x_test, y_test = digits_split("nchw")
    accuracy = float(np.mean(predict_torch(build_torch(state), x_test).argmax(1) == y_test))
    log.info("digits_cnn: trained in %.1f s, held-out accuracy %.4f", seconds, accuracy)
    state["__meta_train_seconds"] = np.asarray(seconds)
    state["__meta_test_accuracy"] = np.asarray(accuracy)
    state["__meta_torch_threads"] = np.asarray(torch.get_num_threads())
    tmp = Path(path).with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **state)
    os.replace(tmp, path)


def weights_path(seed: int = TRAIN_SEED) -> Path:
    return weights_dir() / f"image_classification-digits_cnn-w{WEIGHTS_VERSION}-{seed}.npz"


def trained_weights(seed: int = TRAIN_SEED) -> dict[str, np.ndarray]:
    """The trained, fused weights (NumPy arrays keyed like the PyTorch state dict, plus
    ``__meta_*`` entries): trained once per machine, then cached."""
    if not weights_path(seed).exists():
        _require_sklearn()  # the training child needs the digits
    return cached_npz(weights_path(seed), "workbench.models.digits_cnn:train_to", str(seed))


# ---------------------------------------------------------------------------- Keras


def build_keras(weights: Mapping[str, np.ndarray] | None = None, name: str = "digits_cnn") -> Any:
    """The same inference network in Keras 3 (NHWC): input "input" [B, 8, 8, 1] -> output
    "logits" [B, 10]; with `weights` (a fused PyTorch state), those weights are copied in
    (kernels OIHW -> HWIO, dense [out, in] -> [in, out])."""
    # lazy: keras
    import keras

    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name=INPUT_NAME, dtype="float32")
    x = inputs
    for i, c_out in enumerate((32, 64, 128), start=1):
        # stride 1, "same" pads 1 on every side for a 3x3 kernel, as PyTorch's padding=1
        x = keras.layers.Conv2D(c_out, 3, padding="same", name=f"conv{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
        if i == 2:
            x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(NUM_CLASSES, name=OUTPUT_NAME)(x)
    model = keras.Model(inputs, outputs, name=name)
    if weights is not None:
        load_torch_weights(model, weights)
    return model


def load_torch_weights(model: Any, weights: Mapping[str, np.ndarray]) -> None:
    """Copy a fused PyTorch state into the Keras model's layers of the same names."""
    state = weights_only(weights)
    layers = {key.rsplit(".", 1)[0] for key in state}
    expected = {layer.name for layer in model.layers if layer.weights}
    if layers != expected:
        raise ValueError(
            f"weights for {sorted(layers)}, but the Keras model has {sorted(expected)}"
        )
    for layer in layers:
        kernel = state[f"{layer}.weight"].astype(np.float32)
        kernel = kernel.transpose(2, 3, 1, 0) if kernel.ndim == 4 else kernel.T
        model.get_layer(layer).set_weights([kernel, state[f"{layer}.bias"].astype(np.float32)])
