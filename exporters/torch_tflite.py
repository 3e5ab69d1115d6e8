"""PyTorch -> TFLite through litert-torch (`litert_torch.convert`, which goes through
torch.export and the LiteRT MLIR converter; it does not import TensorFlow).

A dynamic batch axis is tried first. litert-torch 0.10 rejects it for plain Linear
layers here (an AssertionError on a tensor of size -2**63), so with
`dynamic_batch="auto"` the pass falls back to a fixed batch of `static_batch`; the
LiteRT interpreter resizes such a file's inputs at load, which works for models
without batch-dependent reshapes (the parity check at batch 256 proves it each time).
A dynamic file is kept only if LiteRT (XNNPACK) runs it at batch 1 and 3: for the
detector, litert-torch emits a dynamic signature that XNNPACK then fails to reshape.
The manifest records which one produced the file and why. When every attempt fails
the pass raises with litert-torch's own messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from exporters.base import ExportContext, Pass
from workbench.deps import require
from workbench.devices import parse_device
from workbench.errors import UserError
from workbench.options import Options, option
from workbench.registry import get_runtime
from workbench.runtimes.base import RuntimeOptions
from workbench.runtimes.litert_runtime import litert_missing


@dataclass(frozen=True)
class TorchTFLiteParams(Options):
    dynamic_batch: bool | Literal["auto"] = option(
        "auto",
        "true: a dynamic batch axis, false: a file fixed at static_batch, "
        "auto: dynamic when litert-torch and LiteRT manage it, else static",
    )
    static_batch: int = option(
        1, "the batch a static file is fixed at (LiteRT resizes its inputs at load)"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.static_batch < 1:
            raise UserError(
                f"pass 'torch_tflite': static_batch must be a positive integer, got "
                f"{self.static_batch!r}"
            )


class TorchTFLite(Pass):
    name = "torch_tflite"
    source_frameworks = ("torch",)
    format = "tflite"
    filename = "model.tflite"
    Params = TorchTFLiteParams

    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        require(
            "litert_torch",
            f"litert-torch is not installed: pass {self.name!r} converts with litert-torch "
            "(pip install litert-torch)",
        )
        missing = litert_missing()
        if missing:
            raise ModuleNotFoundError(
                f"{missing}: pass {self.name!r} checks its file in the LiteRT interpreter "
                "(pip install ai-edge-litert)",
                name="ai_edge_litert",
            )
        # The worker has already imported torch to build the source model, so torch (and
        # torch.export) load before anything litert-torch brings in.
        # lazy: litert_torch, torch
        import litert_torch
        import torch

        mode, static_batch = ctx.params.dynamic_batch, ctx.params.static_batch
        specs = ctx.input_specs()
        attempts = {"auto": (True, False), True: (True,), False: (False,)}[mode]
        errors: list[str] = []
        for dynamic in attempts:
            batch = 2 if dynamic else int(static_batch)
            example = tuple(torch.from_numpy(v) for v in ctx.example_inputs(batch).values())
            kwargs: dict[str, Any] = {}
            if dynamic:
                kwargs["dynamic_shapes"] = tuple(
                    {i: torch.export.Dim.AUTO for i, d in enumerate(s.shape) if isinstance(d, str)}
                    for s in specs
                )
            try:
                edge = litert_torch.convert(ctx.source_model.eval(), example, **kwargs)
            except Exception as exc:  # noqa: BLE001 - try the next attempt, keep the message
                text = str(exc).split("Original traceback")[0]  # torch.fx appends one
                first = " ".join(text.split())[:300]
                errors.append(
                    f"{'dynamic' if dynamic else f'static batch {batch}'}: "
                    f"{type(exc).__name__}: {first}"
                )
                continue
            edge.export(str(out))
            problem = _litert_problem(out, ctx) if dynamic else None
            if problem:  # converted, but the interpreter cannot run other batch sizes
                errors.append(f"dynamic: converted, but {problem}")
                out.unlink()
                continue
            return {
                "exporter": "litert_torch.convert",
                "exporter_version": litert_torch.__version__,
                "dynamic_batch": dynamic,
                "static_batch": None if dynamic else batch,
                "fallback_reason": "; ".join(errors) or None,
            }
        raise RuntimeError("litert_torch.convert failed: " + " | ".join(errors))


def _litert_problem(path: Path, ctx: ExportContext) -> str | None:
    """Why LiteRT (with XNNPACK, as benchmarks run it) cannot run a dynamic-batch file at
    batch 1 and 3, or None. litert-torch can emit a file whose batch axis is dynamic in the
    signature yet that XNNPACK fails to reshape at load or invoke."""
    try:
        loaded = get_runtime("litert").load(path, RuntimeOptions(parse_device("cpu")))
        try:
            for batch in (1, 3):
                loaded.run(loaded.prepare(ctx.example_inputs(batch)))
        finally:
            loaded.close()
    except Exception as exc:  # noqa: BLE001 - the reason goes into the manifest
        return f"LiteRT cannot run it at batch 1 and 3: {' '.join(str(exc).split())[:200]}"
    return None
