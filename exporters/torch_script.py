"""PyTorch -> TorchScript (`torch.jit.trace`, or `torch.jit.script` where tracing would
freeze data-dependent control flow) and -> ExportedProgram (`torch.export`, .pt2).

Both write a `<file>.signature.json` sidecar with the input names, dtypes and
shapes, since neither file format carries a usable input signature."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from exporters.base import ExportContext, Pass
from workbench.options import Options, option
from workbench.runtimes.torch_runtime import write_signature_sidecar


def write_signature(out: Path, specs: list[Any]) -> None:
    """The input signature beside a TorchScript/pt2 file (TorchScript carries none)."""
    write_signature_sidecar(out, specs)


@dataclass(frozen=True)
class TorchScriptParams(Options):
    method: Literal["trace", "script"] = option(
        "trace", "torch.jit.trace (record one run) or torch.jit.script (compile the code)"
    )


class TorchScriptPass(Pass):
    name = "torch_script"
    source_frameworks = ("torch",)
    format = "torchscript"
    filename = "model.pt"
    Params = TorchScriptParams

    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        source_model, params = ctx.source_model, ctx.params
        # lazy: torch
        import torch

        example = tuple(torch.from_numpy(v) for v in ctx.example_inputs(2).values())
        if params.method == "script":
            module = torch.jit.script(source_model)
        elif params.method == "trace":
            module = torch.jit.trace(source_model, example, check_trace=True)
        else:
            raise ValueError(f"method must be 'trace' or 'script', got {params.method!r}")
        module = torch.jit.freeze(module.eval())
        torch.jit.save(module, str(out))
        write_signature(out, ctx.input_specs())
        return {"exporter": f"torch.jit.{params.method}", "exporter_version": torch.__version__}


class TorchExportPass(Pass):
    name = "torch_export"
    source_frameworks = ("torch",)
    format = "pt2"
    filename = "model.pt2"

    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        source_model = ctx.source_model
        # lazy: torch
        import torch

        specs = ctx.input_specs()
        example = tuple(torch.from_numpy(v) for v in ctx.example_inputs(2).values())
        dynamic = tuple(
            {i: torch.export.Dim.AUTO for i, d in enumerate(s.shape) if isinstance(d, str)}
            for s in specs
        )
        program = torch.export.export(source_model, example, dynamic_shapes=dynamic)
        torch.export.save(program, str(out))
        write_signature(out, specs)
        return {"exporter": "torch.export.export", "exporter_version": torch.__version__}
