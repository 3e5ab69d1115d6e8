"""The `inductor` format's torchao `int8-dynamic` row (torch setting quantize=int8-dynamic).

A tiny real MLP: outputs close to eager fp32, the compiled code calls oneDNN's int8
linear (`qlinear_pointwise`, registered by the x86 inductor quantizer import), the sweep
plans it for `inductor` only, and a GPU or a missing torchao is `unavailable`.
"""

from __future__ import annotations

import numpy as np
import pytest

from exporters.native_parity import native_parity
from workbench.devices import parse_device
from workbench.errors import UnavailableError, UserError
from workbench.registry import get_runtime
from workbench.runtimes import torch_runtime
from workbench.runtimes.base import RuntimeOptions
from workbench.signature import TensorSpec, make_input_pool
from workbench.sweep import TaskSweep, plan, runtime_precision

torch = pytest.importorskip("torch")
pytest.importorskip("torchao")

CPU = parse_device("cpu")
SPECS = [TensorSpec("x", "float32", ("batch", 64))]
FEED = make_input_pool(SPECS, batch_size=8, pool_size=1)[0]


class Mlp(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = torch.nn.Linear(64, 128)
        self.fc2 = torch.nn.Linear(128, 16)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def load(device=CPU, fmt="inductor", **settings):
    runtime = get_runtime("torch")
    parsed = runtime.parse_settings({"quantize": "int8-dynamic", **settings})
    options = RuntimeOptions(device, threads=1, format=fmt, inputs=SPECS, settings=parsed)
    return runtime.load(None, options, model=Mlp().eval())


def test_int8_dynamic_is_close_to_fp32_and_runs_onednn_int8_linears():
    from torch._inductor.utils import run_and_get_code

    model = Mlp().eval()
    loaded = load()
    assert loaded.provider == "cpu (compile default, torchao int8 dynamic, x86 quantizer)"
    prepared = loaded.prepare(FEED)
    raw, code = run_and_get_code(loaded.run, prepared)
    text = "\n".join(code)
    assert text.count("qlinear_pointwise") >= 2, "the int8 linears were not fused to oneDNN"
    got = loaded.to_numpy(raw)[0]
    with torch.inference_mode():
        expected = model(torch.from_numpy(FEED["x"])).numpy()
    scale = float(np.abs(expected).max())
    error = float(np.abs(got - expected).max())
    assert 0 < error <= 0.05 * scale  # int8 changes the numbers, a little
    # the caller's model stays float: quantization works on a copy
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_on_a_gpu_or_without_torchao_it_is_unavailable(monkeypatch):
    with pytest.raises(UnavailableError, match="is a CPU path; cuda:0 is not a CPU"):
        load(parse_device("cuda"))
    monkeypatch.setattr(torch_runtime, "installed", lambda module: module != "torchao")
    with pytest.raises(UnavailableError, match="torchao is not installed"):
        load()


def test_it_needs_the_inductor_format_in_the_default_mode():
    with pytest.raises(UserError, match="needs the inductor format"):
        load(fmt="eager")
    with pytest.raises(UserError, match="compile='max-autotune'"):
        load(compile="max-autotune")


def test_nlp_and_vision_sweeps_plan_int8_dynamic_for_inductor_only():
    def planned(task: str, formats: list[str] | None, model: str) -> set[tuple[str, str]]:
        sweep = TaskSweep(task=task, models=[model], frameworks=["torch"], formats=formats)
        return {(j.format, j.precision) for j in plan(sweep) if j.request is None}

    assert runtime_precision("inductor", "int8-dynamic") == {"quantize": "int8-dynamic"}
    # an artifact quantized by its pass runs as it is (no torchao on top of it)
    for artifact in ("torchscript", "pt2"):
        assert runtime_precision(artifact, "int8-dynamic") == {}
    for task, model in (
        ("text_classification", "minilm_classifier"),
        ("image_classification", "resnet50"),
    ):
        native = planned(task, None, model)
        assert ("inductor", "int8-dynamic") in native
        assert ("eager", "int8-dynamic") not in native  # torchao int8 is measured compiled
    assert ("inductor", "int8-dynamic") not in planned("tabular", None, "mlp")
    assert ("inductor", "int8-dynamic") in planned("tabular", ["inductor"], "mlp")


def test_the_native_row_is_judged_like_an_int8_artifact():
    # the tabular MLP run through torchao int8 + inductor on the task's held-out rows,
    # against the fp32 model itself: the quality rule of INT8 rows decides
    result = native_parity(
        "tabular", "mlp", "torch", "inductor", "int8-dynamic", {"quantize": "int8-dynamic"}
    )
    assert result["parity_rule"] == "quality"
    assert 0 < result["parity_max_abs_error"] <= 0.1 * result["parity_output_scale"]
    assert result["parity_metric_value"] >= 0.95
    assert bool(result["parity_pass"]) is True, result["parity_reason"]


def test_a_sweep_row_of_it_carries_its_parity(workspace):
    """Plan, parity (its own process), benchmark (a worker) and store one row."""
    from workbench import results
    from workbench.harness.timing import StopRule
    from workbench.results import RunStore
    from workbench.sweep import run_sweep

    sweep = TaskSweep(
        task="tabular",
        models=["mlp"],
        frameworks=["torch"],
        formats=["inductor"],
        precisions=["int8-dynamic"],
        batch_sizes=[8],
        threads=[1],
        rule=StopRule(warmup_iters=2, warmup_time_s=0.0, min_iters=5, min_time_s=0.0, max_time_s=2),
    )
    store = RunStore.create({"test": "torchao int8 sweep"})
    run_sweep(sweep, store)
    store.finish("ok")
    (row,) = results.load(run_ids=[store.run_id]).to_dict(orient="records")
    assert row["status"] == "ok", row["error"]
    assert (row["format"], row["precision"]) == ("inductor", "int8-dynamic")
    assert row["provider"] == "cpu (compile default, torchao int8 dynamic, x86 quantizer)"
    assert row["parity_rule"] == "quality"
    assert row["parity_pass"] is True
