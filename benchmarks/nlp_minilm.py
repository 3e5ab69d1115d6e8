"""MiniLM (all-MiniLM-L6-v2 encoder, no head) on ONNX Runtime: what ORT's transformer
optimizer and INT8 buy at batch 8 x 128 tokens on 2 threads, and what they cost in
embedding quality (issue 10's "figures to reach": the best artifact whose embeddings keep
a mean cosine >= 0.99 with FP32's is >= 2.5x the plain FP32 export).

Artifacts, each made by the workbench's own export passes (exporters.*) from the
package's weights, in a work directory:
  onnx/fp32                          plain export (torch_onnx, TorchScript-based exporter)
  onnx-fused/fp32                    + ORT transformer optimizer (onnx_transformer_optimize)
  onnx-fused/int8-dynamic            + dynamic INT8, per-tensor and per-channel weights
  onnx/int8-dynamic                  dynamic INT8 of the plain export, per-tensor / per-channel
  onnx/int8-static                   static INT8 (QDQ), no exclusions
  onnx/int8-static  exclusions       static INT8 with only MatMul quantized
  onnx-fused/int8-static exclusions  static INT8 of the fused graph, MatMul only
Per artifact: latency p50/p99 (workbench.harness.timing.time_calls on the workbench's
ONNX Runtime runtime, intra-op threads --threads), speedup of p50 vs plain FP32, and
quality on --sentences real reviews (women's clothing reviews, `Review Text`) against
the plain FP32 export: mean and min cosine of the sentence embeddings (mean pooling, as
the model is trained for) and mean cosine of the token embeddings. A step that fails
gives a row with status "failed" and the reason; the others still run.

Run:  .venv/bin/python benchmarks/nlp_minilm.py [--quick] [--json PATH] [--wait-quiet S]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(1, str(REPO))

from harness_overhead import (  # noqa: E402
    HostLoad,
    add_wait_quiet_argument,
    cpu_model,
    loadavg,
    wait_quiet,
    write_result,
)

from workbench.harness.stats import summarize  # noqa: E402
from workbench.harness.timing import StopRule, time_calls  # noqa: E402

GOAL_SPEEDUP = 2.5
# An artifact competes for "best" only when its sentence embeddings stay this close to the
# plain FP32 export's (mean cosine): static INT8 without exclusions is fast and useless.
QUALITY_FLOOR = 0.99
# Static INT8 "with exclusions": quantize only the MatMuls; softmax, LayerNorm, GELU, the
# residual adds and the fused attention stay in float.
MATMUL_ONLY = "MatMul"


@dataclass
class Variant:
    """One artifact: its name (format/precision and how), the pass that makes it, the
    pass's parameters and the variant whose artifact it transforms."""

    name: str
    pass_name: str
    params: dict[str, Any] = field(default_factory=dict)
    upstream: str | None = None


VARIANTS = [
    Variant("onnx/fp32", "torch_onnx", {"dynamo": False}),
    Variant("onnx-fused/fp32", "onnx_transformer_optimize", {}, "onnx/fp32"),
    Variant("onnx-fused/int8-dynamic per-tensor", "onnx_fused_int8_dynamic", {}, "onnx-fused/fp32"),
    Variant(
        "onnx-fused/int8-dynamic per-channel",
        "onnx_fused_int8_dynamic",
        {"per_channel": True},
        "onnx-fused/fp32",
    ),
    Variant("onnx/int8-dynamic per-tensor", "onnx_int8_dynamic", {}, "onnx/fp32"),
    Variant(
        "onnx/int8-dynamic per-channel", "onnx_int8_dynamic", {"per_channel": True}, "onnx/fp32"
    ),
    Variant("onnx/int8-static", "onnx_int8_static", {}, "onnx/fp32"),
    Variant(
        "onnx/int8-static MatMul only",
        "onnx_int8_static",
        {"op_types_to_quantize": MATMUL_ONLY},
        "onnx/fp32",
    ),
    Variant(
        "onnx-fused/int8-static MatMul only",
        "onnx_fused_int8_static",
        {"op_types_to_quantize": MATMUL_ONLY},
        "onnx-fused/fp32",
    ),
]


