"""Quality metrics for a user's model: built-ins by name, or the user's `module:function`.

A metric is `fn(outputs, labels) -> float` over a whole evaluation set: `outputs` is the
model's (first, or chosen) output for all rows laid end to end, `labels` the true labels
of the same rows. The built-ins (scikit-learn where it has the metric):

- `top-1`, `top-5`: accuracy; the class axis is the last one, labels are class ids of the
  other axes (token classification: (N, T) labels for (N, T, C) outputs), and labels < 0
  (Hugging Face's -100 padding) are ignored. Top-5 needs more than 5 classes.
- `macro-f1`: F1 of the top-1 class, averaged over classes, same layout as top-1.
- `auc`: ROC AUC. Binary: one score per row ((N,) or (N, 1)) or two columns (the second
  column's softmax probability is used). More classes: one-vs-rest, macro-averaged over
  the classes that have both positive and negative rows; logits are turned into
  probabilities with a softmax (rows that already sum to 1 are used as they are).
- `mse`, `mae`: mean squared / absolute error, outputs and labels with as many values
  per row (an (N, 1) output against (N,) labels is fine).
- `cosine`: cosine similarity of each row's output with its label vector, mean over rows
  (embeddings against reference embeddings).

Non-finite outputs (NaN, inf) are an error, not a number: an artifact that produces them
has failed, and its row says so.

**Points.** Rows keep a metric's value in the `accuracy` column, and `recommend` gates
on `accuracy_drop = 100 * (ref_accuracy - accuracy)` in *points* against
`--max-accuracy-drop` (`workbench/analysis/recommend.py`). So one point is 0.01 of the
metric's own unit: accuracy 0.82 is 82 points, and a drop from 0.82 to 0.80 is 2 points.
For a lower-is-better metric (MSE, MAE) the value stored in the `accuracy` column is its
negation (`Metric.score`), so the same formula gives the *increase* of the error in
points: MAE 0.10 -> 0.13 is a drop of 3 points (one point = 0.01 in the label's units,
squared for MSE). `Metric.points(value)` is 100 * value; `Metric.drop_points(reference,
candidate)` is the drop `recommend` computes, positive when the candidate is worse.

User metrics: `get_metric("pkg.mod:fn")` or `"path/to/file.py:fn"`. Higher is better
unless the function has an attribute `higher_is_better = False`; its `unit` attribute
(default "value") names the unit. It must return a real number.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from workbench.errors import UserError
from workbench.usermodel.callref import is_callable_ref, load_callable

log = logging.getLogger(__name__)

MetricFn = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class Metric:
    """A named quality score and which way is better. `unit`: "ratio" (0..1), "cosine"
    (-1..1) or a unit of the labels, e.g. "label units"."""

    name: str
    fn: MetricFn
    higher_is_better: bool
    unit: str
    description: str = ""

    def __call__(self, outputs: np.ndarray, labels: np.ndarray) -> float:
        value = self.fn(np.asarray(outputs), np.asarray(labels))
        if isinstance(value, np.ndarray) and value.size == 1:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise UserError(
                f"metric {self.name} returned {value!r} ({type(value).__name__}), not a number"
            )
        return float(value)

    def score(self, value: float) -> float:
        """`value` on a higher-is-better scale: what the `accuracy` column holds."""
        return value if self.higher_is_better else -value

    @staticmethod
    def points(value: float) -> float:
        """`value` in points: 100 times the metric's unit (0.82 accuracy -> 82 points)."""
        return 100.0 * value

    def drop_points(self, reference: float, candidate: float) -> float:
        """How much worse `candidate` is than `reference`, in points (negative: better);
        equal to `recommend`'s accuracy drop over the `score` of each."""
        return self.points(self.score(reference) - self.score(candidate))


# ------------------------------------------------------------------------ built-ins


