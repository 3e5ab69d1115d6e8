"""Build the example models and their data, offline and deterministically.

"Your own model" needs models nobody here has to train or download: this script makes
them from architectures and configs (random weights, seeded) and, for the digits models,
a few seconds of training on scikit-learn's bundled 8x8 digits, so that those have a real
held-out accuracy. Everything is written under one directory per version of this script
and of `torch_factory.py` (their sha256), default `~/.cache/workbench/examples/<digest>`
(or `$WORKBENCH_EXAMPLES/<digest>`), and `manifest.json` there says what each example is:

    python examples/make_examples.py            # build if missing, print the directory
    python examples/make_examples.py --root DIR # under DIR/<digest> instead

`make setup` runs it once; `ensure_examples()` builds on first use otherwise, under a
file lock so that parallel tests or notebooks build it once. A build goes to a temporary
directory renamed into place at the end, so a half-built directory is never used.

Data for every example (`.npz`, first axis = batch, keys = the model's input names):
`sample.npz` (one batch, for input-spec inference), `evaluation/` (shards with true
`labels`) and `calibration/` (shards without labels). The labels are the truth of the
data; the random-weight models are untrained, so their accuracy is near chance: they are
there to exercise export, quantization, parity and the accuracy gate, not to score.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SCRIPTS = (HERE / "make_examples.py", HERE / "torch_factory.py")
SEED = 20231
IMAGE_CLASSES = 10
# A toy sentiment task for the text models: the words of a sentence say its label.
POSITIVE = ["good", "great", "fine", "happy", "nice", "love", "best", "fun"]
NEGATIVE = ["bad", "awful", "poor", "sad", "ugly", "hate", "worst", "dull"]
NEUTRAL = ["the", "a", "movie", "film", "was", "is", "very", "really", "this", "plot", "it"]
NEUTRAL += ["and", "so", "quite", "story", "actors", "music", "ending"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SEQUENCE = 16


def digest() -> str:
    """sha256 (16 hex) of this script and the factories: a change rebuilds."""
    h = hashlib.sha256()
    for path in SCRIPTS:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def default_root() -> Path:
    env = os.environ.get("WORKBENCH_EXAMPLES")
    return Path(env) if env else Path.home() / ".cache" / "workbench" / "examples"


def ensure_examples(root: Path | str | None = None) -> Path:
    """The examples directory for this version, built first if missing (file-locked)."""
    from filelock import FileLock

    root = Path(root) if root is not None else default_root()
    dest = root / digest()
    if (dest / "manifest.json").is_file():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{dest.name}.lock"), timeout=1800):
        if (dest / "manifest.json").is_file():
            return dest
        tmp = root / f".{dest.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        build(tmp)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    return dest


def manifest(root: Path | str | None = None) -> dict[str, dict[str, Any]]:
    """Each example's entry with paths made absolute: data and files under the examples
    directory, PyTorch factories as `<this repo>/examples/torch_factory.py:NAME`."""
    dest = ensure_examples(root)
    entries = json.loads((dest / "manifest.json").read_text())["examples"]
    for entry in entries.values():
        for key in ("sample", "evaluation", "calibration", "texts", "images"):
            if entry.get(key):
                entry[key] = str(dest / entry[key])
        if entry["kind"] == "torch":
            entry["source"] = f"{HERE / 'torch_factory.py'}:{entry['source']}"
        else:
            entry["source"] = str(dest / entry["source"])
    return entries


# --------------------------------------------------------------------------- data


def _save(dest: Path, rel: str, arrays: dict[str, np.ndarray]) -> str:
    path = dest / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return rel


def _data(
    dest: Path,
    name: str,
    inputs: dict[str, np.ndarray],
    labels: np.ndarray,
    sample: int = 4,
    shards: int = 2,
    calibration: dict[str, np.ndarray] | None = None,
) -> dict[str, str]:
    """sample.npz (first `sample` rows), evaluation/ shards (inputs + labels) and
    calibration/ shards (inputs only: `calibration`, else the evaluation inputs)."""
    base = f"data/{name}"
    _save(dest, f"{base}/sample.npz", {k: v[:sample] for k, v in inputs.items()})
    rows = len(labels)
    for i, part in enumerate(np.array_split(np.arange(rows), shards)):
        shard = {k: v[part] for k, v in inputs.items()}
        _save(dest, f"{base}/evaluation/part-{i}.npz", {**shard, "labels": labels[part]})
    cal = calibration if calibration is not None else inputs
    cal_rows = len(next(iter(cal.values())))
    for i, part in enumerate(np.array_split(np.arange(cal_rows), shards)):
        _save(dest, f"{base}/calibration/part-{i}.npz", {k: v[part] for k, v in cal.items()})
    return {
        "sample": f"{base}/sample.npz",
        "evaluation": f"{base}/evaluation",
        "calibration": f"{base}/calibration",
    }


def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits, scaled to 0..1, shuffled with a fixed seed:
    (x_train, y_train, x_test, y_test) with 1400 training rows."""
    from sklearn.datasets import load_digits

    data = load_digits()
    order = np.random.default_rng(SEED).permutation(len(data.target))
    x = (data.data[order] / 16.0).astype(np.float32)
    y = data.target[order].astype(np.int64)
    return x[:1400], y[:1400], x[1400:], y[1400:]


