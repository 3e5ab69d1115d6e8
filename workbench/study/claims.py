"""The source guide's claims (docs/claims.md), re-measured on this host.

`run_sweeps(profile)` runs the workbench's own sweeps (ResNet-50 from the
image_classification task, the tabular MLP, a Keras model as SavedModel and
TFLite, the `null` runtime for the harness's own cost); `judge(frames)` turns
the rows into one verdict per claim part: `confirmed`, `refuted` or
`not measurable here`, with the numbers and the reason.

Each claim part is one `Claim` record in `CLAIM_PARTS`: its wording, the guide's
number(s) in its rule, and which measured rows it compares, so the numbers stand next
to the words and `judge` is a loop. A measured row is the first row with status `ok`
that matches the part's filter (a named selector where the pick is special: the best
throughput batch, the fastest of several formats).

Rules, so a verdict is reproducible from the numbers shown:
- a ratio claim ("4x", "3-5x") is confirmed when the measured ratio lies in the
  claimed range widened by `ratio_tolerance` (default 25 %) on each side;
- an absolute hardware figure ("~500 ms/batch") is confirmed within
  `absolute_tolerance` (default 50 %): such numbers depend on the exact CPU/GPU;
- a claim that needs something this host lacks (a GPU, trained weights and
  labelled data) is `not measurable here`, saying what is missing; so is a part
  whose rows did not succeed, saying why (the error recorded on those rows, the
  first in sorted order, where the part looks for one).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.harness.runner import BenchConfig, run_config
from workbench.harness.timing import StopRule
from workbench.serving.measure import overhead_rows
from workbench.study import compiled
from workbench.study import sweeps as study_sweeps
from workbench.study.scenarios import LATENCY_BOUND_MS, SERVING_MODELS, claim_frame
from workbench.sweep import TaskSweep

CLAIMS: dict[str, str] = {
    "2.3": "ResNet-50, batch 32: CPU ~500 ms/batch (64 img/s); GPU ~50 ms/batch (640 img/s); "
    "GPU ~10x CPU",
    "3.2": "TFLite vs TF SavedModel: 4x smaller, 4x faster",
    "9.1": "INT8 vs FP32 ResNet-50: 50 -> 15 ms (3.3x), 98 -> 25 MB (4x), accuracy -0.3 points; "
    "FP16 2x faster and 2x smaller",
    "9.2": "batching raises throughput 3-5x",
    "1.1": "compiled serving is 5-10x lower latency than Python (what Python adds per call); "
    "the summary adds 3-5x throughput and 2-3x less memory",
}

COMPILED_BIG_BATCH = 64  # 1.1 per call: the tabular MLP at batch 1 and this batch

CONFIRMED, REFUTED, NOT_MEASURABLE = "confirmed", "refuted", "not measurable here"
# The profile measured another method than the claim's (e.g. dynamic for static INT8):
# its numbers are shown, never judged, so a cheap stand-in can never refute a claim.
NOT_IN_PROFILE = "not measured in this profile"


@dataclass(frozen=True)
class ClaimSettings:
    """What each profile measures. ci keeps the claim's model and batch where affordable
    and says where it deviates."""

    cnn_model: str
    cnn_batch: int
    cnn_rule: StopRule
    int8: str  # the INT8 flavour compared with FP32 for 9.1
    keras_task: str
    keras_model: str
    small_batches: list[int]
    rule: StopRule
    notes: tuple[str, ...]


SETTINGS: dict[str, ClaimSettings] = {
    "ci": ClaimSettings(
        cnn_model="resnet50",
        cnn_batch=32,
        cnn_rule=StopRule(
            warmup_iters=1, warmup_time_s=0.0, min_iters=3, min_time_s=0.0, max_time_s=30.0
        ),
        int8="int8-dynamic",
        keras_task="tabular",
        keras_model="mlp",
        small_batches=[1, 8, 64, 256],
        rule=StopRule(
            warmup_iters=5, warmup_time_s=0.3, min_iters=50, min_time_s=0.5, max_time_s=5.0
        ),
        notes=(
            "ci profile: ResNet-50 with 3 timed calls per configuration (full: >= 10 calls "
            "and >= 5 s)",
            "ci profile: INT8 = int8-dynamic (static calibration of ResNet-50 takes ~100 s on "
            "2 cores; the full profile uses int8-static)",
            "ci profile: 3.2 on the tabular MLP in Keras (full: MobileNetV2)",
        ),
    ),
    "full": ClaimSettings(
        cnn_model="resnet50",
        cnn_batch=32,
        cnn_rule=StopRule(
            warmup_iters=2, warmup_time_s=0.0, min_iters=10, min_time_s=5.0, max_time_s=300.0
        ),
        int8="int8-static",
        keras_task="image_classification",
        keras_model="mobilenet_v2",
        small_batches=[1, 2, 4, 8, 16, 32, 64, 128, 256],
        rule=StopRule(
            warmup_iters=10, warmup_time_s=0.5, min_iters=200, min_time_s=2.0, max_time_s=30.0
        ),
        notes=("full profile: ResNet-50 with >= 10 timed calls and >= 5 s per configuration",),
    ),
}
# The quick profile judges at the ci sizes (its notes say so).
SETTINGS["quick"] = SETTINGS["ci"]


def sweeps(profile: str, devices: list[str] | None = None) -> dict[str, TaskSweep]:
    """The sweeps behind the verdicts, by role."""
    s = SETTINGS[study_sweeps.check_profile(profile)]
    devices = devices or ["cpu", "cuda"]
    return {
        # 2.3 and 9.2 on the CNN: FP32 at batch 1 and the claim's batch, CPU and GPU.
        "cnn": TaskSweep(
            task="image_classification",
            models=[s.cnn_model],
            frameworks=["torch"],
            formats=["onnx"],
            precisions=["fp32"],
            batch_sizes=[1, s.cnn_batch],
            devices=devices,
            rule=s.cnn_rule,
        ),
        # 9.1: FP16 and INT8 at batch 1 on the CPU (FP32 comes from "cnn").
        "cnn_precisions": TaskSweep(
            task="image_classification",
            models=[s.cnn_model],
            frameworks=["torch"],
            # onnx: ONNX Runtime; openvino: OpenVINO IR with NNCF INT8 (int8-static only)
            formats=["onnx", "openvino"],
            precisions=["fp16", s.int8],
            batch_sizes=[1],
            devices=["cpu"],
            rule=s.cnn_rule,
        ),
        # 3.2: the same Keras model as SavedModel (TensorFlow) and TFLite (LiteRT).
        "keras": TaskSweep(
            task=s.keras_task,
            models=[s.keras_model],
            frameworks=["keras"],
            formats=["savedmodel", "tflite"],
            precisions=["fp32"],
            batch_sizes=[1],
            devices=["cpu"],
            rule=s.rule if s.keras_task == "tabular" else s.cnn_rule,
        ),
        # 1.1 and 9.2 on a small model: Python (eager) vs compiled graphs, batch sweep.
        "small": TaskSweep(
            task="tabular",
            models=["mlp"],
            frameworks=["torch"],
            formats=["eager", "torchscript", "onnx"],
            precisions=["fp32"],
            batch_sizes=list(s.small_batches),
            devices=["cpu"],
            rule=s.rule,
        ),
    }


def harness_overhead(profile: str) -> pd.DataFrame:
    """The `null` runtime through the harness in this process: the per-call cost of the
    Python loop itself (what any Python-driven runtime pays on top of its own work)."""
    rows: list[dict[str, Any]] = []
    config = BenchConfig(
        runtime="null",
        format="null",
        batch_sizes=[1],
        rule=SETTINGS[profile].rule,
        labels={"model": "null", "precision": None, "source_framework": None},
    )
    run_config(config, rows.append)
    return pd.DataFrame(rows)


def run_sweeps(
    profile: str, devices: list[str] | None = None, compiled_measurements: str | None = None
) -> dict[str, pd.DataFrame]:
    """Run every sweep; rows by role (plus "null" for the harness overhead, "compiled" and
    "compiled_serving" for 1.1 against compiled callers and servers). A JSON written by
    benchmarks/compiled_vs_python.py on a quiet machine gives those two instead of
    this run's own short measurements."""
    frames = {
        role: study_sweeps.run(sweep, note=f"seed_claims/{role}")
        for role, sweep in sweeps(profile, devices).items()
    }
    frames["null"] = harness_overhead(profile)
    frames["serving"] = serving_frame(profile)
    if profile != "ci":  # two server processes and six LoadGen runs: ~1 min
        frames["serving_overhead"] = serving_overhead_frame(profile)
    if compiled_measurements:
        frames.update(compiled.load_measurements(compiled_measurements))
    else:
        s = SETTINGS[profile]
        with tempfile.TemporaryDirectory(prefix="wb-claims-") as tmp:
            frames["compiled"] = compiled.per_call_frame(
                profile, frames, s.rule, s.cnn_rule, COMPILED_BIG_BATCH, Path(tmp)
            )
        frames["compiled_serving"] = compiled.serving_frame(profile, frames)
    return frames


