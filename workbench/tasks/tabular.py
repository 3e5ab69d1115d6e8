"""Tabular classification (guide §1.2): the guide's Linear 10->2 and a deeper MLP.

Both are trained locally, in NumPy, on generated data with a known rule, so
argmax agreement and accuracy mean something after export and quantization.
Training in NumPy gives both frameworks the very same weights without
importing one framework into the other's process.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import numpy as np

from workbench.parity import argmax_agreement, output_errors
from workbench.runtimes.tf_runtime import require_keras
from workbench.signature import TensorSpec
from workbench.tasks.base import FULL_BATCHES, Preset, Task
from workbench.workspace import weights_dir

N_FEATURES = 10
N_CLASSES = 2
HIDDEN = {"linear": (), "mlp": (256, 256, 128)}


def make_dataset(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features ~ N(0, 1) and labels from a fixed non-linear rule with 5% label noise."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, N_FEATURES)).astype(np.float32)
    score = np.sin(x[:, 0]) + x[:, 1] * x[:, 2] - 0.5 * x[:, 3] + 0.3 * x[:, 4] ** 2 - 0.3
    y = (score > 0).astype(np.int64)
    flip = rng.random(n) < 0.05
    y[flip] = 1 - y[flip]
    return x, y


@lru_cache(maxsize=4)
def trained_weights(model: str, steps: int = 600, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Weights (W1, b1, W2, b2, ...) with W of shape (in, out), trained by minibatch Adam on
    softmax cross-entropy. Deterministic for a given (model, steps, seed); cached on disk in
    the workspace because every exporter and worker process needs them."""
    cache = weights_dir() / f"tabular-{model}-v{TabularTask.version}-{steps}-{seed}.npz"
    if cache.exists():
        with np.load(cache) as data:
            return tuple(data[f"p{i}"] for i in range(len(data.files)))
    params = _train(model, steps, seed)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **{f"p{i}": p for i, p in enumerate(params)})
    os.replace(tmp, cache)
    return params


def _train(model: str, steps: int, seed: int, batch: int = 256) -> tuple[np.ndarray, ...]:
    """Adam in float64, so the weights do not depend on the BLAS kernels: in float32 the
    2-thread OpenBLAS run on an AVX2 AMD EPYC and a 1-thread run differed by up to 0.34
    in a weight (enough to move INT8 parity across its thresholds); in float64 they agree
    to the last float32 bit."""
    x, y = make_dataset(8192, seed=1)
    x = x.astype(np.float64)
    sizes = (N_FEATURES, *HIDDEN[model], N_CLASSES)
    rng = np.random.default_rng(seed)
    params: list[np.ndarray] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        params.append(rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in))
        params.append(np.zeros(fan_out))
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    onehot = np.eye(N_CLASSES)[y]
    for step in range(1, steps + 1):
        idx = rng.integers(0, len(x), size=batch)
        acts = [x[idx]]
        for i in range(0, len(params), 2):
            z = acts[-1] @ params[i] + params[i + 1]
            acts.append(np.maximum(z, 0) if i + 2 < len(params) else z)
        logits = acts[-1]
        prob = np.exp(logits - logits.max(axis=1, keepdims=True))
        prob /= prob.sum(axis=1, keepdims=True)
        grad = (prob - onehot[idx]) / batch
        grads: list[np.ndarray] = [np.empty(0)] * len(params)
        for i in range(len(params) - 2, -1, -2):
            grads[i], grads[i + 1] = acts[i // 2].T @ grad, grad.sum(axis=0)
            if i > 0:
                grad = (grad @ params[i].T) * (acts[i // 2] > 0)
        for j, g in enumerate(grads):
            m[j] = 0.9 * m[j] + 0.1 * g
            v[j] = 0.999 * v[j] + 0.001 * g * g
            m_hat, v_hat = m[j] / (1 - 0.9**step), v[j] / (1 - 0.999**step)
            params[j] = params[j] - 3e-3 * m_hat / (np.sqrt(v_hat) + 1e-8)
    return tuple(p.astype(np.float32) for p in params)


def numpy_forward(model: str, x: np.ndarray) -> np.ndarray:
    """Reference logits computed in NumPy from the trained weights."""
    params = trained_weights(model)
    h = x.astype(np.float32)
    for i in range(0, len(params), 2):
        h = h @ params[i] + params[i + 1]
        if i + 2 < len(params):
            h = np.maximum(h, 0)
    return h


class TabularTask(Task):
    """Binary classification of 10 numeric features."""

    name = "tabular"
    models = ("linear", "mlp")
    presets = {
        "ci": Preset(
            models=("mlp",),
            frameworks=("torch",),
            formats=("eager", "onnx"),
            precisions=("fp32", "int8-dynamic"),
            batch_sizes=(1, 8, 64),
        ),
        "quick": Preset(batch_sizes=(1, 8, 64, 256)),
        "full": Preset(batch_sizes=FULL_BATCHES, devices=("cpu", "cuda")),
    }
    version = "2"  # 2: weights trained in float64

    def input_specs(self, model: str, framework: str = "torch") -> list[TensorSpec]:
        return [TensorSpec("input", "float32", ("batch", N_FEATURES))]

    def make_inputs(
        self, model: str, batch_size: int, seed: int = 0, framework: str = "torch"
    ) -> dict[str, np.ndarray]:
        x, _ = make_dataset(batch_size, seed=1000 + seed)
        return {"input": x}

    def held_out(
        self, model: str, n: int, framework: str = "torch"
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Held-out features and true labels (never seen in training)."""
        x, y = make_dataset(n, seed=7)
        return {"input": x}, y

    def build_torch(self, model: str) -> Any:
        # lazy: torch
        import torch
        from torch import nn

        params = trained_weights(self.check_model(model))
        layers: list[nn.Module] = []
        for i in range(0, len(params), 2):
            w, b = params[i], params[i + 1]
            linear = nn.Linear(w.shape[0], w.shape[1])
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(w.T.copy()))
                linear.bias.copy_(torch.from_numpy(b))
            layers.append(linear)
            if i + 2 < len(params):
                layers.append(nn.ReLU())
        return nn.Sequential(*layers).eval()

    def build_keras(self, model: str) -> Any:
        require_keras(f"the Keras model {model!r} of task {self.name!r}")
        # lazy: keras
        import keras

        params = trained_weights(self.check_model(model))
        inputs = keras.Input(shape=(N_FEATURES,), name="input", dtype="float32")
        h = inputs
        for i in range(0, len(params), 2):
            last = i + 2 >= len(params)
            dense = keras.layers.Dense(
                params[i].shape[1], activation=None if last else "relu", name=f"dense_{i // 2}"
            )
            h = dense(h)
            dense.set_weights([params[i], params[i + 1]])
        return keras.Model(inputs, h, name=f"tabular_{model}")

    def parity(
        self, reference: list[np.ndarray], candidate: list[np.ndarray], model: str | None = None
    ) -> dict[str, float]:
        errors = output_errors(reference, candidate)
        return {
            **errors,
            "metric_name": "argmax_agreement",
            "metric_value": argmax_agreement(reference[0], candidate[0]),
        }
