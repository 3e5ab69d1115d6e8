"""What the two text tasks share: int64 ``input_ids`` and ``attention_mask`` inputs with
dynamic batch and sequence axes, real texts as inputs at any sequence length, the Keras
builders, and the padding the runner's sequence-length sweep asks for."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

from workbench.errors import UnavailableError
from workbench.models.minilm import minilm_dir
from workbench.nlp.tokenize import TokenizedBatch, WordPieceTokenizer
from workbench.signature import TensorSpec
from workbench.tasks.base import Task

SEQ_AXIS = "sequence"
INPUT_NAMES = ("input_ids", "attention_mask")
EXAMPLE_SEQ_LEN = 32  # export examples: long enough that no exporter specializes the axis
KERAS_ENCODER_MODULE = "workbench.models.minilm_keras"


@cache
def tokenizer(max_length: int) -> WordPieceTokenizer:
    return WordPieceTokenizer(max_length)


def text_specs() -> list[TensorSpec]:
    return [TensorSpec(name, "int64", ("batch", SEQ_AXIS)) for name in INPUT_NAMES]


def pick(texts: Sequence[str], n: int, seed: int) -> list[str]:
    """`n` texts drawn with a seeded generator (with repeats only when n > len(texts))."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(texts))
    return [texts[idx[i % len(texts)]] for i in range(n)]


def encode_fixed(texts: Sequence[str], seq_len: int) -> TokenizedBatch:
    """Texts padded or cut to exactly `seq_len` tokens (the truncation is recorded in the
    batch; a timed sequence-length row must have that width)."""
    return tokenizer(max(seq_len, 3)).encode(list(texts), "max_length", max(seq_len, 3))


def require_keras_encoder(model: str) -> None:
    """An UnavailableError naming the missing Keras MiniLM port (checked before Keras or
    any weights load)."""
    if model != "bag_of_embeddings" and importlib.util.find_spec(KERAS_ENCODER_MODULE) is None:
        raise UnavailableError(
            f"the Keras MiniLM encoder ({KERAS_ENCODER_MODULE}.build_keras_encoder) is not "
            f"in this tree, so {model!r} has no Keras version yet: use the torch framework"
        )


def keras_encoder(state: dict[str, np.ndarray]) -> Any:
    """MiniLM's encoder in Keras with the torch weights, from the layer-for-layer port in
    `workbench.models.minilm_keras`: the model's BertModel weights (NumPy, torch key names
    under `encoder.`) and the package's config.json, read as JSON so a Keras process never
    imports transformers or torch. [input_ids, attention_mask] -> last hidden state."""
    require_keras_encoder("minilm")

    module = importlib.import_module(KERAS_ENCODER_MODULE)
    config = json.loads((minilm_dir() / "config.json").read_text())
    return module.build_keras_encoder(state, config, prefix="encoder.")


# Export-pass parameters the MiniLM models need (Task.pass_params): the TorchScript-based
# ONNX exporter, whose graph the ORT transformer optimizer fuses into Attention (it finds no
# attention to fuse in the dynamo/SDPA export); per-channel weights for dynamic INT8 (mean
# embedding cosine 0.990 vs 0.941 per-tensor on MiniLM); static INT8 of the MatMuls only,
# since quantizing every op's activations collapses a transformer (cosine 0.34).
MINILM_PASS_PARAMS: dict[str, dict[str, Any]] = {
    "torch_onnx": {"dynamo": False},
    "onnx_transformer_optimize": {},
    "onnx_int8_dynamic": {"per_channel": True},
    "onnx_fused_int8_dynamic": {"per_channel": True},
    "onnx_int8_static": {"op_types_to_quantize": "MatMul"},
    "onnx_fused_int8_static": {"op_types_to_quantize": "MatMul"},
    # NNCF's transformer scheme: softmax/normalization/GELU kept in float, SmoothQuant on
    # the MatMuls, asymmetric activations (the mixed preset NNCF advises for transformers).
    "openvino_ir": {},
    "openvino_bf16": {},
    "openvino_int8_static": {"model_type": "transformer", "preset": "mixed"},
}


def keras_text_model(name: str, state: dict[str, np.ndarray], token_level: bool) -> Any:
    """A Keras model [input_ids, attention_mask] -> logits with the torch model's weights:
    the MiniLM encoder + mean pooling or per-token head, or the bag of embeddings."""
    # lazy: keras
    import keras
    from keras import ops

    ids = keras.Input((None,), dtype="int64", name="input_ids")
    mask = keras.Input((None,), dtype="int64", name="attention_mask")
    weight = ops.expand_dims(ops.cast(mask, "float32"), -1)
    if name == "bag_of_embeddings":
        table = state["embedding.weight"]
        embed = keras.layers.Embedding(table.shape[0], table.shape[1], name="embedding")
        hidden = embed(ids)
        embed.set_weights([table])
    else:
        hidden = keras_encoder(state)([ids, mask])
    head = keras.layers.Dense(state["head.weight"].shape[0], name="head")
    if token_level:
        logits = head(hidden)
    else:
        pooled = ops.sum(hidden * weight, axis=1) / ops.maximum(ops.sum(weight, axis=1), 1.0)
        logits = head(pooled)
    head.set_weights([state["head.weight"].T, state["head.bias"]])
    return keras.Model([ids, mask], logits, name=name)


class TextTask(Task):
    """Base of the text tasks: subclasses give the texts and the models."""

    frameworks = ("torch", "keras")
    seq_len = 128  # held-out texts and pipelines are cut at this many tokens
    pass_params = MINILM_PASS_PARAMS
    torch_cpu_rows = True  # eager bf16 autocast and torch.compile rows beside ORT/OpenVINO

    def input_specs(self, model: str, framework: str = "torch") -> list[TensorSpec]:
        self.check_model(model)
        return text_specs()

    def train_texts(self) -> Sequence[str]:
        raise NotImplementedError

    def eval_texts(self) -> Sequence[str]:
        raise NotImplementedError

    def make_inputs(
        self, model: str, batch_size: int, seed: int = 0, framework: str = "torch"
    ) -> dict[str, np.ndarray]:
        """Training-split texts (never the held-out ones), padded to 32 tokens."""
        self.check_model(model)
        return encode_fixed(pick(self.train_texts(), batch_size, seed), EXAMPLE_SEQ_LEN).feed()

    def bench_feeds(
        self,
        model: str,
        batch_size: int,
        seq_len: int | None,
        count: int,
        framework: str = "torch",
    ) -> list[dict[str, np.ndarray]]:
        """`count` feeds of held-out texts padded or cut to exactly `seq_len` tokens (the
        task's own cut, 128, outside a sequence-length sweep): what the timed loop runs."""
        self.check_model(model)
        seq_len = seq_len or self.seq_len
        texts = self.eval_texts()
        return [
            encode_fixed(pick(texts, batch_size, 1000 + i), seq_len).feed() for i in range(count)
        ]
