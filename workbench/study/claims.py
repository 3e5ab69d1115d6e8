"""The source guide's claims (DESIGN.md), re-measured on this host.

`measure(profile)` runs the workbench's own sweeps (ResNet-50 from the
image_classification task, the tabular MLP, a Keras model as SavedModel and
TFLite, the `null` runtime for the harness's own cost); `judge(frames)` turns
the rows into one verdict per claim part: `confirmed`, `refuted` or
`not measurable here`, with the numbers and the reason.

Rules, so a verdict is reproducible from the numbers shown:
- a ratio claim ("4x", "3-5x") is confirmed when the measured ratio lies in the
  claimed range widened by `ratio_tolerance` (default 25 %) on each side;
- an absolute hardware figure ("~500 ms/batch") is confirmed within
  `absolute_tolerance` (default 50 %): such numbers depend on the exact CPU/GPU;
- a claim that needs something this host lacks (a GPU, trained weights and
  labelled data) is `not measurable here`, saying what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workbench.study import sweeps
from workbench.harness.timing import StopRule
from workbench.sweep import TaskSweep

CLAIMS: dict[str, str] = {
    "2.3": "ResNet-50, batch 32: CPU ~500 ms/batch (64 img/s); GPU ~50 ms/batch (640 img/s); "
    "GPU ~10x CPU",
    "3.2": "TFLite vs TF SavedModel: 4x smaller, 4x faster",
    "9.1": "INT8 vs FP32 ResNet-50: 50 -> 15 ms (3.3x), 98 -> 25 MB (4x), accuracy -0.3 points; "
    "FP16 2x faster and 2x smaller",
    "9.2": "batching raises throughput 3-5x",
    "1.1": "compiled serving is 5-10x lower latency than Python (what Python adds per call)",
}

CONFIRMED, REFUTED, NOT_MEASURABLE = "confirmed", "refuted", "not measurable here"


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


def sweeps(profile: str, devices: list[str] | None = None) -> dict[str, TaskSweep]:
    """The sweeps behind the verdicts, by role."""
    s = SETTINGS[sweeps.check_profile(profile)]
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
            formats=["onnx"],
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
    from workbench.harness.runner import BenchConfig, run_config

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


def measure(profile: str, devices: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Run every sweep; rows by role (plus "null" for the harness overhead)."""
    frames = {
        role: sweeps.measure(sweep, note=f"seed_claims/{role}")
        for role, sweep in sweeps(profile, devices).items()
    }
    frames["null"] = harness_overhead(profile)
    return frames


# ------------------------------------------------------------------ verdicts


def _ratio_verdict(value: float | None, low: float, high: float, tol: float) -> tuple[str, str]:
    if value is None or not np.isfinite(value):
        return NOT_MEASURABLE, "no successful measurement"
    lo, hi = low * (1 - tol), high * (1 + tol)
    claimed = f"{low:.3g}x" if low == high else f"{low:.3g}-{high:.3g}x"
    if lo <= value <= hi:
        return CONFIRMED, f"{value:.2f}x is within {claimed} (+/-{tol:.0%})"
    side = "below" if value < lo else "above"
    return REFUTED, f"{value:.2f}x is {side} {claimed} (+/-{tol:.0%})"


def _abs_verdict(value: float | None, claimed: float, unit: str, tol: float) -> tuple[str, str]:
    if value is None or not np.isfinite(value):
        return NOT_MEASURABLE, "no successful measurement"
    if claimed * (1 - tol) <= value <= claimed * (1 + tol):
        return CONFIRMED, f"{value:.4g} {unit} is within {claimed:g} {unit} +/-{tol:.0%}"
    factor = value / claimed
    return REFUTED, (
        f"{value:.4g} {unit} is {factor:.2f}x the claimed {claimed:g} {unit} "
        f"(outside +/-{tol:.0%}; depends on the hardware)"
    )


def _pick(frame: pd.DataFrame, **where: Any) -> pd.Series | None:
    part = frame
    for key, value in where.items():
        if key == "device_prefix":
            part = part[part["device"].astype(str).str.startswith(value)]
        else:
            part = part[part[key] == value]
    ok = part[part["status"] == "ok"]
    return ok.iloc[0] if not ok.empty else None


def _reason(frame: pd.DataFrame, **where: Any) -> str:
    part = frame
    for key, value in where.items():
        if key == "device_prefix":
            part = part[part["device"].astype(str).str.startswith(value)]
        else:
            part = part[part[key] == value]
    errors = sorted(set(part["error"].dropna()))
    return errors[0] if errors else "not measured"


def _row(section: str, part: str, claimed: str, measured: str, verdict: str, why: str) -> dict:
    return {
        "section": section,
        "claim": part,
        "claimed": claimed,
        "measured": measured,
        "verdict": verdict,
        "why": why,
    }


