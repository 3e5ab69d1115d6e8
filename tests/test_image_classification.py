"""The image_classification task's models, inputs, labels and end-to-end pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import UserError
from workbench.registry import get_task
from workbench.vision.classify_preprocess import TopK
from workbench.vision.yolo_decode import Detections

TASK = get_task("image_classification")


def test_models_and_their_frameworks():
    assert TASK.frameworks_for("resnet50") == ("torch", "keras")
    assert TASK.frameworks_for("mobilenet_v3_large") == ("torch",)
    assert TASK.frameworks_for("mobilenet_v2") == ("keras",)
    assert TASK.frameworks_for("efficientnet_lite0") == ("torch", "keras")
    assert TASK.frameworks_for("digits_cnn") == ("torch", "keras")
    with pytest.raises(UserError, match="no 'torch' version"):
        TASK.build("torch", "mobilenet_v2")


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_digits_held_out_is_the_whole_labelled_split(framework):
    feed, labels = TASK.held_out("digits_cnn", TASK.parity_count("digits_cnn"), framework)
    x = feed["input"]
    assert TASK.parity_count("digits_cnn") == 360 == len(labels) == len(x)
    assert x.shape[1:] == ((1, 8, 8) if framework == "torch" else (8, 8, 1))
    assert 0.0 <= x.min() and x.max() <= 1.0 and set(np.unique(labels)) == set(range(10))
    spec = TASK.input_specs("digits_cnn", framework)[0]
    assert spec.shape[1:] == x.shape[1:]


def test_imagenet_inputs_are_distinct_normalized_photo_crops():
    feed = TASK.make_inputs("resnet50", 6, seed=1)["input"]
    assert feed.shape == (6, 3, 224, 224) and feed.dtype == np.float32
    flat = feed.reshape(6, -1)
    assert len({row.tobytes() for row in flat}) == 6
    assert -2.2 < feed.min() and feed.max() < 2.7  # ImageNet mean/std of real pixels
    held, labels = TASK.held_out("resnet50", 4)
    calibration = TASK.calibration_inputs("resnet50", 4)
    assert labels is None and not np.array_equal(held["input"], calibration["input"])
    keras = TASK.make_inputs("mobilenet_v2", 2, seed=1, framework="keras")["input"]
    np.testing.assert_array_equal(keras, feed[:2].transpose(0, 2, 3, 1))


def test_lite0_uses_its_own_normalization():
    lite = TASK.preprocessor("efficientnet_lite0")
    assert lite.mean == pytest.approx((127 / 255,) * 3) and lite.std == pytest.approx(
        (128 / 255,) * 3
    )
    assert TASK.preprocessor("resnet50").mean == pytest.approx((0.485, 0.456, 0.406))
    assert TASK.pipeline("digits_cnn") is None


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_classification_pipeline_from_encoded_photos_to_top5(framework):
    pipeline = TASK.pipeline("efficientnet_lite0", framework)
    raw = pipeline.raw_inputs(3, 0)
    assert all(isinstance(item, bytes) for item in raw)
    feed, meta = pipeline.preprocess(raw)
    assert feed["input"].shape == ((3, 3, 224, 224) if framework == "torch" else (3, 224, 224, 3))
    logits = np.zeros((3, 1000), np.float32)
    logits[:, 281] = 5.0
    best = pipeline.postprocess([logits], meta)
    assert isinstance(best, TopK) and (best.indices[:, 0] == 281).all()


def test_detection_pipeline_handles_an_empty_result():
    task = get_task("object_detection")
    pipeline = task.pipeline("yolov8n_320")
    raw = pipeline.raw_inputs(2, 0)
    feed, letterboxes = pipeline.preprocess(raw)
    assert feed["images"].shape == (2, 3, 320, 320) and len(letterboxes) == 2
    nothing = np.zeros((2, 8, 2100), np.float32)  # every score 0: below the threshold
    found = pipeline.postprocess([nothing], letterboxes)
    assert [len(d) for d in found] == [0, 0] and isinstance(found[0], Detections)


def test_cli_takes_each_task_s_own_bench_defaults():
    """The task's preset table answers for the CLI (`--quick` is the quick profile, no
    flag the full one) as for the notebooks; tabular keeps the CLI's generic batches."""
    quick = get_task("image_classification").preset("quick")
    assert (list(quick.models), list(quick.batch_sizes)) == (["efficientnet_lite0"], [1, 8, 64])
    assert list(get_task("object_detection").preset("full").models) == ["yolov8n_640"]
    assert max(get_task("object_detection").preset("full").batch_sizes) == 64
    tabular = get_task("tabular").preset("quick")
    assert tabular.models is None and list(tabular.batch_sizes) == [1, 8, 64, 256]


def test_cli_bench_task_measures_the_task_s_preset(monkeypatch):
    """`workbench bench --task X [--quick]` sweeps what the task's preset says, on the CLI's
    own device and thread defaults."""
    from workbench import cli
    from workbench.commands.bench import task

    seen = []
    monkeypatch.setattr(
        task, "run_sweep", lambda sweep, command, args=None: seen.append(sweep) or []
    )
    assert cli.main(["bench", "--task", "image_classification", "--quick"]) == 0
    assert cli.main(["bench", "--task", "object_detection"]) == 0
    assert cli.main(["bench", "--task", "tabular", "--quick", "--batch", "2"]) == 0
    quick, full, tabular = seen
    assert (quick.models, quick.batch_sizes) == (["efficientnet_lite0"], [1, 8, 64])
    assert (full.models, max(full.batch_sizes)) == (["yolov8n_640"], 64)
    assert tabular.models == ["linear", "mlp"] and tabular.batch_sizes == [2]
    assert all(s.devices == ["cpu"] for s in seen)  # the CLI measures on --device (cpu)
    assert quick.rule.min_iters == 30 and full.rule.min_iters == 100  # quick vs full timing
