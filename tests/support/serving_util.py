"""Helpers for the serving tests: tiny real ONNX models and a slow test-double model."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from workbench.batching import BatcherConfig
from workbench.scenarios.driver import ServedModel
from workbench.serving.registry import ModelRegistry, load_source
from workbench.serving.service import InferenceService, ServeSettings
from workbench.signature import TensorSpec


def affine_onnx(path: Path, scale: float = 2.0, shift: float = 1.0) -> Path:
    """y = scale * x + shift over x float32 [batch, 4]: a real ONNX model on ORT."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "S"], ["xs"]),
            helper.make_node("Add", ["xs", "B"], ["y"]),
        ],
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[
            numpy_helper.from_array(np.array([scale], np.float32), "S"),
            numpy_helper.from_array(np.array([shift], np.float32), "B"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def imagenet_head_onnx(path: Path) -> Path:
    """input float32 [batch, 3, 224, 224] -> 1000 logits (mean over pixels of a fixed
    channel mix): the shape of an ImageNet classifier, to drive /api/v1/classify's real
    pre- and post-processing without exporting a large model."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.linspace(-1, 1, 3 * 1000, dtype=np.float32).reshape(3, 1000)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input", "axes"], ["m"], keepdims=0),
            helper.make_node("MatMul", ["m", "W"], ["logits"]),
        ],
        "head",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1000])],
        initializer=[
            numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
            numpy_helper.from_array(w, "W"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def slow_loader(delay_s: float):
    """Sources `slow` (identity after sleeping `delay_s` per batch) or anything else the
    real loader takes: a model whose compute time the test controls."""

    def load(source: str, instances: int) -> ServedModel:
        if source != "slow":
            return load_source(source, instances)

        def run(feed):
            time.sleep(delay_s)
            return [feed["x"].copy()]

        spec = TensorSpec("x", "float32", ("batch", 4))
        return ServedModel(
            run_batches=[run],
            samples=[{"x": np.zeros((1, 4), np.float32)}],
            labels={"runtime": "test", "format": "sleep"},
            inputs=[spec],
            outputs=[TensorSpec("y", "float32", ("batch", 4))],
        )

    return load


def make_service(
    models: list[tuple[str, str, str]],
    batcher: BatcherConfig | None = None,
    settings: ServeSettings | None = None,
    seed: int = 0,
    delay_s: float = 0.05,
) -> InferenceService:
    """A warmed service over (name, source, version) entries."""
    registry = ModelRegistry(
        batcher if batcher is not None else BatcherConfig(max_batch_size=8, max_queue_delay_ms=1),
        seed=seed,
        loader=slow_loader(delay_s),
    )
    for name, source, version in models:
        registry.load(name, source, version)
    service = InferenceService(registry, settings or ServeSettings())
    service.warm = True
    return service


def detector_onnx(path: Path, size: int = 320) -> Path:
    """images float32 [batch, 3, size, size] -> YOLOv8-shaped [batch, 5, 2] (one class, two
    anchors, boxes normalized to 0..1): anchor 0 a centred box of score 0.9 whatever the
    image, anchor 1 score 0. Drives /api/v1/detect's letterbox and decoding for real."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    bias = np.array([[0.5, 0.5], [0.5, 0.5], [0.25, 0.25], [0.25, 0.25], [0.9, 0.0]], np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images", "axes"], ["m"], keepdims=0),
            helper.make_node("MatMul", ["m", "W"], ["z"]),
            helper.make_node("Add", ["z", "B"], ["flat"]),
            helper.make_node("Reshape", ["flat", "shape"], ["output0"]),
        ],
        "detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 5, 2])],
        initializer=[
            numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
            numpy_helper.from_array(np.zeros((3, 10), np.float32), "W"),
            numpy_helper.from_array(bias.reshape(10), "B"),
            numpy_helper.from_array(np.array([-1, 5, 2], np.int64), "shape"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def spatial_onnx(path: Path) -> Path:
    """images float32 [batch, 3, height, width] -> [batch, 3] channel means: a real ONNX
    model with dynamic spatial axes (what a detector exported with dynamic shapes has)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["images", "axes"], ["means"], keepdims=0)],
        "spatial",
        [
            helper.make_tensor_value_info(
                "images", TensorProto.FLOAT, ["batch", 3, "height", "width"]
            )
        ],
        [helper.make_tensor_value_info("means", TensorProto.FLOAT, ["batch", 3])],
        initializer=[numpy_helper.from_array(np.array([2, 3], np.int64), "axes")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path
