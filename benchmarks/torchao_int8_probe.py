"""Does torchao's int8 dynamic-activation quantization with inductor pay on this CPU?
(issue 26, deliver item 3): the MiniLM classifier at batch 8 x 128 in PyTorch eager fp32,
torch.compile fp32, compile + bf16 autocast and torchao
`Int8DynamicActivationInt8WeightConfig` + compile, with inductor freezing on.

torchao's CPU int8 fusion patterns (dynamic int8 linear -> oneDNN `qlinear_pointwise`)
are registered only when `torchao.quantization.pt2e.quantizer.x86_inductor_quantizer`
is imported (pytorch/ao PR #4823, open); without it the compiled code calls
`aten._int_mm`. The script counts both in the generated code (`--no-fusion-import`
leaves the import out), checks quality on held-out reviews (`--quality N`, 0: skip),
and times the variants in alternating rounds (median of per-round medians).

Run:  .venv/bin/python benchmarks/torchao_int8_probe.py [--threads 2] [--rounds 7]
          [--quality 512] [--no-fusion-import]
      (each torch.compile takes about a minute on 2 cores)
"""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from workbench.registry import get_task  # noqa: E402

MODEL = "minilm_classifier"
FUSION_MODULE = "torchao.quantization.pt2e.quantizer.x86_inductor_quantizer"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quality", type=int, default=512, help="held-out reviews (0: skip)")
    parser.add_argument("--no-fusion-import", action="store_true")
    args = parser.parse_args()

    # lazy: torch
    import torch
    import torch._inductor.config as inductor_config
    import torchao
    from torch._inductor.utils import run_and_get_code
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    if not args.no_fusion_import:
        importlib.import_module(FUSION_MODULE)  # registers the oneDNN int8 fusion patterns
    torch.set_num_threads(args.threads)
    inductor_config.freezing = True
    print(f"torch {torch.__version__}, torchao {torchao.__version__}, threads {args.threads}, "
          f"load average {os.getloadavg()}")  # fmt: skip
    task = get_task("text_classification")
    source = task.build_torch(MODEL).eval()
    feed = task.bench_feeds(MODEL, 8, 128, 1)[0]
    names = list(feed)
    inputs = [torch.from_numpy(np.asarray(feed[k])) for k in names]

    class Autocast(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *a: Any) -> Any:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return self.inner(*a)

    quantized = copy.deepcopy(source)
    quantize_(quantized, Int8DynamicActivationInt8WeightConfig())
    variants = {
        "eager fp32": source,
        "compile fp32": torch.compile(copy.deepcopy(source), dynamic=False),
        "compile bf16 autocast": torch.compile(Autocast(copy.deepcopy(source)), dynamic=False),
        "torchao int8-dyn + compile": torch.compile(quantized, dynamic=False),
    }
    with torch.no_grad():
        for name, model in variants.items():
            began = time.time()
            _, code = run_and_get_code(model, *inputs) if "compile" in name else (None, [])
            if not code:
                model(*inputs)
            text = "\n".join(code)
            print(f"  {name}: first call {time.time() - began:.1f} s; generated code: "
                  f"qlinear_pointwise {text.count('qlinear_pointwise')}, "
                  f"_int_mm {text.count('_int_mm')}", flush=True)  # fmt: skip
    if args.quality:
        quality(task, variants, names, args.quality)
    per: dict[str, list[float]] = {name: [] for name in variants}
    with torch.no_grad():
        for _ in range(args.rounds):
            for name, model in variants.items():
                times = []
                for _ in range(5):
                    began = time.perf_counter()
                    model(*inputs)
                    times.append(time.perf_counter() - began)
                per[name].append(statistics.median(times) * 1e3)
    base = statistics.median(per["eager fp32"])
    for name, values in per.items():
        med = statistics.median(values)
        print(f"{name:28s} {med:8.1f} ms (min {min(values):.1f})  {base / med:.2f}x vs eager")
    print(f"load average after: {os.getloadavg()}")
    return 0


def quality(task: Any, variants: dict[str, Any], names: list[str], n: int) -> None:
    """Label agreement with eager fp32 and accuracy on `n` held-out reviews, batches of 8
    at 128 tokens (the compiled graphs' own shape: no recompilation)."""
    # lazy: torch
    import torch

    held, labels = task.held_out(MODEL, n - n % 8)

    def logits(model: Any) -> np.ndarray:
        outs = []
        with torch.no_grad():
            for i in range(0, len(labels), 8):
                out = model(*[torch.from_numpy(np.asarray(held[k][i : i + 8])) for k in names])
                out = out[0] if isinstance(out, (tuple, list)) else out
                outs.append(out.float().numpy())
        return np.concatenate(outs)

    ref = logits(variants["eager fp32"])
    for name, model in variants.items():
        out = logits(model)
        print(f"  {name}: agreement {np.mean(out.argmax(1) == ref.argmax(1)):.4f}, accuracy "
              f"{np.mean(out.argmax(1) == labels):.4f} (fp32 {np.mean(ref.argmax(1) == labels):.4f})"
              f", max |logit change| {np.abs(out - ref).max():.3f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
