"""Runtimes on tiny real models built here: ONNX, TorchScript, pt2, TFLite, SavedModel, Keras.

TensorFlow work (building the SavedModel and TFLite files, and exercising the
`tensorflow` runtime, whose thread settings are fixed once per process) runs
in one subprocess; its results come back as files and a JSON report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from workbench import devices
from workbench.devices import parse_device
from workbench.errors import UnavailableError, UserError
from workbench.registry import RUNTIMES, get_runtime
from workbench.runtimes.base import RuntimeOptions
from workbench.signature import TensorSpec, make_input_pool

REPO = Path(__file__).resolve().parents[1]
CPU = parse_device("cpu")
RNG = np.random.default_rng(0)
W = RNG.standard_normal((4, 3)).astype(np.float32)
B = RNG.standard_normal(3).astype(np.float32)


def cpu_options(runtime: str | None = None, inputs=None, format=None, **settings) -> RuntimeOptions:
    """CPU, one thread; `settings` are checked as `runtime`'s own."""
    parsed = get_runtime(runtime).parse_settings(settings) if runtime else None
    return RuntimeOptions(device=CPU, threads=1, format=format, inputs=inputs, settings=parsed)


def run_feed(loaded, feed):
    out = loaded.run(loaded.prepare(feed))
    loaded.synchronize()
    return loaded.to_numpy(out)


# ---------------------------------------------------------------- artifacts


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "B"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        initializer=[numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def torch_module():
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 3)

        def forward(self, x):
            return torch.relu(self.linear(x))

    torch.manual_seed(0)
    return Tiny().eval()