def serving_overhead_frame(profile: str) -> pd.DataFrame:
    """1.1 for serving: what the Python HTTP and gRPC fronts of `workbench serve` add per
    request over calling the server in-process (null model, client cost subtracted through
    a trivial-server baseline; workbench.serving.measure)."""
    return pd.DataFrame(overhead_rows(profile))


def serving_frame(profile: str) -> pd.DataFrame:
    """9.2 under the server scenario: peak searches with and without the dynamic batcher
    (workbench.study.scenarios; its SERVING_MODELS lists the models judged)."""
    return claim_frame(profile)


# ------------------------------------------------------------------ rules

NO_MEASUREMENT = "no successful measurement"


def ratio_verdict(value: float | None, low: float, high: float, tol: float) -> tuple[str, str]:
    """Ratio rule: `value` within [low, high] widened by `tol` on each side."""
    if value is None or not np.isfinite(value):
        return NOT_MEASURABLE, NO_MEASUREMENT
    lo, hi = low * (1 - tol), high * (1 + tol)
    claimed = f"{low:.3g}x" if low == high else f"{low:.3g}-{high:.3g}x"
    if lo <= value <= hi:
        return CONFIRMED, f"{value:.2f}x is within {claimed} (+/-{tol:.0%})"
    side = "below" if value < lo else "above"
    return REFUTED, f"{value:.2f}x is {side} {claimed} (+/-{tol:.0%})"


