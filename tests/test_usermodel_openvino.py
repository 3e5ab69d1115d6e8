"""OpenVINO rows for a user's own model (#23, #26): every source kind with an FP32 ONNX
artifact (a PyTorch factory, a Keras model, a SavedModel, a Hugging Face directory, an
ONNX file itself) plans the IR (fp32), bf16 and NNCF static INT8 passes in its quick and
full presets, not in ci; each artifact is checked against the user's model; static INT8
without calibration data is `unavailable` with the advice, as ORT's is.

Real OpenVINO and NNCF on tiny models. The exports run in this process through the
export worker's own `run_job` (its upstream ONNX export in a worker, as in use). The
SavedModel source's OpenVINO rows are in tests/test_usermodel_savedmodel.py, where
TensorFlow is already loaded."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

from tests.support.examples import examples_manifest
from workbench.runtimes.openvino_runtime import bf16_reason
from workbench.usermodel.source import parse_source
from workbench.usermodel.spec import load_spec
from workbench.usermodel.task import NO_CALIBRATION, SPECS_ENV, SYNTHETIC, register

OPENVINO_ROWS = [
    ("fp32", "openvino_ir"),
    ("bf16", "openvino_bf16"),
    ("int8-static", "openvino_int8_static"),
]
# The tiny models' weights: logits are close to the first four features (x = relu(x) -
# relu(-x), plus a little noise in every weight), and the data raise feature `row % 4`
# well above the others, so every decision has a clear margin: the parity verdicts test
# the export and quantization, not a near-tie among random logits.
FACTORY = textwrap.dedent(
    """
    import torch
    from torch import nn

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))

        def forward(self, x):
            return self.layers(x)

    def mlp():
        torch.manual_seed(0)
        net = Mlp()
        eye = torch.eye(8)
        pick = torch.zeros(4, 16)
        pick[range(4), range(4)] = 1.0
        pick[range(4), range(8, 12)] = -1.0
        with torch.no_grad():
            net.layers[0].weight.copy_(torch.cat([eye, -eye]) + 0.05 * torch.randn(16, 8))
            net.layers[2].weight.copy_(pick + 0.05 * torch.randn(4, 16))
        return net
    """
)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(SPECS_ENV, "")
    return tmp_path


@pytest.fixture(scope="module")
def examples() -> dict[str, dict[str, Any]]:
    return examples_manifest()


def _rows_of(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 8) inputs with feature `row % 4` raised well above the others."""
    x = 0.5 * rng.standard_normal((n, 8))
    x[np.arange(n), np.arange(n) % 4] += 4.0
    return x.astype("float32")


def _data(root: Path) -> dict[str, str]:
    """A sample and calibration rows of the tiny models' (batch, 8) float input."""
    rng = np.random.default_rng(0)
    np.savez(root / "sample.npz", x=_rows_of(16, rng))
    np.savez(root / "calibration.npz", x=_rows_of(64, rng))
    return {"sample": "sample.npz", "calibration": "calibration.npz"}


