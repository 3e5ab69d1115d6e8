"""End to end on real reviews (issue 10): tokenize + MiniLM classifier (FP32 ONNX, CPU) at
batch 8 under three padding policies -- longest in batch, fixed 128, length buckets.

Prints a table and PASS/FAIL for the figure "tokenization takes under 10 % of the total"
(for the fastest policy), names the winning policy and by how much, and writes every
figure to --out. The FP32 ONNX artifact is exported first if the workspace lacks it.

    .venv/bin/python benchmarks/nlp_padding.py                # 60 batches per policy
    .venv/bin/python benchmarks/nlp_padding.py --quick        # 4 batches: checks it runs
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm_classifier")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="4 batches, to check it runs")
    parser.add_argument("--out", default=".workbench/benchmarks/nlp_padding.json")
    args = parser.parse_args(argv)

    from exporters.base import ArtifactRequest, export
    from workbench.nlp.data import reviews
    from workbench.nlp.padding import compare_padding, onnx_runner

    manifest = export(ArtifactRequest("text_classification", args.model, "torch", "onnx"))
    if manifest.get("status") != "ok":
        print(f"export failed: {manifest.get('error')}", file=sys.stderr)
        return 1
    batches = 4 if args.quick else args.batches
    timings = compare_padding(
        onnx_runner(manifest["path"], args.threads),
        reviews()[1].texts,
        batch_size=args.batch,
        max_length=args.max_length,
        max_batches=batches,
        max_seconds=120.0,
    )
    rows = [t.as_row() for t in timings]
    print(
        f"{'policy':<11} {'tokenize ms':>11} {'model ms':>9} {'total ms':>9} {'pad %':>6} "
        f"{'tok share':>9} {'calls':>6}"
    )
    for r in rows:
        print(
            f"{r['policy']:<11} {r['tokenize_ms_p50']:>11.2f} {r['model_ms_p50']:>9.2f} "
            f"{r['total_ms_p50']:>9.2f} {100 * r['padding_fraction']:>6.1f} "
            f"{100 * r['tokenize_share']:>8.1f}% {r['model_calls']:>6}"
        )
    best = min(rows, key=lambda r: r["total_ms_p50"])
    worst = max(rows, key=lambda r: r["total_ms_p50"])
    ok = best["tokenize_share"] < 0.10
    print(
        f"fastest policy: {best['policy']} ({worst['total_ms_p50'] / best['total_ms_p50']:.2f}x "
        f"the slowest, {worst['policy']}); tokenization {best['tokenize_share']:.1%} of its "
        f"total: {'PASS' if ok else 'FAIL'} (target < 10 %)"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "rows": rows,
                "fastest": best["policy"],
                "pass_tokenize_share": ok,
                "threads": args.threads,
                "batch": args.batch,
                "load_average": os.getloadavg(),
                "artifact": manifest["path"],
            },
            indent=2,
        )
    )
    print(f"figures written to {out}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
