"""Quality scores of the text tasks: accuracy and macro-F1 (classification), entity-level
F1 with exact span and type (NER, seqeval's default CoNLL scheme)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workbench.nlp.spans import IGNORE


def accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.asarray(labels) == np.asarray(predicted)))


def macro_f1(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    """Unweighted mean of the per-class F1 over all `n_classes` (an absent class counts 0)."""
    # lazy: sklearn
    from sklearn.metrics import f1_score

    return float(
        f1_score(labels, predicted, labels=list(range(n_classes)), average="macro", zero_division=0)
    )


def entity_f1(true_tags: Sequence[Sequence[str]], predicted_tags: Sequence[Sequence[str]]) -> float:
    """Micro-averaged entity F1 over sentences of BIO tags (seqeval)."""
    # lazy: seqeval
    from seqeval.metrics import f1_score

    return float(f1_score([list(t) for t in true_tags], [list(p) for p in predicted_tags]))


def tag_sequences(
    labels: np.ndarray, predicted: np.ndarray, tag_names: Sequence[str]
) -> tuple[list[list[str]], list[list[str]]]:
    """Word-level tag sequences from token arrays [N, T]: the positions where `labels` is
    not IGNORE (each word's first subword), as names."""
    true_seqs, pred_seqs = [], []
    for row_labels, row_pred in zip(np.asarray(labels), np.asarray(predicted), strict=True):
        keep = row_labels != IGNORE
        true_seqs.append([tag_names[t] for t in row_labels[keep]])
        pred_seqs.append([tag_names[t] for t in row_pred[keep]])
    return true_seqs, pred_seqs
