"""ONNX Runtime's transformer optimizer as a pass: the FP32 ONNX export of a BERT-like
encoder rewritten with fused contrib operators (Attention, EmbedLayerNormalization,
SkipLayerNormalization, BiasGelu/FastGelu, LayerNormalization).

The result is a format of its own, `onnx-fused`, not a precision of `onnx`: the graph
holds `com.microsoft` operators that only ONNX Runtime runs, so it is no longer portable
ONNX, and every precision can be applied on top of it (`onnx_fused_int8_dynamic` and
`onnx_fused_int8_static` in exporters.onnx_quantize quantize this artifact). A sweep
over formats `onnx,onnx-fused` and precisions `fp32,int8-dynamic,int8-static` then
compares plain FP32, fused FP32, fused + INT8 and plain INT8 side by side, each row
saying which by its format and precision.

The pass is opt-in (`Pass.opt_in`): a sweep plans it only for tasks that list it in
`Task.pass_params`, so all-format sweeps of CNNs and MLPs get no row that can only fail.
Asked for directly on a graph without attention, it fails with a message saying so.

What fuses depends on how the encoder was exported: the optimizer matches the attention
pattern of the TorchScript-based exporter (`torch_onnx` with `dynamo=false`) on a model
with eager attention (transformers' `attn_implementation="eager"`). On the dynamo
export (transformers 5, SDPA attention, ORT 1.31) only the GELU and skip-LayerNorm
fusions apply, measured on all-MiniLM-L6-v2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporters.base import ExportContext, Pass
from exporters.torch_onnx import check_onnx
from workbench.errors import UserError
from workbench.options import Options, option

FORMAT = "onnx-fused"
ATTENTION_OPS = ("Attention", "MultiHeadAttention")
OPT_LEVELS = (0, 1, 2, 99)
NOT_FUSED_HINT = (
    "export the encoder with the TorchScript-based exporter (torch_onnx dynamo=false) from "
    "a model with eager attention (transformers attn_implementation='eager'); the dynamo "
    "export's attention does not match ORT's patterns"
)


@dataclass(frozen=True)
class TransformerOptimizeParams(Options):
    """Parameters of `onnx_transformer_optimize` (onnxruntime.transformers.optimizer).

    num_heads / hidden_size: 0 takes them from the source model's Hugging Face config
    (`num_attention_heads`, `hidden_size`) when it has one, else lets ORT detect them from
    the graph. opt_level 0 applies only the Python fusions, so the file runs the same on
    every ORT provider; 1, 2 and 99 run ORT's own optimizer first (99 bakes CPU-only
    layouts into the file). require_attention: fail unless attention fused (a graph
    without it is not the transformer this pass is for, or its export hides the pattern).
    """

    model_type: str = option(
        "bert", "the model type ORT's transformer optimizer fuses for (bert, gpt2, bart...)"
    )
    num_heads: int = option(
        0, "attention heads (0: from the model's config, else detected from the graph)"
    )
    hidden_size: int = option(
        0, "hidden size (0: from the model's config, else detected from the graph)"
    )
    opt_level: int = option(
        0,
        "0: the Python fusions only, valid on every provider, 1, 2 or 99: ORT's own "
        "optimizer first (99 bakes CPU-only layouts into the file)",
    )
    require_attention: bool = option(
        True, "fail unless attention fused (else the graph is not a transformer it can help)"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        # lazy: onnxruntime
        from onnxruntime.transformers.optimizer import MODEL_TYPES

        if self.model_type not in MODEL_TYPES:
            raise UserError(
                f"pass 'onnx_transformer_optimize': model_type={self.model_type!r} is not one "
                f"ORT's optimizer knows: choose one of {', '.join(sorted(MODEL_TYPES))}"
            )
        if self.opt_level not in OPT_LEVELS:
            raise UserError(
                f"pass 'onnx_transformer_optimize': opt_level={self.opt_level} is not valid: "
                f"choose one of {', '.join(map(str, OPT_LEVELS))}"
            )
        for name in ("num_heads", "hidden_size"):
            if getattr(self, name) < 0:
                raise UserError(
                    f"pass 'onnx_transformer_optimize': {name} must be 0 (detect) or positive"
                )


def hf_config_shape(model: Any) -> tuple[int, int] | None:
    """(num_attention_heads, hidden_size) of the first Hugging Face config found on `model`
    or its submodules (a task may wrap the BertModel); None if there is none."""
    candidates = [model]
    modules = getattr(model, "modules", None)
    if callable(modules):
        try:
            candidates.extend(modules())
        except TypeError:
            pass
    for candidate in candidates:
        config = getattr(candidate, "config", None)
        heads = getattr(config, "num_attention_heads", None)
        hidden = getattr(config, "hidden_size", None)
        if isinstance(heads, int) and isinstance(hidden, int):
            return heads, hidden
    return None


def optimize_transformer(
    source: Path, out: Path, params: TransformerOptimizeParams, num_heads: int, hidden_size: int
) -> dict[str, int]:
    """Run ORT's transformer optimizer on `source`, write `out` (one file, weights inline)
    and return the fused-operator counts. Raises UserError when attention did not fuse
    and `params.require_attention`."""
    # lazy: onnxruntime
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(
        str(source),
        model_type=params.model_type,
        num_heads=num_heads,
        hidden_size=hidden_size,
        opt_level=params.opt_level,
        use_gpu=False,
    )
    fused = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items()}
    if params.require_attention and not any(fused.get(op, 0) for op in ATTENTION_OPS):
        done = ", ".join(f"{k} {v}" for k, v in fused.items() if v) or "nothing"
        raise UserError(
            f"ORT's transformer optimizer (model_type={params.model_type}) fused no attention "
            f"in this graph (fused: {done}): it is not a transformer encoder, or {NOT_FUSED_HINT}"
        )
    optimized.topological_sort()
    optimized.save_model_to_file(str(out), use_external_data_format=False)
    return fused


class OnnxTransformerOptimize(Pass):
    name = "onnx_transformer_optimize"
    source_frameworks = ("torch", "keras")
    format = FORMAT
    precisions = ("fp32",)
    filename = "model.onnx"
    upstream = ("onnx", "fp32")
    Params = TransformerOptimizeParams
    opt_in = True

    def export(self, ctx: ExportContext, out: Path) -> dict[str, Any]:
        # lazy: onnxruntime
        import onnxruntime

        if ctx.upstream_path is None:
            raise RuntimeError(f"pass {self.name!r} needs the FP32 ONNX artifact to optimize")
        params: TransformerOptimizeParams = ctx.params
        shape = hf_config_shape(ctx.source_model)
        num_heads = params.num_heads or (shape[0] if shape else 0)
        hidden_size = params.hidden_size or (shape[1] if shape else 0)
        fused = optimize_transformer(Path(ctx.upstream_path), out, params, num_heads, hidden_size)
        return {
            "exporter": "onnxruntime.transformers.optimizer.optimize_model",
            "exporter_version": onnxruntime.__version__,
            "opset": check_onnx(out),
            "fused_operators": {k: v for k, v in fused.items() if v},
            "num_heads": num_heads,
            "hidden_size": hidden_size,
            "num_heads_source": "params"
            if params.num_heads
            else ("model config" if shape else "detected by ORT"),
        }
