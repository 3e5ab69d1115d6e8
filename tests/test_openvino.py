"""The openvino runtime and its passes, on the real OpenVINO and NNCF with tiny models.

fp32 must run f32 (OpenVINO's own default on an AMX CPU is bf16), bf16 only where the CPU
has bf16 instructions (the selection is tested with the flags faked), the row's provider
names what ran, and nothing phones home (the telemetry opt-out).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support.cli import FAST, REPO, run_cli
from workbench.devices import parse_device
from workbench.env import cpu_flags
from workbench.errors import UnavailableError, UserError
from workbench.formats import detect_format
from workbench.registry import get_runtime
from workbench.runtimes.base import RuntimeOptions
from workbench.runtimes.openvino_runtime import (
    NO_BF16_REASON,
    bf16_reason,
    choose_precision,
    isa_label,
)

pytest.importorskip("openvino")

AMX = {"amx_bf16": True, "amx_int8": True, "avx512f": True, "avx2": True}
AVX512_BF16 = {"avx512_bf16": True, "avx512f": True, "avx512_vnni": True, "avx2": True}
AVX2_ONLY = {"avx2": True, "fma": True}  # an AMD EPYC host without AVX-512
HOST_HAS_BF16 = bf16_reason() is None


def tiny_onnx(path: Path) -> Path:
    """x[batch, 3, 8, 8] -> Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm -> y[batch, 4]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(size=(8,)).astype(np.float32), "b"),
        numpy_helper.from_array(rng.normal(size=(4, 8)).astype(np.float32), "fc"),
        numpy_helper.from_array(rng.normal(size=(4,)).astype(np.float32), "fcb"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory) -> Path:
    return tiny_onnx(tmp_path_factory.mktemp("ov") / "tiny.onnx")


def load(path: Path, **settings):
    runtime = get_runtime("openvino")
    options = RuntimeOptions(
        parse_device("cpu"), threads=1, settings=runtime.parse_settings(settings)
    )
    return runtime.load(path, options)


def feed(n: int = 3) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(1).normal(size=(n, 3, 8, 8)).astype(np.float32)}


# ------------------------------------------------------------ selection, flags faked


@pytest.mark.parametrize("flags", [AMX, AVX512_BF16])
def test_bf16_is_chosen_where_the_cpu_has_bf16_instructions(flags):
    assert bf16_reason(flags) is None
    assert choose_precision("bf16", None, flags) == "bf16"
    assert choose_precision("auto", "bf16", flags) == "bf16"  # the IR's own hint


def test_bf16_on_an_avx2_only_host_is_unavailable_with_the_reason():
    assert bf16_reason(AVX2_ONLY) == NO_BF16_REASON
    with pytest.raises(UnavailableError, match="AMX-BF16 nor AVX512-BF16"):
        choose_precision("bf16", None, AVX2_ONLY)
    with pytest.raises(UnavailableError):
        choose_precision("auto", "bf16", AVX2_ONLY)
    assert choose_precision("f32", "bf16", AVX2_ONLY) == "f32"  # the setting wins


def test_auto_means_f32_never_openvinos_silent_bf16():
    assert choose_precision("auto", None, AMX) == "f32"


def test_isa_label_names_the_instructions():
    assert isa_label("bf16", False, AMX) == "AMX"
    assert isa_label("bf16", False, AVX512_BF16) == "AVX512-BF16"
    assert isa_label("f32", True, AMX) == "AMX"
    assert isa_label("f32", True, AVX512_BF16) == "VNNI"
    assert isa_label("f32", False, AVX2_ONLY) == "AVX2"


def test_the_fingerprint_records_avx512_bf16():
    assert "avx512_bf16" in cpu_flags("fpu avx512_bf16")
    assert cpu_flags("fpu avx512_bf16")["avx512_bf16"]


# ------------------------------------------------------------ the real runtime


def test_fp32_is_forced_to_f32_and_matches_onnxruntime(onnx_file):
    import onnxruntime

    model = load(onnx_file)
    assert model.provider.startswith("CPU (f32, ")
    assert [s.name for s in model.inputs] == ["x"]
    assert model.inputs[0].shape == ("batch", 3, 8, 8)
    out = model.to_numpy(model.run(model.prepare(feed())))
    ref = onnxruntime.InferenceSession(str(onnx_file)).run(None, feed())
    np.testing.assert_allclose(out[0], ref[0], rtol=1e-4, atol=1e-4)
    compiled = model.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    assert compiled == "f32"
    assert model.compiled.get_property("NUM_STREAMS") == 1
    assert model.compiled.get_property("INFERENCE_NUM_THREADS") == 1


