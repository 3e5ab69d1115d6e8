"""Hugging Face directories of the image-classification and token-classification kinds
as a user's model (#23): the task comes from `architectures`, the spec from a probe on
the directory's own tokenizer (or a batch of pixels), and the ONNX export and its
dynamic INT8 each pass parity against the PyTorch model.

The directories are built here from transformers configs with random weights and a
WordPiece tokenizer made with `tokenizers` (nothing downloaded). The probe and the
exports run in this process through the same functions the worker processes run
(`probe`, the pass's `export`, `check_parity`), so torch loads once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workbench.usermodel import workflow
from workbench.usermodel.probe import probe
from workbench.usermodel.source import hf_config, hf_task_of

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "dog"]
pytestmark = pytest.mark.slow  # loads torch and transformers


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory) -> dict[str, Path]:
    import torch  # lazy: torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import (  # lazy: transformers
        BertConfig,
        BertForTokenClassification,
        PreTrainedTokenizerFast,
        ViTConfig,
        ViTForImageClassification,
        ViTImageProcessor,
    )

    root = tmp_path_factory.mktemp("hf")
    vocab = {w: i for i, w in enumerate(WORDS)}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=32,
    )
    ner = root / "bert-ner"
    fast.save_pretrained(ner)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=3,
    )
    BertForTokenClassification(config).eval().save_pretrained(ner)
    vit = root / "vit-tiny"
    vit_config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=4,
    )
    ViTForImageClassification(vit_config).eval().save_pretrained(vit)
    ViTImageProcessor(
        size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    ).save_pretrained(vit)
    pixels = np.random.default_rng(0).uniform(-1, 1, (4, 3, 32, 32)).astype("float32")
    np.savez(root / "pixels.npz", pixel_values=pixels)
    return {"ner": ner, "vit": vit, "pixels": root / "pixels.npz", "root": root}


def _init(monkeypatch, tmp_path: Path, source: Path, **kwargs):
    """`init_spec` as the CLI runs it, with the probe in this process."""
    monkeypatch.setattr(workflow, "run_probe", probe)
    spec, _ = workflow.init_spec(str(source), tmp_path / f"{source.name}.yaml", **kwargs)
    return spec


def _export_with_parity(monkeypatch, tmp_path: Path, spec, fmt_precisions):
    """Each (format, precision) exported by its pass and checked against the model, as
    the export worker does (`exporters.worker.run_job`), upstream artifacts first."""
    from exporters.base import ExportContext, effective_params, find_pass
    from exporters.worker import check_parity
    from workbench.registry import get_task
    from workbench.usermodel.task import SPECS_ENV, register

    monkeypatch.setenv(SPECS_ENV, "")
    name = register(spec)
    task = get_task(name)
    source = task.build("torch", name)
    made: dict[tuple[str, str], Path] = {}
    rows = {}
    for fmt, precision in fmt_precisions:
        pass_ = find_pass("torch", fmt, precision)
        out = tmp_path / f"{fmt}-{precision}" / pass_.filename
        out.parent.mkdir()
        ctx = ExportContext(
            task,
            name,
            "torch",
            precision,
            effective_params(pass_, {}, task),
            source,
            made.get(pass_.upstream) if pass_.upstream else None,
        )
        extras = pass_.export(ctx, out)
        made[fmt, precision] = out
        rows[fmt, precision] = {
            **extras,
            **check_parity(task, name, "torch", source, fmt, out, precision),
        }
    return rows


def test_token_classification_directory_end_to_end(hf_dirs, monkeypatch, tmp_path):
    assert hf_task_of(hf_config(hf_dirs["ner"])) == "token-classification"
    spec = _init(monkeypatch, tmp_path, hf_dirs["ner"], texts=["the cat sat on the mat", "the dog"])
    assert spec.hf["task"] == "token-classification" and spec.hf["optimizer_model_type"] == "bert"
    assert [(s.name, s.shape) for s in spec.inputs] == [
        ("input_ids", ("batch", "sequence")),
        ("attention_mask", ("batch", "sequence")),
    ]
    # one label per token: the sequence axis runs through to the output
    assert [(s.name, s.shape) for s in spec.outputs] == [("logits", ("batch", "sequence", 3))]
    assert spec.dims == {"sequence": 8}  # [CLS] the cat sat on the mat [SEP], padded
    rows = _export_with_parity(
        monkeypatch, tmp_path, spec, [("onnx", "fp32"), ("onnx", "int8-dynamic")]
    )
    fp32, int8 = rows["onnx", "fp32"], rows["onnx", "int8-dynamic"]
    assert "dynamo=False" in fp32["exporter"]  # the exporter whose attention ORT fuses
    assert fp32["parity_pass"] is True and fp32["parity_max_abs_error"] < 1e-4
    assert int8["parity_pass"] is True, int8["parity_reason"]
    assert int8["parity_metric_name"] == "min_cosine_similarity"
    assert 0.95 < int8["parity_metric_value"] <= 1.0 + 1e-9
    import onnx  # lazy: onnx

    graph = onnx.load(str(tmp_path / "onnx-fp32" / "model.onnx")).graph
    dims = {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*graph.input, *graph.output]
    }
    assert dims["input_ids"] == ["batch", "sequence"]
    assert dims["logits"][:2] == ["batch", "sequence"] and dims["logits"][2] == 3


def test_image_classification_directory_end_to_end(hf_dirs, monkeypatch, tmp_path):
    config = hf_config(hf_dirs["vit"])
    assert config["architectures"] == ["ViTForImageClassification"]
    assert hf_task_of(config) == "image-classification"
    spec = _init(monkeypatch, tmp_path, hf_dirs["vit"], sample=str(hf_dirs["pixels"]))
    assert spec.hf["task"] == "image-classification" and spec.hf["model_type"] == "vit"
    assert [(s.name, s.dtype, s.shape) for s in spec.inputs] == [
        ("pixel_values", "float32", ("batch", 3, 32, 32))
    ]
    assert [(s.name, s.shape) for s in spec.outputs] == [("logits", ("batch", 4))]
    rows = _export_with_parity(
        monkeypatch, tmp_path, spec, [("onnx", "fp32"), ("onnx", "int8-dynamic")]
    )
    fp32, int8 = rows["onnx", "fp32"], rows["onnx", "int8-dynamic"]
    assert fp32["parity_pass"] is True and fp32["parity_max_abs_error"] < 1e-4
    assert fp32["parity_metric_name"] == "top1_agreement"
    assert int8["parity_pass"] is True, int8["parity_reason"]
    assert int8["parity_samples"] == 4


def test_an_image_classifier_samples_the_users_images(hf_dirs, monkeypatch, tmp_path):
    from PIL import Image  # lazy: PIL (a transformers dependency here)

    from workbench.errors import UserError

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(3)
    for i, size in enumerate([(40, 30), (32, 32), (64, 48)]):  # the processor resizes
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(photos / f"{i}.png")
    (photos / "notes.txt").write_text("not an image")
    spec = _init(monkeypatch, tmp_path, hf_dirs["vit"], images=[str(photos)])
    assert [(s.name, s.shape) for s in spec.inputs] == [("pixel_values", ("batch", 3, 32, 32))]
    sample = np.load(spec.resolve(spec.sample))["pixel_values"]
    assert sample.shape == (3, 3, 32, 32)
    assert -1.0 <= sample.min() and sample.max() <= 1.0  # the processor's normalisation
    with pytest.raises(UserError, match="--images"):
        _init(monkeypatch, tmp_path / "none", hf_dirs["vit"])
    with pytest.raises(UserError, match="notes.txt' is not a readable image"):
        _init(monkeypatch, tmp_path, hf_dirs["vit"], images=[str(photos / "notes.txt")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no image files there"):
        _init(monkeypatch, tmp_path, hf_dirs["vit"], images=[str(tmp_path / "empty")])