def export_variant(
    variant: Variant,
    paths: dict[str, Path],
    workdir: Path,
    source: Any,
    task: Any,
    calibration: int,
) -> tuple[Path, dict[str, Any]]:
    """Make `variant`'s artifact with its pass; returns its path and the pass's manifest
    extras."""
    from exporters.base import ExportContext
    from workbench.registry import PASSES

    pass_ = PASSES.create(variant.pass_name)
    params = dict(variant.params)
    if "calibration_size" in {f for f in pass_.Params.__dataclass_fields__}:
        params.setdefault("calibration_size", calibration)
    upstream = None
    if variant.upstream is not None:
        if variant.upstream not in paths:
            raise RuntimeError(f"the artifact it transforms ({variant.upstream}) failed")
        upstream = paths[variant.upstream]
    ctx = ExportContext(
        task,
        "all-MiniLM-L6-v2",
        "torch",
        pass_.precisions[0],
        pass_.check_params(params),
        source,
        upstream,
    )
    out = workdir / variant.name.replace("/", "_").replace(" ", "_") / pass_.filename
    out.parent.mkdir(parents=True, exist_ok=True)
    extras = pass_.export(ctx, out)
    return out, extras


def load(path: Path, fmt: str, threads: int) -> Any:
    from workbench.devices import parse_device
    from workbench.registry import get_runtime
    from workbench.runtimes.base import RuntimeOptions

    return get_runtime("onnxruntime").load(
        path, RuntimeOptions(parse_device("cpu"), threads=threads, format=fmt)
    )


def run_all(loaded: Any, batches: list[dict[str, np.ndarray]]) -> np.ndarray:
    outputs = [loaded.to_numpy(loaded.run(loaded.prepare(b)))[0] for b in batches]
    return np.concatenate(outputs)


