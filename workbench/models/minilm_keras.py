"""A layer-for-layer Keras 3 port of Hugging Face's BertModel encoder (all-MiniLM-L6-v2:
6 layers, hidden 384, 12 heads), built from the torch state dict so both frameworks run
identical weights.

Embeddings (word + position + token type 0, LayerNorm with the config's eps), then per
layer: self-attention (keras.layers.MultiHeadAttention with the torch q/k/v/output
Linear weights reshaped to its per-head kernels; padded keys masked), residual +
LayerNorm, the feed-forward block with exact (erf) GELU, residual + LayerNorm. The model
takes `input_ids` and `attention_mask` (int64, dynamic batch and sequence) and returns
the last hidden state [batch, seq, hidden]; it has no head, so a task adds its own
(a Dense on the first token or on every token) with copied weights.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from workbench.errors import UserError

LAYER_PREFIX = "encoder.layer.{}."


def _strip(state_dict: Mapping[str, Any], prefix: str) -> dict[str, np.ndarray]:
    """numpy arrays keyed without `prefix` (e.g. "bert." when the encoder is wrapped)."""
    out = {}
    for key, value in state_dict.items():
        if key.startswith(prefix):
            array = value.detach().cpu().numpy() if hasattr(value, "detach") else value
            out[key[len(prefix) :]] = np.asarray(array, dtype=np.float32)
    if "embeddings.word_embeddings.weight" not in out:
        raise UserError(
            f"the state dict has no {prefix}embeddings.word_embeddings.weight: pass the "
            "BertModel's state dict, or the prefix its keys carry (e.g. prefix='bert.')"
        )
    return out


def build_keras_encoder(
    state_dict: Mapping[str, Any],
    config: Mapping[str, Any],
    prefix: str = "",
    name: str = "minilm_encoder",
    dtype: str = "int64",
) -> Any:
    """A keras.Model(inputs=[input_ids, attention_mask], outputs=last hidden state) with
    the weights of the torch BertModel whose `state_dict()` (tensors or numpy arrays)
    and config (config.json as a dict) are given. The inputs are a list, not a dict, so
    a positional call feeds them in this order (Keras flattens dict inputs by sorted key,
    which would put attention_mask first); `dtype` is theirs (int64, as the tokenizer's)."""
    # lazy: keras
    import keras
    from keras import layers, ops

    weights = _strip(state_dict, prefix)
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head_dim = hidden // heads
    eps = float(config.get("layer_norm_eps", 1e-12))
    if config.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"unsupported hidden_act {config.get('hidden_act')!r}: the port has GELU")

    def linear(prefix_: str, units: int, activation: Any = None, layer_name: str = "") -> Any:
        dense = layers.Dense(units, activation=activation, name=layer_name)
        dense.build((None, None, weights[prefix_ + "weight"].shape[1]))
        dense.set_weights([weights[prefix_ + "weight"].T, weights[prefix_ + "bias"]])
        return dense

    def layer_norm(prefix_: str, layer_name: str) -> Any:
        norm = layers.LayerNormalization(epsilon=eps, name=layer_name)
        norm.build((None, None, hidden))
        norm.set_weights([weights[prefix_ + "weight"], weights[prefix_ + "bias"]])
        return norm

    input_ids = keras.Input(shape=(None,), dtype=dtype, name="input_ids")
    attention_mask = keras.Input(shape=(None,), dtype=dtype, name="attention_mask")

    word = layers.Embedding(*weights["embeddings.word_embeddings.weight"].shape, name="word")
    word.build((None, None))
    word.set_weights([weights["embeddings.word_embeddings.weight"]])
    positions = weights["embeddings.position_embeddings.weight"]
    token_type = weights["embeddings.token_type_embeddings.weight"][0]
    position_table = position_layer()(positions, token_type, name="position_token_type")
    x = position_table(word(input_ids))
    x = layer_norm("embeddings.LayerNorm.", "embeddings_layer_norm")(x)

    # [B, T] -> [B, 1, T]: every query attends to the real keys only
    key_mask = ops.expand_dims(ops.cast(attention_mask, "bool"), 1)
    for index in range(int(config["num_hidden_layers"])):
        p = LAYER_PREFIX.format(index)
        attention = layers.MultiHeadAttention(heads, head_dim, name=f"layer{index}_attention")
        attention.build((None, None, hidden), (None, None, hidden))
        attention.set_weights(_attention_weights(weights, p, heads, head_dim, hidden))
        attended = attention(x, x, attention_mask=key_mask)
        x = layer_norm(p + "attention.output.LayerNorm.", f"layer{index}_attention_norm")(
            x + attended
        )
        inner = linear(
            p + "intermediate.dense.",
            int(config["intermediate_size"]),
            activation=exact_gelu,
            layer_name=f"layer{index}_intermediate",
        )(x)
        out = linear(p + "output.dense.", hidden, layer_name=f"layer{index}_output")(inner)
        x = layer_norm(p + "output.LayerNorm.", f"layer{index}_output_norm")(x + out)
    return keras.Model(inputs=[input_ids, attention_mask], outputs=x, name=name)