def _finite(outputs: np.ndarray, name: str) -> np.ndarray:
    outputs = np.asarray(outputs)
    if outputs.dtype.kind not in "biuf":
        raise ValueError(f"{name}: outputs have dtype {outputs.dtype}, not numbers")
    bad = int(np.size(outputs) - np.count_nonzero(np.isfinite(outputs)))
    if bad:
        raise ValueError(f"{name}: the outputs hold {bad} non-finite values (NaN or inf)")
    return outputs.astype(np.float64, copy=False)


def _class_layout(
    outputs: np.ndarray, labels: np.ndarray, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """(scores (M, C), class ids (M,)) for classification, padding labels (< 0) removed."""
    outputs = _finite(outputs, name)
    labels = np.asarray(labels)
    if outputs.ndim < 2 or outputs.shape[-1] < 2:
        raise UserError(
            f"metric {name} needs class scores on the last axis (N, classes); the outputs have "
            f"shape {outputs.shape}: for one score per row use auc, mse or a custom metric"
        )
    if labels.shape == outputs.shape:  # one-hot or probability labels
        labels = labels.argmax(axis=-1)
    if labels.shape != outputs.shape[:-1]:
        raise UserError(
            f"metric {name}: labels of shape {labels.shape} do not fit outputs of shape "
            f"{outputs.shape} (give class ids of shape {outputs.shape[:-1]})"
        )
    if labels.dtype.kind == "f":
        if not np.all(labels == np.round(labels)):
            raise UserError(f"metric {name}: labels must be class ids (integers)")
    labels = labels.astype(np.int64)
    scores = outputs.reshape(-1, outputs.shape[-1])
    ids = labels.reshape(-1)
    keep = ids >= 0
    scores, ids = scores[keep], ids[keep]
    if ids.size == 0:
        raise UserError(f"metric {name}: every label is padding (< 0); nothing to score")
    if ids.max() >= scores.shape[1]:
        raise UserError(
            f"metric {name}: label {int(ids.max())} is not a class of the {scores.shape[1]} "
            "the outputs score"
        )
    return scores, ids


def top_k(k: int) -> MetricFn:
    name = f"top-{k}"

    def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
        from sklearn.metrics import top_k_accuracy_score  # lazy: sklearn

        scores, ids = _class_layout(outputs, labels, name)
        if k > 1 and scores.shape[1] <= k:
            raise UserError(
                f"metric {name} needs more than {k} classes, the outputs score "
                f"{scores.shape[1]}: every row would count as right"
            )
        if k == 1:
            return float(np.mean(scores.argmax(axis=1) == ids))
        return float(top_k_accuracy_score(ids, scores, k=k, labels=np.arange(scores.shape[1])))

    accuracy.__name__ = f"top_{k}"
    return accuracy


def macro_f1(outputs: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import f1_score  # lazy: sklearn

    scores, ids = _class_layout(outputs, labels, "macro-f1")
    return float(f1_score(ids, scores.argmax(axis=1), average="macro", zero_division=0))


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def auc(outputs: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score  # lazy: sklearn

    outputs = _finite(outputs, "auc")
    labels = np.asarray(labels)
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        outputs = outputs[:, 0]
    if labels.ndim == 2 and labels.shape == outputs.shape:
        labels = labels.argmax(axis=1)
    labels = labels.reshape(-1)
    if outputs.ndim == 1 or (outputs.ndim == 2 and outputs.shape[1] == 2):
        if outputs.ndim == 2:
            outputs = _softmax(outputs)[:, 1]
        if len(outputs) != len(labels):
            raise UserError(f"metric auc: {len(labels)} labels for {len(outputs)} output rows")
        if not set(np.unique(labels)) <= {0, 1}:
            raise UserError("metric auc: binary labels must be 0 or 1")
        if len(np.unique(labels)) < 2:
            raise UserError("metric auc needs both classes among the labels, they hold only one")
        return float(roc_auc_score(labels, outputs))
    if outputs.ndim != 2:
        raise UserError(f"metric auc needs (N,) or (N, classes) outputs, got {outputs.shape}")
    scores, ids = _class_layout(outputs, labels, "auc")
    sums = scores.sum(axis=1)
    probs = scores if np.all(scores >= 0) and np.allclose(sums, 1, atol=1e-4) else _softmax(scores)
    per_class = [
        roc_auc_score(ids == c, probs[:, c])
        for c in range(probs.shape[1])
        if 0 < np.count_nonzero(ids == c) < len(ids)
    ]
    if not per_class:
        raise UserError("metric auc needs at least two classes among the labels")
    return float(np.mean(per_class))


def _paired_rows(outputs: np.ndarray, labels: np.ndarray, name: str) -> tuple[np.ndarray, ...]:
    outputs = _finite(outputs, name)
    labels = np.asarray(labels, dtype=np.float64)
    n = len(outputs) if outputs.ndim else 1
    a, b = outputs.reshape(n, -1), labels.reshape(len(labels) if labels.ndim else 1, -1)
    if a.shape != b.shape:
        raise UserError(
            f"metric {name}: outputs of shape {outputs.shape} and labels of shape {labels.shape} "
            "do not hold the same values per row"
        )
    return a, b


def mse(outputs: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import mean_squared_error  # lazy: sklearn

    a, b = _paired_rows(outputs, labels, "mse")
    return float(mean_squared_error(b, a))


def mae(outputs: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import mean_absolute_error  # lazy: sklearn

    a, b = _paired_rows(outputs, labels, "mae")
    return float(mean_absolute_error(b, a))


def cosine(outputs: np.ndarray, labels: np.ndarray) -> float:
    a, b = _paired_rows(outputs, labels, "cosine")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean(np.sum(a * b, axis=1) / np.maximum(norms, 1e-12)))


BUILTINS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("top-1", top_k(1), True, "ratio", "accuracy of the top-scored class"),
        Metric("top-5", top_k(5), True, "ratio", "true class among the 5 top-scored"),
        Metric("macro-f1", macro_f1, True, "ratio", "F1 of the top-1 class, mean over classes"),
        Metric("auc", auc, True, "ratio", "ROC AUC (binary, or one-vs-rest macro)"),
        Metric("mse", mse, False, "squared label units", "mean squared error"),
        Metric("mae", mae, False, "label units", "mean absolute error"),
        Metric("cosine", cosine, True, "cosine", "cosine similarity, mean over rows"),
    )
}
ALIASES = {
    "top1": "top-1",
    "accuracy": "top-1",
    "acc": "top-1",
    "top5": "top-5",
    "f1": "macro-f1",
    "macrof1": "macro-f1",
    "f1-macro": "macro-f1",
    "roc-auc": "auc",
    "rocauc": "auc",
    "cos": "cosine",
    "cosine-similarity": "cosine",
}


def metric_names() -> list[str]:
    """The built-in metrics' names (aliases accepted too: accuracy, f1, roc-auc, ...)."""
    return list(BUILTINS)


def get_metric(name: str, higher_is_better: bool | None = None, unit: str | None = None) -> Metric:
    """The metric `name`: a built-in (any case, '_' or '-'), or `module:function` /
    `file.py:function`. `higher_is_better` and `unit` override a user function's own."""
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    key = ALIASES.get(key, key)
    if key in BUILTINS:
        builtin = BUILTINS[key]
        if higher_is_better is not None and higher_is_better != builtin.higher_is_better:
            raise UserError(
                f"metric {key}: {'higher' if builtin.higher_is_better else 'lower'} is better, "
                "that cannot be changed"
            )
        return builtin
    if is_callable_ref(name):
        fn = load_callable(name, "metric")
        better = (
            getattr(fn, "higher_is_better", True) if higher_is_better is None else higher_is_better
        )
        return Metric(name, fn, bool(better), unit or str(getattr(fn, "unit", "value")), "user")
    raise UserError(
        f"unknown metric {name!r}: use one of {', '.join(metric_names())}, or MODULE:FUNCTION "
        "(a function of outputs and labels returning a number)"
    )
