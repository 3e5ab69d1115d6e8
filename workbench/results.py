"""The result store: one tidy row per measurement, written durably, loaded as a DataFrame.

Benchmarks are long and get killed (OOM, Ctrl-C, a CI timeout, a crashing
runtime). Each run therefore lives in `runs/<run_id>/` with a `manifest.json`
(config + environment fingerprint, replaced atomically) and a `rows.jsonl`
where every row is one JSON line appended with a single `O_APPEND` write and
fsynced. A kill loses at most the row being written, which shows up as a torn
last line that `load()` skips with a warning; every finished row survives.

Raw per-call latencies are kept in the row (`latencies_ms`) next to the
percentiles, so statistics can be recomputed later.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import secrets
import threading
import uuid
import warnings
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from workbench import env, workspace
from workbench.atomic import append_line, dumps, fsync_dir, write_json_atomic
from workbench.errors import UserError

RESULT_FIELDS: list[str] = [
    # identity
    "run_id",
    "row_id",
    "timestamp",
    "status",
    "error",
    # what was measured
    "task",
    "model",
    "source_framework",
    "format",
    "precision",
    "runtime",
    "runtime_version",
    "provider",
    "device",
    "scenario",
    "batch_size",
    "input_shape",
    "input_axes",  # the artifact's input axes as it declares them: fixed ones are numbers
    "input_note",  # a model file's inputs: where each one's values came from, its batch axis
    "seq_len",
    "image_size",
    "threads",
    "inter_op_threads",
    "runtime_options",
    # how long
    "n_warmup",
    "n_iterations",
    "duration_s",
    # latency statistics (milliseconds)
    "latency_ms_mean",
    "latency_ms_std",
    "latency_ms_min",
    "latency_ms_p50",
    "latency_ms_p90",
    "latency_ms_p95",
    "latency_ms_p99",
    "latency_ms_max",
    "latency_ms_p50_ci_low",
    "latency_ms_p50_ci_high",
    "latency_ms_p99_ci_low",
    "latency_ms_p99_ci_high",
    "missing_stats",
    "throughput_items_per_s",
    "throughput_batches_per_s",
    "stable",
    "stability_note",
    "repeats",
    "repeat_p50s_ms",
    "repeat_p50_max_dev",
    # load scenarios (LoadGen through the dynamic batcher)
    "scenario_settings",
    "batcher",
    "verdict",
    "verdict_reasons",
    "offered_qps",
    "queue_ms_p50",
    "queue_ms_p99",
    "compute_ms_p50",
    "compute_ms_p99",
    "batch_histogram",
    "rejected",
    "failed_requests",
    "scenario_client",  # how the SUT sent LoadGen's queries: worker threads or asynchronous
    "peak_qps",
    "loadgen_log_dir",
    # costs besides latency
    "load_time_ms",
    "first_inference_ms",
    "model_size_bytes",
    "peak_rss_bytes",
    "gpu_memory_bytes",
    "cuda_synchronized",
    # pre/post-processing and end-to-end
    "pre_ms_p50",
    "e2e_model_ms_p50",
    "post_ms_p50",
    "e2e_ms_p50",
    "e2e_ms_p99",
    "e2e_items_per_s",
    "e2e_n_iterations",
    "e2e_error",
    # parity with the source model
    "parity_max_abs_error",
    "parity_max_rel_error",
    "parity_metric_name",
    "parity_metric_value",
    "parity_output_scale",  # what the tolerance rule divides the max error by
    "parity_pass",
    "parity_rule",  # which rule decided parity_pass: tolerance or quality
    "parity_reason",  # the numbers that decided it, in words
    "accuracy",
    # your own model (workbench.usermodel): the metric's drop in points against the source
    # model on the user's labels, and "synthetic calibration" where static INT8 used it
    "accuracy_drop",
    "calibration",
    "accuracy_source",  # the source model's quality on the same labelled inputs
    # accuracy-aware INT8 (exporters.int8_search): met / not met / not needed / skipped /
    # off, why in numbers, the nodes kept in float and the quality at each step
    "int8_search",
    "int8_search_reason",
    "int8_excluded_count",
    "int8_excluded_nodes",
    "int8_search_steps",
    # provenance
    "artifact_path",
    "artifact_sha256",
    "fingerprint_id",
    # fleet sweeps: the host that measured the row, its class, and a software mismatch
    "host",
    "host_class",
    "host_warning",
    # interleaved A/B timing (harness.runner.run_interleaved): the arm and round of a block
    "compare_arm",
    "compare_round",
    # raw data
    "latencies_ms",
]

STATUSES = ("ok", "failed", "unavailable")
MANIFEST = "manifest.json"
ROWS = "rows.jsonl"

_FIELD_SET = frozenset(RESULT_FIELDS)


def make_row(**fields: Any) -> dict[str, Any]:
    """A row with every field of RESULT_FIELDS (missing ones None); unknown names raise."""
    unknown = sorted(set(fields) - _FIELD_SET)
    if unknown:
        raise ValueError(f"unknown result field(s): {', '.join(unknown)}")
    status = fields.get("status")
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    return {name: fields.get(name) for name in RESULT_FIELDS}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _load_avg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not on every platform
        return None


def new_run_id(now: datetime | None = None) -> str:
    """A sortable run id: UTC time to the millisecond plus a short random suffix."""
    now = now or _utcnow()
    return f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


class RunStore:
    """One run's directory: the manifest plus the durable rows file."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self._lock = threading.Lock()

    @property
    def run_id(self) -> str:
        return self.manifest["run_id"]

    @property
    def rows_path(self) -> Path:
        return self.path / ROWS

    @classmethod
    def create(cls, config: dict[str, Any], root: Path | str | None = None) -> RunStore:
        """Make `<root>/<run_id>/` with its manifest (root defaults to the workspace runs/)."""
        root = Path(root) if root is not None else workspace.runs_dir()
        root.mkdir(parents=True, exist_ok=True)
        run_id = new_run_id()
        path = root / run_id
        path.mkdir()
        fp = env.fingerprint()
        manifest = {
            "run_id": run_id,
            "created": _utcnow().isoformat(),
            "status": "running",
            "finished": None,
            "row_count": 0,
            "config": config,
            "fingerprint": fp,
            "fingerprint_id": env.fingerprint_id(fp),
            # the host's 1/5/15-minute load averages: a busy host explains a slow run
            "load_avg": {"start": _load_avg(), "end": None},
        }
        (path / ROWS).touch()
        write_json_atomic(path / MANIFEST, manifest)
        fsync_dir(root)
        return cls(path, manifest)

    @classmethod
    def open(cls, path: Path | str) -> RunStore:
        """Reopen an existing run (e.g. in a benchmark worker process) to append rows."""
        path = Path(path)
        manifest = _read_manifest(path)
        if manifest is None:
            raise UserError(f"{path} is not a run directory (no readable {MANIFEST})")
        return cls(path, manifest)

    def append(self, row: dict[str, Any]) -> dict[str, Any]:
        """Durably append one row (filling run_id, row_id, timestamp, fingerprint_id)."""
        full = make_row(**row)
        full["run_id"] = self.run_id
        full["row_id"] = full["row_id"] or uuid.uuid4().hex
        full["timestamp"] = full["timestamp"] or _utcnow().isoformat()
        full["fingerprint_id"] = full["fingerprint_id"] or self.manifest["fingerprint_id"]
        data = (dumps(full, separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            append_line(self.rows_path, data)
            self.manifest["row_count"] += 1
        return full

    def rows(self) -> list[dict[str, Any]]:
        """The rows stored so far (torn or corrupt lines skipped)."""
        return list(_read_rows(self.rows_path, warn=False))

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the run's writer lock for the block: one process sweeps into a run at a
        time (a resume cannot race the run it resumes). The lock dies with its holder,
        so a killed run is free to resume at once."""
        with (self.path / ".lock").open("a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(
                    f"run {self.run_id} is being written by another process: wait for it to "
                    "finish (or stop it) before resuming"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def repair(self) -> int:
        """Cut a torn last line (a writer killed mid-row) off rows.jsonl, so the next row
        starts on its own line; the cut bytes are kept in rows.jsonl.torn. Returns how
        many bytes were cut."""
        data = self.rows_path.read_bytes() if self.rows_path.exists() else b""
        if not data or data.endswith(b"\n"):
            return 0
        keep = data.rfind(b"\n") + 1
        with (self.path / (ROWS + ".torn")).open("ab") as fh:
            fh.write(data[keep:] + b"\n")
        with self.rows_path.open("r+b") as fh:
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
        return len(data) - keep

    def finish(self, status: str = "ok") -> None:
        """Record the run's end: status, finish time and the number of rows on disk."""
        with self._lock:
            self.manifest["status"] = status
            self.manifest["finished"] = _utcnow().isoformat()
            self.manifest.setdefault("load_avg", {"start": None})["end"] = _load_avg()
            self.manifest["row_count"] = sum(1 for _ in _read_rows(self.rows_path, warn=False))
            write_json_atomic(self.path / MANIFEST, self.manifest)


def _read_rows(path: Path, warn: bool = True) -> Iterator[dict[str, Any]]:
    """Rows of a rows.jsonl, skipping (and warning about) torn or corrupt lines."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        lines = fh.read().split(b"\n")
    last = len(lines) - 1
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict):
            yield row
        elif warn:
            where = "torn last line" if i >= last - 1 else f"corrupt line {i + 1}"
            warnings.warn(f"{path}: skipping {where} ({len(line)} bytes)", stacklevel=3)


def _run_dirs(root: Path, run_ids: Iterable[str] | None) -> list[Path]:
    """Run directories under root (sorted by run id), optionally only the given ids."""
    if run_ids is None:
        return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    dirs = [root / run_id for run_id in run_ids]
    missing = [p.name for p in dirs if not p.is_dir()]
    if missing:
        raise UserError(f"no such run(s) under {root}: {', '.join(missing)}")
    return dirs


def _read_manifest(run_dir: Path) -> dict[str, Any] | None:
    """The manifest of a run dir, or None (with a warning) when absent or unreadable."""
    path = run_dir / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        warnings.warn(f"{run_dir}: no {MANIFEST}, skipping this directory", stacklevel=3)
    except (OSError, ValueError) as exc:
        warnings.warn(f"{path}: unreadable ({exc}), skipping this run", stacklevel=3)
    return None


def _root(root: Path | str | None) -> Path:
    return Path(root) if root is not None else workspace.runs_dir()


def load_manifests(root: Path | str | None = None) -> list[dict[str, Any]]:
    """Every run's manifest, oldest run first."""
    root = _root(root)
    if not root.is_dir():
        return []
    manifests = (_read_manifest(d) for d in _run_dirs(root, None))
    return [m for m in manifests if m is not None]


def load(root: Path | str | None = None, run_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """All rows of the chosen runs (default: every run) as one DataFrame of RESULT_FIELDS."""
    root = _root(root)
    rows: list[dict[str, Any]] = []
    if root.is_dir():
        for run_dir in _run_dirs(root, run_ids):
            if _read_manifest(run_dir) is not None:
                rows.extend(_read_rows(run_dir / ROWS))
    elif run_ids:
        raise UserError(f"no runs directory at {root}")
    if not rows:
        return pd.DataFrame(columns=RESULT_FIELDS)
    return pd.DataFrame.from_records(rows, columns=RESULT_FIELDS)


def _latencies_to_json(value: Any) -> str | None:
    """latencies_ms cell -> JSON text for CSV (None stays empty)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return dumps([float(x) for x in value])


def export(df: pd.DataFrame, path: Path | str) -> Path:
    """Write rows to .csv (latencies_ms as JSON text) or .parquet (list column kept)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise UserError(f"cannot export to {path.name!r}: use a .csv or .parquet file")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        out = df.copy()
        if "latencies_ms" in out.columns:
            out["latencies_ms"] = out["latencies_ms"].map(_latencies_to_json)
        out.to_csv(path, index=False)
    else:
        df.to_parquet(path, engine="pyarrow", index=False)
    return path