def stripes(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, size, size, 3) in 0..255 whose class is the row band holding a bright
    stripe, with noise: a labelled image task with nothing to download."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, IMAGE_CLASSES, n).astype(np.int64)
    images = rng.uniform(0, 80, (n, size, size, 3))
    band = size / IMAGE_CLASSES
    for i, c in enumerate(labels):
        images[i, int(c * band) : max(int((c + 1) * band), int(c * band) + 1)] += 150
    return images.clip(0, 255).round().astype(np.float32), labels  # whole values: PNG-exact


def nchw(images: np.ndarray) -> np.ndarray:
    """NHWC 0..255 to NCHW in -1..1."""
    return (images.transpose(0, 3, 1, 2) / 127.5 - 1.0).astype(np.float32)


def sentences(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Short sentences labelled 1 when their sentiment words are positive, else 0."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n).astype(np.int64)
    texts = []
    for label in labels:
        words = list(rng.choice(NEUTRAL, int(rng.integers(3, 8))))
        for _ in range(int(rng.integers(1, 3))):
            words.insert(
                int(rng.integers(0, len(words) + 1)), rng.choice(POSITIVE if label else NEGATIVE)
            )
        texts.append(" ".join(words))
    return texts, labels


# ------------------------------------------------------------------------- models


def build_torch(dest: Path) -> dict[str, dict[str, Any]]:
    import torch

    sys.path.insert(0, str(HERE))
    try:
        import torch_factory
    finally:
        sys.path.remove(str(HERE))
    x_train, y_train, x_test, y_test = digits()
    model = torch_factory.digits_mlp().train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
        xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
        for _ in range(150):  # full batch: deterministic, well under a second
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(model(xt), yt).backward()
            optimiser.step()
    model.eval()
    (dest / "torch").mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), dest / "torch" / "digits_mlp.pt")
    with torch.no_grad():
        accuracy = float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
    digits_data = _data(
        dest, "digits", {"features": x_test}, y_test, 8, 2, {"features": x_train[:256]}
    )

    images, labels = stripes(64, 32, SEED)
    image_data = _data(dest, "stripes32", {"pixel_values": nchw(images)}, labels)
    big, big_labels = stripes(16, 64, SEED + 1)
    resnet_data = _data(dest, "stripes64", {"x": nchw(big)}, big_labels)
    return {
        "torch-tiny-cnn": {
            "kind": "torch",
            "source": "tiny_cnn",
            **image_data,
            "metric": "top-1",
            "note": "random weights (untrained): accuracy near chance",
        },
        "torch-digits-mlp": {
            "kind": "torch",
            "source": "digits_mlp_trained",
            **digits_data,
            "metric": "top-1",
            "accuracy": accuracy,
            "note": "trained here on sklearn digits; weights torch/digits_mlp.pt (state_dict)",
        },
        "torch-resnet18": {
            "kind": "torch",
            "source": "resnet18",
            **resnet_data,
            "metric": "top-1",
            "note": "torchvision ResNet-18, random weights, 10 classes, 64x64 inputs",
        },
    }


