"""docs/claims.md §1.1 measured: Python against compiled callers and servers (issue 24).

Per call: the same ONNX file through the `onnxruntime` runtime (Python API) and the
`onnxruntime-c` runtime (C++ on ONNX Runtime's C API), with the harness's threads, input
pool and stop rule: the difference of their p50s is what Python adds per call. Sizes:
MLPs of growing width give the figure of that addition against the model's own time.
Serving: the Python and the compiled KServe v2 fronts on the same file
(workbench.serving.fronts). `benchmarks/compiled_vs_python.py` measures all of it at
study length and writes JSON that `load_measurements` reads back, so the seed_claims
notebook can judge quiet-machine figures instead of its own short runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.devices import parse_device
from workbench.harness.runner import BenchConfig, run_config
from workbench.harness.timing import StopRule
from workbench.registry import get_runtime
from workbench.runtimes.base import RuntimeOptions
from workbench.signature import make_input_pool

PAIR = ("onnxruntime", "onnxruntime-c")
SIZES = (8, 64, 256, 1024, 2048)  # hidden width of the synthetic 3-layer MLPs
CI_SIZES = (8, 256, 1024)


def mlp_onnx(path: Path, width: int, n_in: int = 64, layers: int = 3) -> Path:
    """A float32 MLP (MatMul + Add + Relu per layer, random weights) with a dynamic batch
    axis: a model whose own time grows with `width`."""
    # lazy: onnx
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(width)
    nodes, inits, prev, dim = [], [], "x", n_in
    for i in range(layers):
        weight = (rng.standard_normal((dim, width)) / np.sqrt(dim)).astype(np.float32)
        inits += [
            numpy_helper.from_array(weight, f"W{i}"),
            numpy_helper.from_array(np.zeros(width, np.float32), f"B{i}"),
        ]
        nodes += [
            helper.make_node("MatMul", [prev, f"W{i}"], [f"m{i}"]),
            helper.make_node("Add", [f"m{i}", f"B{i}"], [f"a{i}"]),
            helper.make_node("Relu", [f"a{i}"], [f"h{i}"]),
        ]
        prev, dim = f"h{i}", width
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["batch", width])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def per_call_rows(
    path: str,
    batch_sizes: list[int],
    rule: StopRule,
    labels: dict[str, Any],
    threads: int = 1,
    dims: dict[str, int] | None = None,
    runtimes: tuple[str, str] = PAIR,
) -> list[dict[str, Any]]:
    """The Python and the compiled runtime on one artifact, one row per (runtime, batch)."""
    rows: list[dict[str, Any]] = []
    fmt = "torchscript" if runtimes[0] == "torch" else "onnx"
    for runtime in runtimes:
        config = BenchConfig(
            runtime=runtime,
            format=fmt,
            path=path,
            threads=threads,
            inter_op_threads=1,
            batch_sizes=batch_sizes,
            dims=dims or {},
            rule=rule,
            labels=labels,
        )
        run_config(config, rows.append)
    for row in rows:
        row.pop("latencies_ms", None)
    return rows


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a frame that always has the columns the claims' selectors read."""
    frame = pd.DataFrame(rows)
    for column in ("status", "error", "model"):
        if column not in frame:
            frame[column] = None
    return frame


def _artifact(frame: pd.DataFrame | None, **where: Any) -> str | None:
    """The artifact path of the first ok row matching `where` (a sweep's own export)."""
    if frame is None or frame.empty or "artifact_path" not in frame:
        return None
    part = frame[frame["status"] == "ok"]
    for key, value in where.items():
        if key not in part:
            return None
        part = part[part[key] == value]
    return None if part.empty else str(part["artifact_path"].iloc[0])


def per_call_frame(
    profile: str, frames: dict[str, pd.DataFrame], rule: StopRule, cnn_rule: StopRule,
    big_batch: int, workdir: Path,
) -> pd.DataFrame:  # fmt: skip
    """Per-call rows of both runtimes: the tabular MLP (the "small" sweep's ONNX export)
    at batch 1 and `big_batch`, ResNet-50 at batch 1 outside ci (the "cnn" sweep's), and
    the synthetic MLP sizes at batch 1 (the figure)."""
    rows: list[dict[str, Any]] = []
    mlp = _artifact(frames.get("small"), format="onnx")
    if mlp:
        rows += per_call_rows(mlp, [1, big_batch], rule, {"task": "tabular", "model": "mlp"})
    cnn = _artifact(frames.get("cnn"), format="onnx", device="cpu")
    if cnn and profile != "ci":
        rows += per_call_rows(
            cnn, [1], cnn_rule, {"task": "image_classification", "model": "resnet50"}
        )
    workdir.mkdir(parents=True, exist_ok=True)
    for width in CI_SIZES if profile == "ci" else SIZES:
        path = str(mlp_onnx(workdir / f"mlp_w{width}.onnx", width))
        rows += per_call_rows(path, [1], rule, {"model": f"mlp_w{width}", "width": width})
    return _frame(rows)