@pytest.mark.skipif(not HOST_HAS_BF16, reason="this CPU has no bf16 instructions")
def test_bf16_runs_bf16_and_says_so(onnx_file):
    model = load(onnx_file, inference_precision="bf16")
    assert model.provider.startswith("CPU (bf16, ")
    out = model.to_numpy(model.run(model.prepare(feed())))
    assert out[0].shape == (3, 4) and np.isfinite(out[0]).all()


@pytest.mark.skipif(HOST_HAS_BF16, reason="this CPU has bf16 instructions")
def test_bf16_without_bf16_instructions_is_unavailable(onnx_file):
    with pytest.raises(UnavailableError, match="bf16"):
        load(onnx_file, inference_precision="bf16")


def test_settings_are_typed_and_checked():
    runtime = get_runtime("openvino")
    with pytest.raises(UserError, match="inference_precision"):
        runtime.parse_settings({"inference_precision": "fp8"})
    with pytest.raises(UserError, match="streams"):
        runtime.parse_settings({"streams": -1})
    assert runtime.unavailable_reason(parse_device("cuda")) is not None


# ------------------------------------------------------------ passes: IR, bf16 IR, NNCF


def _ctx(upstream: Path, params, n: int = 16):
    from exporters.base import ExportContext

    class Calibration:  # the part of a task the NNCF pass reads: its calibration inputs
        version = "1"

        def calibration_inputs(self, model, count, framework="torch"):
            return feed(min(count, n))

    return ExportContext(Calibration(), "tiny", "torch", "int8-static", params, None, upstream)


def test_ir_bf16_and_nncf_int8_passes(onnx_file, tmp_path):
    from exporters.openvino_passes import NncfInt8Static, OpenVinoBf16, OpenVinoIr

    ir = tmp_path / "fp32" / "model.xml"
    ir.parent.mkdir()
    OpenVinoIr().export(_ctx(onnx_file, None), ir)
    assert ir.is_file() and ir.with_suffix(".bin").is_file()
    assert detect_format(ir) == "openvino"
    ref = load(onnx_file).to_numpy(load(onnx_file).run(feed()))[0]
    np.testing.assert_allclose(load(ir).to_numpy(load(ir).run(feed()))[0], ref, atol=1e-4)

    bf16 = tmp_path / "bf16" / "model.xml"
    bf16.parent.mkdir()
    OpenVinoBf16().export(_ctx(ir, None), bf16)
    if HOST_HAS_BF16:
        assert load(bf16).provider.startswith("CPU (bf16, ")  # the IR's own hint
    else:
        with pytest.raises(UnavailableError):
            load(bf16)
    assert load(bf16, inference_precision="f32").provider.startswith("CPU (f32, ")

    int8 = tmp_path / "int8" / "model.xml"
    int8.parent.mkdir()
    pass_ = NncfInt8Static()
    extras = pass_.export(_ctx(ir, pass_.check_params({"calibration_size": 16})), int8)
    assert extras["quantized_nodes"] > 0 and extras["calibration_items"] == 16
    model = load(int8)
    assert model.provider.startswith("CPU (int8 + f32, ")
    out = model.to_numpy(model.run(feed()))[0]
    assert np.abs(out - ref).max() < 0.1 * np.abs(ref).max() + 0.1


def test_an_xml_that_is_not_an_ir_is_refused(tmp_path):
    bad = tmp_path / "model.xml"
    bad.write_text('<?xml version="1.0"?><html></html>')
    with pytest.raises(UserError, match="not an OpenVINO IR"):
        detect_format(bad)
    ir = tmp_path / "net.xml"
    ir.write_text('<?xml version="1.0"?>\n<net name="x" version="11"></net>')
    with pytest.raises(UserError, match="without its weights"):
        detect_format(ir)


# ------------------------------------------------------------ sweeps and the CLI


