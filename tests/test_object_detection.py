"""The object_detection task: the YOLOv8-style model in both frameworks, the trained
detector's behaviour, and one export through the real exporter with parity.

Keras runs in child processes: TensorFlow and PyTorch never share a process.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.childproc import run_child
from workbench.models.yolo_config import YoloConfig, anchor_points, keras_layer_name
from workbench.registry import TASKS, get_task
from workbench.tasks.object_detection import (
    MODELS,
    input_size_of,
    trained_weights,
)

# The trained detector's mAP@0.5 on 200 held-out scenes is 0.90 at 320 px (0.91 at 640);
# the threshold leaves room for a different machine's training run and 24 scenes.
MIN_MAP50 = 0.7


_child = run_child


def test_task_is_registered_with_both_frameworks():
    assert "object_detection" in TASKS.names()
    task = get_task("object_detection")
    assert task.models[0] == "yolov8n_320" and task.parity_samples <= 16
    for model in task.models:
        assert task.frameworks_for(model) == ("torch", "keras")
        size = MODELS[model]
        assert task.input_specs(model, "torch")[0].shape == ("batch", 3, size, size)
        assert task.input_specs(model, "keras")[0].shape == ("batch", size, size, 3)
        assert input_size_of(np.zeros((1, 8, YoloConfig(image_size=size).num_anchors))) == size


def test_inputs_in_both_layouts():
    task = get_task("object_detection")
    torch_feed = task.make_inputs("yolov8n_320", 2, seed=1)["images"]
    keras_feed = task.make_inputs("yolov8n_320", 2, seed=1, framework="keras")["images"]
    assert torch_feed.shape == (2, 3, 320, 320) and torch_feed.dtype == np.float32
    assert np.array_equal(torch_feed.transpose(0, 2, 3, 1), keras_feed)
    assert 0.0 <= torch_feed.min() and torch_feed.max() <= 1.0
    calib = task.calibration_inputs("yolov8n_320", 2)["images"]
    assert not np.array_equal(calib, torch_feed)  # a distinct stream
    feed, labels = task.held_out("yolov8n_320", 3)
    assert feed["images"].shape[0] == 3 and len(labels.truths) == len(labels.letterboxes) == 3


def test_anchor_grid_order():
    points, strides = anchor_points(64)
    assert points.shape == (64 // 8 * 64 // 8 + 16 + 4, 2)
    assert np.allclose(points[:2], [[4, 4], [12, 4]])  # row-major, x varies fastest
    assert list(np.unique(strides)) == [8, 16, 32]
    assert keras_layer_name("c2f3.m.0.cv1.conv.weight") == ("c2f3_m_0_cv1", "kernel")
    assert keras_layer_name("head.box.2.2.bias") == ("head_box_2_2", "bias")


def test_torch_model_forward_shape_and_bn_folding():
    torch = pytest.importorskip("torch")
    from workbench.models.yolo_torch import YoloV8, build_fused, complexity, fused_state

    cfg = YoloConfig(image_size=64)
    torch.manual_seed(0)
    model = YoloV8(cfg).eval()
    for module in model.modules():  # non-trivial BatchNorm statistics to fold
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
        fused = build_fused(cfg, fused_state(model))(x)
    assert out.shape == (2, 4 + cfg.num_classes, cfg.num_anchors)
    assert torch.allclose(out, fused, atol=1e-4)
    scores = out[:, 4:]
    assert ((scores >= 0) & (scores <= 1)).all()
    stats = complexity(build_fused(cfg, fused_state(model)), 64)
    assert 2.9e6 < stats["params"] < 3.1e6  # YOLOv8n-sized (3.0 M with 4 classes)


@pytest.mark.slow
def test_keras_model_matches_torch_weights(tmp_path):
    """Same architecture in Keras: the PyTorch weights copied over give the same output."""
    npz = tmp_path / "weights.npz"
    torch_out = _child(
        f"""
        import json, numpy as np, torch
        from workbench.models.yolo_config import YoloConfig
        from workbench.models.yolo_torch import YoloV8, fused_state, build_fused
        torch.manual_seed(0)
        cfg = YoloConfig(image_size=64)
        state = fused_state(YoloV8(cfg).eval())
        x = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
        with torch.no_grad():
            y = build_fused(cfg, state)(torch.from_numpy(x)).numpy()
        np.savez({str(npz)!r}, x=x, y=y, **{{"w:" + k: v for k, v in state.items()}})
        print(json.dumps({{"shape": list(y.shape)}}))
        """
    )
    keras_out = _child(
        f"""
        import json, numpy as np
        from workbench.models.yolo_config import YoloConfig
        from workbench.models.yolo_keras import build_yolo_keras
        data = np.load({str(npz)!r})
        state = {{k[2:]: data[k] for k in data.files if k.startswith("w:")}}
        model = build_yolo_keras(YoloConfig(image_size=64), state)
        y = np.asarray(model(data["x"].transpose(0, 2, 3, 1), training=False))
        print(json.dumps({{"shape": list(y.shape), "err": float(np.abs(y - data["y"]).max()),
                          "params": int(model.count_params())}}))
        """
    )
    assert keras_out["shape"] == torch_out["shape"] == [2, 8, 84]
    assert keras_out["err"] < 1e-4
    assert 2.9e6 < keras_out["params"] < 3.1e6


# ---------------------------------------------------------------------------- trained


@pytest.fixture(scope="session")
def detector_weights():
    """The trained weights: read from the workspace cache; trained there (a few minutes,
    once per workspace) when missing."""
    return trained_weights()


@pytest.mark.slow
def test_trained_detector_finds_the_objects(detector_weights):
    from workbench.models.yolo_torch import build_fused
    from workbench.tasks.object_detection import config

    torch = pytest.importorskip("torch")
    task = get_task("object_detection")
    model = build_fused(
        config(320), {k: v for k, v in detector_weights.items() if not k.startswith("__")}
    )
    feed, labels = task.held_out("yolov8n_320", 24)
    with torch.no_grad():
        out = model(torch.from_numpy(feed["images"])).numpy()
    metrics = task.evaluate(out, labels)
    assert metrics["map50"] > MIN_MAP50, metrics
    assert task.accuracy(out, labels) == metrics["map50"]
    # parity of the source with itself is perfect; perturbed outputs lose boxes
    same = task.parity([out], [out.copy()])
    assert same["metric_name"] == "box_f1" and same["metric_value"] == 1.0
    assert same["reference_boxes"] > 0
    noisy = out + np.random.default_rng(0).normal(0, 0.05, out.shape).astype(np.float32)
    assert task.parity([out], [noisy])["metric_value"] < 1.0
    # the end-to-end path: original images -> letterbox -> model -> boxes in image pixels
    images = task.raw_images("yolov8n_320", 2, seed=4)
    feed2, boxes = task.preprocess("yolov8n_320", images)
    with torch.no_grad():
        dets = task.postprocess(
            "yolov8n_320", model(torch.from_numpy(feed2["images"])).numpy(), boxes
        )
    for det, image in zip(dets, images, strict=True):
        assert (det.boxes[:, 2] <= image.shape[1]).all() and (
            det.boxes[:, 3] <= image.shape[0]
        ).all()


@pytest.mark.slow
def test_onnx_export_of_the_detector_passes_parity(detector_weights, workspace):
    from exporters.base import ArtifactRequest, export

    # Weights live in the machine-wide cache (workspace.weights_dir), so a temporary
    # workspace reuses them.
    manifest = export(ArtifactRequest("object_detection", "yolov8n_320", "torch", "onnx"))
    assert manifest["status"] == "ok", manifest.get("error")
    assert manifest["parity_metric_name"] == "box_f1"
    assert manifest["parity_pass"] and manifest["parity_metric_value"] == 1.0
    assert manifest["accuracy_artifact"] == pytest.approx(manifest["accuracy_source"], abs=0.01)
    assert manifest["accuracy_source"] > MIN_MAP50