def quality(reference: np.ndarray, candidate: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    from workbench.models.minilm_encoder import mean_cosine, sentence_embeddings, token_embeddings

    ref_s, cand_s = sentence_embeddings(reference, mask), sentence_embeddings(candidate, mask)
    cos = (ref_s * cand_s).sum(1) / (np.linalg.norm(ref_s, axis=1) * np.linalg.norm(cand_s, axis=1))
    return {
        "sentence_cosine_mean": float(cos.mean()),
        "sentence_cosine_min": float(cos.min()),
        "token_cosine_mean": mean_cosine(
            token_embeddings(reference, mask), token_embeddings(candidate, mask)
        ),
        "max_abs_error": float(np.abs(reference - candidate)[mask.astype(bool)].max()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sentences", type=int, default=256, help="quality set size")
    parser.add_argument("--calibration", type=int, default=64, help="static INT8 items")
    parser.add_argument("--min-time", type=float, default=5.0, help="seconds timed per artifact")
    parser.add_argument("--max-time", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks it runs")
    parser.add_argument("--only", default="", help="comma-separated variant names to keep")
    parser.add_argument("--workdir", default="", help="keep the artifacts here")
    parser.add_argument(
        "--json",
        "--output",
        dest="output",
        default=".workbench/benchmarks/nlp_minilm.json",
        help="JSON output",
    )
    add_wait_quiet_argument(parser, "each timed artifact")
    args = parser.parse_args()
    if args.quick:
        args.sentences, args.calibration = 16, 8
        args.min_time, args.max_time = 0.3, 5.0

    from workbench.models.minilm_encoder import (
        EncoderExportTask,
        keyword_encoder,
        load_bert,
        review_texts,
        tokenize,
    )

    wanted = [v.strip() for v in args.only.split(",") if v.strip()]
    variants = [v for v in VARIANTS if not wanted or v.name in wanted]
    texts = list(review_texts()[: max(args.sentences, args.batch)])
    quality_feed = tokenize(texts[: args.sentences], args.seq_len)
    quality_batches = [
        {k: v[i : i + args.batch] for k, v in quality_feed.items()}
        for i in range(0, args.sentences, args.batch)
    ]
    timing_pool = [
        {k: v[i : i + args.batch] for k, v in quality_feed.items()}
        for i in range(0, min(4 * args.batch, args.sentences - args.batch + 1), args.batch)
    ]
    rule = StopRule(
        warmup_iters=3 if args.quick else 10,
        warmup_time_s=0.1 if args.quick else 1.0,
        min_iters=5 if args.quick else 50,
        min_time_s=args.min_time,
        max_time_s=args.max_time,
    )
    source = keyword_encoder(load_bert("eager"))
    task = EncoderExportTask(args.seq_len)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="wb-minilm-"))
    paths: dict[str, Path] = {}
    rows: list[dict[str, Any]] = []
    reference: np.ndarray | None = None
    for variant in variants:
        row: dict[str, Any] = {"artifact": variant.name, "pass": variant.pass_name,
                               "params": variant.params}  # fmt: skip
        try:
            started = time.perf_counter()
            path, extras = export_variant(variant, paths, workdir, source, task, args.calibration)
            row["export_s"] = time.perf_counter() - started
            paths[variant.name] = path
            row["size_mb"] = path.stat().st_size / 1e6
            for key in ("fused_operators", "quantized_nodes", "excluded_nodes", "warnings"):
                if key in extras:
                    row[key] = extras[key]
            loaded = load(path, variant.name.split("/")[0], args.threads)
            try:
                outputs = run_all(loaded, quality_batches)
                if variant.name == "onnx/fp32":
                    reference = outputs
                if reference is not None:
                    row.update(quality(reference, outputs, quality_feed["attention_mask"]))
                waited = wait_quiet(args.wait_quiet)
                host = HostLoad()
                prepared = [loaded.prepare(b) for b in timing_pool]
                measured = time_calls(loaded.run_fn(), prepared, rule)
                summary = summarize(measured.latencies_ns, args.batch, measured.duration_s)
                row.update(
                    status="ok",
                    latency_ms_p50=summary.percentiles.get(50),
                    latency_ms_p99=summary.percentiles.get(99),
                    n_iterations=summary.count,
                    host_other_cores=host.other_cores(),
                    waited_quiet_s=waited,
                )
            finally:
                loaded.close()
        except Exception as exc:  # noqa: BLE001 - one failed artifact is a row, not the end
            row.update(status="failed", error=f"{type(exc).__name__}: {str(exc)[:500]}")
            row["traceback_tail"] = traceback.format_exc(limit=3).splitlines()[-3:]
        rows.append(row)
        print(_line(row), flush=True)

    base = next((r for r in rows if r["artifact"] == "onnx/fp32" and r["status"] == "ok"), None)
    for row in rows:
        if base and row["status"] == "ok" and row.get("latency_ms_p50"):
            row["speedup_p50_vs_onnx_fp32"] = base["latency_ms_p50"] / row["latency_ms_p50"]
    timed = [
        r
        for r in rows
        if r.get("speedup_p50_vs_onnx_fp32")
        and (r.get("sentence_cosine_mean") or 0.0) >= QUALITY_FLOOR
    ]
    best = max(timed, key=lambda r: r["speedup_p50_vs_onnx_fp32"], default=None)
    result = {
        "benchmark": "nlp_minilm",
        "batch": args.batch,
        "seq_len": args.seq_len,
        "threads": args.threads,
        "sentences": args.sentences,
        "calibration_items": args.calibration,
        "quick": args.quick,
        "rule": asdict(rule),
        "cpu": cpu_model(),
        "loadavg": loadavg(),
        "python": platform.python_version(),
        "rows": rows,
        "best": best and best["artifact"],
        "best_speedup": best and best["speedup_p50_vs_onnx_fp32"],
        "goal_speedup": GOAL_SPEEDUP,
        "quality_floor_sentence_cosine": QUALITY_FLOOR,
        "goal_met": bool(best and best["speedup_p50_vs_onnx_fp32"] >= GOAL_SPEEDUP),
        "workdir": str(workdir),
    }
    write_result(result, args.output)
    print(
        f"best with sentence cosine >= {QUALITY_FLOOR}: {result['best']} "
        f"{result['best_speedup']}x (goal {GOAL_SPEEDUP}x) -> {args.output}"
    )
    return 0 if base else 1


def _line(row: dict[str, Any]) -> str:
    if row["status"] != "ok":
        return f"{row['artifact']:40s} FAILED {row['error'][:160]}"
    cos = row.get("sentence_cosine_mean")
    return (
        f"{row['artifact']:40s} p50 {row['latency_ms_p50']:8.2f} ms  p99 "
        f"{row['latency_ms_p99'] or float('nan'):8.2f} ms  cos "
        + (f"{cos:.4f}" if cos is not None else "-")
    )


if __name__ == "__main__":
    sys.exit(main())