def abs_verdict(value: float | None, claimed: float, unit: str, tol: float) -> tuple[str, str]:
    """Absolute rule: `value` within `claimed` +/- `tol` (a share of `claimed`)."""
    if value is None or not np.isfinite(value):
        return NOT_MEASURABLE, NO_MEASUREMENT
    if claimed * (1 - tol) <= value <= claimed * (1 + tol):
        return CONFIRMED, f"{value:.4g} {unit} is within {claimed:g} {unit} +/-{tol:.0%}"
    factor = value / claimed
    return REFUTED, (
        f"{value:.4g} {unit} is {factor:.2f}x the claimed {claimed:g} {unit} "
        f"(outside +/-{tol:.0%}; depends on the hardware)"
    )


@dataclass(frozen=True)
class RatioRange:
    """A ratio claim: numerator / denominator in [low, high], widened by ratio_tolerance."""

    low: float
    high: float | None = None  # None: a single figure ("4x")

    def verdict(self, value: float, ratio_tol: float, absolute_tol: float) -> tuple[str, str]:
        high = self.low if self.high is None else self.high
        return ratio_verdict(value, self.low, high, ratio_tol)

    def unmeasured(self, why: str) -> tuple[str, str]:
        return NOT_MEASURABLE, why


@dataclass(frozen=True)
class Absolute:
    """An absolute hardware figure, within absolute_tolerance of `value` `unit`."""

    value: float
    unit: str

    def verdict(self, value: float, ratio_tol: float, absolute_tol: float) -> tuple[str, str]:
        return abs_verdict(value, self.value, self.unit, absolute_tol)

    def unmeasured(self, why: str) -> tuple[str, str]:
        return NOT_MEASURABLE, why


@dataclass(frozen=True)
class NotMeasurable:
    """A claim this workbench cannot test at all; `reason` says what is missing. Its
    numbers are still shown (e.g. a stand-in measurement)."""

    reason: str

    def verdict(self, value: float, ratio_tol: float, absolute_tol: float) -> tuple[str, str]:
        return NOT_MEASURABLE, self.reason

    def unmeasured(self, why: str) -> tuple[str, str]:
        return NOT_MEASURABLE, self.reason


Rule = RatioRange | Absolute | NotMeasurable


# ------------------------------------------------------------------ selectors

Frames = Mapping[str, pd.DataFrame]
_NO_ROWS = pd.DataFrame(columns=["status", "error", "device", "batch_size"])  # role not run


@dataclass(frozen=True)
class Setting:
    """A filter value that is the profile's: read from its ClaimSettings by name."""

    name: str

    def value(self, s: ClaimSettings) -> Any:
        return getattr(s, self.name)


CNN_BATCH, INT8 = Setting("cnn_batch"), Setting("int8")


@dataclass(frozen=True)
class Rows:
    """Rows of `frames[role]` where each column equals its value; the key `device_prefix`
    matches the start of the device (so "cuda" matches "cuda:0")."""

    role: str
    where: tuple[tuple[str, Any], ...] = ()

    def select(self, frames: Frames, s: ClaimSettings) -> pd.DataFrame:
        part = frames.get(self.role, _NO_ROWS)
        for key, value in self.where:
            if isinstance(value, Setting):
                value = value.value(s)
            if key not in part and key != "device_prefix":
                return part.iloc[0:0]  # a role whose rows lack this column (not run)
            if key == "device_prefix":
                part = part[part["device"].astype(str).str.startswith(value)]
            else:
                part = part[part[key] == value]
        return part

    def ok(self, frames: Frames, s: ClaimSettings) -> pd.DataFrame:
        part = self.select(frames, s)
        return part[part["status"] == "ok"]

    def narrowed(self, **where: Any) -> Rows:
        return Rows(self.role, self.where + tuple(where.items()))


def rows(role: str, **where: Any) -> Rows:
    return Rows(role, tuple(where.items()))


@dataclass(frozen=True)
class ErrorOf:
    """Why a row is missing: the first (sorted) error recorded on `rows`, else "not
    measured"; `if_all_ok` instead when no row of the role failed at all."""

    rows: Rows
    if_all_ok: str | None = None

    def text(self, frames: Frames, s: ClaimSettings) -> str:
        frame = frames.get(self.rows.role, _NO_ROWS)
        if self.if_all_ok is not None and not (frame["status"] != "ok").any():
            return self.if_all_ok
        errors = sorted(set(self.rows.select(frames, s)["error"].dropna()))
        return errors[0] if errors else "not measured"


