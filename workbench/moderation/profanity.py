"""Offensive language: alt-profanity-check 1.9.1 (TF-IDF + calibrated linear SVM trained on
real data) converted to ONNX with skl2onnx, and the measured ONNX-vs-scikit-learn parity.

ORT's TfIdfVectorizer is given the tokenizer option ``locale: "C.UTF-8"`` (without it ORT
tries to build ``en_US.UTF-8`` and fails where that locale is missing). ORT's
StringNormalizer and regex tokenizer do not treat every non-ASCII character as scikit-learn
does, so probabilities on non-ASCII text can differ: `parity` measures it on real texts
split into ASCII and non-ASCII, and the numbers are recorded, not hidden.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import UnavailableError
from workbench.procs import file_lock
from workbench.workspace import artifacts_dir

PACKAGE = "alt-profanity-check"
PINNED = "1.9.1"
OPSET = 17


def _require() -> Any:
    try:
        # lazy: profanity_check
        import profanity_check  # noqa: F401
    except ImportError as exc:
        raise UnavailableError(
            f"{PACKAGE}=={PINNED} is not installed ({exc}): run `make setup`"
        ) from None
    return importlib.import_module("profanity_check.profanity_check")


@cache
def sklearn_pipeline() -> Any:
    """The package's own fitted vectorizer and calibrated SVM as one sklearn Pipeline."""
    # lazy: sklearn
    from sklearn.pipeline import make_pipeline

    module = _require()
    return make_pipeline(module.vectorizer, module.model)


def sklearn_scores(texts: Sequence[str]) -> np.ndarray:
    """P(offensive) from scikit-learn itself (the reference)."""
    return sklearn_pipeline().predict_proba(list(texts))[:, 1]


def onnx_path() -> Path:
    """The converted model in the workspace, keyed by both packages' versions (converted
    once, ~1.5 s, under a file lock)."""
    versions = f"{importlib.metadata.version(PACKAGE)}-skl2onnx{_skl2onnx_version()}-op{OPSET}"
    directory = artifacts_dir() / "moderation-profanity"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"profanity-{versions}.onnx"
    with file_lock(directory / ".lock"):
        if not path.is_file():
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(convert().SerializeToString())
            os.replace(tmp, path)
    return path


def _skl2onnx_version() -> str:
    try:
        return importlib.metadata.version("skl2onnx")
    except importlib.metadata.PackageNotFoundError:
        raise UnavailableError("skl2onnx is not installed: run `make setup`") from None


def convert() -> Any:
    """skl2onnx conversion: string input [N, 1] -> label, probabilities [N, 2]."""
    # lazy: skl2onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType

    _skl2onnx_version()
    pipe = sklearn_pipeline()
    vectorizer, model = pipe.steps[0][1], pipe.steps[1][1]
    return convert_sklearn(
        pipe,
        initial_types=[("text", StringTensorType([None, 1]))],
        options={id(vectorizer): {"locale": "C.UTF-8"}, id(model): {"zipmap": False}},
        target_opset=OPSET,
    )


class OnnxProfanity:
    """The converted model on ONNX Runtime (CPU; one intra-op thread by default so stages
    running side by side do not fight over the cores)."""

    def __init__(self, threads: int = 1) -> None:
        # lazy: onnxruntime
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.path = onnx_path()
        self.session = ort.InferenceSession(
            str(self.path), options, providers=["CPUExecutionProvider"]
        )

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.empty(0, dtype=np.float32)
        feed = {"text": np.asarray(list(texts), dtype=object).reshape(-1, 1)}
        return self.session.run(["probabilities"], feed)[0][:, 1]


def parity(texts: Sequence[str], onnx_scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """ONNX vs scikit-learn on `texts`, split into ASCII and non-ASCII: max and mean
    absolute probability error and decision agreement at `threshold`."""
    ref = sklearn_scores(texts)
    cand = np.asarray(onnx_scores, dtype=np.float64)
    is_ascii = np.array([t.isascii() for t in texts])
    out: dict[str, Any] = {"threshold": threshold}
    for name, mask in (
        ("all", np.ones_like(is_ascii)),
        ("ascii", is_ascii),
        ("non_ascii", ~is_ascii),
    ):
        n = int(mask.sum())
        if n == 0:
            out[name] = {"n": 0}
            continue
        err = np.abs(ref[mask] - cand[mask])
        out[name] = {
            "n": n,
            "max_abs_error": float(err.max()),
            "mean_abs_error": float(err.mean()),
            "over_1e-4": int((err > 1e-4).sum()),
            "decision_agreement": float(
                np.mean((ref[mask] > threshold) == (cand[mask] > threshold))
            ),
        }
    worst = int(np.argmax(np.abs(ref - cand))) if len(texts) else None
    if worst is not None:
        out["worst"] = {
            "text": texts[worst][:120],
            "sklearn": float(ref[worst]),
            "onnx": float(cand[worst]),
        }
    return out