def serving_frame(profile: str, frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Both fronts on the tabular MLP's ONNX file; not run in the ci profile (two server
    processes and LoadGen peak searches: minutes)."""
    mlp = _artifact(frames.get("small"), format="onnx")
    if profile == "ci" or not mlp:
        return _frame([])
    # lazy: prometheus_client, mlperf_loadgen (via workbench.serving.fronts)
    from workbench.serving.fronts import compare_fronts

    samples = _samples(mlp)
    scenario_profile = "ci" if profile == "quick" else "quick"
    return _frame(compare_fronts(mlp, samples, scenario_profile, labels={"model": "mlp"}))


def _samples(path: str) -> list[dict[str, np.ndarray]]:
    """Batch-1 feeds from the ONNX file's signature."""

    loaded = get_runtime("onnxruntime").load(Path(path), RuntimeOptions(parse_device("cpu"), 1))
    try:
        return make_input_pool(loaded.inputs, 1, {}, pool_size=16)
    finally:
        loaded.close()


def load_measurements(path: str | Path) -> dict[str, pd.DataFrame]:
    """The frames of a benchmarks/compiled_vs_python.py JSON: "compiled" (per-call rows,
    models and sizes) and "compiled_serving" (one row per front and model)."""
    data = json.loads(Path(path).read_text())
    frames = {
        "compiled": _frame(data.get("per_call", []) + data.get("size_rows", [])),
        "compiled_serving": _frame(data.get("serving", [])),
    }
    for frame in frames.values():  # the benchmark's model names, as the claims name them
        frame["model"] = frame["model"].replace({"tabular_mlp": "mlp"})
    return frames


def python_adds(frame: pd.DataFrame, runtimes: tuple[str, str] = PAIR) -> pd.DataFrame:
    """What Python adds per call, by model and batch: p50(Python) - p50(compiled) in us,
    beside the model's own time (the compiled p50) and the ratio."""
    cols = ["model", "batch_size", "model_us", "python_us", "python_adds_us", "ratio"]
    if frame is None or frame.empty or "runtime" not in frame:
        return pd.DataFrame(columns=cols)
    ok = frame[frame["status"] == "ok"]
    py = ok[ok["runtime"] == runtimes[0]].set_index(["model", "batch_size"])["latency_ms_p50"]
    c = ok[ok["runtime"] == runtimes[1]].set_index(["model", "batch_size"])["latency_ms_p50"]
    both = pd.concat({"python": py, "compiled": c}, axis=1).dropna()
    out = pd.DataFrame(
        {
            "model_us": both["compiled"] * 1000,
            "python_us": both["python"] * 1000,
            "python_adds_us": (both["python"] - both["compiled"]) * 1000,
            "ratio": both["python"] / both["compiled"],
        }
    ).reset_index()
    return out[cols].sort_values("model_us").reset_index(drop=True)


def plot_python_adds(adds: pd.DataFrame, caption: str = "") -> Any:
    """What Python adds per call (absolute us) against the model's own time, log-log, with
    the share it is of the call: where Python's cost stops mattering."""
    # lazy: matplotlib
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    if adds.empty:
        left.text(0.5, 0.5, "no measurement", ha="center")
        return fig
    x = adds["model_us"]
    left.scatter(x, adds["python_adds_us"].clip(lower=0.01))
    for row in adds.itertuples():
        left.annotate(f"{row.model} b{row.batch_size}", (row.model_us, max(row.python_adds_us, 0.01)),
                      fontsize=7, xytext=(3, 3), textcoords="offset points")  # fmt: skip
    left.set(xscale="log", yscale="log", xlabel="model time per call, compiled caller (us)",
             ylabel="Python adds per call (us)", title="What Python adds per call")  # fmt: skip
    share = 100 * adds["python_adds_us"] / adds["python_us"]
    right.scatter(x, share)
    right.axhline(10, color="grey", linestyle="--", linewidth=0.8)
    right.set(xscale="log", xlabel="model time per call, compiled caller (us)",
              ylabel="Python's share of the call (%)", title="Where it stops mattering")  # fmt: skip
    plain = plt.FuncFormatter(lambda v, _: f"{v:g}")  # 0.1, 1, 40: not mathtext powers
    for axis in (left.xaxis, left.yaxis, right.xaxis):
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(plain)
    if caption:
        fig.suptitle(caption, fontsize=8)
    fig.tight_layout()
    return fig