def test_sweeps_plan_openvino_and_fast_torch_rows_where_asked():
    from workbench.sweep import TaskSweep, plan, runtime_precision

    def planned(task: str, formats: list[str] | None, model: str) -> set[tuple[str, str]]:
        sweep = TaskSweep(task=task, models=[model], frameworks=["torch"], formats=formats)
        return {(j.format, j.precision) for j in plan(sweep)}

    fast = {
        ("eager", "bf16"),
        ("inductor", "fp32"),
        ("inductor", "bf16"),
        ("openvino", "fp32"),
        ("openvino", "bf16"),
        ("openvino", "int8-static"),
    }
    # NLP and vision opt in: every all-format sweep (quick, full) has these rows
    assert fast <= planned("text_classification", None, "minilm_classifier")
    assert fast <= planned("image_classification", None, "resnet50")
    openvino = {row for row in fast if row[0] == "openvino"}
    assert openvino <= planned("object_detection", None, "yolov8n_320")  # NNCF INT8 passes there
    # other tasks: only when the sweep names the formats
    assert not fast & planned("tabular", None, "mlp")
    assert fast <= planned("tabular", ["eager", "inductor", "openvino"], "mlp")
    assert runtime_precision("openvino", "fp32") == {"inference_precision": "f32"}
    assert runtime_precision("eager", "bf16") == {"autocast": "bf16"}
    assert runtime_precision("inductor", "bf16") == {"autocast": "bf16"}
    assert runtime_precision("onnx", "fp32") == {}


def test_bench_an_onnx_file_on_openvino(onnx_file, tmp_path):
    proc = run_cli(
        [
            "bench",
            str(onnx_file),
            "--runtime",
            "openvino",
            "--batch",
            "2",
            *FAST,
            "--output",
            "json",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [r["status"] for r in rows] == ["ok"], rows
    assert rows[0]["runtime"] == "openvino"
    assert rows[0]["provider"].startswith("CPU (f32, ")


# ------------------------------------------------------------ telemetry


def test_telemetry_opt_out_writes_the_documented_consent_file(tmp_path):
    """With no choice made, the consent file says 0: both OVC and NNCF then send nothing."""
    code = (
        "from workbench.runtimes.openvino_runtime import opt_out_of_telemetry\n"
        "opt_out_of_telemetry()\n"
        "from openvino_telemetry.utils.opt_in_checker import OptInChecker, ConsentCheckResult\n"
        "assert OptInChecker().check(False, False) == ConsentCheckResult.DECLINED\n"
    )
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    env.pop("CI", None)
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "intel" / "openvino_telemetry").read_text().strip() == "0"


def test_exports_never_leave_openvino_telemetry_on(tmp_path):
    """The user's explicit choice stands; an absent file is an opt-out, never a silent opt-in."""
    (tmp_path / "intel").mkdir()
    (tmp_path / "intel" / "openvino_telemetry").write_text("")
    code = (
        "from workbench.runtimes.openvino_runtime import opt_out_of_telemetry\n"
        "opt_out_of_telemetry()\n"
    )
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "intel" / "openvino_telemetry").read_text().strip() == "0"


def test_the_passes_are_registered():
    from workbench.registry import PASSES

    names = set(PASSES.names())
    assert {"openvino_ir", "openvino_bf16", "openvino_int8_static"} <= names


def test_serving_picks_the_runtime_of_a_file(onnx_file):
    """`workbench serve --model b=x.onnx@openvino` beside `--model a=x.onnx`: A/B of runtimes."""
    from workbench.serving.registry import load_source

    ort = load_source(str(onnx_file))
    ov = load_source(f"{onnx_file}@openvino")
    try:
        assert ort.labels["runtime"] == "onnxruntime"
        assert ov.labels["runtime"] == "openvino"
        batch = {"x": feed(2)["x"]}
        out_ort = ort.run_batches[0](batch)
        out_ov = ov.run_batches[0](batch)
        np.testing.assert_allclose(
            np.asarray(out_ov[0]), np.asarray(out_ort[0]), rtol=1e-3, atol=1e-3
        )
    finally:
        ort.close()
        ov.close()
    with pytest.raises(UserError, match="cannot run format"):
        load_source(f"{onnx_file}@litert")


def test_claim_9_1_is_judged_with_the_fastest_passing_int8_of_any_runtime():
    import pandas as pd

    from workbench.study import claims

    def row(fmt: str, runtime: str, ms: float, parity: bool) -> dict:
        return {
            "status": "ok", "precision": "int8-static", "batch_size": 1, "format": fmt,
            "runtime": runtime, "latency_ms_p50": ms, "parity_pass": parity,
        }  # fmt: skip

    selector = claims.Fastest(
        "reduced",
        claims.rows("cnn_precisions", precision="int8-static", batch_size=1),
        ("onnx", "openvino"),
        "latency_ms_p50",
        passing=True,
    )
    s = claims.SETTINGS["quick"]
    both = [row("onnx", "onnxruntime", 12.0, True), row("openvino", "openvino", 5.0, True)]
    picked = selector.pick({"cnn_precisions": pd.DataFrame(both)}, s)
    assert picked.format == "openvino" and picked.runtime == "openvino"
    failing = [row("onnx", "onnxruntime", 12.0, True), row("openvino", "openvino", 5.0, False)]
    assert selector.pick({"cnn_precisions": pd.DataFrame(failing)}, s).format == "onnx"


