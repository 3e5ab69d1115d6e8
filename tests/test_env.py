"""Tests for the environment fingerprint."""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path

import pytest

from workbench import env

CPUINFO = Path("/proc/cpuinfo")


def test_fingerprint_has_the_keys():
    fp = env.fingerprint()
    assert {
        "timestamp",
        "hostname",
        "os",
        "cpu",
        "memory_bytes",
        "gpu",
        "python",
        "libraries",
        "threads",
        "git",
    } <= set(fp)
    assert {
        "model",
        "flags",
        "logical_cores",
        "affinity_cores",
        "physical_cores",
    } <= set(fp["cpu"])
    assert fp["cpu"]["logical_cores"] == os.cpu_count()
    assert fp["cpu"]["affinity_cores"] == len(os.sched_getaffinity(0))
    assert fp["memory_bytes"] > 0
    assert set(fp["libraries"]) == set(env.LIBRARIES)
    assert set(fp["threads"]) == set(env.THREAD_ENV_VARS)
    assert {"commit", "dirty"} <= set(fp["git"])
    assert isinstance(fp["gpu"]["gpus"], list)
    if not fp["gpu"]["gpus"]:
        assert fp["gpu"]["gpu_reason"]
    json.dumps(fp)  # serializable as is


@pytest.mark.skipif(not CPUINFO.exists(), reason="needs /proc/cpuinfo")
def test_flags_are_bools_matching_cpuinfo():
    flags_line = next(
        line.split(":", 1)[1]
        for line in CPUINFO.read_text().splitlines()
        if line.startswith("flags")
    )
    present = set(flags_line.split())
    flags = env.fingerprint()["cpu"]["flags"]
    assert all(isinstance(v, bool) for v in flags.values())
    for name in (
        "avx2",
        "avx512f",
        "avx_vnni",
        "amx_tile",
        "amx_int8",
        "amx_bf16",
        "f16c",
        "fma",
    ):
        assert flags[name] == (name in present), name
    assert flags["avx512_vnni"] == bool({"avx512_vnni", "avx512vnni"} & present)


def test_cpu_flags_parses_a_line():
    flags = env.cpu_flags("fpu avx2 avx512vnni fma")
    assert flags["avx2"] and flags["avx512_vnni"] and flags["fma"]
    assert not flags["avx512f"] and not flags["amx_tile"]


def test_fingerprint_id_is_stable_and_ignores_timestamp():
    a, b = env.fingerprint(), env.fingerprint()
    assert env.fingerprint_id(a) == env.fingerprint_id(b)
    changed = dict(a, libraries=dict(a["libraries"], numpy="0.0.0"))
    assert env.fingerprint_id(changed) != env.fingerprint_id(a)


def test_thread_env_vars_are_recorded(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert env.fingerprint()["threads"]["OMP_NUM_THREADS"] == "3"


def test_library_versions_come_from_metadata():
    libs = env.fingerprint()["libraries"]
    assert libs["numpy"] == metadata.version("numpy")
    assert libs["onnxruntime"] is None
    assert libs["onnxruntime-gpu"]


def test_cpu_only_onnxruntime_not_installed():
    """The CPU-only `onnxruntime` wheel must never sit beside `onnxruntime-gpu`."""
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version("onnxruntime")
    assert metadata.version("onnxruntime-gpu")


def test_format_fingerprint_is_readable():
    fp = env.fingerprint()
    text = env.format_fingerprint(fp)
    assert env.fingerprint_id(fp) in text
    assert "cpu" in text and "numpy" in text and "gpu" in text
    assert len(text.splitlines()) > 10
