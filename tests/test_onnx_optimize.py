"""ORT's transformer optimizer pass on the real all-MiniLM-L6-v2 encoder (exported once by the
workbench's torch_onnx pass), INT8 on top of the fused graph, the refusal on a graph
without attention, and how sweeps plan the opt-in `onnx-fused` format."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from exporters.base import ArtifactRequest, ExportContext, effective_params
from exporters.onnx_optimize import OnnxTransformerOptimize
from exporters.onnx_quantize import OnnxFusedInt8Dynamic
from exporters.torch_onnx import TorchOnnx
from workbench.errors import UserError
from workbench.manifests import artifact_files
from workbench.models import minilm_encoder as me
from workbench.registry import get_task
from workbench.sweep import TaskSweep, has_pass, plan

SEQ_LEN = 32
SENTENCES = [
    "Love this dress!",
    "",
    "The fabric is thin and the zipper broke after one wash, so I sent it back.",
    "Runs small; order a size up. Colour is exactly as pictured, très jolie 👗",
]


def _ctx(pass_, source, upstream: Path | None, **params) -> ExportContext:
    return ExportContext(
        me.EncoderExportTask(SEQ_LEN),
        "all-MiniLM-L6-v2",
        "torch",
        pass_.precisions[0],
        pass_.check_params(params),
        source,
        upstream,
    )


def _run(path: Path, feed: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, feed)[0]


@pytest.fixture(scope="module")
def encoder():
    return me.keyword_encoder(me.load_bert("eager"))


@pytest.fixture(scope="module")
def feed():
    return me.tokenize(SENTENCES, SEQ_LEN)


@pytest.fixture(scope="module")
def plain(tmp_path_factory, encoder):
    out = tmp_path_factory.mktemp("minilm") / "model.onnx"
    pass_ = TorchOnnx()
    extras = pass_.export(_ctx(pass_, encoder, None, dynamo=False), out)
    assert "TorchScript" in extras["exporter"]
    return out


@pytest.fixture(scope="module")
def fused(plain, encoder):
    out = plain.with_name("fused.onnx")
    pass_ = OnnxTransformerOptimize()
    return out, pass_.export(_ctx(pass_, encoder, plain), out)


def test_optimizer_fuses_attention_layernorm_and_gelu(fused, plain, encoder, feed):
    path, extras = fused
    # six layers: one Attention, one BiasGelu and two SkipLayerNorms each, plus the
    # embeddings' EmbedLayerNormalization
    assert extras["fused_operators"] == {
        "Attention": 6,
        "BiasGelu": 6,
        "EmbedLayerNormalization": 1,
        "SkipLayerNormalization": 12,
    }
    assert (extras["num_heads"], extras["hidden_size"]) == (12, 384)
    assert extras["num_heads_source"] == "model config"
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert {"Attention", "SkipLayerNormalization", "EmbedLayerNormalization"} <= ops
    dims = [d.dim_param for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "sequence"]
    # Same numbers as the plain export and the torch source on real tokens (the second
    # sentence is empty: [CLS] [SEP] and 30 pads). Padded positions are a query nobody
    # reads (mean pooling and token heads mask them); their values depend on how each
    # runtime adds the large negative mask, and differ by ~2e-4 already between torch
    # and the plain export, so they get a looser bound.
    import torch

    with torch.inference_mode():
        reference = encoder(*(torch.from_numpy(v) for v in feed.values())).numpy()
    real = feed["attention_mask"].astype(bool)
    fused_out = _run(path, feed)
    assert fused_out.shape == (len(SENTENCES), SEQ_LEN, 384)
    for candidate in (_run(plain, feed), fused_out):
        assert np.abs(candidate - reference)[real].max() < 1e-4
        assert np.abs(candidate - reference)[~real].max() < 2e-3
    # other sequence lengths and batch sizes run on the same file
    short = me.tokenize(SENTENCES[:2], 7)
    assert _run(path, short).shape == (2, 7, 384)


def test_optimizer_refuses_a_graph_without_attention(tmp_path, encoder):
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor("w", TensorProto.FLOAT, [8, 4], np.ones(32, np.float32))],
    )
    source = tmp_path / "mlp.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), source)
    pass_ = OnnxTransformerOptimize()
    with pytest.raises(UserError, match="fused no attention"):
        pass_.export(_ctx(pass_, None, source), tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_optimizer_params_are_checked():
    with pytest.raises(UserError, match="model_type='resnet'"):
        OnnxTransformerOptimize().check_params({"model_type": "resnet"})
    with pytest.raises(UserError, match="opt_level=3"):
        OnnxTransformerOptimize().check_params({"opt_level": 3})


def test_dynamic_int8_per_channel_on_the_fused_graph(fused, tmp_path, encoder, feed):
    path, _ = fused
    pass_ = OnnxFusedInt8Dynamic()
    out = tmp_path / "int8.onnx"
    extras = pass_.export(_ctx(pass_, encoder, path, per_channel=True), out)
    assert extras["quantized_nodes"] > 0
    assert "QAttention" in extras["int8_op_types"]
    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert "QAttention" in ops
    mask = feed["attention_mask"]
    cosine = me.mean_cosine(
        me.sentence_embeddings(_run(path, feed), mask),
        me.sentence_embeddings(_run(out, feed), mask),
    )
    assert 0.97 < cosine <= 1.0 + 1e-9


# --------------------------------------------------------------------------- planning


def test_onnx_fused_is_opt_in_per_task():
    tabular = get_task("tabular")
    opted_in = SimpleNamespace(pass_params={"onnx_transformer_optimize": {}})
    for precision in ("fp32", "int8-dynamic", "int8-static"):
        assert not has_pass("torch", "onnx-fused", precision, tabular)
        assert has_pass("torch", "onnx-fused", precision, opted_in)
    assert has_pass("torch", "onnx", "int8-dynamic", tabular)
    jobs = plan(TaskSweep("tabular", formats=None, batch_sizes=[1]))
    assert jobs and not [j for j in jobs if j.format == "onnx-fused"]


def test_task_pass_params_sit_under_the_request_params():
    pass_ = TorchOnnx()
    task = SimpleNamespace(pass_params={"torch_onnx": {"dynamo": False, "opset": 17}})
    assert effective_params(pass_, {}, task).to_dict() == {"opset": 17, "dynamo": False}
    assert effective_params(pass_, {"opset": 18}, task).to_dict() == {"opset": 18, "dynamo": False}
    tabular = get_task("tabular")
    request = ArtifactRequest("tabular", "mlp", "torch", "onnx", "fp32")
    key = request.key(pass_, tabular)
    tabular.pass_params = {"torch_onnx": {"dynamo": False}}  # instance attribute only
    assert request.key(pass_, tabular) != key


def test_artifact_files_keep_the_external_data_file(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"graph")
    assert artifact_files(model) == [model]
    data = tmp_path / "model.onnx.data"
    data.write_bytes(b"weights")
    assert artifact_files(model) == [model, data]
