"""One registry mechanism for every pluggable noun: tasks, runtimes, passes and task
endpoints (`registries()` below is the whole list; `workbench list` prints it).

Each registry maps a name to a `"module:Class"` string and imports the module only
when that name is asked for, so listing what exists imports no framework. A registered
class carries its own `name`. Three sources fill a registry, in this order (a later one
may not reuse a taken name):

1. the built-in table below: adding an implementation is one new module plus one
   line here;
2. entry points of installed distributions, in the group named by the registry
   (`workbench.tasks`, `workbench.runtimes`, `workbench.passes`, `workbench.endpoints`):
   a third-party package adds a task with
   `[project.entry-points."workbench.tasks"] my_task = "my_pkg.task:MyTask"`;
3. for runtimes, passes and endpoints, the modules named (comma-separated) in an
   environment variable (`WORKBENCH_EXTRA_RUNTIMES`, `..._PASSES`, `..._ENDPOINTS`), whose
   classes join with `@REGISTRY.register`: a quick hook for a local file (benchmark and
   export worker processes inherit the variable).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from workbench.errors import UserError

if TYPE_CHECKING:
    from exporters.base import Pass
    from workbench.runtimes.base import Runtime
    from workbench.serving.endpoints import TaskEndpoint
    from workbench.tasks.base import Task

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> implementation class, resolved lazily from `"module:Class"` targets."""

    def __init__(
        self,
        kind: str,
        group: str,
        builtins: Mapping[str, str],
        plugin_env: str | None = None,
        spec_env: tuple[str, str] | None = None,
    ) -> None:
        self.kind = kind  # "task", "runtime", ... for messages
        self.group = group  # the entry-point group third-party packages use
        self.plugin_env = plugin_env
        # (variable, "module:function"): paths in the variable (os.pathsep-separated)
        # each resolve to a class through the function (tasks made from model.yaml files)
        self.spec_env = spec_env
        self.builtin_names = tuple(builtins)
        self._targets: dict[str, str] = dict(builtins)
        self._classes: dict[str, type[T]] = {}
        self._discovered = False

    # ------------------------------------------------------------------ filling

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator for plugin modules: adds `cls` under `cls.name`."""
        name = cls.name  # type: ignore[attr-defined]
        target = f"{cls.__module__}:{cls.__qualname__}"
        if self._targets.get(name, target) != target:
            raise UserError(
                f"{self.kind} {name!r} registered by {target!r} clashes with the one at "
                f"{self._targets[name]!r}: rename it"
            )
        self._classes[name] = cls
        self._targets[name] = target
        return cls

    def _discover(self) -> None:
        """Entry points once per process; $plugin_env modules on every lookup, since the
        variable may change (importing a module twice is free)."""
        for module in os.environ.get(self.plugin_env or "", "").split(","):
            if module.strip():
                _import(module.strip(), f"${self.plugin_env}", self.kind)
        if self.spec_env:
            self._discover_specs(*self.spec_env)
        if self._discovered:
            return
        self._discovered = True
        for entry in metadata.entry_points(group=self.group):
            if entry.name in self._targets:
                raise UserError(
                    f"{self.kind} {entry.name!r} from the entry point {entry.value!r} "
                    f"({self.group}) clashes with the one at {self._targets[entry.name]!r}: "
                    "rename it in the plugin's entry points"
                )
            self._targets[entry.name] = entry.value

    def _discover_specs(self, variable: str, resolver: str) -> None:
        paths = [p for p in os.environ.get(variable, "").split(os.pathsep) if p]
        if not paths:
            return
        module_name, _, attr = resolver.partition(":")
        make = getattr(_import(module_name, f"${variable}", self.kind), attr)
        for path in paths:
            target = f"spec:{path}"
            if any(t == target for t in self._targets.values()):
                continue
            cls = make(path)
            if cls.name in self._targets:
                raise UserError(
                    f"{self.kind} {cls.name!r} from {path} clashes with the one at "
                    f"{self._targets[cls.name]!r}: rename it in the spec"
                )
            self._classes[cls.name] = cls
            self._targets[cls.name] = target

    # ------------------------------------------------------------------ lookup

    def names(self) -> list[str]:
        """Every registered name, sorted, without importing any implementation."""
        self._discover()
        return sorted(self._targets)

    def get(self, name: str) -> type[T]:
        """The class registered as `name`; a UserError listing the valid names otherwise."""
        self._discover()
        if name in self._classes:
            return self._classes[name]
        if name not in self._targets:
            raise UserError(
                f"unknown {self.kind} {name!r}: choose one of {', '.join(self.names())}"
            )
        module_name, _, attr = self._targets[name].partition(":")
        module = _import(module_name, f"{self.kind} {name!r}", self.kind)
        try:
            cls = getattr(module, attr)
        except AttributeError:
            raise UserError(
                f"{self.kind} {name!r} points at {self._targets[name]!r}, but {module_name} "
                f"has no {attr!r}: fix the registry entry"
            ) from None
        if getattr(cls, "name", name) != name:
            raise UserError(
                f"{self.kind} {name!r} points at {self._targets[name]!r}, whose name is "
                f"{cls.name!r}: make the two agree"
            )
        self._classes[name] = cls
        return cls

    def create(self, name: str) -> T:
        """A new instance of the class registered as `name`."""
        return self.get(name)()

    def all(self) -> dict[str, type[T]]:
        """Every class, imported (for lookups by attribute, e.g. a pass by format)."""
        return {name: self.get(name) for name in self.names()}

    # ------------------------------------------------------------------ removing

    def unregister(self, name: str) -> None:
        """Remove `name`, so that a plugin loaded for one test (or one run) does not stay
        visible to the rest of the process; the name may be registered again later."""
        if name not in self._targets:
            raise UserError(f"unknown {self.kind} {name!r}: nothing to unregister")
        del self._targets[name]
        self._classes.pop(name, None)


def _import(module: str, what: str, kind: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UserError(
            f"cannot import module {module!r} named by {what}: {exc}; "
            f"fix the {kind}'s module name or PYTHONPATH"
        ) from exc


# ---------------------------------------------------------------------- the registries

TASKS: Registry[Task] = Registry(
    "task",
    "workbench.tasks",
    {
        "tabular": "workbench.tasks.tabular:TabularTask",
        "image_classification": "workbench.tasks.image_classification:ImageClassificationTask",
        "object_detection": "workbench.tasks.object_detection:ObjectDetectionTask",
        "recommendation": "workbench.tasks.recommendation:RecommendationTask",
        "ctr": "workbench.tasks.ctr:CtrTask",
        "text_classification": "workbench.tasks.text_classification:TextClassificationTask",
        "ner": "workbench.tasks.ner:NerTask",
    },
    # a user's model.yaml (`workbench model`): its path in this variable makes its task
    spec_env=("WORKBENCH_MODEL_SPECS", "workbench.usermodel.task:task_class"),
)

RUNTIMES: Registry[Runtime] = Registry(
    "runtime",
    "workbench.runtimes",
    {
        "onnxruntime": "workbench.runtimes.ort_runtime:OrtRuntime",
        "torch": "workbench.runtimes.torch_runtime:TorchRuntime",
        "litert": "workbench.runtimes.litert_runtime:LiteRTRuntime",
        "tensorflow": "workbench.runtimes.tf_runtime:TFRuntime",
        "null": "workbench.runtimes.null_runtime:NullRuntime",
        "openvino": "workbench.runtimes.openvino_runtime:OpenVinoRuntime",
        "onnxruntime-c": "workbench.runtimes.compiled_runtime:OrtCRuntime",
        "torch-cpp": "workbench.runtimes.compiled_runtime:TorchCppRuntime",
    },
    plugin_env="WORKBENCH_EXTRA_RUNTIMES",
)

PASSES: Registry[Pass] = Registry(
    "pass",
    "workbench.passes",
    {
        "torch_onnx": "exporters.torch_onnx:TorchOnnx",
        "torch_script": "exporters.torch_script:TorchScriptPass",
        "torch_export": "exporters.torch_script:TorchExportPass",
        "torch_tflite": "exporters.torch_tflite:TorchTFLite",
        "torch_quantize_dynamic": "exporters.torch_quantize:TorchDynamicInt8",
        "keras_onnx": "exporters.keras_onnx:KerasOnnx",
        "keras_savedmodel": "exporters.keras_savedmodel:KerasSavedModel",
        "keras_tflite": "exporters.keras_tflite:KerasTFLite",
        "keras_tflite_fp16": "exporters.tflite_quantize:KerasTFLiteFP16",
        "keras_tflite_int8_dynamic": "exporters.tflite_quantize:KerasTFLiteInt8Dynamic",
        "keras_tflite_int8_static": "exporters.tflite_quantize:KerasTFLiteInt8Static",
        "onnx_fp16": "exporters.onnx_quantize:OnnxFp16",
        "onnx_int8_dynamic": "exporters.onnx_quantize:OnnxInt8Dynamic",
        "onnx_int8_static": "exporters.onnx_quantize:OnnxInt8Static",
        "onnx_transformer_optimize": "exporters.onnx_optimize:OnnxTransformerOptimize",
        "onnx_fused_int8_dynamic": "exporters.onnx_quantize:OnnxFusedInt8Dynamic",
        "onnx_fused_int8_static": "exporters.onnx_quantize:OnnxFusedInt8Static",
        # an ONNX file as the source model (workbench model init model.onnx)
        "onnx_source": "exporters.onnx_source:OnnxSourceCopy",
        "onnx_source_fp16": "exporters.onnx_source:OnnxSourceFp16",
        "onnx_source_int8_dynamic": "exporters.onnx_source:OnnxSourceInt8Dynamic",
        "onnx_source_int8_static": "exporters.onnx_source:OnnxSourceInt8Static",
        "onnx_source_transformer_optimize": "exporters.onnx_source:OnnxSourceTransformerOptimize",
        "onnx_source_fused_int8_dynamic": "exporters.onnx_source:OnnxSourceFusedInt8Dynamic",
        "onnx_source_fused_int8_static": "exporters.onnx_source:OnnxSourceFusedInt8Static",
        # a TensorFlow SavedModel directory as the source model
        "savedmodel_source": "exporters.savedmodel_source:SavedModelCopy",
        "savedmodel_tflite": "exporters.savedmodel_source:SavedModelTFLite",
        "savedmodel_tflite_fp16": "exporters.savedmodel_source:SavedModelTFLiteFP16",
        "savedmodel_tflite_int8_dynamic": "exporters.savedmodel_source:SavedModelTFLiteInt8Dynamic",
        "savedmodel_tflite_int8_static": "exporters.savedmodel_source:SavedModelTFLiteInt8Static",
        "savedmodel_onnx": "exporters.savedmodel_source:SavedModelOnnx",
        "savedmodel_onnx_fp16": "exporters.savedmodel_source:SavedModelOnnxFp16",
        "savedmodel_onnx_int8_dynamic": "exporters.savedmodel_source:SavedModelOnnxInt8Dynamic",
        "savedmodel_onnx_int8_static": "exporters.savedmodel_source:SavedModelOnnxInt8Static",
        "openvino_ir": "exporters.openvino_passes:OpenVinoIr",
        "openvino_bf16": "exporters.openvino_passes:OpenVinoBf16",
        "openvino_int8_static": "exporters.openvino_passes:NncfInt8Static",
    },
    plugin_env="WORKBENCH_EXTRA_PASSES",
)

ENDPOINTS: Registry[TaskEndpoint] = Registry(
    "endpoint",
    "workbench.endpoints",
    {
        "classify": "workbench.serving.vision_endpoints:ClassifyEndpoint",
        "detect": "workbench.serving.vision_endpoints:DetectEndpoint",
        "moderate": "workbench.serving.moderate_endpoint:ModerateEndpoint",
    },
    plugin_env="WORKBENCH_EXTRA_ENDPOINTS",
)


def get_task(name: str) -> Task:
    """A new instance of the task registered as `name`."""
    return TASKS.create(name)


def builtin_task_names() -> tuple[str, ...]:
    """The names of the built-in tasks (a user's model may not take one)."""
    return TASKS.builtin_names


def get_runtime(name: str) -> Runtime:
    """A new instance of the runtime registered as `name`."""
    return RUNTIMES.create(name)


def registries() -> dict[str, Registry[Any]]:
    """Every registry by its plural noun (for `workbench list` and the docs)."""
    return {"tasks": TASKS, "runtimes": RUNTIMES, "passes": PASSES, "endpoints": ENDPOINTS}