def build_keras(dest: Path) -> dict[str, dict[str, Any]]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    x_train, y_train, x_test, y_test = digits()
    inputs = keras.Input((64,), name="features")
    hidden = keras.layers.Dense(64, activation="relu", name="hidden")(inputs)
    logits = keras.layers.Dense(10, name="logits")(hidden)
    model = keras.Model(inputs, logits, name="digits_functional")
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x_train, y_train, batch_size=1400, epochs=150, verbose=0, shuffle=False)
    accuracy = float((model.predict(x_test, verbose=0).argmax(1) == y_test).mean())
    (dest / "keras").mkdir(parents=True, exist_ok=True)
    model.save(dest / "keras" / "digits_functional.keras")
    model.export(str(dest / "keras" / "digits_savedmodel"), format="tf_saved_model", verbose=False)
    digits_data = _data(
        dest, "digits", {"features": x_test}, y_test, 8, 2, {"features": x_train[:256]}
    )

    image = keras.Input((96, 96, 3), name="image")
    mobilenet = keras.applications.MobileNetV3Small(
        input_tensor=image, weights=None, classes=IMAGE_CLASSES, include_preprocessing=True
    )
    mobilenet.save(dest / "keras" / "mobilenet_v3_small.keras")
    images, labels = stripes(32, 96, SEED + 2)
    mobile_data = _data(dest, "stripes96", {"image": images}, labels)
    return {
        "keras-digits": {
            "kind": "keras",
            "source": "keras/digits_functional.keras",
            **digits_data,
            "metric": "top-1",
            "accuracy": accuracy,
            "note": "functional Keras model trained here on sklearn digits",
        },
        "keras-digits-savedmodel": {
            "kind": "savedmodel",
            "source": "keras/digits_savedmodel",
            **digits_data,
            "metric": "top-1",
            "accuracy": accuracy,
            "note": "the same model exported as a TensorFlow SavedModel (serving_default)",
        },
        "keras-mobilenet-v3-small": {
            "kind": "keras",
            "source": "keras/mobilenet_v3_small.keras",
            **mobile_data,
            "metric": "top-1",
            "note": "keras.applications MobileNetV3Small, weights=None, 96x96, 10 classes; "
            "inputs 0..255 (the model rescales)",
        },
    }


