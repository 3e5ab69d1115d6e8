"""Guide §6.1 preprocessing against torchvision's own transforms, on real bundled photos; image
decoding of bad input; softmax and top-k."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from workbench.errors import UserError
from workbench.vision.classify_preprocess import (
    ClassifyPreprocess,
    imagenet_classes,
    softmax,
    top_k,
)
from workbench.vision.image_io import as_rgb, decode_image, encode_image, load_image
from workbench.vision.photos import PHOTOS, photo, photo_bytes, photo_path, photo_stream


def _torchvision_reference(image: Image.Image) -> np.ndarray:
    import torchvision.transforms as T

    transform = T.Compose(
        [
            T.Resize(256),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    return transform(image.convert("RGB")).numpy()


@pytest.mark.parametrize("name", ["chelsea", "coffee", "rocket", "camera", "china"])
def test_matches_torchvision_transforms_on_real_photos(name):
    reference = _torchvision_reference(Image.open(photo_path(name)))
    ours = ClassifyPreprocess()(photo_bytes(name))
    assert ours.shape == (1, 3, 224, 224) and ours.dtype == np.float32
    np.testing.assert_allclose(ours[0], reference, atol=1e-5)


def test_batch_path_equals_single_path_and_layouts_agree():
    names = ["chelsea", "astronaut", "flower"]
    nchw = ClassifyPreprocess()([photo(n) for n in names])
    nhwc = ClassifyPreprocess(layout="nhwc")([photo_path(n) for n in names])
    assert nchw.shape == (3, 3, 224, 224) and nhwc.shape == (3, 224, 224, 3)
    for i, name in enumerate(names):
        np.testing.assert_array_equal(nchw[i], ClassifyPreprocess()(photo(name))[0])
    np.testing.assert_array_equal(nchw, nhwc.transpose(0, 3, 1, 2))


def test_odd_images_are_converted():
    pre = ClassifyPreprocess()
    grey = np.full((300, 400), 128, np.uint8)
    rgba = np.zeros((300, 400, 4), np.uint8)
    rgba[..., :3] = 128
    tiny = np.full((1, 1, 3), 128, np.uint8)
    out = pre([grey, rgba, tiny, np.full((5000, 40, 3), 128, np.uint8)])
    # Every one is uniform grey 128: the same normalized value in every pixel.
    expected = (128 / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(out.mean(axis=(2, 3)), np.tile(expected, (4, 1)), atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(2, 3)), 0, atol=1e-5)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"GIF89a not really", "not a readable image"),
        (encode_image(np.zeros((10, 10, 3), np.uint8))[:40], "not a readable image"),
    ],
)
def test_bad_bytes_name_the_input(data, message):
    with pytest.raises(UserError, match=message):
        ClassifyPreprocess()([photo_bytes("coffee"), data])


def test_bad_files_and_arrays_get_clear_errors(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(UserError, match=r"notes\.txt: not a readable image"):
        ClassifyPreprocess()(text)
    with pytest.raises(UserError, match="no such file"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(UserError, match="is a directory"):
        load_image(tmp_path)
    with pytest.raises(UserError, match="image 1: expected an HxW"):
        ClassifyPreprocess()([photo("coffee"), np.zeros((4, 4, 5), np.uint8)])
    with pytest.raises(UserError, match="no images"):
        ClassifyPreprocess()([])
    with pytest.raises(UserError, match="not an image"):
        as_rgb(np.array([object()]))


def test_encode_decode_round_trip():
    rgb = photo("chelsea")
    np.testing.assert_array_equal(decode_image(encode_image(rgb, "PNG")), rgb)


def test_bad_configuration_is_refused():
    with pytest.raises(UserError, match="layout"):
        ClassifyPreprocess(layout="chw")
    with pytest.raises(UserError, match="crop <= resize"):
        ClassifyPreprocess(crop=300, resize=256)
    with pytest.raises(UserError, match="std"):
        ClassifyPreprocess(std=(0.2, 0.0, 0.2))


def test_softmax_is_stable_and_top_k_is_sorted():
    logits = np.array([[1000.0, 999.0, 0.0], [0.0, 0.0, 3.0]], np.float32)
    probs = softmax(logits)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    rng = np.random.default_rng(0)
    many = rng.normal(size=(16, 1000)).astype(np.float32)
    best = top_k(many, 5)
    np.testing.assert_array_equal(best.indices, np.argsort(-many, axis=1)[:, :5])
    assert (np.diff(best.probs, axis=1) <= 0).all()
    assert top_k(logits, 10).indices.shape == (2, 3)  # k capped at the class count


def test_bundled_photos_are_readable_and_distinct():
    shapes = {name: photo(name).shape for name in PHOTOS}
    assert all(len(s) == 3 and s[2] == 3 and min(s[:2]) >= 256 for s in shapes.values())
    assert len(set(photo_stream(len(PHOTOS), seed=3))) == len(PHOTOS)
    with pytest.raises(UserError, match="unknown photo"):
        photo_path("lena")


def test_imagenet_class_names_match_torchvision():
    from torchvision.models import ResNet50_Weights

    assert imagenet_classes() == ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
