"""PyTorch factories for "your own model": what a user writes, and nothing more.

Each function takes keyword arguments with defaults and returns an `nn.Module` in eval
mode with deterministic weights (seeded without touching the caller's random state), so
two calls, in two processes, build the same model. Name one as
`examples/torch_factory.py:tiny_cnn` (or `torch_factory:tiny_cnn` with `examples/` on
the path). Sample and evaluation data for each: `examples/make_examples.py`.

- `tiny_cnn`: a small image classifier, `pixel_values` (batch, 3, 32, 32) -> 10 logits.
- `digits_mlp`: a tabular classifier of scikit-learn's 8x8 digits, `features` (batch, 64)
  -> 10 logits; with `weights=` a state_dict file (loaded with `weights_only=True`), e.g.
  the one `make_examples.py` trains (`digits_mlp_trained` finds it).
- `text_classifier`: dict in, dict out, keyword arguments: `forward(input_ids,
  attention_mask=None, token_type_ids=None)` returns `{"logits", "pooled"}`, the layout
  Hugging Face models have, for input-spec inference (keyword inputs, optional inputs,
  named outputs).
- `resnet18`: torchvision's ResNet-18 with random weights and 10 classes, a classifier
  nobody here wrote (the tasks use ResNet-50 and MobileNetV3-Large).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch
from torch import nn

SEED = 20231


def _seeded(build: Any, seed: int = SEED) -> nn.Module:
    """`build()` under a fixed seed, leaving the caller's RNG as it was; eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
    return model.eval()


class TinyCNN(nn.Module):
    def __init__(self, classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(2 * width, classes)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(pixel_values), 1))


def tiny_cnn(classes: int = 10, width: int = 8) -> nn.Module:
    """A two-convolution image classifier: `pixel_values` (batch, 3, 32, 32) -> logits."""
    return _seeded(lambda: TinyCNN(classes, width))


class DigitsMLP(nn.Module):
    def __init__(self, hidden: int = 64, classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def digits_mlp(weights: str | None = None, hidden: int = 64) -> nn.Module:
    """An MLP over 8x8 digit images flattened to 64 features (scaled to 0..1). `weights`:
    a state_dict file, loaded with `weights_only=True` (no pickled code runs)."""
    model = _seeded(lambda: DigitsMLP(hidden))
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    return model.eval()


def digits_mlp_trained() -> nn.Module:
    """`digits_mlp` with the weights `make_examples.py` trained (building them first if
    need be): a model with a real held-out accuracy, so an accuracy drop means something."""
    spec = importlib.util.spec_from_file_location(
        "workbench_examples_make", Path(__file__).with_name("make_examples.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return digits_mlp(weights=str(module.ensure_examples() / "torch" / "digits_mlp.pt"))


class TextClassifier(nn.Module):
    """Embedding, masked mean pooling and a linear head: a stand-in for a transformer
    classifier with the same call and return layout."""

    def __init__(self, vocab_size: int = 100, dim: int = 16, classes: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.segment = nn.Embedding(2, dim)
        self.head = nn.Linear(dim, classes)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        hidden = self.embed(input_ids)
        if token_type_ids is not None:
            hidden = hidden + self.segment(token_type_ids)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return {"logits": self.head(pooled), "pooled": pooled}


def text_classifier(vocab_size: int = 100, dim: int = 16, classes: int = 2) -> nn.Module:
    """Token ids in (batch, sequence), `{"logits": (batch, classes), "pooled": (batch,
    dim)}` out; `attention_mask` and `token_type_ids` are optional keyword inputs."""
    return _seeded(lambda: TextClassifier(vocab_size, dim, classes))


def resnet18(classes: int = 10) -> nn.Module:
    """torchvision's ResNet-18, random weights: `x` (batch, 3, 224, 224) -> logits (the
    input takes torchvision's name for it; sizes down to 32x32 work too)."""
    from torchvision import models

    return _seeded(lambda: models.resnet18(weights=None, num_classes=classes))