def test_the_inductor_format_is_the_eager_model_compiled():
    """Loading is lazy (compilation happens at the first call, untimed by the harness):
    the provider says what will run, and bf16 rows add autocast."""
    import torch

    from workbench.signature import TensorSpec

    runtime = get_runtime("torch")
    specs = [TensorSpec("x", "float32", ("batch", 4))]
    for settings, provider in (
        ({}, "cpu (compile default)"),
        ({"autocast": "bf16"}, "cpu (autocast bf16, compile default)"),
        ({"compile": "max-autotune"}, "cpu (compile max-autotune)"),
    ):
        options = RuntimeOptions(
            parse_device("cpu"),
            format="inductor",
            inputs=specs,
            settings=runtime.parse_settings(settings),
        )
        loaded = runtime.load(None, options, model=torch.nn.Linear(4, 2).eval())
        assert loaded.provider == provider


# ------------------------------------------------------------ scenarios: throughput mode


def test_the_timed_loop_compiles_for_latency(onnx_file):
    model = load(onnx_file)
    assert str(model.compiled.get_property("PERFORMANCE_HINT")).endswith("LATENCY")
    assert int(model.compiled.get_property("NUM_STREAMS")) == 1
    assert "throughput" not in model.provider


def test_scenarios_serve_from_streams_in_throughput_mode(onnx_file):
    """What the scenarios and `serve` load (`load_served`): one model compiled for
    throughput; two instances of one thread become two streams sharing two threads, each
    instance its own infer request, all agreeing with the timed loop's latency model."""
    runtime = get_runtime("openvino")
    options = RuntimeOptions(
        parse_device("cpu"), threads=1, settings=runtime.parse_settings({"streams": 2})
    )
    models = runtime.load_served(onnx_file, options, 2)
    compiled = models[0].compiled
    assert all(m.compiled is compiled for m in models)  # one compiled model
    assert len({id(m.request) for m in models}) == len(models)  # a request each
    assert str(compiled.get_property("PERFORMANCE_HINT")).endswith("THROUGHPUT")
    assert int(compiled.get_property("NUM_STREAMS")) == 2
    assert int(compiled.get_property("INFERENCE_NUM_THREADS")) == 2
    optimal = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    assert len(models) == max(2, optimal)
    assert models[0].provider.endswith(f"; throughput: 2 streams, {len(models)} requests)")
    latency = load(onnx_file)
    batch = feed(4)
    want = latency.to_numpy(latency.run(latency.prepare(batch)))[0]
    for model in models:
        np.testing.assert_allclose(model.to_numpy(model.run(batch))[0], want, atol=1e-4)


