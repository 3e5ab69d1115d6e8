"""One registry mechanism: lazy lookup by name, entry points of third-party packages, and
listing that imports no framework."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from workbench.errors import UserError
from workbench.registry import ENDPOINTS, PASSES, RUNTIMES, TASKS, Registry

REPO = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("torch", "tensorflow", "keras", "onnxruntime", "onnx", "ai_edge_litert")


def _child(code: str, extra_path: Path | None = None) -> dict:
    """Run `code` in a fresh interpreter (this checkout, plus `extra_path`, on sys.path);
    it prints one JSON object last."""
    path = [str(REPO), *([str(extra_path)] if extra_path else []), os.environ.get("PYTHONPATH")]
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_listing_every_registry_imports_no_framework() -> None:
    out = _child(
        f"""
        import json, sys
        from workbench.registry import registries
        names = {{noun: reg.names() for noun, reg in registries().items()}}
        print(json.dumps({{"names": names, "loaded": sorted(set({FRAMEWORKS!r}) & set(sys.modules))}}))
        """
    )
    assert out["loaded"] == []
    assert {"tabular", "image_classification", "object_detection"} <= set(out["names"]["tasks"])
    assert {"onnxruntime", "torch", "litert", "tensorflow"} <= set(out["names"]["runtimes"])
    assert {"torch_onnx", "onnx_int8_static", "keras_tflite"} <= set(out["names"]["passes"])


def test_every_builtin_entry_resolves_to_a_class_of_that_name() -> None:
    """The tables in workbench/registry.py point at real classes whose `name` matches."""
    for registry in (RUNTIMES, PASSES):
        for name, cls in registry.all().items():
            assert cls.name == name
    assert TASKS.get("tabular").name == "tabular"


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(UserError, match=r"unknown task 'tabularr': choose one of .*tabular"):
        TASKS.get("tabularr")
    with pytest.raises(UserError, match="unknown runtime 'ort'.*onnxruntime"):
        RUNTIMES.get("ort")


def test_a_target_whose_name_disagrees_is_refused() -> None:
    registry: Registry[object] = Registry(
        "task", "workbench.no_such_group", {"wrong": "workbench.tasks.tabular:TabularTask"}
    )
    with pytest.raises(UserError, match="whose name is 'tabular'"):
        registry.get("wrong")
    broken: Registry[object] = Registry("task", "x", {"gone": "workbench.no_such_module:Task"})
    with pytest.raises(UserError, match="cannot import module 'workbench.no_such_module'"):
        broken.get("gone")


PLUGIN = '''
"""A third-party workbench plugin: one task, one runtime, one pass."""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exporters.base import ExportContext, Pass
from workbench.options import Options
from workbench.runtimes.base import LoadedModel, Runtime, RuntimeOptions
from workbench.signature import TensorSpec
from workbench.tasks.base import Task

SPECS = [TensorSpec("x", "float32", ("batch", 3))]


class DoubleTask(Task):
    name = "double"
    models = ("twice",)
    frameworks = ("torch",)

    def input_specs(self, model, framework="torch"):
        return SPECS

    def make_inputs(self, model, batch_size, seed=0, framework="torch"):
        rng = np.random.default_rng(seed)
        return {"x": rng.standard_normal((batch_size, 3)).astype(np.float32)}

    def build_torch(self, model):
        raise NotImplementedError

    def build_keras(self, model):
        raise NotImplementedError

    def parity(self, reference, candidate):
        return {}


class DoubleModel(LoadedModel):
    def __init__(self, factor):
        self.inputs, self.outputs, self.provider, self.factor = SPECS, [], "numpy", factor

    def run(self, prepared):
        return [prepared["x"] * self.factor]


@dataclass(frozen=True)
class NumpySettings(Options):
    factor: float = 2.0


class NumpyRuntime(Runtime):
    name = "numpy_double"
    formats = ("npy",)
    Settings = NumpySettings

    def unavailable_reason(self, device):
        return None if not device.is_gpu else "numpy runs on the CPU only"

    def load(self, path, options, model=None):
        return DoubleModel(self.settings(options).factor)


@dataclass(frozen=True)
class NpyParams(Options):
    scale: int = 1


class ToNpy(Pass):
    name = "to_npy"
    source_frameworks = ("torch",)
    format = "npy"
    filename = "model.npy"
    Params = NpyParams

    def export(self, ctx: ExportContext, out: Path):
        np.save(out, np.ones(3))
        return {}
'''


def _plugin_distribution(root: Path) -> Path:
    """A tiny installed distribution (a module plus its .dist-info with entry points),
    as `pip install` would leave it in site-packages."""
    site = root / "site"
    (site / "wb_plugin").mkdir(parents=True)
    (site / "wb_plugin" / "__init__.py").write_text(PLUGIN)
    info = site / "wb_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wb-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[workbench.tasks]\ndouble = wb_plugin:DoubleTask\n\n"
        "[workbench.runtimes]\nnumpy_double = wb_plugin:NumpyRuntime\n\n"
        "[workbench.passes]\nto_npy = wb_plugin:ToNpy\n"
    )
    return site


def test_a_third_party_package_adds_a_task_a_runtime_and_a_pass(tmp_path: Path) -> None:
    site = _plugin_distribution(tmp_path)
    out = _child(
        """
        import json, sys
        from exporters.base import find_pass
        from workbench.harness.runner import BenchConfig, run_config
        from workbench.harness.timing import StopRule
        from workbench.registry import PASSES, RUNTIMES, TASKS, get_task

        listed = {"tasks": TASKS.names(), "runtimes": RUNTIMES.names(), "passes": PASSES.names()}
        loaded_before = "wb_plugin" in sys.modules
        task = get_task("double")
        rows = []
        config = BenchConfig(
            runtime="numpy_double", format="npy", batch_sizes=[2], runtime_settings={"factor": 3.0},
            rule=StopRule(warmup_iters=1, warmup_time_s=0, min_iters=5, min_time_s=0),
        )
        run_config(config, rows.append, input_specs=task.input_specs("twice"))
        params = find_pass("torch", "npy", "fp32").check_params({"scale": 4}).to_dict()
        from workbench.formats import runtime_for
        from workbench.sweep import TaskSweep, plan
        jobs = [(j.format, runtime_for(j.format)) for j in plan(
            TaskSweep(task="double", formats=["npy"], precisions=["fp32"])
        )]
        print(json.dumps({"listed": listed, "loaded_before": loaded_before, "row": {
            k: rows[0][k] for k in ("status", "provider", "n_iterations", "runtime_options")
        }, "params": params, "jobs": jobs}))
        """,
        site,
    )
    assert "double" in out["listed"]["tasks"] and "tabular" in out["listed"]["tasks"]
    assert "numpy_double" in out["listed"]["runtimes"] and "to_npy" in out["listed"]["passes"]
    assert out["loaded_before"] is False  # listing the plugin's names imported nothing
    assert out["row"]["status"] == "ok" and out["row"]["provider"] == "numpy"
    assert out["row"]["n_iterations"] >= 5
    assert out["row"]["runtime_options"] == {"factor": 3.0}
    assert out["params"] == {"scale": 4}
    # a sweep plans the plugin pass's new format and runs it on the plugin runtime
    assert out["jobs"] == [["npy", "numpy_double"]]


def test_a_plugin_name_that_clashes_with_a_builtin_is_an_error(tmp_path: Path) -> None:
    site = _plugin_distribution(tmp_path)
    (site / "wb_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[workbench.tasks]\ntabular = wb_plugin:DoubleTask\n"
    )
    out = _child(
        """
        import json
        from workbench.errors import UserError
        from workbench.registry import TASKS
        try:
            TASKS.names()
            print(json.dumps({"error": None}))
        except UserError as exc:
            print(json.dumps({"error": str(exc)}))
        """,
        site,
    )
    assert "tabular" in out["error"] and "clashes" in out["error"]


def test_a_pass_plugin_that_does_not_import_is_an_error_not_a_missing_format(monkeypatch):
    """Planning must not quietly drop every exported format because a plugin is broken."""
    from workbench.sweep import TaskSweep, plan

    monkeypatch.setenv(PASSES.plugin_env or "", "no_such_pass_module_for_workbench")
    with pytest.raises(UserError, match="no_such_pass_module_for_workbench"):
        plan(TaskSweep(task="tabular", formats=["onnx"], precisions=["fp32"]))


# ---------------------------------------------------------------------- task endpoints

SERVING = ("fastapi", "starlette", "uvicorn", "grpc")


def test_endpoints_are_listed_without_importing_a_framework_or_the_server() -> None:
    out = _child(
        f"""
        import json, sys
        from workbench.registry import registries
        names = registries()["endpoints"].names()
        print(json.dumps({{"names": names, "loaded": sorted(
            set({FRAMEWORKS + SERVING!r}) & set(sys.modules)
        )}}))
        """
    )
    assert out["loaded"] == []
    assert {"classify", "detect", "moderate"} <= set(out["names"])


def test_every_builtin_endpoint_resolves_to_a_class_of_that_name() -> None:
    from workbench.serving.endpoints import TaskEndpoint

    for name, cls in ENDPOINTS.all().items():
        assert cls.name == name and issubclass(cls, TaskEndpoint)


def test_an_unknown_endpoint_is_a_one_line_error_naming_the_registered_ones() -> None:
    from fastapi import FastAPI

    from workbench.serving.endpoints import EndpointConfig, mount

    with pytest.raises(UserError) as info:
        mount(FastAPI(), None, [EndpointConfig("clasify", "m")])  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("unknown endpoint 'clasify': choose one of ")
    assert {"classify", "detect", "moderate"} <= set(
        message.split(": choose one of ")[1].split(", ")
    )


ECHO = '''
"""A third-party task endpoint: POST /api/v1/echo answers the model it serves."""
from fastapi import FastAPI

from workbench.serving.endpoints import EndpointContext, TaskEndpoint


class Echo(TaskEndpoint):
    name = "echo"

    def add_routes(self, app: FastAPI, ctx: EndpointContext) -> None:
        @app.post("/api/v1/echo")
        async def echo() -> dict:
            return {"model": ctx.model, "options": ctx.options}
'''


def test_a_third_party_package_adds_an_endpoint_that_serving_mounts(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "wb_echo").mkdir(parents=True)
    (site / "wb_echo" / "__init__.py").write_text(ECHO)
    info = site / "wb_echo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wb-echo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[workbench.endpoints]\necho = wb_echo:Echo\n")
    out = _child(
        """
        import json, sys
        from fastapi import FastAPI
        from fastapi.testclient import TestClient
        from workbench.registry import ENDPOINTS
        from workbench.serving.endpoints import EndpointConfig, mount

        names = ENDPOINTS.names()
        loaded_before = "wb_echo" in sys.modules
        app = FastAPI()
        mount(app, None, [EndpointConfig.parse("echo=m1,greeting=hi")])
        reply = TestClient(app).post("/api/v1/echo").json()
        print(json.dumps({"names": names, "loaded_before": loaded_before, "reply": reply}))
        """,
        site,
    )
    assert "echo" in out["names"] and "classify" in out["names"]
    assert out["loaded_before"] is False  # listing the plugin's name imported nothing
    assert out["reply"] == {"model": "m1", "options": {"greeting": "hi"}}
