"""Tables for the text notebooks: latency against sequence length, per-artifact quality."""

from __future__ import annotations

import pandas as pd

QUALITY_COLUMNS = [
    "model",
    "source_framework",
    "format",
    "precision",
    "parity_metric_name",
    "parity_metric_value",
    "parity_pass",
    "accuracy",
]


def seq_len_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Median latency (ms) per artifact and batch size (rows) and sequence length
    (columns), over the rows that measured."""
    ok = frame[(frame["status"] == "ok") & frame["seq_len"].notna()] if not frame.empty else frame
    if ok.empty:
        return pd.DataFrame()
    ok = ok.assign(seq_len=ok["seq_len"].astype(int))
    return ok.pivot_table(
        index=["model", "format", "precision", "runtime", "batch_size"],
        columns="seq_len",
        values="latency_ms_p50",
        aggfunc="median",
    )


def quality_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per artifact: its parity against the source model and its accuracy (or
    entity F1, for ner) on the true labels of the held-out split."""
    if frame.empty:
        return pd.DataFrame(columns=QUALITY_COLUMNS)
    present = [c for c in QUALITY_COLUMNS if c in frame.columns]
    return frame[present].drop_duplicates().sort_values(present[:4]).reset_index(drop=True)


def fp32_onnx_path(frame: pd.DataFrame, task: str, model: str) -> str | None:
    """The FP32 ONNX artifact of `model` measured in `frame`, if any (the first by source
    framework, then path, when several)."""
    if frame.empty:
        return None
    ok = frame[
        (frame["status"] == "ok")
        & (frame["task"] == task)
        & (frame["model"] == model)
        & (frame["format"] == "onnx")
        & (frame["precision"] == "fp32")
        & frame["artifact_path"].notna()
    ]
    if ok.empty:
        return None
    return str(ok.sort_values(["source_framework", "artifact_path"])["artifact_path"].iloc[0])