def build_hf(dest: Path) -> dict[str, dict[str, Any]]:
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        BertTokenizerFast,
        ViTConfig,
        ViTForImageClassification,
        ViTImageProcessor,
    )

    vocab = {token: i for i, token in enumerate(SPECIAL + sorted({*POSITIVE, *NEGATIVE, *NEUTRAL}))}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    fast = BertTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    )
    bert_dir = dest / "hf" / "bert-tiny-sentiment"
    fast.save_pretrained(bert_dir)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        BertForSequenceClassification(config).eval().save_pretrained(bert_dir)
    texts, labels = sentences(64, SEED)
    encoded = fast(
        texts, padding="max_length", truncation=True, max_length=SEQUENCE, return_tensors="np"
    )
    text_inputs = {k: np.asarray(v, dtype=np.int64) for k, v in encoded.items()}
    text_data = _data(dest, "sentiment", text_inputs, labels)
    (dest / "data" / "sentiment" / "texts.json").write_text(
        json.dumps({"texts": texts, "labels": labels.tolist()}, indent=1)
    )

    vit_dir = dest / "hf" / "vit-tiny-stripes"
    vit_config = ViTConfig(
        image_size=32,
        patch_size=8,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=IMAGE_CLASSES,
        id2label={i: f"band_{i}" for i in range(IMAGE_CLASSES)},
        label2id={f"band_{i}": i for i in range(IMAGE_CLASSES)},
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        ViTForImageClassification(vit_config).eval().save_pretrained(vit_dir)
    processor = ViTImageProcessor(
        do_resize=True,
        size={"height": 32, "width": 32},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    processor.save_pretrained(vit_dir)
    images, image_labels = stripes(32, 32, SEED + 3)
    vit_data = _data(dest, "vit-stripes32", {"pixel_values": nchw(images)}, image_labels)
    image_dir = dest / "data" / "vit-stripes32" / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    for i in range(4):
        Image.fromarray(images[i].astype(np.uint8)).save(
            image_dir / f"{i:02d}-band_{image_labels[i]}.png"
        )
    return {
        "hf-bert-tiny": {
            "kind": "hf",
            "source": "hf/bert-tiny-sentiment",
            "task": "text-classification",
            **text_data,
            "texts": "data/sentiment/texts.json",
            "metric": "top-1",
            "note": "BertConfig 2 layers x 32, random weights; WordPiece tokenizer built with "
            f"`tokenizers` over {len(vocab)} words; inputs padded to {SEQUENCE} tokens",
        },
        "hf-vit-tiny": {
            "kind": "hf",
            "source": "hf/vit-tiny-stripes",
            "task": "image-classification",
            **vit_data,
            "images": "data/vit-stripes32/images",
            "metric": "top-1",
            "note": "ViTConfig 32x32, patch 8, 2 layers x 32, random weights, ViTImageProcessor",
        },
    }


def build_onnx(dest: Path) -> dict[str, dict[str, Any]]:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    x_train, y_train, x_test, y_test = digits()
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=SEED)
    with warnings.catch_warnings():  # 300 iterations reach ~97 %; "not converged" is noise
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x_train, y_train)
    accuracy = float(clf.score(x_test, y_test))
    onnx_model = convert_sklearn(
        clf,
        initial_types=[("features", FloatTensorType([None, 64]))],
        name="digits_sklearn_mlp",  # else a random graph name: the file would differ per build
        options={id(clf): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    (dest / "onnx").mkdir(parents=True, exist_ok=True)
    (dest / "onnx" / "digits_sklearn_mlp.onnx").write_bytes(onnx_model.SerializeToString())
    digits_data = _data(
        dest, "digits", {"features": x_test}, y_test, 8, 2, {"features": x_train[:256]}
    )
    return {
        "onnx-sklearn-digits": {
            "kind": "onnx",
            "source": "onnx/digits_sklearn_mlp.onnx",
            **digits_data,
            "metric": "top-1",
            "output": "probabilities",
            "accuracy": accuracy,
            "note": "scikit-learn MLPClassifier trained here on digits, converted by skl2onnx; "
            "outputs 'label' (int64) and 'probabilities'",
        },
    }


BUILDERS: dict[str, Callable[[Path], dict[str, dict[str, Any]]]] = {
    "torch": build_torch,
    "onnx": build_onnx,
    "hf": build_hf,
    "keras": build_keras,
}


def build(dest: Path) -> dict[str, Any]:
    """Build every example into `dest` and write its manifest.json."""
    dest.mkdir(parents=True, exist_ok=True)
    start, cpu_start = time.perf_counter(), time.process_time()
    examples: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for name, builder in BUILDERS.items():
        t0, c0 = time.perf_counter(), time.process_time()
        examples.update(builder(dest))
        seconds[name] = round(time.perf_counter() - t0, 2)
        cpu[name] = round(time.process_time() - c0, 2)
    manifest = {
        "digest": digest(),
        "build_seconds": {**seconds, "total": round(time.perf_counter() - start, 2)},
        "build_cpu_seconds": {**cpu, "total": round(time.process_time() - cpu_start, 2)},
        "examples": examples,
    }
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None, help="default: " + str(default_root()))
    args = parser.parse_args(argv)
    print(ensure_examples(args.root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
