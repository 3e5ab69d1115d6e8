"""Image classification (guide §6.1): torchvision and keras.applications CNNs.

Random weights (none can be downloaded here): enough for speed, export and
parity (top-1 agreement of an artifact with its own source). PyTorch models
take NCHW, Keras models NHWC, as each framework's models want.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workbench.parity import output_errors
from workbench.signature import TensorSpec
from workbench.tasks.base import Task, register

IMAGE_SIZE = 224
N_CLASSES = 1000
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
TORCH_MODELS = {"resnet50": "resnet50", "mobilenet_v3_large": "mobilenet_v3_large"}
KERAS_MODELS = {"resnet50": "ResNet50", "mobilenet_v2": "MobileNetV2"}


def top1_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    return float(np.mean(reference.argmax(axis=1) == candidate.argmax(axis=1)))


def top5_overlap(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Mean fraction of the reference's top-5 classes that the candidate's top-5 contains."""
    ref = np.argsort(-reference, axis=1)[:, :5]
    cand = np.argsort(-candidate, axis=1)[:, :5]
    return float(np.mean([len(set(r) & set(c)) / 5 for r, c in zip(ref, cand, strict=True)]))


@register
class ImageClassificationTask(Task):
    """1000-class ImageNet-style classifiers on 224x224 RGB images."""

    name = "image_classification"
    models = ("resnet50", "mobilenet_v3_large", "mobilenet_v2")
    version = "1"
    parity_samples = 16  # 224x224 CNNs: enough for top-1 agreement, affordable on 2 cores

    def frameworks_for(self, model: str) -> tuple[str, ...]:
        return tuple(
            fw for fw, table in (("torch", TORCH_MODELS), ("keras", KERAS_MODELS)) if model in table
        )

    def input_specs(self, model: str, framework: str = "torch") -> list[TensorSpec]:
        if framework == "keras":
            return [TensorSpec("input", "float32", ("batch", IMAGE_SIZE, IMAGE_SIZE, 3))]
        return [TensorSpec("input", "float32", ("batch", 3, IMAGE_SIZE, IMAGE_SIZE))]

    def make_inputs(
        self, model: str, batch_size: int, seed: int = 0, framework: str = "torch"
    ) -> dict[str, np.ndarray]:
        """Normalized images: uniform pixels in [0, 1], then ImageNet mean/std."""
        rng = np.random.default_rng(seed)
        pixels = rng.random((batch_size, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.float32)
        nhwc = (pixels - MEAN) / STD
        if framework == "keras":
            return {"input": np.ascontiguousarray(nhwc)}
        return {"input": np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))}

    def build_torch(self, model: str) -> Any:
        import torch
        import torchvision

        torch.manual_seed(0)
        return getattr(torchvision.models, TORCH_MODELS[model])(weights=None).eval()

    def build_keras(self, model: str) -> Any:
        import keras

        keras.utils.set_random_seed(0)
        builder = getattr(keras.applications, KERAS_MODELS[model])
        inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="input")
        net = builder(weights=None, input_tensor=inputs, classifier_activation=None)
        return keras.Model(inputs, net.output, name=model)

    def parity(self, reference: list[np.ndarray], candidate: list[np.ndarray]) -> dict[str, Any]:
        ref, cand = np.asarray(reference[0]), np.asarray(candidate[0]).reshape(reference[0].shape)
        return {
            **output_errors(reference, candidate),
            "metric_name": "top1_agreement",
            "metric_value": top1_agreement(ref, cand),
            "top5_overlap": top5_overlap(ref, cand),
        }
