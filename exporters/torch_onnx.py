"""PyTorch -> ONNX with torch.onnx.export: the dynamo exporter first, the TorchScript-based
exporter as the fallback; the manifest records which one wrote the file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from exporters.base import ExportContext, Pass
from workbench.options import Options, option


def _dynamic_axes(ctx: ExportContext) -> dict[str, dict[int, str]]:
    axes: dict[str, dict[int, str]] = {}
    for spec in ctx.input_specs():
        names = {i: d for i, d in enumerate(spec.shape) if isinstance(d, str)}
        if names:
            axes[spec.name] = names
    return axes


def output_axes(ctx: ExportContext) -> dict[str, dict[int, str]]:
    """The ONNX outputs' names with their named (dynamic) axes: the task's own where it
    describes its outputs (a user's model: the names in its spec, e.g. `logits`, with
    `batch` and `sequence` axes), else one `output` with a dynamic batch axis."""
    described = getattr(ctx.task, "output_specs", None)
    specs = described(ctx.model) if described is not None else None
    if not specs:
        return {"output": {0: "batch"}}
    return {s.name: {i: d for i, d in enumerate(s.shape) if isinstance(d, str)} for s in specs}


def name_symbolic_dims(path: Path, axes: dict[str, dict[int, str]]) -> None:
    """The dynamo exporter names each dynamic dimension by its own symbol (`s77`); give
    the symbols of the inputs' named axes those names (`batch`, `sequence`) wherever they
    appear in the graph's inputs, outputs and value infos, so rows, `serve`'s metadata and
    other tools read `batch x 3 x 224 x 224`."""
    # lazy: onnx
    import onnx

    model = onnx.load(str(path))
    rename: dict[str, str] = {}
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        for axis, name in axes.get(value.name, {}).items():
            if axis < len(dims) and dims[axis].dim_param and dims[axis].dim_param != name:
                rename.setdefault(dims[axis].dim_param, name)
    if not rename:
        return
    for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in rename:
                dim.dim_param = rename[dim.dim_param]
    onnx.save(model, str(path))


def check_onnx(path: Path) -> int:
    """Run onnx.checker and shape inference on the file; return its opset."""
    # lazy: onnx
    import onnx

    onnx.checker.check_model(str(path), full_check=False)
    proto = onnx.shape_inference.infer_shapes(onnx.load(str(path)), strict_mode=False)
    return next(op.version for op in proto.opset_import if op.domain in ("", "ai.onnx"))


@dataclass(frozen=True)
class TorchOnnxParams(Options):
    opset: int = option(18, "the ONNX opset the exported graph targets")
    dynamo: bool | Literal["auto"] = option(
        "auto",
        "true: the dynamo exporter (torch.export), false: TorchScript tracing, "
        "auto: dynamo, then tracing if dynamo fails",
    )


class TorchOnnx(Pass):
    name = "torch_onnx"
    source_frameworks = ("torch",)
    format = "onnx"
    filename = "model.onnx"
    Params = TorchOnnxParams

    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        source_model, params = ctx.source_model, ctx.params
        # lazy: torch
        import torch

        specs = ctx.input_specs()
        example = tuple(torch.from_numpy(v) for v in ctx.example_inputs(2).values())
        input_names = [s.name for s in specs]
        axes = _dynamic_axes(ctx)
        outputs = output_axes(ctx)
        attempts = {"auto": (True, False), True: (True,), False: (False,)}[params.dynamo]
        errors: list[str] = []
        for dynamo in attempts:
            try:
                kwargs: dict[str, Any] = {
                    "input_names": input_names,
                    "output_names": list(outputs),
                    "opset_version": params.opset,
                    "dynamo": dynamo,
                }
                if dynamo:
                    kwargs["dynamic_shapes"] = tuple(
                        {axis: torch.export.Dim.AUTO for axis in axes.get(n, {})}
                        for n in input_names
                    )
                    kwargs["external_data"] = False
                else:
                    kwargs["dynamic_axes"] = {**axes, **outputs}
                torch.onnx.export(source_model, example, str(out), **kwargs)
                if dynamo:
                    name_symbolic_dims(out, axes)
                opset = check_onnx(out)
                return {
                    "exporter": "torch.onnx.export(dynamo=True)"
                    if dynamo
                    else "torch.onnx.export(dynamo=False, TorchScript-based)",
                    "exporter_version": torch.__version__,
                    "opset": opset,
                    "fallback_reason": "; ".join(errors) or None,
                }
            except Exception as exc:  # noqa: BLE001 - try the fallback exporter
                errors.append(f"dynamo={dynamo}: {type(exc).__name__}: {str(exc)[:300]}")
        raise RuntimeError("every ONNX exporter failed: " + " | ".join(errors))
