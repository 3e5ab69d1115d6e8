"""What the `ctr` notebook shows beyond the generic task sections: the trained model's
quality, the artifacts' CTR parity (AUC / log-loss deltas, per-user ranking agreement),
the embedding tables under INT8, batched vs per-candidate ranking, and a ranking demo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from exporters.base import ArtifactRequest, export
from workbench.devices import parse_device
from workbench.errors import UserError
from workbench.harness.timing import StopRule
from workbench.recsys import ctr_features, ctr_ranking, movielens
from workbench.recsys.ctr_quant import study
from workbench.recsys.deepfm import EPOCHS, build_torch, trained_weights
from workbench.registry import get_runtime
from workbench.runtimes.base import RuntimeOptions
from workbench.tasks.ctr import ranking_request

# The reference point: a DeepFM with 8 fields, 3 epochs, temporal 80/20 split.
REFERENCE = {"auc": 0.703, "log_loss": 0.624}
PARITY_FIELDS = {
    "parity_auc_delta": "AUC delta",
    "parity_log_loss_delta": "log-loss delta",
    "parity_kendall_tau": "Kendall tau",
    "parity_metric_value": "top-10 overlap",
    "parity_scaled_error": "max error / max |logit|",
    "parity_pass": "parity pass",
}


def model_quality() -> pd.DataFrame:
    """The trained DeepFM's test AUC and log loss beside the issue's reference."""
    meta = trained_weights()
    return pd.DataFrame(
        [
            {
                "model": f"this DeepFM (8 fields, {EPOCHS} epochs, temporal 80/20)",
                "AUC": round(float(meta["__meta_test_auc"]), 4),
                "log loss": round(float(meta["__meta_test_log_loss"]), 4),
                "training (s)": round(float(meta["__meta_train_seconds"]), 1),
            },
            {
                "model": "reference (issue): DeepFM, 8 fields, 3 epochs, temporal 80/20",
                "AUC": REFERENCE["auc"],
                "log loss": REFERENCE["log_loss"],
                "training (s)": None,
            },
        ]
    )


def parity_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per exported artifact in a sweep's rows: the CTR parity figures from its manifest
    (the export is cached, so nothing is exported again)."""
    if frame.empty:
        return pd.DataFrame()
    keys = ["model", "source_framework", "format", "precision"]
    exported = frame[~frame["format"].isin(["eager", "inductor", "keras"])]
    rows = []
    for model, framework, fmt, precision in (
        exported[keys].drop_duplicates().itertuples(index=False)
    ):
        manifest = export(ArtifactRequest("ctr", model, framework, fmt, precision))
        row = {"source": framework, "format": fmt, "precision": precision}
        row["status"] = manifest.get("status")
        for key, name in PARITY_FIELDS.items():
            value = manifest.get(key)
            row[name] = round(value, 5) if isinstance(value, float) else value
        row["size (KB)"] = round((manifest.get("size_bytes") or 0) / 1024, 1)
        rows.append(row)
    return pd.DataFrame(rows)


def fp32_onnx() -> Path:
    """The task's FP32 ONNX export (made once, then cached)."""
    manifest = export(ArtifactRequest("ctr", "deepfm", "torch", "onnx", "fp32"))
    if manifest.get("status") != "ok":
        raise RuntimeError(f"the FP32 ONNX export failed: {manifest.get('error')}")
    return Path(manifest["path"])


def embedding_quantization(out_dir: Path) -> pd.DataFrame:
    return pd.DataFrame(study(fp32_onnx(), out_dir)).round(5)


def ranking_timing(candidates: list[int], profile: str, threads: int = 2) -> pd.DataFrame:
    """Batched vs per-candidate ranking with ONNX Runtime on the FP32 export, at each
    candidate count (short timing in ci/quick; benchmarks/ctr_ranking.py for figures)."""
    short = profile != "full"
    rule = (
        StopRule(warmup_iters=2, warmup_time_s=0.05, min_iters=20, min_time_s=0.1, max_time_s=1.0)
        if short
        else StopRule(min_iters=300, min_time_s=2.0, max_time_s=20.0)
    )
    loop_rule = StopRule(
        warmup_iters=1,
        warmup_time_s=0.0,
        min_iters=3 if short else 20,
        min_time_s=0.05 if short else 1.0,
        max_time_s=1.0 if short else 20.0,
    )
    loaded = get_runtime("onnxruntime").load(
        fp32_onnx(), RuntimeOptions(parse_device("cpu"), threads)
    )
    score = ctr_ranking.loaded_scorer(loaded)
    rows = []
    try:
        for n in candidates:
            pool = []
            for seed in range(4):
                raw = ranking_request(n, seed)
                pool.append((raw[0][0], np.asarray([i for _, i in raw], np.int64)))
            timing = ctr_ranking.time_ranking(score, pool, rule, loop_rule)
            b, m, loop = timing["batched"], timing["model_only"], timing["per_candidate"]
            rows.append(
                {
                    "candidates": n,
                    "batched p50 (ms)": b["p50_ms"],
                    "batched p99 (ms)": b["p99_ms"],
                    "model call p50 (ms)": m["p50_ms"],
                    "per-candidate p50 (ms)": loop["p50_ms"],
                    "per-candidate p99 (ms)": loop["p99_ms"],
                    "speed-up (p50)": loop["p50_ms"] / b["p50_ms"],
                    "batched candidates/s": b["candidates_per_s"],
                    "same ranking": timing["same_ranking"],
                }
            )
    finally:
        loaded.close()
    return pd.DataFrame(rows)


def demo(user_id: int, item_ids: list[int]) -> pd.DataFrame:
    """One user's candidates ranked by the PyTorch model, with titles."""
    ranking = ctr_ranking.rank(
        ctr_ranking.torch_scorer(build_torch(trained_weights())), user_id, item_ids
    )
    items = movielens.load().items.set_index("item_id")
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(ranking.item_ids) + 1),
            "item_id": ranking.item_ids,
            "title": items.loc[ranking.item_ids, "title"].to_numpy(),
            "CTR": ranking.ctr.round(4),
        }
    )


def bad_inputs() -> pd.DataFrame:
    """What each kind of bad input gets: the error message, or the defined result."""
    score = ctr_ranking.torch_scorer(build_torch(trained_weights()))
    test = ctr_features.split("test").feed
    wild = {k: v[:2].copy() for k, v in test.items()}
    wild["ids"][0, 1] = 999_999
    nan = {k: v[:2].copy() for k, v in test.items()}
    nan["genres"][0, 0] = np.nan
    cases: dict[str, Any] = {
        "empty candidate list": lambda: ctr_ranking.rank(score, 1, []),
        "unknown item id 99999": lambda: ctr_ranking.rank(score, 1, [1, 99999]),
        "unknown user id 123456": lambda: ctr_ranking.rank(score, 123456, [1, 2, 3]),
        "id outside its table": lambda: ctr_features.validate_feed(wild),
        "NaN genre": lambda: ctr_features.validate_feed(nan),
    }
    rows = []
    for case, call in cases.items():
        try:
            result = call()
            outcome = (
                f"ranked {[int(i) for i in result.item_ids]} (cold start: {result.cold_start_user})"
                if isinstance(result, ctr_ranking.Ranking)
                else "accepted"
            )
        except UserError as exc:
            outcome = f"UserError: {exc}"
        rows.append({"input": case, "outcome": outcome})
    return pd.DataFrame(rows)
