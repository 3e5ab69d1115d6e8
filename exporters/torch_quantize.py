"""PyTorch dynamic INT8 (`torch.ao.quantization.quantize_dynamic`) of Linear and LSTM
layers: the eager-mode baseline, saved as traced TorchScript with the
`<file>.signature.json` sidecar. Weights are int8, activations are quantized on the fly
per call; the manifest counts quantized modules out of all Linear/LSTM modules.

`torch.ao.quantization` is deprecated in favour of torchao; it still works here and is
the reference the issue asks for."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from exporters.base import ExportContext, Pass
from exporters.torch_script import write_signature


class TorchDynamicInt8(Pass):
    name = "torch_quantize_dynamic"
    source_frameworks = ("torch",)
    format = "torchscript"
    precisions = ("int8-dynamic",)
    filename = "model.pt"

    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        # lazy: torch
        import torch
        from torch import nn
        from torch.ao.quantization import quantize_dynamic

        source = ctx.source_model.eval()
        targets = (nn.Linear, nn.LSTM)
        quantizable = sum(1 for m in source.modules() if type(m) in targets)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            quantized = quantize_dynamic(source, set(targets), dtype=torch.qint8, inplace=False)
        count = sum(
            1
            for m in quantized.modules()
            if type(m).__module__.startswith("torch.ao.nn.quantized.dynamic")
        )
        if count == 0:
            raise ValueError(
                f"quantize_dynamic quantized no module: the model has {quantizable} "
                "Linear/LSTM module(s) of the exact types it handles"
            )
        example = tuple(torch.from_numpy(v) for v in ctx.example_inputs(2).values())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated
            module = torch.jit.trace(quantized, example, check_trace=False)
            module = torch.jit.freeze(module.eval())
            torch.jit.save(module, str(out))
        write_signature(out, ctx.input_specs())
        return {
            "exporter": "torch.ao.quantization.quantize_dynamic + torch.jit.trace",
            "exporter_version": torch.__version__,
            "quantized_engine": torch.backends.quantized.engine,
            "quantized_modules": count,
            "quantizable_modules": quantizable,
        }
