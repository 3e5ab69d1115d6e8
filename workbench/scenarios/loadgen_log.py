"""Read LoadGen's detail log (`mlperf_log_detail.txt`): the verdict, each reason for it,
and the latency statistics LoadGen computed.

Each line of the detail log is `:::MLLOG {json}` with a `key` and a `value`; the result
keys (`result_validity`, `result_*_met`, `early_stopping_*`, `result_NN.NN_percentile_
latency_ns`, ...) are the same ones the summary prints.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DETAIL = "mlperf_log_detail.txt"
SUMMARY = "mlperf_log_summary.txt"
_PERCENTILE = re.compile(r"^result_(\d+\.\d+)_percentile_(?:per_query_)?latency_ns$")

# What each failed check of LoadGen's verdict means.
_CHECKS = {
    "result_perf_constraints_met": "performance constraints not met (latency bound at the "
    "target percentile)",
    "result_min_duration_met": "minimum duration not met",
    "result_min_queries_met": "minimum query count not met",
    "early_stopping_met": "early stopping not met",
}


def read_detail(log_dir: Path) -> dict[str, Any]:
    """Every key of the detail log with its last value (errors and warnings as lists)."""
    values: dict[str, Any] = {"errors": [], "warnings": []}
    path = Path(log_dir) / DETAIL
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith(":::MLLOG "):
            continue
        try:
            entry = json.loads(line[len(":::MLLOG ") :])
        except ValueError:
            continue
        key, value = entry.get("key"), entry.get("value")
        meta = entry.get("metadata") or {}
        if meta.get("is_error"):
            values["errors"].append(f"{key}: {value}")
        elif meta.get("is_warning"):
            values["warnings"].append(f"{key}: {value}")
        values[key] = value
    return values


def verdict(detail: dict[str, Any]) -> tuple[str, list[str]]:
    """LoadGen's VALID/INVALID and the reason for each failed check (early stopping's
    own message included)."""
    result = str(detail.get("result_validity", "")).strip() or "UNKNOWN"
    reasons = [text for key, text in _CHECKS.items() if detail.get(key) is False]
    early = str(detail.get("early_stopping_result", "")).strip()
    if detail.get("early_stopping_met") is False and early:
        reasons.append("early stopping: " + " ".join(early.replace("*", "").split()))
    invalid = str(detail.get("result_invalid_reason", "")).strip()
    if invalid:
        reasons.append(invalid)
    reasons.extend(f"LoadGen error: {e}" for e in detail.get("errors", []))
    if result != "VALID" and not reasons:
        reasons.append(f"LoadGen reported {result}")
    return result, reasons


def latency_ms(detail: dict[str, Any]) -> dict[str, float]:
    """LoadGen's latency statistics in ms: p50, p90, p95, p97, p99, p99.9, min, max, mean.
    The multi_stream scenario's figures are per query (all its samples done), the
    latency LoadGen judges there; the other scenarios' are per sample."""
    per_query = any("_per_query_" in key for key in detail)
    out: dict[str, float] = {}
    for key, value in detail.items():
        match = _PERCENTILE.match(key)
        if match and isinstance(value, (int, float)) and ("_per_query_" in key) == per_query:
            out[f"p{float(match.group(1)):g}"] = value / 1e6
    infix = "_query" if per_query else ""
    for name in ("min", "max", "mean"):
        value = detail.get(f"result_{name}{infix}_latency_ns")
        if isinstance(value, (int, float)):
            out[name] = value / 1e6
    return out


def samples_per_s(detail: dict[str, Any]) -> float | None:
    """Completed samples per second: server, achieved QPS; offline, throughput;
    single_stream, queries per second with LoadGen's overhead; multi_stream, samples per
    query over the mean query latency (LoadGen reports no rate there)."""
    for key in (
        "result_completed_samples_per_sec",
        "result_samples_per_second",
        "result_qps_with_loadgen_overhead",
    ):
        value = detail.get(key)
        if isinstance(value, (int, float)):
            return float(value)
    mean_ns = detail.get("result_mean_query_latency_ns")
    per_query = detail.get("effective_samples_per_query")
    if isinstance(mean_ns, (int, float)) and mean_ns > 0 and isinstance(per_query, int):
        return per_query / (mean_ns / 1e9)
    return None