Why = str | ErrorOf


def _why(why: Why, frames: Frames, s: ClaimSettings) -> str:
    return why if isinstance(why, str) else why.text(frames, s)


@dataclass(frozen=True, eq=False)
class Row:
    """A picked result row as the `measured` templates see it: its columns as attributes
    (`{cpu.latency_ms_p50:.0f}`) and the units the texts use (`latency_us`, `size_mb`)."""

    data: pd.Series
    candidates: tuple[Row, ...] = ()  # the rows a `Fastest` chose among

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("data", "candidates"):
            raise AttributeError(name)
        try:
            return self.data[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def latency_us(self) -> float:
        return self.data["latency_ms_p50"] * 1000

    @property
    def size_mb(self) -> float:
        return self.data["model_size_bytes"] / 1e6

    @property
    def batch(self) -> int:
        return int(self.data["batch_size"])


@dataclass(frozen=True)
class First:
    """The first successful row of `rows`; its `column` is the number judged. `why` says
    why there is none; `missing_if_nan` when a row can succeed without that column."""

    name: str
    rows: Rows
    column: str
    why: Why = NO_MEASUREMENT
    missing_if_nan: bool = False

    def pick(self, frames: Frames, s: ClaimSettings) -> Row | str:
        ok = self.rows.ok(frames, s)
        if ok.empty or (self.missing_if_nan and pd.isna(ok.iloc[0][self.column])):
            return _why(self.why, frames, s)
        return Row(ok.iloc[0])


@dataclass(frozen=True)
class Best:
    """The successful row of `rows` with the highest `column`, once there are `at_least`
    of them (a best of one is no comparison)."""

    name: str
    rows: Rows
    column: str
    at_least: int
    why: Why = NO_MEASUREMENT

    def pick(self, frames: Frames, s: ClaimSettings) -> Row | str:
        ok = self.rows.ok(frames, s)
        if len(ok) < self.at_least:
            return _why(self.why, frames, s)
        return Row(ok.loc[ok[self.column].idxmax()])


@dataclass(frozen=True)
class Fastest:
    """The lowest `column` among the first successful row of each of `formats` in
    `rows`; every row found is kept in `candidates`, for the text."""

    name: str
    rows: Rows
    formats: tuple[str, ...]
    column: str
    why: Why = NO_MEASUREMENT
    # Only rows whose artifact passed parity compete, while any did (else all do, and the
    # text's parity column shows it).
    passing: bool = False

    def pick(self, frames: Frames, s: ClaimSettings) -> Row | str:
        picks = (First(f, self.rows.narrowed(format=f), self.column) for f in self.formats)
        found = [row for row in (p.pick(frames, s) for p in picks) if isinstance(row, Row)]
        if not found:
            return _why(self.why, frames, s)
        passed = [r for r in found if _passed(r.data.get("parity_pass"))]
        competing = passed if self.passing and passed else found
        fastest = min(competing, key=lambda r: r.data[self.column])
        return Row(fastest.data, candidates=tuple(found))


def _passed(parity: Any) -> bool:
    """A row's parity_pass as a bool: True only for a recorded pass (numpy or Python)."""
    return parity is not None and not pd.isna(parity) and bool(parity)


Selector = First | Best | Fastest


# ------------------------------------------------------------------ claims as data


@dataclass(frozen=True, kw_only=True)
class Claim:
    """One claim part: its wording, the guide's figure (`claimed`, and the numbers in
    `rule`), which rows it judges and how their numbers read.

    The judged value is `numerator.column` of its row, divided by `denominator.column`
    of its row for a ratio. `wording` and `measured` are `str.format` templates over the
    profile's settings `s`, the picked rows by selector name and `value`; `measured`
    may instead be a function of those fields. When a row is missing the part is not
    measurable, worded `unmeasured_wording` (no row to name) with `unmeasured` as its
    numbers.
    """

    section: str
    wording: str
    claimed: str
    rule: Rule
    numerator: Selector
    denominator: Selector | None = None
    measured: str | Callable[[Mapping[str, Any]], str]
    unmeasured_wording: str | None = None
    unmeasured: str = "-"
    # The INT8 method the claim is about; a profile measuring another one is not judged.
    int8_method: str | None = None

    def pick(self, frames: Frames, s: ClaimSettings) -> tuple[dict[str, Any], str | None]:
        """The template fields and, when a row is missing, why (the first missing one)."""
        fields: dict[str, Any] = {"s": s, "frames": frames}
        for selector in (self.numerator, self.denominator):
            if selector is None:
                continue
            picked = selector.pick(frames, s)
            if isinstance(picked, str):
                return fields, picked
            fields[selector.name] = picked
        return fields, None

    def value(self, fields: Mapping[str, Any]) -> float:
        number = fields[self.numerator.name].data[self.numerator.column]
        if self.denominator is None:
            return float(number)
        return float(number / fields[self.denominator.name].data[self.denominator.column])

    def describe(self, fields: Mapping[str, Any]) -> str:
        if callable(self.measured):
            return self.measured(fields)
        return self.measured.format(**fields)


def _harness_us(frames: Frames) -> float | None:
    """The `null` runtime's per-call cost in us, when it ran."""
    null = frames.get("null")
    if null is None or null.empty or null["status"].iloc[0] != "ok":
        return None
    return float(null["latency_ms_p50"].iloc[0]) * 1000


def _python_vs_compiled(fields: Mapping[str, Any]) -> str:
    """1.1's numbers: eager vs every compiled graph found, and the harness's own Python
    call (shown beside, not judged: what any Python-driven loop pays per call)."""
    eager, compiled = fields["eager"], fields["compiled"]
    parts = ", ".join(f"{r.format} {r.latency_us:.1f} us" for r in compiled.candidates)
    null_us = _harness_us(fields["frames"])
    overhead = f"; the harness's own Python call costs {null_us:.2f} us" if null_us else ""
    return f"eager {eager.latency_us:.1f} us vs {parts} ({fields['value']:.1f}x){overhead}"


def _fronts_added(fields: Mapping[str, Any]) -> str:
    """1.1 in serving: the ms each Python front adds per request, p50 and p99."""
    frame = fields["frames"]["serving_overhead"]
    added = frame.set_index("path")
    grpc = added.loc["grpc"] if "grpc" in added.index else None
    http = fields["http"]
    text = f"HTTP +{http.added_p50_ms:.3f} ms (p99 {http.added_p99_ms:+.3f})"
    if grpc is not None:
        text += f", gRPC +{grpc['added_p50_ms']:.3f} ms (p99 {grpc['added_p99_ms']:+.3f})"
    return text + " per request at p50; in-process and client baseline subtracted"


def _python_adds(fields: Mapping[str, Any]) -> str:
    """1.1 per call: both p50s and their difference, what Python adds per call."""
    python, compiled_ = fields["python"], fields["compiled"]
    return (
        f"Python {python.latency_us:.1f} us vs C API {compiled_.latency_us:.1f} us: Python "
        f"adds {python.latency_us - compiled_.latency_us:.1f} us per call ({fields['value']:.2f}x)"
    )


def _per_call(model: str, batch: int | Setting, why: Why) -> dict[str, First]:
    """1.1 per call: the onnxruntime row over the onnxruntime-c row of one model/batch."""
    part = rows("compiled", model=model, batch_size=batch)
    return {
        "numerator": First("python", part.narrowed(runtime="onnxruntime"), "latency_ms_p50", why),
        "denominator": First(
            "compiled", part.narrowed(runtime="onnxruntime-c"), "latency_ms_p50", why
        ),
    }


def _rss(fields: Mapping[str, Any]) -> str:
    python, compiled_ = fields["python"], fields["compiled"]
    return (
        f"Python front {python.peak_rss_bytes / 2**20:.0f} MiB vs compiled front "
        f"{compiled_.peak_rss_bytes / 2**20:.0f} MiB ({fields['value']:.2f}x)"
    )


_SERVED = rows("compiled_serving", model="mlp")
_SERVED_WHY = ErrorOf(
    rows("compiled_serving"),
    if_all_ok="not run in the ci profile: benchmarks/compiled_vs_python.py (its JSON as the "
    "notebook's compiled_measurements), or the quick/full profiles",
)


def _fronts(column: str, compiled_first: bool = False) -> dict[str, First]:
    """1.1 serving: the Python front's row and the compiled front's, `column` judged."""
    python = First("python", _SERVED.narrowed(front="python"), column, _SERVED_WHY, True)
    compiled_ = First("compiled", _SERVED.narrowed(front="compiled"), column, _SERVED_WHY, True)
    first, second = (compiled_, python) if compiled_first else (python, compiled_)
    return {"numerator": first, "denominator": second}


_COMPILED_PARTS: tuple[Claim, ...] = (
    Claim(
        section="1.1",
        wording="tabular mlp, batch 1, per call: onnxruntime's Python API vs a C++ caller on "
        "its C API",
        claimed="5-10x",
        rule=RatioRange(5, 10),
        **_per_call("mlp", 1, ErrorOf(rows("compiled", model="mlp"))),
        measured=_python_adds,
    ),
    Claim(
        section="1.1",
        wording=f"tabular mlp, batch {COMPILED_BIG_BATCH}, per call: onnxruntime's Python API "
        "vs a C++ caller on its C API",
        claimed="5-10x",
        rule=RatioRange(5, 10),
        **_per_call("mlp", COMPILED_BIG_BATCH, ErrorOf(rows("compiled", model="mlp"))),
        measured=_python_adds,
    ),
    Claim(
        section="1.1",
        wording="resnet50, batch 1, per call: onnxruntime's Python API vs a C++ caller on its "
        "C API",
        claimed="5-10x",
        rule=RatioRange(5, 10),
        **_per_call(
            "resnet50",
            1,
            ErrorOf(
                rows("compiled", model="resnet50"),
                if_all_ok="not measured (the ci profile does not run it; quick and full do)",
            ),
        ),
        measured=_python_adds,
    ),
    Claim(
        section="1.1",
        wording="tabular mlp served (KServe v2 HTTP, one request in flight): Python front vs "
        "compiled front, p50 latency",
        claimed="5-10x",
        rule=RatioRange(5, 10),
        **_fronts("p50_ms"),
        measured="{python.p50_ms:.3f} ms vs {compiled.p50_ms:.3f} ms ({value:.2f}x)",
    ),
    Claim(
        section="1.1",
        wording="tabular mlp served: max QPS with p99 under the bound, compiled front vs "
        "Python front (summary: throughput)",
        claimed="3-5x",
        rule=RatioRange(3, 5),
        **_fronts("peak_qps", compiled_first=True),
        measured="{python.peak_qps:.0f} -> {compiled.peak_qps:.0f} QPS under p99 "
        "{compiled.bound_ms:g} ms ({value:.2f}x)",
    ),
    Claim(
        section="1.1",
        wording="tabular mlp served: server peak resident memory, Python front vs compiled "
        "front (summary: memory)",
        claimed="2-3x less",
        rule=RatioRange(2, 3),
        **_fronts("peak_rss_bytes"),
        measured=_rss,
    ),
)

_FRONTS = rows("serving_overhead", path="http")
_CNN_CPU = rows("cnn", device="cpu", batch_size=CNN_BATCH)
_CNN_GPU = rows("cnn", device_prefix="cuda", batch_size=CNN_BATCH)
_GPU_ERROR = ErrorOf(_CNN_GPU)
_CNN_CPU_1 = rows("cnn", device="cpu", batch_size=1)
_KERAS_ERROR = ErrorOf(rows("keras", status="failed"), if_all_ok="-")
_SAVED = rows("keras", format="savedmodel", batch_size=1)
_LITE = rows("keras", format="tflite", batch_size=1)
_FEWER = "fewer than two batch sizes measured"
_SMALL_1 = rows("small", batch_size=1)


def _vs_fp32(precision: str | Setting, column: str) -> dict[str, First]:
    """9.1's pair: FP32 (from the cnn sweep) over `precision`; either missing is blamed on
    the `precision` rows."""
    why = ErrorOf(rows("cnn_precisions", precision=precision))
    return {
        "numerator": First("fp32", _CNN_CPU_1, column, why),
        "denominator": First(
            "reduced",
            rows("cnn_precisions", precision=precision, batch_size=1, format="onnx"),
            column,
            why,
        ),
    }


def _batching(role: str) -> dict[str, Selector]:
    """9.2's pair on the CPU with ONNX: the best throughput over batch 1's."""
    cpu_onnx = rows(role, device="cpu", format="onnx")
    return {
        "numerator": Best("best", cpu_onnx, "throughput_items_per_s", at_least=2, why=_FEWER),
        "denominator": First(
            "one", cpu_onnx.narrowed(batch_size=1), "throughput_items_per_s", _FEWER
        ),
    }


_BATCHING_TEXT = (
    "{one.throughput_items_per_s:.4g} -> {best.throughput_items_per_s:.4g} items/s "
    "at batch {best.batch} ({value:.1f}x)"
)


def _serving(task: str, model: str) -> Claim:
    """9.2 under load: the max server QPS with p99 under the bound, with the dynamic
    batcher over without it (peak searches of LoadGen runs; workbench.study.scenarios)."""
    part = rows("serving", task=task, model=model)
    why = ErrorOf(
        part,
        if_all_ok=f"no peak: no probe kept p99 under {LATENCY_BOUND_MS:g} ms with the offered "
        "load met (or the serving runs were not made)",
    )
    return Claim(
        section="9.2",
        wording=f"{model} (onnx, CPU), server scenario: max QPS with p99 under "
        f"{LATENCY_BOUND_MS:g} ms, dynamic batcher vs none",
        claimed="3-5x",
        rule=RatioRange(3, 5),
        numerator=First(
            "batched", part.narrowed(batcher_label="dynamic"), "peak_qps", why, missing_if_nan=True
        ),
        denominator=First(
            "single", part.narrowed(batcher_label="none"), "peak_qps", why, missing_if_nan=True
        ),
        measured="{single.peak_qps:.3g} -> {batched.peak_qps:.3g} QPS ({value:.2f}x; "
        "batcher max 8, 5 ms)",
    )


def _serving_claims() -> tuple[Claim, ...]:
    return tuple(_serving(task, model) for task, model in SERVING_MODELS)


CLAIM_PARTS: tuple[Claim, ...] = (
    # 2.3: ResNet-50 at the claim's batch, CPU and GPU.
    Claim(
        section="2.3",
        wording="{s.cnn_model} batch {s.cnn_batch} on the CPU",
        claimed="~500 ms/batch (64 img/s)",
        rule=Absolute(500, "ms/batch"),
        numerator=First("cpu", _CNN_CPU, "latency_ms_p50"),
        measured="{cpu.latency_ms_p50:.0f} ms/batch ({cpu.throughput_items_per_s:.1f} img/s), "
        "{cpu.runtime} {cpu.threads} threads",
    ),
    Claim(
        section="2.3",
        wording="{s.cnn_model} batch {s.cnn_batch} on the GPU ({gpu.device})",
        unmeasured_wording="{s.cnn_model} batch {s.cnn_batch} on the GPU",
        claimed="~50 ms/batch (640 img/s)",
        rule=Absolute(50, "ms/batch"),
        numerator=First("gpu", _CNN_GPU, "latency_ms_p50", _GPU_ERROR),
        measured="{gpu.latency_ms_p50:.1f} ms/batch ({gpu.throughput_items_per_s:.0f} img/s)",
    ),
    Claim(
        section="2.3",
        wording="GPU vs CPU throughput",
        claimed="~10x",
        rule=RatioRange(10),
        numerator=First("gpu", _CNN_GPU, "throughput_items_per_s", _GPU_ERROR),
        denominator=First("cpu", _CNN_CPU, "throughput_items_per_s"),
        measured="{value:.1f}x",
    ),
    # 3.2: the same Keras model as SavedModel (TensorFlow) and TFLite (LiteRT).
    Claim(
        section="3.2",
        wording="Keras {s.keras_model} ({s.keras_task}): size",
        claimed="4x smaller",
        rule=RatioRange(4),
        numerator=First("saved", _SAVED, "model_size_bytes", _KERAS_ERROR),
        denominator=First("lite", _LITE, "model_size_bytes", _KERAS_ERROR),
        measured="SavedModel {saved.size_mb:.3g} MB vs TFLite {lite.size_mb:.3g} MB = {value:.2f}x",
    ),
    Claim(
        section="3.2",
        wording="Keras {s.keras_model} ({s.keras_task}): latency at batch 1",
        unmeasured_wording="Keras {s.keras_model} ({s.keras_task}): latency",
        claimed="4x faster",
        rule=RatioRange(4),
        numerator=First("saved", _SAVED, "latency_ms_p50", _KERAS_ERROR),
        denominator=First("lite", _LITE, "latency_ms_p50", _KERAS_ERROR),
        measured="SavedModel {saved.latency_ms_p50:.3g} ms vs TFLite "
        "{lite.latency_ms_p50:.3g} ms = {value:.2f}x",
    ),
    # 9.1: INT8 and FP16 against FP32, batch 1, CPU.
    # Judged with the fastest INT8 artifact that passed parity, of any runtime (ONNX
    # Runtime's QDQ or OpenVINO's NNCF INT8), named in the text.
    Claim(
        section="9.1",
        wording="{s.cnn_model} {s.int8} vs fp32, batch 1, CPU: latency",
        int8_method="int8-static",
        claimed="50 -> 15 ms (3.3x)",
        rule=RatioRange(50 / 15),
        numerator=First(
            "fp32", _CNN_CPU_1, "latency_ms_p50", ErrorOf(rows("cnn_precisions", precision=INT8))
        ),
        denominator=Fastest(
            "reduced",
            rows("cnn_precisions", precision=INT8, batch_size=1),
            ("onnx", "openvino"),
            "latency_ms_p50",
            ErrorOf(rows("cnn_precisions", precision=INT8)),
            passing=True,
        ),
        measured="{fp32.latency_ms_p50:.1f} -> {reduced.latency_ms_p50:.1f} ms ({value:.2f}x; "
        "{reduced.format} on {reduced.runtime})",
    ),
    Claim(
        section="9.1",
        wording="{s.cnn_model} {s.int8} vs fp32, batch 1, CPU: size",
        int8_method="int8-static",
        claimed="98 -> 25 MB (4x)",
        rule=RatioRange(98 / 25),
        **_vs_fp32(INT8, "model_size_bytes"),
        measured="{fp32.size_mb:.1f} -> {reduced.size_mb:.1f} MB ({value:.2f}x)",
    ),
    Claim(
        section="9.1",
        wording="{s.cnn_model} fp16 vs fp32, batch 1, CPU: latency",
        claimed="2x faster",
        rule=RatioRange(2),
        **_vs_fp32("fp16", "latency_ms_p50"),
        measured="{fp32.latency_ms_p50:.1f} -> {reduced.latency_ms_p50:.1f} ms ({value:.2f}x)",
    ),
    Claim(
        section="9.1",
        wording="{s.cnn_model} fp16 vs fp32, batch 1, CPU: size",
        claimed="2x smaller",
        rule=RatioRange(2),
        **_vs_fp32("fp16", "model_size_bytes"),
        measured="{fp32.size_mb:.1f} -> {reduced.size_mb:.1f} MB ({value:.2f}x)",
    ),
    Claim(
        section="9.1",
        wording="{s.cnn_model} {s.int8} accuracy",
        claimed="-0.3 points",
        rule=NotMeasurable(
            "no trained ResNet-50 weights or labelled ImageNet images on this host (weights "
            "are random); the agreement with FP32 is shown instead"
        ),
        numerator=First(
            "int8",
            rows("cnn_precisions", precision=INT8, batch_size=1),
            "parity_metric_value",
            missing_if_nan=True,
        ),
        measured="top-1 agreement of {s.int8} with FP32: {value:.3f}",
        unmeasured="no INT8 parity result",
    ),
    # 9.2: the best batch's throughput over batch 1's, on ResNet-50 and the tabular MLP.
    Claim(
        section="9.2",
        wording="{s.cnn_model} (onnx, CPU): best batch vs batch 1",
        unmeasured_wording="{s.cnn_model} (onnx, CPU)",
        claimed="3-5x",
        rule=RatioRange(3, 5),
        **_batching("cnn"),
        measured=_BATCHING_TEXT,
    ),
    Claim(
        section="9.2",
        wording="tabular mlp (onnx, CPU): best batch vs batch 1",
        unmeasured_wording="tabular mlp (onnx, CPU)",
        claimed="3-5x",
        rule=RatioRange(3, 5),
        **_batching("small"),
        measured=_BATCHING_TEXT,
    ),
    # 9.2 under load: LoadGen's server scenario, with and without the dynamic batcher.
    *_serving_claims(),
    # 1.1: Python (torch eager) over the fastest compiled graph, batch 1.
    Claim(
        section="1.1",
        wording="tabular mlp, batch 1: Python (torch eager) vs compiled graphs",
        unmeasured_wording="tabular mlp, batch 1",
        claimed="5-10x",
        rule=RatioRange(5, 10),
        numerator=First(
            "eager", _SMALL_1.narrowed(format="eager"), "latency_ms_p50", ErrorOf(_SMALL_1)
        ),
        denominator=Fastest(
            "compiled", _SMALL_1, ("onnx", "torchscript"), "latency_ms_p50", ErrorOf(_SMALL_1)
        ),
        measured=_python_vs_compiled,
    ),
    # 1.1 against compiled callers and servers on ONNX Runtime's C API (issue 24).
    *_COMPILED_PARTS,
    # 1.1 in serving: what the Python server fronts add per request (workbench serve).
    Claim(
        section="1.1",
        wording="Python serving fronts (FastAPI/uvicorn HTTP, grpcio gRPC), null model: "
        "added per request over in-process",
        claimed="5-10x",
        rule=NotMeasurable(
            "shown, not judged: what each Python front adds over calling the server "
            "in-process; the compiled front is judged against the Python one above"
        ),
        numerator=First("http", _FRONTS, "added_p50_ms"),
        measured=_fronts_added,
        unmeasured="not run in the ci profile: benchmarks/serving_overhead.py or quick/full",
    ),
)


def judge(
    frames: dict[str, pd.DataFrame],
    profile: str,
    ratio_tolerance: float = 0.25,
    absolute_tolerance: float = 0.5,
) -> pd.DataFrame:
    """One verdict per claim part of CLAIM_PARTS, in order, with the measured numbers
    and the reason."""
    s = SETTINGS[study_sweeps.check_profile(profile)]
    out: list[dict[str, str]] = []
    for claim in CLAIM_PARTS:
        fields, missing = claim.pick(frames, s)
        if missing is None:
            fields["value"] = claim.value(fields)
            verdict, why = claim.rule.verdict(fields["value"], ratio_tolerance, absolute_tolerance)
            wording, measured = claim.wording, claim.describe(fields)
            if claim.int8_method and s.int8 != claim.int8_method and verdict != NOT_MEASURABLE:
                verdict = NOT_IN_PROFILE
                why = (
                    f"the {profile} profile measured {s.int8}, not the claim's "
                    f"{claim.int8_method}: the numbers are shown, not judged (the full "
                    f"profile measures {claim.int8_method})"
                )
        else:
            verdict, why = claim.rule.unmeasured(missing)
            wording, measured = claim.unmeasured_wording or claim.wording, claim.unmeasured
        out.append(
            {
                "section": claim.section,
                "claim": wording.format(**fields),
                "claimed": claim.claimed,
                "measured": measured,
                "verdict": verdict,
                "why": why,
            }
        )
    return pd.DataFrame(out)


def counts(verdicts: pd.DataFrame) -> dict[str, int]:
    """How many parts got each verdict (the notebook's headline)."""
    return {
        v: int((verdicts["verdict"] == v).sum())
        for v in (CONFIRMED, REFUTED, NOT_MEASURABLE, NOT_IN_PROFILE)
    }
