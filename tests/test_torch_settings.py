"""The torch runtime's own settings (`TorchSettings`): autocast and torch.compile, on the CPU.

Tiny real modules only. The CUDA side of the same code (bf16/fp16 autocast and
torch.compile on a GPU, ResNet-50 and EfficientNet-Lite0) is what
`benchmarks/gpu_check.sh` measures on a GPU host.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from workbench import cli
from workbench.devices import parse_device
from workbench.errors import UnavailableError, UserError
from workbench.harness.runner import BenchConfig, run_config
from workbench.harness.timing import StopRule
from workbench.registry import get_runtime
from workbench.runtimes import torch_runtime
from workbench.runtimes.base import RuntimeOptions
from workbench.runtimes.torch_runtime import TorchSettings
from workbench.signature import TensorSpec, make_input_pool

torch = pytest.importorskip("torch")

CPU = parse_device("cpu")
SPECS = [TensorSpec("x", "float32", ("batch", 16))]
NO_CXX = shutil.which("g++") is None and shutil.which("c++") is None


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = torch.nn.Linear(16, 32)
        self.fc2 = torch.nn.Linear(32, 4)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


@pytest.fixture(scope="module")
def tiny():
    return Tiny().eval()


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory, tiny):
    """The tiny module as TorchScript (with its signature sidecar) and as pt2."""
    from torch.export import Dim

    out = tmp_path_factory.mktemp("torch_settings")
    x = torch.randn(2, 16)
    script = out / "tiny.pt"
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(tiny, x), str(script))
    torch_runtime.write_signature_sidecar(script, SPECS)
    pt2 = out / "tiny.pt2"
    program = torch.export.export(tiny, (x,), dynamic_shapes=({0: Dim("batch")},))
    torch.export.save(program, str(pt2))
    return {"torchscript": script, "pt2": pt2}


def options(fmt: str, **settings) -> RuntimeOptions:
    parsed = get_runtime("torch").parse_settings(settings)
    return RuntimeOptions(CPU, threads=1, format=fmt, inputs=SPECS, settings=parsed)


def load(fmt: str, files=None, model=None, **settings):
    path = files[fmt] if files and fmt != "eager" else None
    return get_runtime("torch").load(path, options(fmt, **settings), model=model)


def outputs(loaded, feed):
    return loaded.to_numpy(loaded.run(loaded.prepare(feed)))[0]


def reference(module, feed):
    with torch.inference_mode():
        return module(torch.from_numpy(feed["x"])).numpy()


FEED = make_input_pool(SPECS, batch_size=8, pool_size=1)[0]


# ---------------------------------------------------------------- settings as data


def test_settings_defaults_and_description():
    assert get_runtime("torch").Settings is TorchSettings
    assert TorchSettings().to_dict() == {"autocast": "off", "compile": "off", "quantize": "off"}
    text = TorchSettings.describe()
    for word in ("autocast", "compile", "fp16", "bf16", "reduce-overhead", "max-autotune"):
        assert word in text


# The wording of "must be ..." and of the option list is `workbench.options`'s; what is
# checked here is that each refusal is one line naming the setting, the value and the
# valid settings.
@pytest.mark.parametrize(
    ("values", "start"),
    [
        ({"autocast": "fp8"}, r"runtime 'torch': setting '?autocast'? must be .*, got 'fp8'; "),
        ({"autocast": "bfloat16"}, r"runtime 'torch': setting '?autocast'? must be .*'bfloat16'"),
        ({"compile": True}, r"runtime 'torch': setting '?compile'? must be .*, got True; "),
        ({"compiled": "default"}, r"runtime 'torch' has no setting '?compiled'?: it takes "),
    ],
)
def test_unknown_or_ill_typed_settings_are_one_line_errors(values, start):
    with pytest.raises(UserError) as info:
        get_runtime("torch").parse_settings(values)
    message = str(info.value)
    assert "\n" not in message
    assert re.match(start, message), message
    assert message.endswith(f"it takes {TorchSettings.describe()}")


def test_cli_refuses_a_bad_setting_in_one_line(capsys):
    code = cli.main(["bench", "--task", "tabular", "--setting", "torch.autocast=fp8"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1
    assert re.match(r"workbench: error: runtime 'torch': setting '?autocast'? must be ", err[0])
    assert "'fp8'" in err[0] and err[0].endswith(TorchSettings.describe())


def test_torch_missing_is_an_unavailable_reason(monkeypatch):
    monkeypatch.setattr(torch_runtime, "installed", lambda module: module != "torch")
    assert get_runtime("torch").unavailable_reason(CPU) == "torch is not installed"


# ---------------------------------------------------------------- autocast


@pytest.mark.parametrize("fmt", ["eager", "torchscript", "pt2"])
def test_bf16_autocast_on_cpu_is_close_to_fp32_and_says_so(fmt, tiny, tiny_files):
    plain = load(fmt, tiny_files, model=tiny)
    bf16 = load(fmt, tiny_files, model=tiny, autocast="bf16")
    assert plain.provider == "cpu"
    assert bf16.provider == "cpu (autocast bf16)"
    # the matmuls really ran in bfloat16: the raw output is bf16, to_numpy makes it float32
    raw = bf16.run(bf16.prepare(FEED))
    assert raw.dtype == torch.bfloat16
    expected = reference(tiny, FEED)
    got = outputs(bf16, FEED)
    assert got.dtype == np.float32
    np.testing.assert_allclose(outputs(plain, FEED), expected, rtol=1e-5, atol=1e-6)
    scale = float(np.abs(expected).max())
    assert float(np.abs(got - expected).max()) <= 0.02 * scale  # bf16 has 8 mantissa bits
    assert not np.array_equal(got, expected)  # ...and it is not the fp32 result


def test_fp16_autocast_on_cpu_runs_or_says_why(tiny):
    """fp16 autocast on the CPU: torch 2.14 has float16 CPU kernels for linear; whatever
    it runs is labelled as fp16, and an op without such a kernel fails with a message
    naming autocast (a module that raises stands in for it)."""
    loaded = load("eager", model=tiny, autocast="fp16")
    assert loaded.provider == "cpu (autocast fp16)"
    assert loaded.run(loaded.prepare(FEED)).dtype == torch.float16
    np.testing.assert_allclose(outputs(loaded, FEED), reference(tiny, FEED), atol=0.02, rtol=0.02)

    class NoHalfKernel(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("\"addmm_impl_cpu_\" not implemented for 'Half'")

    broken = load("eager", model=NoHalfKernel(), autocast="fp16")
    with pytest.raises(RuntimeError) as info:
        broken.run(broken.prepare(FEED))
    assert str(info.value) == (
        'the model fails under fp16 autocast on cpu: "addmm_impl_cpu_" not implemented for '
        "'Half' (use autocast=bf16 on the CPU)"
    )


def test_autocast_row_through_the_harness(tiny):
    rows = []
    config = BenchConfig(
        runtime="torch",
        format="eager",
        batch_sizes=[1, 4],
        threads=1,
        rule=StopRule(warmup_iters=1, warmup_time_s=0, min_iters=3, min_time_s=0),
        runtime_settings={"autocast": "bf16"},
    )
    run_config(config, rows.append, model=tiny, input_specs=SPECS)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert {r["provider"] for r in rows} == {"cpu (autocast bf16)"}
    assert {str(r["runtime_options"]) for r in rows} == {"{'autocast': 'bf16'}"}


# ---------------------------------------------------------------- torch.compile


def test_torchscript_cannot_be_compiled(tiny_files):
    with pytest.raises(UserError) as info:
        load("torchscript", tiny_files, compile="default")
    assert str(info.value) == (
        "torch.compile cannot compile a TorchScript module (compile='default'); it would run "
        "the TorchScript uncompiled: use the eager or pt2 format, or compile=off"
    )


def _unique_graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


@pytest.mark.skipif(NO_CXX, reason="no C++ compiler: inductor cannot build CPU kernels here")
@pytest.mark.parametrize("fmt", ["eager", "pt2"])
def test_compile_on_cpu_matches_eager_and_compiles_on_the_first_call_only(fmt, tiny, tiny_files):
    """Inductor on the CPU (g++ here). The first call at a shape compiles; later calls at
    that shape (the harness's warm-up and timed iterations) reuse the graph."""
    loaded = load(fmt, tiny_files, model=tiny, compile="default")
    assert loaded.provider == "cpu (compile default)"
    pool = make_input_pool(SPECS, batch_size=8, pool_size=4)
    before = _unique_graphs()
    first = outputs(loaded, pool[0])
    compiled = _unique_graphs()
    assert compiled == before + 1
    for feed in pool * 3:
        np.testing.assert_allclose(
            outputs(loaded, feed), reference(tiny, feed), rtol=1e-5, atol=1e-5
        )
    assert _unique_graphs() == compiled  # no recompilation after the first call
    np.testing.assert_allclose(first, reference(tiny, pool[0]), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(NO_CXX, reason="no C++ compiler: inductor cannot build CPU kernels here")
def test_compile_with_autocast_through_the_harness(tiny):
    """Both settings at once, in the harness: each batch size compiles at its untimed first
    call (dynamic=False), never inside the warm-up or the timed loop."""
    calls: list[int] = []
    rows = []

    class Counting(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = tiny

        def forward(self, x):
            return self.inner(x)

    config = BenchConfig(
        runtime="torch",
        format="eager",
        batch_sizes=[2, 3],
        threads=1,
        rule=StopRule(warmup_iters=2, warmup_time_s=0, min_iters=5, min_time_s=0),
        runtime_settings={"autocast": "bf16", "compile": "default"},
    )

    def emit(row):
        calls.append(_unique_graphs())
        rows.append(row)

    before = _unique_graphs()
    run_config(config, emit, model=Counting().eval(), input_specs=SPECS)
    assert [r["status"] for r in rows] == ["ok", "ok"], rows
    assert {r["provider"] for r in rows} == {"cpu (autocast bf16, compile default)"}
    # one graph per batch size, made at its first call (see the test above), none later
    assert calls == [before + 1, before + 2]


def test_bf16_on_a_gpu_without_bf16_is_unavailable(monkeypatch, tiny):
    """Pretend the host has a CUDA GPU without bfloat16 (e.g. a T4)."""
    runtime = get_runtime("torch")
    monkeypatch.setattr(type(runtime), "unavailable_reason", lambda self, device: None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "Tesla T4")
    gpu = RuntimeOptions(
        parse_device("cuda"), inputs=SPECS, settings=runtime.parse_settings({"autocast": "bf16"})
    )
    with pytest.raises(UnavailableError) as info:
        runtime.load(None, gpu, model=tiny)
    assert str(info.value) == (
        "bf16 autocast needs a GPU with bfloat16 support (compute capability 8.0+); "
        "Tesla T4 has none"
    )
