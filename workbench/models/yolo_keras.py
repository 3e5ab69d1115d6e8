"""The same YOLOv8-style detector in Keras 3 layers (NHWC), able to take the PyTorch
model's trained weights.

Layer for layer as `workbench.models.yolo_torch` (BatchNorm folded into the
convolutions, as that module's inference build): Conv2D + SiLU, C2f, SPPF, PAN-FPN
neck, decoupled DFL head. Two details keep the two frameworks numerically equal:

* strided convolutions pad explicitly by k//2 on every side (PyTorch's padding);
  Keras' ``padding="same"`` with stride 2 would pad only bottom/right;
* the head's maps are flattened row-major per level like PyTorch's ``flatten(2)``
  and the output is transposed to the same ``[B, 4 + C, N]`` layout, boxes
  normalized by the input size.

Weights come as the NumPy arrays of `yolo_torch.fused_state` (saved to .npz by the
PyTorch process, loaded here: the two frameworks never share a process); kernels are
transposed OIHW -> HWIO.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from workbench.models.yolo_config import STRIDES, YoloConfig, anchor_points, keras_layer_name


def _conv(x: Any, name: str, c_out: int, k: int = 1, s: int = 1, act: bool = True) -> Any:
    if s > 1 and k > 1:
        x = keras.layers.ZeroPadding2D(k // 2, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same" if k > 1 else "valid"
    x = keras.layers.Conv2D(c_out, k, s, padding=padding, use_bias=True, name=name)(x)
    return keras.layers.Activation("silu", name=f"{name}_silu")(x) if act else x


def _c2f(x: Any, name: str, c_out: int, n: int, shortcut: bool) -> Any:
    c = c_out // 2
    y = _conv(x, f"{name}_cv1", 2 * c)
    ys = [y[..., :c], y[..., c:]]
    for i in range(n):
        h = _conv(ys[-1], f"{name}_m_{i}_cv1", c, 3)
        h = _conv(h, f"{name}_m_{i}_cv2", c, 3)
        ys.append(keras.layers.Add(name=f"{name}_m_{i}_add")([ys[-1], h]) if shortcut else h)
    return _conv(keras.layers.Concatenate(name=f"{name}_cat")(ys), f"{name}_cv2", c_out)


def _sppf(x: Any, name: str, c_out: int, c_in: int) -> Any:
    ys = [_conv(x, f"{name}_cv1", c_in // 2)]
    for i in range(3):
        ys.append(keras.layers.MaxPooling2D(5, 1, padding="same", name=f"{name}_pool{i}")(ys[-1]))
    return _conv(keras.layers.Concatenate(name=f"{name}_cat")(ys), f"{name}_cv2", c_out)


def build_yolo_keras(
    cfg: YoloConfig, weights: Mapping[str, np.ndarray] | None = None, name: str = "yolov8"
) -> keras.Model:
    """The detector for cfg.image_size NHWC inputs in 0..1 -> [B, 4 + C, N]; with
    `weights` (a fused PyTorch state as NumPy arrays), those weights are copied in."""
    w, d, size = cfg.widths, cfg.depths, cfg.image_size
    up = keras.layers.UpSampling2D(2, interpolation="nearest")
    images = keras.Input((size, size, 3), name="images", dtype="float32")
    x = _conv(images, "stem", w[0], 3, 2)
    x = _c2f(_conv(x, "down2", w[1], 3, 2), "c2f2", w[1], d[0], True)
    p3 = _c2f(_conv(x, "down3", w[2], 3, 2), "c2f3", w[2], d[1], True)
    p4 = _c2f(_conv(p3, "down4", w[3], 3, 2), "c2f4", w[3], d[2], True)
    p5 = _sppf(_c2f(_conv(p4, "down5", w[4], 3, 2), "c2f5", w[4], d[3], True), "sppf", w[4], w[4])
    cat = keras.layers.Concatenate
    t4 = _c2f(cat(name="top4_in")([up(p5), p4]), "top4", w[3], 1, False)
    n3 = _c2f(cat(name="top3_in")([up(t4), p3]), "top3", w[2], 1, False)
    n4 = _c2f(
        cat(name="bottom4_in")([_conv(n3, "bottom_down3", w[2], 3, 2), t4]),
        "bottom4",
        w[3],
        1,
        False,
    )
    n5 = _c2f(
        cat(name="bottom5_in")([_conv(n4, "bottom_down4", w[3], 3, 2), p5]),
        "bottom5",
        w[4],
        1,
        False,
    )
    c_box, c_cls = cfg.head_channels
    box_maps, cls_maps = [], []
    for level, (feat, stride) in enumerate(zip((n3, n4, n5), STRIDES, strict=True)):
        cells = (size // stride) ** 2
        b = _conv(feat, f"head_box_{level}_0", c_box, 3)
        b = _conv(b, f"head_box_{level}_1", c_box, 3)
        b = _conv(b, f"head_box_{level}_2", 4 * cfg.reg_max, 1, act=False)
        c = _conv(feat, f"head_cls_{level}_0", c_cls, 3)
        c = _conv(c, f"head_cls_{level}_1", c_cls, 3)
        c = _conv(c, f"head_cls_{level}_2", cfg.num_classes, 1, act=False)
        box_maps.append(keras.layers.Reshape((cells, 4 * cfg.reg_max), name=f"box_flat{level}")(b))
        cls_maps.append(keras.layers.Reshape((cells, cfg.num_classes), name=f"cls_flat{level}")(c))
    box_logits = cat(axis=1, name="box_logits")(box_maps)  # [B, N, 4 * reg_max]
    cls_logits = cat(axis=1, name="cls_logits")(cls_maps)  # [B, N, C]
    n = cfg.num_anchors
    prob = keras.layers.Softmax(axis=-1, name="dfl_softmax")(
        keras.layers.Reshape((n, 4, cfg.reg_max), name="dfl_bins")(box_logits)
    )
    points, strides = anchor_points(size)
    proj = np.arange(cfg.reg_max, dtype=np.float32)
    dist = keras.ops.sum(prob * proj, axis=-1) * strides[:, None]  # [B, N, 4] pixels
    lt, rb = dist[..., :2], dist[..., 2:]
    boxes = keras.ops.concatenate([(rb - lt) / 2 + points, lt + rb], axis=-1) / np.float32(size)
    scores = keras.layers.Activation("sigmoid", name="scores")(cls_logits)
    out = keras.ops.transpose(keras.ops.concatenate([boxes, scores], axis=-1), (0, 2, 1))
    model = keras.Model(images, out, name=name)
    if weights is not None:
        load_torch_weights(model, weights)
    return model


def load_torch_weights(model: keras.Model, state: Mapping[str, np.ndarray]) -> None:
    """Copy a fused PyTorch state (NumPy arrays, OIHW kernels) into the Keras layers."""
    layers: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        layer, kind = keras_layer_name(key)
        value = np.asarray(value, dtype=np.float32)
        layers.setdefault(layer, {})[kind] = (
            value.transpose(2, 3, 1, 0) if kind == "kernel" else value
        )
    convs = {layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)}
    if set(layers) != convs:
        raise ValueError(
            "PyTorch and Keras detectors differ: only in PyTorch "
            f"{sorted(set(layers) - convs)[:5]}, only in Keras {sorted(convs - set(layers))[:5]}"
        )
    for name, params in layers.items():
        model.get_layer(name).set_weights([params["kernel"], params["bias"]])
