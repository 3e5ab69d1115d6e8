"""A TensorFlow SavedModel directory as the *source* of a user's model (#23): its
input spec comes from the serving signature and one real batch, and it is re-exported
to TFLite (`TFLiteConverter.from_saved_model`) and ONNX (tf2onnx's SavedModel loader),
and from that ONNX file to OpenVINO (IR, bf16, NNCF static INT8), each artifact checked
against the SavedModel itself.

The example SavedModel of `examples/make_examples.py` (the digits MLP trained there,
with labelled evaluation data). The exports run in this process through the export
worker's own `run_job` (the CLI runs the same function in a child process), so
TensorFlow loads once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.support.examples import examples_manifest
from workbench.errors import UserError
from workbench.runtimes.openvino_runtime import bf16_reason
from workbench.runtimes.tf_runtime import import_tensorflow
from workbench.usermodel.source import parse_source

pytestmark = pytest.mark.slow  # loads TensorFlow


@pytest.fixture(scope="module")
def examples() -> dict[str, dict[str, Any]]:
    return examples_manifest()


@pytest.fixture(scope="module")
def entry(examples) -> dict[str, Any]:
    return examples["keras-digits-savedmodel"]


def test_a_savedmodel_directory_is_a_source(entry, tmp_path):
    source = parse_source(entry["source"])
    assert source.kind == "savedmodel" and Path(source.target).is_dir()
    assert len(source.digest()) == 16
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="saved_model.pb"):
        parse_source(str(tmp_path / "empty"))


def test_the_probe_reads_the_serving_signature(entry):
    from workbench.usermodel.probe import probe

    source = parse_source(entry["source"]).to_json()
    found = probe({"source": source, "sample": entry["sample"]})
    assert found["framework"] == "savedmodel"
    assert found["inputs"] == [{"name": "features", "dtype": "float32", "shape": ["batch", 64]}]
    assert found["outputs"] == [{"name": "output_0", "dtype": "float32", "shape": ["batch", 10]}]
    with pytest.raises(UserError, match=r"'serving_default' takes features: float32 \[None, 64\]"):
        probe({"source": source})


def test_a_keras_models_outputs_keep_their_own_names(examples):
    """The spec names a Keras model's output as the model does (`logits`), which is also
    the name tf2onnx gives the ONNX output, and so what `serve` answers with."""
    from workbench.usermodel.probe import probe

    keras_entry = examples["keras-digits"]
    source = parse_source(keras_entry["source"]).to_json()
    found = probe({"source": source, "sample": keras_entry["sample"]})
    assert [o["name"] for o in found["outputs"]] == ["logits"]


def test_reexported_to_tflite_onnx_and_openvino_each_checked_against_it(
    entry, tmp_path, monkeypatch
):
    from exporters.worker import run_job
    from workbench.usermodel.spec import load_spec
    from workbench.usermodel.task import SPECS_ENV, register

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(SPECS_ENV, "")
    source = parse_source(entry["source"])
    spec_path = tmp_path / "sm.yaml"
    spec_path.write_text(
        yaml.safe_dump(
            {
                "name": "digits_sm",
                "source": {**source.to_json(), "digest": source.digest()},
                "framework": "savedmodel",
                "inputs": [{"name": "features", "dtype": "float32", "shape": ["batch", 64]}],
                "outputs": [{"name": "output_0", "dtype": "float32", "shape": ["batch", 10]}],
                "data": {
                    "sample": entry["sample"],
                    "evaluation": entry["evaluation"],
                    "calibration": entry["calibration"],
                },
                "metric": "top-1",
            }
        )
    )
    name = register(load_spec(str(spec_path)))
    rows = {}
    for fmt, precision, pass_name in [
        ("tflite", "fp32", "savedmodel_tflite"),
        ("tflite", "int8-dynamic", "savedmodel_tflite_int8_dynamic"),
        ("onnx", "fp32", "savedmodel_onnx"),
        # OpenVINO converts the tf2onnx export; bf16 and NNCF INT8 build on that IR
        ("openvino", "fp32", "openvino_ir"),
        ("openvino", "bf16", "openvino_bf16"),
        ("openvino", "int8-static", "openvino_int8_static"),
    ]:
        out = tmp_path / f"{fmt}-{precision}"
        out.mkdir()
        rows[fmt, precision] = run_job(
            {
                "task": name,
                "model": name,
                "source_framework": "savedmodel",
                "format": fmt,
                "precision": precision,
                "pass": pass_name,
                "params": {},
                "path": str(out / ("model.xml" if fmt == "openvino" else "model." + fmt)),
            }
        )
    if bf16_reason():  # a CPU without bf16 instructions: the row says why
        bf16 = rows.pop(("openvino", "bf16"))
        assert bf16["status"] == "unavailable" and bf16["error"] == bf16_reason()
    for key, row in rows.items():
        assert row["status"] == "ok" and row["parity_pass"] is True, (key, row.get("error"))
        assert row["parity_samples"] > 100  # the labelled evaluation set, not a toy batch
        assert row["accuracy_source"] == pytest.approx(entry["accuracy"], abs=1e-6)
    assert "from_saved_model" in rows["tflite", "fp32"]["exporter"]
    assert "from_saved_model" in rows["tflite", "int8-dynamic"]["exporter"]
    assert rows["tflite", "int8-dynamic"]["quantized_tensors"] > 0
    assert rows["tflite", "fp32"]["parity_max_abs_error"] < 1e-4
    onnx_row = rows["onnx", "fp32"]
    assert "tf2onnx" in onnx_row["exporter"] and onnx_row["output_names"] == ["output_0"]
    assert onnx_row["parity_max_abs_error"] < 1e-4
    assert onnx_row["accuracy_artifact"] == pytest.approx(onnx_row["accuracy_source"])
    import onnx  # lazy: onnx

    graph = onnx.load(onnx_row["path"]).graph
    (value,) = graph.input
    dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
    assert (value.name, dims) == ("features", ["batch", 64])
    assert rows["openvino", "fp32"]["upstream"]["path"].endswith("model.onnx")  # tf2onnx's
    assert rows["openvino", "fp32"]["parity_scaled_error"] <= 1e-4
    assert rows["openvino", "int8-static"]["quantized_nodes"] > 0
    manifest_text = json.dumps(rows["tflite", "fp32"], default=str)
    assert "serving_default" in manifest_text


def test_a_two_input_signature_is_matched_by_name_in_every_artifact(tmp_path, monkeypatch):
    """The signature lists its inputs sorted (alpha, zeta), the function and the sample the
    other way round: every artifact (static INT8 calibration included) is fed by name."""
    from exporters.worker import run_job
    from workbench.usermodel.probe import probe
    from workbench.usermodel.spec import load_spec
    from workbench.usermodel.task import SPECS_ENV, register

    tf = import_tensorflow()  # after Triton (see workbench.runtimes.tf_runtime)
    rng = np.random.default_rng(0)

    class Two(tf.Module):
        def __init__(self) -> None:
            self.w1 = tf.Variable(rng.standard_normal((3, 4)).astype("float32"))
            self.w2 = tf.Variable(rng.standard_normal((5, 4)).astype("float32"))

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, 3], tf.float32, name="zeta"),
                tf.TensorSpec([None, 5], tf.float32, name="alpha"),
            ]
        )
        def serve(self, zeta, alpha):
            h = tf.matmul(zeta, self.w1) + 10.0 * tf.matmul(alpha, self.w2)
            return {"score": h}

    module = Two()
    tf.saved_model.save(module, str(tmp_path / "two"), signatures={"serving_default": module.serve})
    batch = {
        "zeta": rng.standard_normal((6, 3)).astype("float32"),
        "alpha": rng.standard_normal((6, 5)).astype("float32"),
    }
    np.savez(tmp_path / "batch.npz", **batch)
    np.savez(
        tmp_path / "cal.npz",
        zeta=rng.standard_normal((32, 3)).astype("float32"),
        alpha=rng.standard_normal((32, 5)).astype("float32"),
    )
    source = parse_source(str(tmp_path / "two"))
    found = probe({"source": source.to_json(), "sample": str(tmp_path / "batch.npz")})
    assert sorted(i["name"] for i in found["inputs"]) == ["alpha", "zeta"]
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(SPECS_ENV, "")
    (tmp_path / "two.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "two_inputs",
                "source": {**source.to_json(), "digest": source.digest()},
                "framework": "savedmodel",
                "inputs": found["inputs"],
                "outputs": found["outputs"],
                "data": {"sample": "batch.npz", "calibration": "cal.npz"},
            }
        )
    )
    name = register(load_spec(str(tmp_path / "two.yaml")))
    for fmt, precision, pass_name in [
        ("onnx", "fp32", "savedmodel_onnx"),
        ("tflite", "int8-static", "savedmodel_tflite_int8_static"),
    ]:
        out = tmp_path / f"{fmt}-{precision}"
        out.mkdir()
        row = run_job(
            {
                "task": name,
                "model": name,
                "source_framework": "savedmodel",
                "format": fmt,
                "precision": precision,
                "pass": pass_name,
                "params": {},
                "path": str(out / ("model." + fmt)),
            }
        )
        assert row["status"] == "ok" and row["parity_pass"] is True, (fmt, row.get("error"))
        assert row["parity_scaled_error"] < (1e-5 if precision == "fp32" else 0.05), row
