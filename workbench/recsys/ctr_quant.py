"""What dynamic INT8 does to DeepFM's embedding tables, measured on the held-out split.

ONNX Runtime's `quantize_dynamic` picks the op types to quantize from its registry when
`op_types_to_quantize` is not given; in onnxruntime 1.31 that registry includes
`Gather`, so the default run (what the `onnx_int8_dynamic` pass does) stores the
embedding tables in 8 bits too (uint8: Gather of 8-bit rows, then DequantizeLinear). Where only
`MatMul` is asked for, the tables stay float32 -- most of the model's bytes. This study
quantizes the task's FP32 ONNX export both ways (and the tables alone) with
onnxruntime.quantization directly, after the same `quant_pre_process`, and reports per
variant: file size, the tables' element type, AUC and log loss on the 20,000 held-out
rows and their deltas against FP32, the largest logit error, and how alike each
held-out user's items are ranked (Kendall tau, top-10 overlap).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from workbench.recsys import ctr_features, ctr_ranking
from workbench.recsys.deepfm import evaluate

# variant -> op_types_to_quantize (None: ORT's default registry)
VARIANTS: dict[str, list[str] | None] = {
    "int8 dynamic, ORT default ops": None,
    "int8 dynamic, MatMul only (tables float)": ["MatMul"],
    "int8 dynamic, Gather only (tables 8-bit)": ["Gather"],
}


def quantize(fp32: Path, out: Path, op_types: list[str] | None) -> None:
    """`quant_pre_process` then `quantize_dynamic` (int8 weights, per tensor), as the
    onnx_int8_dynamic pass does, with `op_types` passed through."""
    # lazy: onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="wb-ctr-quant-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre))
        kwargs: dict[str, Any] = {"weight_type": QuantType.QInt8}
        if op_types is not None:
            kwargs["op_types_to_quantize"] = op_types
        quantize_dynamic(str(pre), str(out), **kwargs)


def table_dtype(path: Path) -> str:
    """The element type of the tables the Gathers read ("float32", "uint8", ...; several
    joined by "+")."""
    # lazy: onnx
    import onnx

    model = onnx.load(str(path))
    types = {
        t.name: onnx.helper.tensor_dtype_to_np_dtype(t.data_type).name
        for t in model.graph.initializer
    }
    found = sorted(
        {types.get(n.input[0], "computed") for n in model.graph.node if n.op_type == "Gather"}
    )
    return "+".join(found) or "no Gather"


def logits(path: Path, feed: dict[str, np.ndarray], threads: int = 2) -> np.ndarray:
    # lazy: onnxruntime
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, feed)[0]).reshape(-1)


def study(fp32: Path, out_dir: Path, threads: int = 2) -> list[dict[str, Any]]:
    """One row per variant (FP32 first), measured on the whole held-out split."""
    test = ctr_features.split("test")
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = logits(fp32, test.feed, threads)
    base = evaluate(reference, test.labels)
    paths = {"fp32": fp32}
    for i, (name, op_types) in enumerate(VARIANTS.items()):
        paths[name] = out_dir / f"deepfm-int8-{i}.onnx"
        quantize(fp32, paths[name], op_types)
    rows = []
    for name, path in paths.items():
        scores = logits(path, test.feed, threads) if path != fp32 else reference
        quality = evaluate(scores, test.labels)
        agreement = ctr_ranking.per_user_agreement(test.users, reference, scores, k=10)
        rows.append(
            {
                "variant": name,
                "op_types_to_quantize": VARIANTS.get(name, "-") or "default",
                "size_kb": path.stat().st_size / 1024,
                "table_dtype": table_dtype(path),
                "auc": quality["auc"],
                "auc_delta": quality["auc"] - base["auc"],
                "log_loss": quality["log_loss"],
                "log_loss_delta": quality["log_loss"] - base["log_loss"],
                "max_abs_logit_error": float(np.abs(scores - reference).max()),
                "kendall_tau": agreement["kendall_tau"],
                "top10_overlap": agreement["top10_overlap"],
            }
        )
    return rows
