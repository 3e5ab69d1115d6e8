"""The pretrained EfficientNet-Lite0: the packaged PyTorch weights classify real photos,
with the TF-Lite input normalization, and the Keras build reproduces the PyTorch logits.

Keras runs in a child process: TensorFlow and PyTorch never share a process.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.childproc import run_child
from workbench.models.efficientnet_lite import (
    LITE0_MEAN,
    LITE0_STD,
    PHOTO_LABELS,
    keras_layer_name,
    same_padding,
)
from workbench.vision.classify_preprocess import IMAGENET_MEAN, IMAGENET_STD, ClassifyPreprocess
from workbench.vision.photos import photo, photo_names

CATS = {281, 282, 285}  # tabby, tiger cat, Egyptian cat


_child = run_child


def _inputs(names: list[str], mean=LITE0_MEAN, std=LITE0_STD) -> np.ndarray:
    return ClassifyPreprocess(mean=mean, std=std)([photo(n) for n in names])


@pytest.fixture(scope="module")
def torch_lite0():
    pytest.importorskip("torch")
    pytest.importorskip("efficientnet_lite_pytorch")
    from workbench.models.efficientnet_lite import build_torch_lite0

    return build_torch_lite0()


def _probs(model, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(x)).softmax(1).numpy()


def test_padding_and_names_follow_the_package():
    assert same_padding(224, 3, 2) == (0, 1)  # TF SAME: the extra pixel goes after
    assert same_padding(56, 5, 2) == (1, 2)
    assert same_padding(112, 3, 1) == (1, 1)
    assert keras_layer_name("_blocks.3._expand_conv") == "blocks_3_expand_conv"
    assert keras_layer_name("_fc") == "fc"
    assert np.allclose(np.array(LITE0_MEAN) * 255, 127) and np.allclose(
        np.array(LITE0_STD) * 255, 128
    )


def test_torch_lite0_is_relu6_without_se_and_classifies_photos(torch_lite0):
    kinds = {type(m).__name__ for m in torch_lite0.modules()}
    assert "ReLU6" in kinds and not kinds & {"MemoryEfficientSwish", "Swish"}
    assert not any(block.has_se for block in torch_lite0._blocks)
    assert not torch_lite0.training and len(torch_lite0._blocks) == 16
    names = sorted(PHOTO_LABELS)
    probs = _probs(torch_lite0, _inputs(names))
    for name, p in zip(names, probs, strict=True):
        top5 = set(np.argsort(-p)[:5].tolist())
        assert top5 & PHOTO_LABELS[name], (name, sorted(top5))
        assert int(p.argmax()) in PHOTO_LABELS[name], (name, int(p.argmax()))
    chelsea = probs[names.index("chelsea")]
    assert set(np.argsort(-chelsea)[:3].tolist()) == CATS
    # The TF-Lite normalization the weights were trained with puts more probability on
    # the right classes than torchvision's ImageNet mean/std ...
    rejected = _probs(torch_lite0, _inputs(names, IMAGENET_MEAN, IMAGENET_STD))
    right = [sorted(PHOTO_LABELS[n]) for n in names]
    mass = np.mean([p[r].sum() for p, r in zip(probs, right, strict=True)])
    mass_rejected = np.mean([p[r].sum() for p, r in zip(rejected, right, strict=True)])
    assert mass > mass_rejected
    # ... and gives stem activations with the spread the stem BatchNorm was fitted to.
    every = photo_names(colour_only=True)
    assert abs(_stem_log_variance_ratio(torch_lite0, _inputs(every))) < 0.5  # -0.11
    rejected_ratio = _stem_log_variance_ratio(
        torch_lite0, _inputs(every, IMAGENET_MEAN, IMAGENET_STD)
    )
    assert rejected_ratio > 1  # 1.50: inputs 2.2x too large


def _stem_log_variance_ratio(model, x: np.ndarray) -> float:
    """Median over channels of log(variance of the stem conv output / the stem
    BatchNorm's running variance): near 0 when the input is scaled as in training."""
    import torch

    with torch.no_grad():
        z = model._conv_stem(torch.from_numpy(x))
    bn = model._bn0
    live = bn.running_var > 1e-4  # a few channels are dead (variance 0)
    return float((z.var((0, 2, 3)) / bn.running_var)[live].log().median())


def test_keras_lite0_matches_torch(torch_lite0, tmp_path):
    """The Keras build with the folded PyTorch weights gives the same logits (NHWC)."""
    import torch

    from workbench.models.efficientnet_lite import lite0_fused_state

    x = _inputs(["chelsea", "coffee"])
    with torch.no_grad():
        y = torch_lite0(torch.from_numpy(x)).numpy()
    npz = tmp_path / "lite0.npz"
    state = lite0_fused_state(torch_lite0)
    np.savez(npz, x=x, y=y, **{"w:" + k: v for k, v in state.items()})
    out = _child(
        f"""
        import json, sys, numpy as np
        from workbench.models.efficientnet_lite import build_keras_lite0
        data = np.load({str(npz)!r})
        state = {{k[2:]: data[k] for k in data.files if k.startswith("w:")}}
        model = build_keras_lite0(state)
        y = np.asarray(model(data["x"].transpose(0, 2, 3, 1), training=False))
        print(json.dumps({{"shape": list(y.shape), "err": float(np.abs(y - data["y"]).max()),
                          "top1": y.argmax(1).tolist(), "input": model.inputs[0].name,
                          "input_shape": list(model.inputs[0].shape[1:]),
                          "torch_loaded": "torch" in sys.modules}}))
        """
    )
    assert out["shape"] == [2, 1000] and not out["torch_loaded"]
    assert out["input"] == "input" and out["input_shape"] == [224, 224, 3]
    assert out["err"] < 1e-3 * max(1.0, float(np.abs(y).max()))
    assert out["top1"] == y.argmax(1).tolist()