def _onnx_mlp(path: Path) -> Path:
    """An ONNX file nobody exported here, the factory's network in plain ONNX ops:
    x (batch, 8) -> MatMul/Add/Relu/MatMul/Add -> logits (batch, 4)."""
    rng = np.random.default_rng(1)
    eye = np.eye(8, dtype="float32")
    pick = np.zeros((16, 4), "float32")
    pick[np.arange(4), np.arange(4)] = 1.0
    pick[np.arange(8, 12), np.arange(4)] = -1.0
    weights = {
        "w1": np.concatenate([eye, -eye], 1) + 0.05 * rng.standard_normal((8, 16)),
        "b1": 0.01 * rng.standard_normal(16),
        "w2": pick + 0.05 * rng.standard_normal((16, 4)),
        "b2": 0.01 * rng.standard_normal(4),
    }
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
        helper.make_node("Add", ["h3", "b2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(v.astype("float32"), k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _spec(
    root: Path, name: str, source: str, framework: str, output: str = "logits", **fields: Any
) -> str:
    parsed = parse_source(source)
    data = {
        "name": name,
        "source": {**parsed.to_json(), "digest": parsed.digest()},
        "framework": framework,
        "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 8]}],
        "outputs": [{"name": output, "dtype": "float32", "shape": ["batch", 4]}],
        **fields,
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return register(load_spec(str(path)))


def _rows(name: str, framework: str, out: Path, precisions=None) -> dict[str, dict[str, Any]]:
    from exporters.worker import run_job

    rows = {}
    for precision, pass_name in OPENVINO_ROWS:
        if precisions and precision not in precisions:
            continue
        path = out / precision / "model.xml"
        path.parent.mkdir(parents=True)
        rows[precision] = run_job(
            {
                "task": name,
                "model": name,
                "source_framework": framework,
                "format": "openvino",
                "precision": precision,
                "pass": pass_name,
                "params": {},
                "path": str(path),
            }
        )
    return rows


def _assert_checked(rows: dict[str, dict[str, Any]]) -> None:
    """fp32 and static INT8 exported and passing parity; bf16 too where this CPU has bf16
    instructions, else `unavailable` with the reason."""
    for precision, row in rows.items():
        if precision == "bf16" and bf16_reason():
            assert row["status"] == "unavailable" and row["error"] == bf16_reason()
            continue
        assert row["status"] == "ok" and row["parity_pass"] is True, (
            precision,
            row.get("error") or row.get("parity_reason"),
        )
    assert rows["fp32"]["parity_scaled_error"] <= 1e-4
    assert rows["int8-static"]["quantized_nodes"] > 0
    assert rows["int8-static"]["calibration_items"] == 64  # the user's rows, one per item


def test_every_source_kind_plans_openvino_in_quick_and_full_not_ci(home, examples):
    from workbench.registry import get_task
    from workbench.sweep import from_profile, plan

    (home / "nets.py").write_text(FACTORY)
    bert, vit = examples["hf-bert-tiny"], examples["hf-vit-tiny"]
    names = {
        "torch": _spec(home, "tiny-torch", f"{home / 'nets.py'}:mlp", "torch"),
        "onnx": _spec(home, "tiny-onnx", str(_onnx_mlp(home / "mlp.onnx")), "onnx"),
        "savedmodel": _spec(
            home, "sm", examples["keras-digits-savedmodel"]["source"], "savedmodel"
        ),
        "keras": _spec(home, "kd", examples["keras-digits"]["source"], "keras"),
        "bert": _spec(
            home, "bert", bert["source"], "torch", hf={"task": bert["task"], "model_type": "bert"}
        ),
        "vit": _spec(
            home, "vit", vit["source"], "torch", hf={"task": vit["task"], "model_type": "vit"}
        ),
    }
    for kind, name in names.items():
        planned = {
            profile: sorted(
                j.precision for j in plan(from_profile(name, profile)) if j.format == "openvino"
            )
            for profile in ("ci", "quick", "full")
        }
        assert planned["ci"] == [], kind  # ci stays ONNX fp32 only
        for profile in ("quick", "full"):
            assert set(planned[profile]) == {"fp32", "bf16", "int8-static"}, (kind, profile)
        nncf = get_task(name).pass_params["openvino_int8_static"]
        transformer = kind in ("bert", "vit")
        assert nncf == ({"model_type": "transformer", "preset": "mixed"} if transformer else {})


@pytest.mark.slow  # imports torch here and in the ONNX export's worker
def test_a_torch_factory_gets_checked_openvino_rows(home):
    (home / "nets.py").write_text(FACTORY)
    name = _spec(home, "tiny-torch", f"{home / 'nets.py'}:mlp", "torch", "output", data=_data(home))
    rows = _rows(name, "torch", home / "out")
    _assert_checked(rows)
    assert rows["fp32"]["upstream"]["path"].endswith("model.onnx")  # from the torch export


def test_an_onnx_file_source_gets_checked_openvino_rows(home):
    source = _onnx_mlp(home / "mlp.onnx")
    name = _spec(home, "tiny-onnx", str(source), "onnx", data=_data(home))
    rows = _rows(name, "onnx", home / "out")
    _assert_checked(rows)
    upstream = Path(rows["fp32"]["upstream"]["path"])  # the file's own copy, not a re-export
    assert upstream.read_bytes() == source.read_bytes()


def test_the_example_sklearn_onnx_file_fails_with_openvinos_reason(home, examples):
    """skl2onnx's classifier keeps an ai.onnx.ml op (ArrayFeatureExtractor for `label`)
    OpenVINO has no conversion for: a failed row naming it, and the rows built on the IR
    say which artifact they needed."""
    entry = examples["onnx-sklearn-digits"]
    parsed = parse_source(entry["source"])
    spec = {
        "name": "skl",
        "source": {**parsed.to_json(), "digest": parsed.digest()},
        "framework": "onnx",
        "inputs": [{"name": "features", "dtype": "float32", "shape": ["batch", 64]}],
        "outputs": [
            {"name": "label", "dtype": "int64", "shape": ["batch"]},
            {"name": "probabilities", "dtype": "float32", "shape": ["batch", 10]},
        ],
        "data": {"sample": entry["sample"], "calibration": entry["calibration"]},
    }
    (home / "skl.yaml").write_text(yaml.safe_dump(spec))
    name = register(load_spec(str(home / "skl.yaml")))
    rows = _rows(name, "onnx", home / "out")
    assert rows["fp32"]["status"] == "failed"
    assert "ArrayFeatureExtractor" in rows["fp32"]["error"]
    for precision in ("bf16", "int8-static"):
        assert rows[precision]["status"] == "failed"
        assert "openvino/fp32 artifact this pass transforms failed" in rows[precision]["error"]


def test_static_int8_without_calibration_is_unavailable_and_random_is_stamped(home):
    source = str(_onnx_mlp(home / "mlp.onnx"))
    data = _data(home)
    name = _spec(home, "nocal", source, "onnx", data={"sample": data["sample"]})
    (row,) = _rows(name, "onnx", home / "nocal", ["int8-static"]).values()
    assert row["status"] == "unavailable" and row["error"] == NO_CALIBRATION
    assert "--calibration random" in row["error"]

    name = _spec(
        home, "randcal", source, "onnx", data={"sample": data["sample"], "calibration_random": True}
    )
    (row,) = _rows(name, "onnx", home / "randcal", ["int8-static"]).values()
    assert row["status"] == "ok" and row["calibration"] == SYNTHETIC
    assert row["quantized_nodes"] > 0 and row["parity_pass"] is not None
