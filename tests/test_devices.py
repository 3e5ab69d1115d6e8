"""Device selection without a GPU: names parse, the host check explains itself, and each
runtime maps a device to its own device naming without ever falling back to the CPU."""

from __future__ import annotations

import pytest

from workbench import devices
from workbench.devices import Device, host_gpu_reason, parse_device
from workbench.errors import UserError
from workbench.registry import RUNTIMES, get_runtime
from workbench.runtimes import ort_runtime, tf_runtime, torch_runtime


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cpu", Device("cpu")),
        ("CUDA", Device("cuda", 0)),
        ("cuda:1", Device("cuda", 1)),
        ("gpu", Device("cuda", 0)),
        ("gpu:2", Device("cuda", 2)),
    ],
)
def test_parse_device(text, expected):
    assert parse_device(text) == expected


@pytest.mark.parametrize("text", ["tpu", "cuda:x", "cpu:1", "", "cuda:-1"])
def test_parse_device_rejects_unknown_names(text):
    with pytest.raises(UserError, match="cpu, cuda or cuda:N|takes no index"):
        parse_device(text)


@pytest.fixture
def fake_gpus(monkeypatch):
    """Pretend the driver reports these GPUs (tests the selection logic, not a runtime)."""

    def set_gpus(*names: str) -> None:
        monkeypatch.setattr(devices, "nvidia_gpus", lambda: tuple(names))

    return set_gpus


def test_host_check_without_and_with_gpus(fake_gpus):
    fake_gpus()
    assert host_gpu_reason(Device("cuda", 0)) == devices.NO_GPU_REASON
    assert host_gpu_reason(Device("cpu")) is None
    fake_gpus("NVIDIA H100 80GB HBM3")
    assert host_gpu_reason(Device("cuda", 0)) is None
    assert "has 1 GPU" in host_gpu_reason(Device("cuda", 1))


def test_ort_provider_lists_never_end_in_cpu_for_cuda():
    assert ort_runtime.execution_providers(Device("cpu"), {}) == ["CPUExecutionProvider"]
    cuda = ort_runtime.execution_providers(Device("cuda", 1), {})
    assert cuda == [("CUDAExecutionProvider", {"device_id": 1})]
    trt = ort_runtime.execution_providers(Device("cuda", 0), {"tensorrt": True})
    assert [p[0] for p in trt] == ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    assert all("CPU" not in ort_runtime.provider_name(p) for p in cuda + trt)


def test_framework_device_names():
    assert torch_runtime.torch_device_name(Device("cuda", 1)) == "cuda:1"
    assert torch_runtime.torch_device_name(Device("cpu")) == "cpu"
    assert tf_runtime.tf_device_name(Device("cuda", 1)) == "/GPU:1"
    assert tf_runtime.tf_device_name(Device("cpu")) == "/CPU:0"


@pytest.mark.parametrize("name", RUNTIMES.names())
def test_every_runtime_says_why_cuda_is_unavailable_here(name):
    if devices.nvidia_gpus():
        pytest.skip("this host has a GPU")
    reason = get_runtime(name).unavailable_reason(Device("cuda", 0))
    assert reason and "no GPU on this host" in reason
    assert get_runtime(name).unavailable_reason(Device("cpu")) is None
