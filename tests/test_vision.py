"""Vision pre/post-processing: letterbox, NMS (against torchvision), YOLO decoding,
detection metrics and the scene generator."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from workbench.errors import UserError
from workbench.vision.detection_metrics import (
    GroundTruth,
    average_precision,
    box_f1,
    evaluate,
    mean_average_precision,
)
from workbench.vision.letterbox import (
    PAD_VALUE,
    as_rgb,
    letterbox,
    letterbox_batch,
    letterbox_geometry,
    load_image,
    preprocess,
    to_model_input,
)
from workbench.vision.nms import batched_nms, box_iou, nms
from workbench.vision.scenes import CLASSES, letterboxed, make_scenes, scene
from workbench.vision.yolo_decode import Detections, decode, decode_v5, decode_v8, postprocess

# ---------------------------------------------------------------------------- letterbox


@pytest.mark.parametrize(
    ("h", "w", "size", "scale", "pad_x", "pad_y"),
    [
        (100, 200, 64, 0.32, 0, 16),  # wide: fills the width, bands top and bottom
        (300, 150, 60, 0.2, 15, 0),  # tall: fills the height, bands left and right
        (32, 32, 64, 2.0, 0, 0),  # small square: scaled up
        (1, 1, 16, 16.0, 0, 0),  # a single pixel
    ],
)
def test_letterbox_geometry(h, w, size, scale, pad_x, pad_y):
    box = letterbox_geometry(h, w, size)
    assert box.scale == pytest.approx(scale)
    assert (box.pad_x, box.pad_y) == (pad_x, pad_y)


def test_letterbox_places_the_image_and_pads_with_114():
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    image[:] = (10, 20, 30)
    out, box = letterbox(image, size=64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert (out[:16] == PAD_VALUE).all() and (out[48:] == PAD_VALUE).all()
    assert (out[16:48] == (10, 20, 30)).all()  # aspect ratio kept: 200x100 -> 64x32
    assert box.orig_h == 100 and box.orig_w == 200 and box.size == 64


def test_box_mapping_round_trip_and_clipping():
    box = letterbox_geometry(480, 640, 320)
    boxes = np.array([[10, 20, 200, 300], [0, 0, 640, 480], [600, 400, 640, 480]], np.float32)
    assert np.allclose(box.to_original(box.to_input(boxes)), boxes, atol=1e-4)
    # boxes reaching into the padding are clipped to the original image
    outside = box.to_input(np.array([[-50, -50, 700, 900]], np.float32))
    assert np.allclose(box.to_original(outside), [[0, 0, 640, 480]])


def test_letterbox_content_matches_a_plain_resize():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(90, 120, 3), dtype=np.uint8)
    out, box = letterbox(image, size=60)
    expected = np.asarray(Image.fromarray(image).resize((60, 45), Image.Resampling.BILINEAR))
    assert np.array_equal(out[box.pad_y : box.pad_y + 45], expected)


def test_batch_path_equals_single_path_and_scales_once():
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, size=s, dtype=np.uint8) for s in [(40, 70, 3), (90, 30, 3)]]
    batch, boxes = letterbox_batch(images, 48)
    for i, image in enumerate(images):
        single, box = letterbox(image, 48)
        assert np.array_equal(batch[i], single) and box == boxes[i]
    nchw = to_model_input(batch, "nchw")
    nhwc = to_model_input(batch, "nhwc")
    assert nchw.shape == (2, 3, 48, 48) and nhwc.shape == (2, 48, 48, 3)
    assert nchw.dtype == np.float32 and nchw.flags.c_contiguous
    assert np.allclose(nchw.transpose(0, 2, 3, 1), nhwc)
    assert np.allclose(nhwc, batch / 255.0)  # divided by 255 exactly once
    single, _ = preprocess(images[0], 48)
    assert single.shape == (1, 3, 48, 48) and np.allclose(single[0], nchw[0])


def test_odd_images_are_converted():
    assert as_rgb(np.full((5, 7), 200, np.uint8)).shape == (5, 7, 3)  # greyscale
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = 50
    assert (as_rgb(rgba) == 50).all()  # alpha dropped
    assert as_rgb(np.ones((3, 3, 1), np.float32)).max() == 255  # float 0..1, one channel
    assert as_rgb(Image.new("P", (6, 4))).shape == (4, 6, 3)  # palette image
    out, box = letterbox(np.array([[[9, 9, 9]]], np.uint8), 32)  # 1x1
    assert (out == 9).all() and box.scale == 32
    big = np.zeros((4000, 100, 3), np.uint8)  # very tall: 32 x 1 after scaling, not 0 wide
    out, box = letterbox(big, 32)
    assert out.shape == (32, 32, 3) and box.scale == pytest.approx(32 / 4000)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((0, 5, 3), np.uint8), "empty"),
        (np.zeros((4, 4, 2), np.uint8), "shape"),
        (np.full((4, 4, 3), np.nan, np.float32), "NaN"),
        (np.zeros((4, 4, 3), np.complex64), "pixel type"),
    ],
)
def test_bad_arrays_raise_a_clear_error(image, message):
    with pytest.raises(UserError, match=message):
        as_rgb(image)


def test_bad_files_raise_an_error_naming_the_file(tmp_path):
    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not a JPEG")
    with pytest.raises(UserError, match="broken.jpg"):
        load_image(corrupt)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(UserError, match="notes.txt"):
        preprocess([str(text)], 32)
    with pytest.raises(UserError, match="missing.png"):
        load_image(tmp_path / "missing.png")
    good = tmp_path / "grey.png"
    Image.new("LA", (10, 5)).save(good)
    assert load_image(good).shape == (5, 10, 3)


# ---------------------------------------------------------------------------- NMS


def _random_boxes(seed: int, n: int, classes: int = 5):
    rng = np.random.default_rng(seed)
    xy = rng.random((n, 2)) * 300
    wh = rng.random((n, 2)) * 80 + 1
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    scores = (rng.permutation(n) / n).astype(np.float32)  # distinct: the order is defined
    return boxes, scores, rng.integers(0, classes, n)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("iou", [0.3, 0.45, 0.7])
def test_nms_matches_torchvision(seed, iou):
    torch = pytest.importorskip("torch")
    ops = pytest.importorskip("torchvision.ops")
    boxes, scores, classes = _random_boxes(seed, 50 + 150 * seed)
    tb, ts, tc = torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes)
    expected = ops.batched_nms(tb, ts, tc, iou).numpy()
    assert np.array_equal(batched_nms(boxes, scores, classes, iou), expected)
    assert np.array_equal(nms(boxes, scores, iou), ops.nms(tb, ts, iou).numpy())


def test_nms_on_8400_clustered_candidates_with_a_cap_matches_torchvision():
    torch = pytest.importorskip("torch")
    ops = pytest.importorskip("torchvision.ops")
    rng = np.random.default_rng(7)
    centres = rng.random((30, 2)) * 600
    xy = centres[rng.integers(0, 30, 8400)] + rng.normal(0, 6, (8400, 2))
    wh = rng.random((8400, 2)) * 40 + 8
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    scores = rng.random(8400).astype(np.float32)
    classes = rng.integers(0, 4, 8400)
    t = [torch.from_numpy(a) for a in (boxes, scores, classes)]
    expected = ops.batched_nms(*t, 0.45).numpy()
    assert len(expected) > 300  # the cap below really cuts
    np.testing.assert_array_equal(batched_nms(boxes, scores, classes, 0.45), expected)
    np.testing.assert_array_equal(batched_nms(boxes, scores, classes, 0.45, 300), expected[:300])


def test_nms_edge_cases():
    assert batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0), 0.5).size == 0
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 11, 11]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert list(batched_nms(boxes, scores, np.array([0, 1, 0]), 0.5)) == [0, 1]
    assert list(nms(boxes, scores, 0.5, max_keep=1)) == [0]
    iou = box_iou(boxes[:1], boxes)
    assert iou[0, 0] == 1.0 and iou[0, 2] == pytest.approx(81 / 119)


# ---------------------------------------------------------------------------- decoding


def test_decode_v8_layout():
    # [1, 4 + 2, 3]: two overlapping class-0 boxes and one class-1 box, one below threshold
    out = np.zeros((1, 6, 4), np.float32)
    out[0, :4, 0] = [50, 50, 20, 20]
    out[0, 4:, 0] = [0.9, 0.1]
    out[0, :4, 1] = [51, 51, 20, 20]  # suppressed by box 0 (same class, IoU ~0.82)
    out[0, 4:, 1] = [0.8, 0.0]
    out[0, :4, 2] = [51, 51, 20, 20]  # same place, other class: kept
    out[0, 4:, 2] = [0.0, 0.7]
    out[0, :4, 3] = [10, 10, 4, 4]
    out[0, 4:, 3] = [0.2, 0.1]  # below 0.25
    (det,) = decode_v8(out)
    assert np.allclose(det.boxes, [[40, 40, 60, 60], [41, 41, 61, 61]])
    assert np.allclose(det.scores, [0.9, 0.7]) and list(det.classes) == [0, 1]
    (agnostic,) = decode_v8(out, class_agnostic=True)
    assert len(agnostic) == 1
    # normalized boxes (this repository's detector) are scaled by the input size
    scaled = out.copy()
    scaled[0, :4] /= 100
    assert np.allclose(decode_v8(scaled, box_scale=100)[0].boxes, det.boxes, atol=1e-4)


def test_decode_v5_layout_uses_objectness_times_class():
    out = np.zeros((1, 3, 7), np.float32)  # [B, N, 5 + 2]
    out[0, 0] = [50, 50, 20, 10, 0.9, 0.2, 0.8]  # score 0.72, class 1
    out[0, 1] = [20, 20, 10, 10, 0.3, 0.9, 0.1]  # 0.27, class 0
    out[0, 2] = [80, 80, 10, 10, 0.9, 0.25, 0.2]  # 0.225 < 0.25 although objectness is high
    (det,) = decode_v5(out)
    assert np.allclose(det.boxes, [[40, 45, 60, 55], [15, 15, 25, 25]])
    assert np.allclose(det.scores, [0.72, 0.27]) and list(det.classes) == [1, 0]
    assert len(decode(out, "v5")[0]) == 2
    with pytest.raises(ValueError, match="layout"):
        decode(out, "v3")


def test_empty_detections_and_mapping_back():
    out = np.zeros((2, 6, 10), np.float32)
    assert all(len(d) == 0 for d in decode_v8(out))
    out[1, :4, 0] = [30, 20, 20, 10]
    out[1, 4, 0] = 0.9
    boxes = [letterbox_geometry(50, 100, 64), letterbox_geometry(100, 50, 64)]
    dets = postprocess(out, boxes)
    assert len(dets[0]) == 0 and dets[0].boxes.shape == (0, 4)
    # image 1: 100x50 -> scale 0.64, pad_x 16; box 20..40 x 15..25 -> 6.25..37.5 x 23.4..39.1
    assert np.allclose(dets[1].boxes, [[(20 - 16) / 0.64, 15 / 0.64, (40 - 16) / 0.64, 25 / 0.64]])


# ---------------------------------------------------------------------------- metrics


def _det(boxes, scores, classes) -> Detections:
    return Detections(
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(scores, np.float32),
        np.asarray(classes, np.int64),
    )


def test_map_on_known_boxes():
    truth = [
        GroundTruth(np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), np.array([0, 1]))
    ]
    perfect = [_det([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.8], [0, 1])]
    assert mean_average_precision(perfect, truth) == 1.0
    wrong_class = [_det([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.8], [1, 0])]
    assert mean_average_precision(wrong_class, truth) == 0.0
    # class 0: a false positive ranked first, then the hit -> AP 0.5; class 1 missed -> 0
    mixed = [_det([[50, 50, 60, 60], [1, 1, 10, 10]], [0.9, 0.8], [0, 0])]
    result = evaluate(mixed, truth, num_classes=2)
    assert result["ap50_class0"] == pytest.approx(0.5) and result["ap50_class1"] == 0.0
    assert result["map50"] == pytest.approx(0.25)
    assert result["precision"] == 0.5 and result["recall"] == 0.5
    # duplicates of one box count once
    dup = [_det([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.8], [0, 0])]
    assert evaluate(dup, truth, num_classes=2)["ap50_class0"] == 1.0
    assert average_precision(np.array([True, False, True]), np.array([0.9, 0.8, 0.7]), 4) == (
        pytest.approx(0.25 + 0.25 * 2 / 3)
    )


def test_box_f1():
    a = [_det([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.8], [0, 1])]
    assert box_f1(a, a) == 1.0
    shifted = [_det([[1, 0, 11, 10], [20, 20, 30, 30]], [0.5, 0.5], [0, 2])]  # one class wrong
    assert box_f1(a, shifted) == pytest.approx(0.5)
    assert box_f1([Detections.empty()], [Detections.empty()]) == 1.0
    assert box_f1(a, [Detections.empty()]) == 0.0


# ---------------------------------------------------------------------------- scenes


def test_scenes_are_reproducible_and_boxes_are_valid():
    first, again = scene(96, seed=3, index=5), scene(96, seed=3, index=5)
    assert np.array_equal(first.image, again.image) and np.array_equal(first.boxes, again.boxes)
    scenes = make_scenes(12, 96, seed=0)
    assert len({s.image.shape for s in scenes}) > 1  # varied sizes and aspect ratios
    for s in scenes:
        h, w = s.image.shape[:2]
        assert s.image.dtype == np.uint8 and len(s.boxes) >= 1
        assert (s.boxes[:, [0, 2]] >= 0).all() and (s.boxes[:, [0, 2]] <= w).all()
        assert (s.boxes[:, [1, 3]] >= 0).all() and (s.boxes[:, [1, 3]] <= h).all()
        assert ((s.classes >= 0) & (s.classes < len(CLASSES))).all()
        # objects do not overlap, so every tight box is exact
        iou = box_iou(s.boxes, s.boxes)
        assert np.allclose(iou, np.eye(len(s.boxes)))
    batch, boxes = letterboxed(scenes, 96)
    assert batch.shape == (12, 96, 96, 3)
    sizes = np.concatenate([b[:, 2:] - b[:, :2] for b in boxes])
    assert sizes.min() >= 5 and sizes.max() <= 96  # object sizes in input pixels