@pytest.fixture(scope="module")
def torch_files(torch_module, tmp_path_factory) -> dict[str, Path]:
    import warnings

    import torch

    folder = tmp_path_factory.mktemp("torch")
    example = torch.randn(2, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(torch_module, example)
    traced.save(str(folder / "tiny.ts"))
    program = torch.export.export(
        torch_module, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    torch.export.save(program, str(folder / "tiny.pt2"))
    return {"torchscript": folder / "tiny.ts", "pt2": folder / "tiny.pt2"}


TF_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    import numpy as np
    out = Path(sys.argv[1])
    report = {}
    from workbench.runtimes import tf_runtime
    tf_runtime.set_threads(1, 1)  # before TensorFlow starts: must succeed
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(0)
    layers = [keras.Input((4,), name="x"), keras.layers.Dense(3, activation="relu")]
    model = keras.Sequential(layers)
    model.export(str(out / "saved"), verbose=False)
    (out / "tiny.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    y = model(x, training=False).numpy()
    np.savez(out / "reference.npz", x=x, y=y)

    from workbench.devices import parse_device
    from workbench.errors import UserError
    from workbench.registry import get_runtime
    from workbench.runtimes.base import RuntimeOptions
    from workbench.signature import make_input_pool
    rt = get_runtime("tensorflow")
    cpu = parse_device("cpu")
    sm = rt.load(out / "saved", RuntimeOptions(cpu, threads=1, inter_op_threads=1))
    report["savedmodel_inputs"] = [[s.name, s.dtype, list(s.shape)] for s in sm.inputs]
    report["savedmodel_outputs"] = [s.name for s in sm.outputs]
    report["provider"] = sm.provider
    got = sm.to_numpy(sm.run(sm.prepare({"x": x})))
    sm.synchronize()
    report["savedmodel_err"] = float(np.abs(got[0] - y).max())
    pool = make_input_pool(sm.inputs, batch_size=2, pool_size=2)
    report["pool_shape"] = list(sm.to_numpy(sm.run(sm.prepare(pool[0])))[0].shape)
    for flag in (False, True):
        km = rt.load(None, RuntimeOptions(cpu, threads=1, settings=rt.parse_settings({"tf_function": flag})), model=model)
        report[f"keras_inputs_{flag}"] = [[s.name, s.dtype, list(s.shape)] for s in km.inputs]
        got = km.to_numpy(km.run(km.prepare({"x": x})))
        report[f"keras_err_{flag}"] = float(np.abs(got[0] - y).max())
    def error(fn):
        try:
            fn()
        except UserError as exc:
            return str(exc)
        return None
    report["wrong_dtype"] = error(lambda: sm.prepare({"x": x.astype(np.float64)}))
    report["threads_change"] = error(lambda: rt.load(out / "saved", RuntimeOptions(cpu, threads=2)))
    (out / "junk").mkdir()
    (out / "junk" / "saved_model.pb").write_bytes(b"not a protobuf")
    report["garbage"] = error(lambda: rt.load(out / "junk", RuntimeOptions(cpu)))
    report["version"] = rt.version()
    (out / "report.json").write_text(json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def tf_dir(tmp_path_factory) -> Path:
    """Run TF_SCRIPT once in a fresh interpreter; it leaves artifacts and report.json."""
    out = tmp_path_factory.mktemp("tf")
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-c", TF_SCRIPT, str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def tf_report(tf_dir) -> dict:
    return json.loads((tf_dir / "report.json").read_text())


# ---------------------------------------------------------------- every runtime


def test_importing_base_imports_no_framework():
    code = (
        "import sys, workbench.runtimes.base, workbench.registry as r; r.RUNTIMES.names(); "
        "print([m for m in ('torch', 'tensorflow', 'onnxruntime', 'keras', 'ai_edge_litert') "
        "if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("name", RUNTIMES.names())
def test_cuda_unavailable_without_gpu(name):
    if devices.nvidia_gpus():
        pytest.skip("this host has a GPU")
    runtime = get_runtime(name)
    reason = runtime.unavailable_reason(parse_device("cuda"))
    assert reason and "no GPU on this host" in reason
    assert runtime.unavailable_reason(CPU) is None
    with pytest.raises(UnavailableError):
        runtime.load(None, RuntimeOptions(device=parse_device("cuda:1")))


@pytest.mark.parametrize("name", RUNTIMES.names())
def test_runtime_declares_formats_and_version(name):
    runtime = get_runtime(name)
    assert runtime.name == name and runtime.formats
    assert isinstance(runtime.version(), str) and runtime.version()


# ---------------------------------------------------------------- null


def test_null_runtime_does_nothing():
    loaded = get_runtime("null").load(None, cpu_options())
    assert loaded.inputs == [TensorSpec("x", "float32", ("batch", 1))]
    feed = make_input_pool(loaded.inputs, batch_size=4, pool_size=1)[0]
    assert loaded.run(loaded.prepare(feed)) is None
    custom = [TensorSpec("ids", "int64", ("batch", 8))]
    assert get_runtime("null").load(None, cpu_options(inputs=custom)).inputs == custom


# ---------------------------------------------------------------- onnxruntime


def test_ort_cpu_matches_numpy(onnx_path):
    loaded = get_runtime("onnxruntime").load(onnx_path, cpu_options())
    assert loaded.provider == "CPUExecutionProvider"
    assert loaded.inputs == [TensorSpec("x", "float32", ("batch", 4))]
    assert loaded.outputs == [TensorSpec("y", "float32", ("batch", 3))]
    for feed in make_input_pool(loaded.inputs, batch_size=3, pool_size=2):
        (y,) = run_feed(loaded, feed)
        np.testing.assert_allclose(y, feed["x"] @ W + B, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("level", ["disable", "basic", "extended", "all"])
def test_ort_graph_optimization_levels(onnx_path, level):
    loaded = get_runtime("onnxruntime").load(
        onnx_path, cpu_options("onnxruntime", graph_optimization_level=level)
    )
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(run_feed(loaded, {"x": x})[0], x @ W + B, rtol=1e-5)


def test_ort_bad_optimization_level(onnx_path):
    with pytest.raises(UserError, match="disable, basic, extended, all"):
        get_runtime("onnxruntime").load(
            onnx_path, cpu_options("onnxruntime", graph_optimization_level="max")
        )


@pytest.mark.parametrize("spinning", [True, False])
def test_ort_spinning_option(onnx_path, spinning):
    loaded = get_runtime("onnxruntime").load(
        onnx_path, cpu_options("onnxruntime", allow_spinning=spinning)
    )
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(run_feed(loaded, {"x": x})[0], x @ W + B, rtol=1e-5)
    with pytest.raises(UserError, match="allow_spinning must be true or false"):
        get_runtime("onnxruntime").load(onnx_path, cpu_options("onnxruntime", allow_spinning="no"))


def test_ort_wrong_dtype_names_input(onnx_path):
    loaded = get_runtime("onnxruntime").load(onnx_path, cpu_options())
    with pytest.raises(UserError, match=r"'x'.*float64.*float32"):
        loaded.prepare({"x": np.ones((2, 4), np.float64)})


@pytest.mark.parametrize("content", [b"", b"garbage, not protobuf", "truncated"])
def test_ort_bad_file_is_user_error(onnx_path, tmp_path, content):
    bad = tmp_path / "bad.onnx"
    data = onnx_path.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if content == "truncated" else content)
    with pytest.raises(UserError, match="cannot load .* as ONNX"):
        get_runtime("onnxruntime").load(bad, cpu_options())


def test_ort_cuda_never_creates_a_session(onnx_path, monkeypatch):
    if devices.nvidia_gpus():
        pytest.skip("this host has a GPU")
    import onnxruntime

    created = []
    real = onnxruntime.InferenceSession

    def spy(*args, **kwargs):
        created.append(kwargs.get("providers"))
        return real(*args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", spy)
    options = RuntimeOptions(device=parse_device("cuda"))
    with pytest.raises(UnavailableError, match="no GPU on this host"):
        get_runtime("onnxruntime").load(onnx_path, options)
    assert created == []


def test_ort_refuses_cpu_fallback_under_cuda_name(onnx_path, monkeypatch):
    """Pretend the host check passed: ORT then cannot start CUDA here and must not
    hand back a CPU session labelled cuda."""
    if devices.nvidia_gpus():
        pytest.skip("this host has a GPU")
    import onnxruntime

    from workbench.runtimes import ort_runtime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("CPU-only onnxruntime build")
    monkeypatch.setattr(ort_runtime, "host_gpu_reason", lambda device: None)
    with pytest.raises(UnavailableError, match="CUDAExecutionProvider"):
        get_runtime("onnxruntime").load(onnx_path, RuntimeOptions(device=parse_device("cuda")))


# ---------------------------------------------------------------- torch


def _torch_reference(module, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def test_torch_eager(torch_module):
    specs = [TensorSpec("x", "float32", ("batch", 4))]
    loaded = get_runtime("torch").load(None, cpu_options(inputs=specs), model=torch_module)
    assert loaded.inputs == specs and loaded.provider == "cpu"
    feed = make_input_pool(specs, batch_size=3, pool_size=1)[0]
    np.testing.assert_allclose(
        run_feed(loaded, feed)[0], _torch_reference(torch_module, feed["x"]), rtol=1e-6
    )
    assert loaded.gpu_memory_bytes() is None
    with pytest.raises(UserError, match="input signature"):
        get_runtime("torch").load(None, cpu_options(), model=torch_module)


def test_torchscript_needs_a_signature(torch_files):
    with pytest.raises(UserError, match="signature"):
        get_runtime("torch").load(torch_files["torchscript"], cpu_options())


def test_torchscript_with_sidecar(torch_module, torch_files):
    from workbench.runtimes.torch_runtime import read_signature_sidecar, write_signature_sidecar

    path = torch_files["torchscript"]
    specs = [TensorSpec("x", "float32", ("batch", 4))]
    sidecar = write_signature_sidecar(path, specs)
    try:
        assert read_signature_sidecar(path) == (specs, [])
        loaded = get_runtime("torch").load(path, cpu_options())
        assert loaded.inputs == specs
        feed = make_input_pool(specs, batch_size=5, pool_size=1)[0]
        np.testing.assert_allclose(
            run_feed(loaded, feed)[0], _torch_reference(torch_module, feed["x"]), rtol=1e-6
        )
    finally:
        sidecar.unlink()


def test_pt2_signature_from_the_program(torch_module, torch_files):
    loaded = get_runtime("torch").load(torch_files["pt2"], cpu_options())
    assert loaded.inputs == [TensorSpec("x", "float32", ("batch", 4))]
    assert [(s.dtype, s.shape) for s in loaded.outputs] == [("float32", ("batch", 3))]
    for batch in (1, 6):
        feed = make_input_pool(loaded.inputs, batch_size=batch, pool_size=1)[0]
        (y,) = run_feed(loaded, feed)
        np.testing.assert_allclose(y, _torch_reference(torch_module, feed["x"]), rtol=1e-6)
    with pytest.raises(UserError, match=r"'x'.*int64.*float32"):
        loaded.prepare({"x": np.ones((2, 4), np.int64)})


def test_torch_bad_files(torch_files, tmp_path):
    data = torch_files["pt2"].read_bytes()
    (tmp_path / "cut.pt2").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.ts").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="cannot load .* as pt2"):
        get_runtime("torch").load(tmp_path / "cut.pt2", cpu_options())
    with pytest.raises(UserError, match="cannot load .* as torchscript"):
        specs = [TensorSpec("x", "float32", ("batch", 4))]
        get_runtime("torch").load(tmp_path / "junk.ts", cpu_options(inputs=specs))
    with pytest.raises(UserError, match="format"):
        get_runtime("torch").load(tmp_path / "junk.ts", cpu_options(format="onnx"))


# ---------------------------------------------------------------- tensorflow (subprocess)


def test_tf_savedmodel(tf_report):
    assert tf_report["savedmodel_inputs"] == [["x", "float32", ["batch", 4]]]
    assert tf_report["savedmodel_outputs"] == ["output_0"]
    assert tf_report["provider"] == "CPU"
    assert tf_report["savedmodel_err"] < 1e-5
    assert tf_report["pool_shape"] == [2, 3]


@pytest.mark.parametrize("tf_function", [False, True])
def test_tf_keras_model(tf_report, tf_function):
    assert tf_report[f"keras_inputs_{tf_function}"] == [["x", "float32", ["batch", 4]]]
    assert tf_report[f"keras_err_{tf_function}"] < 1e-6


def test_tf_errors(tf_report):
    assert "'x'" in tf_report["wrong_dtype"] and "float64" in tf_report["wrong_dtype"]
    assert "fresh process" in tf_report["threads_change"]
    assert "cannot load" in tf_report["garbage"]


# ---------------------------------------------------------------- litert


def test_litert_matches_keras(tf_dir):
    ref = np.load(tf_dir / "reference.npz")
    loaded = get_runtime("litert").load(tf_dir / "tiny.tflite", cpu_options())
    assert loaded.provider == "XNNPACK"
    assert len(loaded.inputs) == 1
    spec = loaded.inputs[0]
    assert spec.name.startswith("serving_default_x") and spec.dtype == "float32"
    assert spec.shape == ("batch", 4)
    # Two shapes in one pool: run() must resize back and forth correctly.
    small = loaded.prepare({spec.name: ref["x"][:2]})
    full = loaded.prepare({spec.name: ref["x"]})
    for prepared, n in ((small, 2), (full, 5), (small, 2)):
        (y,) = loaded.to_numpy(loaded.run(prepared))
        np.testing.assert_allclose(y, ref["y"][:n], rtol=1e-5, atol=1e-5)


def test_litert_without_xnnpack(tf_dir):
    ref = np.load(tf_dir / "reference.npz")
    loaded = get_runtime("litert").load(
        tf_dir / "tiny.tflite", cpu_options("litert", xnnpack=False)
    )
    assert loaded.provider == "builtin"
    (y,) = run_feed(loaded, {loaded.inputs[0].name: ref["x"]})
    np.testing.assert_allclose(y, ref["y"], rtol=1e-5, atol=1e-5)
    with pytest.raises(UserError, match=r"serving_default_x.*float64.*float32"):
        loaded.prepare({loaded.inputs[0].name: ref["x"].astype(np.float64)})


def test_litert_garbage_file(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(UserError, match="cannot load .* as TFLite"):
        get_runtime("litert").load(bad, cpu_options())


def test_litert_cuda_reason_says_cpu_only():
    reason = get_runtime("litert").unavailable_reason(parse_device("cuda"))
    assert reason and "CPU only" in reason


def test_tensorflow_then_torch_export_does_not_crash():
    """Importing TensorFlow before Triton segfaults; the runtime's import guards it."""
    code = (
        "from workbench.runtimes.tf_runtime import import_tensorflow; import_tensorflow(); "
        "import torch; torch.export.export(torch.nn.Linear(2, 2), (torch.ones(1, 2),)); "
        "print('ok')"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