def test_an_offline_scenario_row_names_the_throughput_mode(
    onnx_file, tmp_path, monkeypatch, capsys
):
    """`workbench bench x.onnx --runtime openvino --scenario offline`: by default the
    plugin picks the streams, the batcher gets one worker per infer request, and the row
    says so; a real LoadGen run completes every sample."""
    from workbench.cli import main

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    args = ["bench", str(onnx_file), "--runtime", "openvino", "--scenario", "offline"]
    args += ["--profile", "ci", "--min-duration-ms", "300", "--max-duration-ms", "3000"]
    assert main([*args, "--dim", "batch=1", "--output", "json"]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["runtime"] == "openvino" and "; throughput: " in row["provider"]
    requests = int(row["provider"].rpartition(", ")[2].split()[0])
    assert row["scenario_settings"]["instances"] == requests >= 1
    assert row["n_iterations"] > 0 and row["failed_requests"] == 0 and row["rejected"] == 0


def test_the_latency_setting_keeps_scenarios_on_one_stream(onnx_file):
    from workbench.scenarios.models import load_file

    served = load_file(
        onnx_file, runtime="openvino", instances=2, threads=1,
        settings={"performance_hint": "latency"}, dims={},
    )  # fmt: skip
    try:
        assert len(served.run_batches) == 2
        assert "latency: 1 stream, 2 requests" in served.labels["provider"]
    finally:
        served.close()


# ------------------------------------------------------------ NNCF activation ranges


def tabular_mlp_onnx(path: Path) -> Path:
    """The tabular task's trained MLP (10 -> 256 -> 256 -> 128 -> 2, ReLU) as ONNX MatMuls."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from workbench.tasks.tabular import trained_weights

    params = trained_weights("mlp")
    nodes, inits, h = [], [], "input"
    for i in range(0, len(params), 2):
        inits += [numpy_helper.from_array(params[i], f"w{i}")]
        inits += [numpy_helper.from_array(params[i + 1], f"b{i}")]
        nodes += [helper.make_node("MatMul", [h, f"w{i}"], [f"m{i}"])]
        nodes += [helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"])]
        h = f"a{i}"
        if i + 2 < len(params):
            nodes += [helper.make_node("Relu", [h], [f"r{i}"])]
            h = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "tabular_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 10])],
        [helper.make_tensor_value_info(h, TensorProto.FLOAT, ["batch", 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_activation_range_auto_is_minmax_for_feature_vectors():
    import openvino as ov

    from exporters.openvino_passes import resolve_activation_range

    rank = ov.Dimension
    assert resolve_activation_range("auto", [(rank(2), True)]) == "minmax"  # tabular rows
    assert resolve_activation_range("auto", [(rank(4), True)]) == "mean_minmax"  # images
    assert resolve_activation_range("auto", [(rank(2), False)] * 2) == "mean_minmax"  # ids
    assert resolve_activation_range("auto", [(rank(), True)]) == "mean_minmax"  # unknown
    assert resolve_activation_range("mean_minmax", [(rank(2), True)]) == "mean_minmax"


def test_nncf_int8_of_the_tabular_mlp_keeps_its_logits(tmp_path):
    """One-row calibration items: NNCF's default ranges (the mean of each row's extremes)
    clip the MLP's hidden activations and move its logits by a third of their scale; the
    pass's `auto` (minmax for feature vectors) keeps them within the INT8 tolerance."""
    from exporters.base import ExportContext
    from exporters.openvino_passes import NncfInt8Static, OpenVinoIr
    from workbench.registry import get_task

    task = get_task("tabular")
    ir = tmp_path / "fp32" / "model.xml"
    ir.parent.mkdir()
    onnx_path = tabular_mlp_onnx(tmp_path / "mlp.onnx")
    OpenVinoIr().export(ExportContext(task, "mlp", "torch", "fp32", None, None, onnx_path), ir)
    feed_, labels = task.held_out("mlp", task.parity_count("mlp"))
    ref = load(ir).to_numpy(load(ir).run(feed_))[0]
    scaled: dict[str, float] = {}
    for setting in ("auto", "mean_minmax"):
        out = tmp_path / setting / "model.xml"
        out.parent.mkdir()
        pass_ = NncfInt8Static()
        params = pass_.check_params({"activation_range": setting})
        ctx = ExportContext(task, "mlp", "torch", "int8-static", params, None, ir)
        extras = pass_.export(ctx, out)
        assert extras["activation_range"] == ("minmax" if setting == "auto" else setting)
        got = load(out).to_numpy(load(out).run(feed_))[0]
        scaled[setting] = float(np.abs(got - ref).max() / np.abs(ref).max())
        assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.95
    assert scaled["auto"] < 0.1 < 0.2 < scaled["mean_minmax"], scaled


def test_a_task_artifact_served_on_openvino_beside_onnxruntime(workspace):
    """`load_task(..., runtime=)`: the same ONNX artifact on either runtime (the served
    OpenVINO-vs-ORT benchmark), outputs agreeing; a runtime that cannot run the format
    is refused by name."""
    from workbench.scenarios.models import load_task

    ort = load_task("tabular", "mlp", instances=1, threads=1, sample_count=8)
    ov = load_task("tabular", "mlp", instances=1, threads=1, sample_count=8, runtime="openvino")
    try:
        assert ort.labels["runtime"] == "onnxruntime" and ov.labels["runtime"] == "openvino"
        assert ov.labels["artifact_path"] == ort.labels["artifact_path"]
        assert "; throughput: " in ov.labels["provider"]
        sample = ort.samples[0]
        np.testing.assert_allclose(
            ov.run_batches[0](sample)[0], ort.run_batches[0](sample)[0], rtol=1e-4, atol=1e-4
        )
    finally:
        ort.close()
        ov.close()
    with pytest.raises(UserError, match="cannot run format"):
        load_task("tabular", "mlp", sample_count=8, runtime="litert")


def test_cpu_pinning_is_a_setting(onnx_file):
    """OpenVINO pins stream threads by default on Linux; `cpu_pinning=off` lets the OS
    move them (a host whose cores are shared with busy neighbours)."""
    for setting, pinned in (("on", True), ("off", False)):
        model = load(onnx_file, cpu_pinning=setting)
        assert bool(model.compiled.get_property("ENABLE_CPU_PINNING")) is pinned
    with pytest.raises(UserError, match="cpu_pinning"):
        get_runtime("openvino").parse_settings({"cpu_pinning": "sometimes"})