def exact_gelu(x: Any) -> Any:
    """GELU with the exact erf, as BERT's "gelu": 0.5 x (1 + erf(x / sqrt 2)). Written
    with erf rather than keras.activations.gelu(approximate=False), which Keras 3 computes
    with erfc, an op ONNX does not have (tf2onnx then writes an invalid graph)."""
    # lazy: keras
    from keras import ops

    return 0.5 * x * (1.0 + ops.erf(x * np.float32(1.0 / np.sqrt(2.0))))


def _attention_weights(
    weights: Mapping[str, np.ndarray], p: str, heads: int, head_dim: int, hidden: int
) -> list[np.ndarray]:
    """torch q/k/v/output Linear weights as MultiHeadAttention's kernels and biases:
    query/key/value kernel [hidden, heads, head_dim], bias [heads, head_dim]; output
    kernel [heads, head_dim, hidden], bias [hidden]."""
    out = []
    for part in ("query", "key", "value"):
        kernel = weights[f"{p}attention.self.{part}.weight"].T.reshape(hidden, heads, head_dim)
        bias = weights[f"{p}attention.self.{part}.bias"].reshape(heads, head_dim)
        out += [kernel, bias]
    kernel = weights[f"{p}attention.output.dense.weight"].T.reshape(heads, head_dim, hidden)
    out += [kernel, weights[f"{p}attention.output.dense.bias"]]
    return out


@functools.cache
def position_layer() -> type:
    """The PositionAndTokenType layer class (defined on first use, so importing this module
    does not import Keras)."""
    # lazy: keras
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="workbench")
    class PositionAndTokenType(keras.layers.Layer):
        """Adds the position embedding of each index and the token-type-0 embedding (BERT's
        token_type_ids default to zeros; single-segment inputs never use type 1)."""

        def __init__(self, positions: Any, token_type: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            positions, token_type = np.asarray(positions), np.asarray(token_type)
            self.table = self.add_weight(
                shape=positions.shape, initializer="zeros", trainable=False, name="positions"
            )
            self.table.assign(positions)
            self.token_type = self.add_weight(
                shape=token_type.shape, initializer="zeros", trainable=False, name="token_type"
            )
            self.token_type.assign(token_type)

        def call(self, embedded: Any) -> Any:
            length = ops.shape(embedded)[1]
            return embedded + ops.expand_dims(self.table[:length], 0) + self.token_type

        def get_config(self) -> dict[str, Any]:
            config = super().get_config()
            config.update(
                positions=np.asarray(self.table).tolist(),
                token_type=np.asarray(self.token_type).tolist(),
            )
            return config

    return PositionAndTokenType
