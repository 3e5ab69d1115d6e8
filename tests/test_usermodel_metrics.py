"""Metrics of a user's model: built-ins checked on hand-computed numbers and against
scikit-learn, the points convention shared with `recommend`, user functions, and every
error path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, roc_auc_score, top_k_accuracy_score

from workbench.analysis.recommend import Constraints, recommend
from workbench.errors import UserError
from workbench.results import make_row
from workbench.usermodel.metrics import Metric, get_metric, metric_names

LOGITS = np.array(
    [
        [2.0, 1.0, 0.0, -1.0, -2.0, -3.0],  # top-1: 0
        [0.0, 3.0, 1.0, 0.0, 0.0, 0.0],  # top-1: 1
        [1.0, 0.0, 2.0, 3.0, 0.0, 0.0],  # top-1: 3
        [0.0, 0.0, 0.0, 0.0, 1.0, 5.0],  # top-1: 5
    ]
)
LABELS = np.array([0, 1, 2, 0])  # right, right, wrong (2nd), wrong (5th of 6)


def test_names_and_aliases() -> None:
    assert metric_names() == ["top-1", "top-5", "macro-f1", "auc", "mse", "mae", "cosine"]
    assert get_metric("Accuracy").name == "top-1"
    assert get_metric("TOP_5").name == "top-5"
    assert get_metric("f1").name == "macro-f1"
    assert get_metric("roc-auc").name == "auc"
    assert get_metric("cosine_similarity").name == "cosine"


def test_top_1_and_top_5_by_hand_and_against_sklearn() -> None:
    assert get_metric("top-1")(LOGITS, LABELS) == 0.5
    # row 2: class 2 is second; row 3: class 0 ties for the lowest -> outside the top 5?
    # Scores [0,0,0,0,1,5]: top 5 are 5, 4 and three of the zeros; sklearn breaks ties
    # by its own rule, so compare with it rather than guess.
    expected = top_k_accuracy_score(LABELS, LOGITS, k=5, labels=np.arange(6))
    assert get_metric("top-5")(LOGITS, LABELS) == pytest.approx(expected)
    assert get_metric("top-5")(LOGITS[:3], LABELS[:3]) == 1.0


def test_top_1_ignores_padding_labels_and_takes_token_layouts() -> None:
    tokens = np.zeros((2, 3, 4))
    tokens[0, 0, 1] = tokens[0, 1, 2] = tokens[1, 0, 3] = 1.0
    labels = np.array([[1, 0, -100], [3, -100, -100]])  # token (0, 1) is wrong
    assert get_metric("top-1")(tokens, labels) == pytest.approx(2 / 3)
    one_hot = np.eye(6)[LABELS]
    assert get_metric("top-1")(LOGITS, one_hot) == 0.5


def test_macro_f1_against_sklearn_and_by_hand() -> None:
    predicted = LOGITS.argmax(1)
    assert get_metric("macro-f1")(LOGITS, LABELS) == pytest.approx(
        f1_score(LABELS, predicted, average="macro", zero_division=0)
    )
    # classes 0 (tp 1, fn 1 -> f1 2/3), 1 (f1 1), 2 (fn 1 -> 0), 3 (fp -> 0), 5 (fp -> 0)
    assert get_metric("macro-f1")(LOGITS, LABELS) == pytest.approx((2 / 3 + 1) / 5)


def test_binary_auc_by_hand() -> None:
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    labels = np.array([0, 0, 1, 1])  # pairs (pos > neg): 0.35>0.1, 0.8>both -> 3 of 4
    assert get_metric("auc")(scores, labels) == 0.75
    assert get_metric("auc")(scores[:, None], labels) == 0.75
    two = np.stack([np.zeros(4), np.log(scores / (1 - scores))], axis=1)  # logits
    assert get_metric("auc")(two, labels) == pytest.approx(0.75)


def test_one_vs_rest_auc_against_sklearn() -> None:
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((40, 4))
    labels = rng.integers(0, 4, 40)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = roc_auc_score(labels, probs, multi_class="ovr", average="macro")
    assert get_metric("auc")(logits, labels) == pytest.approx(expected)
    assert get_metric("auc")(probs, labels) == pytest.approx(expected)


def test_regression_and_cosine_by_hand() -> None:
    out = np.array([[1.0], [2.0], [4.0]])
    true = np.array([1.0, 3.0, 2.0])
    assert get_metric("mse")(out, true) == pytest.approx((0 + 1 + 4) / 3)
    assert get_metric("mae")(out, true) == pytest.approx((0 + 1 + 2) / 3)
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    b = np.array([[2.0, 0.0], [-1.0, -1.0], [1.0, 0.0]])
    assert get_metric("cosine")(a, b) == pytest.approx((1 - 1 + 0) / 3)


def test_points_match_recommend_accuracy_drop() -> None:
    top1, mae = get_metric("top-1"), get_metric("mae")
    assert Metric.points(0.82) == pytest.approx(82)
    assert top1.drop_points(0.82, 0.80) == pytest.approx(2)
    assert mae.drop_points(0.10, 0.13) == pytest.approx(3)  # the error grew: worse
    assert mae.drop_points(0.10, 0.08) == pytest.approx(-2)
    assert mae.score(0.1) == -0.1 and top1.score(0.1) == 0.1
    # recommend, fed the scores in its accuracy column, computes the same drop and gates
    # on it: a candidate 3 points worse in MAE fails a 2.5-point limit, one 2 points passes.
    base = {
        "status": "ok",
        "task": "user",
        "model": "m",
        "source_framework": "torch",
        "runtime": "onnxruntime",
        "device": "cpu",
        "threads": 2,
        "batch_size": 1,
        "latency_ms_p50": 1.0,
        "model_size_bytes": 1_000_000,
        "parity_pass": True,
        "timestamp": "2030-01-01T00:00:00",
    }
    rows = [
        ("fp32", 3.0, 0.10),
        ("fp16", 2.0, 0.12),
        ("int8-dynamic", 1.0, 0.13),
    ]
    frame = pd.DataFrame(
        [
            make_row(
                **base,
                format="onnx",
                precision=precision,
                latency_ms_p99=p99,
                throughput_items_per_s=1000 / p99,
                accuracy=mae.score(error),
            )
            for precision, p99, error in rows
        ]
    )
    result = recommend(frame, Constraints(max_accuracy_drop=2.5))
    assert result.best is not None and result.best["precision"] == "fp16"
    assert "accuracy drop 3.00 points" in " ".join(result.rejected["why"])


def test_user_metric_from_a_file(tmp_path: Path) -> None:
    module = tmp_path / "mymetrics.py"
    module.write_text(
        "import numpy as np\n"
        "def max_err(outputs, labels):\n"
        "    return np.abs(outputs - labels).max()\n"
        "max_err.higher_is_better = False\n"
        "max_err.unit = 'volts'\n"
        "def agree(outputs, labels):\n"
        "    return float(np.mean(outputs.argmax(1) == labels))\n"
        "def text(outputs, labels):\n"
        "    return 'good'\n"
    )
    err = get_metric(f"{module}:max_err")
    assert (err.higher_is_better, err.unit, err.name) == (False, "volts", f"{module}:max_err")
    assert err(np.array([1.0, 2.0]), np.array([1.5, 4.0])) == 2.0
    agree = get_metric(f"{module}:agree", unit="ratio")
    assert agree.higher_is_better and agree.unit == "ratio"
    assert agree(LOGITS, LABELS) == 0.5
    assert get_metric(f"{module}:max_err", higher_is_better=True).higher_is_better  # explicit wins
    with pytest.raises(UserError, match=r"metric .*:text returned 'good' \(str\), not a number"):
        get_metric(f"{module}:text")(LOGITS, LABELS)


@pytest.mark.parametrize(
    ("name", "outputs", "labels", "message"),
    [
        ("top-1", np.zeros(4), LABELS, "needs class scores on the last axis"),
        ("top-1", LOGITS, np.array([0, 1]), "labels of shape (2,) do not fit outputs"),
        ("top-1", LOGITS, np.array([0, 1, 9, 0]), "label 9 is not a class of the 6"),
        ("top-1", LOGITS, np.array([0.5, 1, 2, 0]), "labels must be class ids"),
        ("top-1", LOGITS, np.full(4, -100), "every label is padding"),
        ("top-5", LOGITS[:, :5], LABELS, "needs more than 5 classes, the outputs score 5"),
        ("auc", np.array([0.1, 0.2]), np.array([1, 1]), "needs both classes"),
        ("auc", np.array([0.1, 0.2]), np.array([0, 2]), "binary labels must be 0 or 1"),
        ("auc", np.array([0.1, 0.2]), np.array([0, 1, 1]), "3 labels for 2 output rows"),
        ("auc", np.zeros((2, 3)), np.array([1, 1]), "at least two classes"),
        ("auc", np.zeros((2, 3, 4)), np.zeros((2, 3)), "needs (N,) or (N, classes)"),
        ("mse", np.zeros((3, 2)), np.zeros(3), "do not hold the same values per row"),
    ],
)
def test_metric_errors(name: str, outputs: np.ndarray, labels: np.ndarray, message: str) -> None:
    with pytest.raises(UserError) as err:
        get_metric(name)(outputs, labels)
    assert message in str(err.value)


def test_non_finite_outputs_fail_the_artifact_not_the_user() -> None:
    bad = LOGITS.copy()
    bad[1, 2] = np.nan
    for name in metric_names():
        with pytest.raises(ValueError, match="1 non-finite values"):
            get_metric(name)(bad if name != "cosine" else bad[:, :4], LABELS)


def test_unknown_metric_and_fixed_direction() -> None:
    with pytest.raises(UserError, match=r"unknown metric 'top-3': use one of top-1, top-5,"):
        get_metric("top-3")
    with pytest.raises(UserError, match="lower is better, that cannot be changed"):
        get_metric("mse", higher_is_better=True)
    with pytest.raises(UserError, match="no module named 'nosuchpkg'"):
        get_metric("nosuchpkg:fn")