def judge(
    frames: dict[str, pd.DataFrame],
    profile: str,
    ratio_tolerance: float = 0.25,
    absolute_tolerance: float = 0.5,
) -> pd.DataFrame:
    """One verdict per claim part, with the measured numbers and the reason."""
    s = SETTINGS[profile]
    out: list[dict[str, str]] = []
    cnn, prec, keras, small = (
        frames["cnn"],
        frames["cnn_precisions"],
        frames["keras"],
        frames["small"],
    )
    b = s.cnn_batch
    name = s.cnn_model

    # 2.3 ------------------------------------------------------------------------------
    cpu32 = _pick(cnn, device="cpu", batch_size=b)
    gpu32 = _pick(cnn, device_prefix="cuda", batch_size=b)
    cpu_text = (
        f"{cpu32['latency_ms_p50']:.0f} ms/batch ({cpu32['throughput_items_per_s']:.1f} img/s), "
        f"{cpu32['runtime']} {cpu32['threads']} threads"
        if cpu32 is not None
        else "-"
    )
    verdict, why = _abs_verdict(
        None if cpu32 is None else float(cpu32["latency_ms_p50"]),
        500,
        "ms/batch",
        absolute_tolerance,
    )
    out.append(
        _row(
            "2.3",
            f"{name} batch {b} on the CPU",
            "~500 ms/batch (64 img/s)",
            cpu_text,
            verdict,
            why,
        )
    )
    if gpu32 is None:
        reason = _reason(cnn, device_prefix="cuda", batch_size=b)
        for part, claimed in (
            (f"{name} batch {b} on the GPU", "~50 ms/batch (640 img/s)"),
            ("GPU vs CPU throughput", "~10x"),
        ):
            out.append(_row("2.3", part, claimed, "-", NOT_MEASURABLE, reason))
    else:
        verdict, why = _abs_verdict(
            float(gpu32["latency_ms_p50"]), 50, "ms/batch", absolute_tolerance
        )
        out.append(
            _row(
                "2.3",
                f"{name} batch {b} on the GPU ({gpu32['device']})",
                "~50 ms/batch (640 img/s)",
                f"{gpu32['latency_ms_p50']:.1f} ms/batch ({gpu32['throughput_items_per_s']:.0f} img/s)",
                verdict,
                why,
            )
        )
        ratio = (
            float(gpu32["throughput_items_per_s"] / cpu32["throughput_items_per_s"])
            if cpu32 is not None
            else None
        )
        verdict, why = _ratio_verdict(ratio, 10, 10, ratio_tolerance)
        out.append(
            _row(
                "2.3",
                "GPU vs CPU throughput",
                "~10x",
                "-" if ratio is None else f"{ratio:.1f}x",
                verdict,
                why,
            )
        )

    # 3.2 ------------------------------------------------------------------------------
    saved = _pick(keras, format="savedmodel", batch_size=1)
    lite = _pick(keras, format="tflite", batch_size=1)
    what = f"Keras {s.keras_model} ({s.keras_task})"
    if saved is None or lite is None:
        reason = _reason(keras, status="failed") if (keras["status"] != "ok").any() else "-"
        out.append(_row("3.2", f"{what}: size", "4x smaller", "-", NOT_MEASURABLE, reason))
        out.append(_row("3.2", f"{what}: latency", "4x faster", "-", NOT_MEASURABLE, reason))
    else:
        size_ratio = float(saved["model_size_bytes"] / lite["model_size_bytes"])
        verdict, why = _ratio_verdict(size_ratio, 4, 4, ratio_tolerance)
        out.append(
            _row(
                "3.2",
                f"{what}: size",
                "4x smaller",
                f"SavedModel {saved['model_size_bytes'] / 1e6:.3g} MB vs TFLite "
                f"{lite['model_size_bytes'] / 1e6:.3g} MB = {size_ratio:.2f}x",
                verdict,
                why,
            )
        )
        speed = float(saved["latency_ms_p50"] / lite["latency_ms_p50"])
        verdict, why = _ratio_verdict(speed, 4, 4, ratio_tolerance)
        out.append(
            _row(
                "3.2",
                f"{what}: latency at batch 1",
                "4x faster",
                f"SavedModel {saved['latency_ms_p50']:.3g} ms vs TFLite {lite['latency_ms_p50']:.3g} ms "
                f"= {speed:.2f}x",
                verdict,
                why,
            )
        )

    # 9.1 ------------------------------------------------------------------------------
    fp32 = _pick(cnn, device="cpu", batch_size=1)
    for precision, claimed_speed, claimed_size, text_speed, text_size in (
        (s.int8, 50 / 15, 98 / 25, "50 -> 15 ms (3.3x)", "98 -> 25 MB (4x)"),
        ("fp16", 2.0, 2.0, "2x faster", "2x smaller"),
    ):
        other = _pick(prec, precision=precision, batch_size=1)
        label = f"{name} {precision} vs fp32, batch 1, CPU"
        if fp32 is None or other is None:
            reason = _reason(prec, precision=precision)
            out.append(_row("9.1", f"{label}: latency", text_speed, "-", NOT_MEASURABLE, reason))
            out.append(_row("9.1", f"{label}: size", text_size, "-", NOT_MEASURABLE, reason))
            continue
        speed = float(fp32["latency_ms_p50"] / other["latency_ms_p50"])
        verdict, why = _ratio_verdict(speed, claimed_speed, claimed_speed, ratio_tolerance)
        out.append(
            _row(
                "9.1",
                f"{label}: latency",
                text_speed,
                f"{fp32['latency_ms_p50']:.1f} -> {other['latency_ms_p50']:.1f} ms ({speed:.2f}x)",
                verdict,
                why,
            )
        )
        size = float(fp32["model_size_bytes"] / other["model_size_bytes"])
        verdict, why = _ratio_verdict(size, claimed_size, claimed_size, ratio_tolerance)
        out.append(
            _row(
                "9.1",
                f"{label}: size",
                text_size,
                f"{fp32['model_size_bytes'] / 1e6:.1f} -> {other['model_size_bytes'] / 1e6:.1f} MB "
                f"({size:.2f}x)",
                verdict,
                why,
            )
        )
    int8 = _pick(prec, precision=s.int8, batch_size=1)
    agreement = (
        f"top-1 agreement of {s.int8} with FP32: {int8['parity_metric_value']:.3f}"
        if int8 is not None and pd.notna(int8["parity_metric_value"])
        else "no INT8 parity result"
    )
    out.append(
        _row(
            "9.1",
            f"{name} {s.int8} accuracy",
            "-0.3 points",
            agreement,
            NOT_MEASURABLE,
            "no trained ResNet-50 weights or labelled ImageNet images on this host (weights are "
            "random); the agreement with FP32 is shown instead",
        )
    )

    # 9.2 ------------------------------------------------------------------------------
    for frame, fmt, who in ((cnn, "onnx", name), (small, "onnx", "tabular mlp")):
        ok = frame[
            (frame["status"] == "ok") & (frame["device"] == "cpu") & (frame["format"] == fmt)
        ]
        one = ok[ok["batch_size"] == 1]
        if one.empty or len(ok) < 2:
            out.append(
                _row(
                    "9.2",
                    f"{who} ({fmt}, CPU)",
                    "3-5x",
                    "-",
                    NOT_MEASURABLE,
                    "fewer than two batch sizes measured",
                )
            )
            continue
        best = ok.loc[ok["throughput_items_per_s"].idxmax()]
        ratio = float(best["throughput_items_per_s"] / one["throughput_items_per_s"].iloc[0])
        verdict, why = _ratio_verdict(ratio, 3, 5, ratio_tolerance)
        out.append(
            _row(
                "9.2",
                f"{who} ({fmt}, CPU): best batch vs batch 1",
                "3-5x",
                f"{one['throughput_items_per_s'].iloc[0]:.4g} -> {best['throughput_items_per_s']:.4g} "
                f"items/s at batch {int(best['batch_size'])} ({ratio:.1f}x)",
                verdict,
                why,
            )
        )

    # 1.1 ------------------------------------------------------------------------------
    eager = _pick(small, format="eager", batch_size=1)
    compiled = [
        r
        for r in (_pick(small, format=f, batch_size=1) for f in ("onnx", "torchscript"))
        if r is not None
    ]
    null = frames.get("null")
    null_us = (
        float(null["latency_ms_p50"].iloc[0]) * 1000
        if null is not None and not null.empty and null["status"].iloc[0] == "ok"
        else None
    )
    if eager is None or not compiled:
        out.append(
            _row(
                "1.1",
                "tabular mlp, batch 1",
                "5-10x",
                "-",
                NOT_MEASURABLE,
                _reason(small, batch_size=1),
            )
        )
    else:
        fastest = min(compiled, key=lambda r: r["latency_ms_p50"])
        ratio = float(eager["latency_ms_p50"] / fastest["latency_ms_p50"])
        verdict, why = _ratio_verdict(ratio, 5, 10, ratio_tolerance)
        parts = ", ".join(f"{r['format']} {r['latency_ms_p50'] * 1000:.1f} us" for r in compiled)
        overhead = f"; the harness's own Python call costs {null_us:.2f} us" if null_us else ""
        out.append(
            _row(
                "1.1",
                "tabular mlp, batch 1: Python (torch eager) vs compiled graphs",
                "5-10x",
                f"eager {eager['latency_ms_p50'] * 1000:.1f} us vs {parts} ({ratio:.1f}x){overhead}",
                verdict,
                why,
            )
        )
    return pd.DataFrame(out)


def counts(verdicts: pd.DataFrame) -> dict[str, int]:
    return {v: int((verdicts["verdict"] == v).sum()) for v in (CONFIRMED, REFUTED, NOT_MEASURABLE)}
