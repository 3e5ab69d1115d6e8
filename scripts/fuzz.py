"""The long fuzzing run (`make fuzz`): at least 100,000 inputs through the option
parsers, the command line, input plans, format detection and every format's model
loader (ONNX Runtime, LiteRT, TorchScript, TensorFlow SavedModel; each in a child
process, as the CLI's benchmark worker runs them). Prints a table of inputs tried and
crashes found per target and writes it as JSON; exits 1 on any finding in an
in-process target (those must never fail) or any hang.

Native crashes of a runtime's loader on a mutated file are reported, not failed: the
CLI runs loaders in a worker process, so such a crash costs that file's row only
(tests/test_model_files.py checks that isolation).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.fuzz_targets import (  # noqa: E402
    build_seeds,
    fuzz_loader,
    hypothesis_targets,
    light_seeds,
    run_property,
)

IN_PROCESS = {
    "option parsers": 45_000,
    "command line": 15_000,
    "input plans": 15_000,
    "format detection": 20_000,
}
LOADERS = {"onnx": 6_000, "tflite": 3_000, "torchscript": 1_500, "savedmodel": 150}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every count")
    parser.add_argument("--out", default="reports/fuzz.json", help="JSON summary path")
    args = parser.parse_args()
    rows = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="wb-fuzz-") as tmp:
        root = Path(tmp)
        targets = hypothesis_targets(light_seeds(root / "light"), root)
        for name, count in IN_PROCESS.items():
            n = max(1, int(count * args.scale))
            t0 = time.perf_counter()
            strategy, prop = targets[name]
            try:
                tried, crashes, note = run_property(strategy, prop, n), 0, ""
            except Exception as exc:  # noqa: BLE001 - a counterexample: report it
                tried, crashes, note = n, 1, f"{type(exc).__name__}: {str(exc)[:200]}"
                failed = True
            rows.append(
                {"target": name, "inputs": tried, "crashes": crashes, "hangs": 0,
                 "seconds": round(time.perf_counter() - t0, 1), "note": note}
            )  # fmt: skip
            print(rows[-1], flush=True)
        seeds = build_seeds(root / "seeds", tuple(LOADERS))
        for fmt, count in LOADERS.items():
            n = max(1, int(count * args.scale))
            t0 = time.perf_counter()
            result = fuzz_loader(fmt, seeds[fmt], n, root / f"load-{fmt}")
            failed |= result["hangs"] > 0
            note = f"loaded and ran {result['ok']}, raised {result['error']}"
            if result["crash_kinds"]:
                note += f"; native crashes {result['crash_kinds']} (isolated in the worker)"
            rows.append(
                {"target": f"{fmt} loader", "inputs": n, "crashes": result["crashes"],
                 "hangs": result["hangs"], "seconds": round(time.perf_counter() - t0, 1),
                 "note": note}
            )  # fmt: skip
            print(rows[-1], flush=True)
    total = sum(r["inputs"] for r in rows)
    print(f"\n{'target':<22}{'inputs':>9}{'crashes':>9}{'hangs':>7}{'s':>8}  note")
    for r in rows:
        print(
            f"{r['target']:<22}{r['inputs']:>9}{r['crashes']:>9}{r['hangs']:>7}"
            f"{r['seconds']:>8}  {r['note']}"
        )
    print(f"{'total':<22}{total:>9}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"total_inputs": total, "targets": rows}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
