"""A user's model source, named on the command line or in `model.yaml`, loaded as one thing.

Kinds: a factory (`package.module:function` or `path/to/file.py:function`) returning a
PyTorch `nn.Module` or a Keras model; a Keras `.keras` file; a TensorFlow SavedModel
directory (its serving signature: re-exported to TFLite and ONNX, not only timed); a
Hugging Face directory (config.json, weights, tokenizer); an ONNX file. TFLite and TorchScript files can be
timed (`workbench bench FILE`) but not converted, and a `torch.save(model)` pickle is
refused (unpickling runs code): the errors say so and what to give instead.

`Source.digest` hashes the user's code and weights, so editing the model re-exports it.
Loading happens only in worker processes (export, benchmark, probe), never in the CLI.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import UserError
from workbench.runtimes.tf_runtime import import_tensorflow

KINDS = ("factory", "keras", "savedmodel", "hf", "onnx")
HF_TASKS = {
    "ForSequenceClassification": "text-classification",
    "ForTokenClassification": "token-classification",
    "ForImageClassification": "image-classification",
}
HF_AUTO = {
    "text-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "image-classification": "AutoModelForImageClassification",
    "feature-extraction": "AutoModel",
}
# ORT transformer-optimizer model types for Hugging Face `model_type`s it fuses.
FUSABLE_MODEL_TYPES = {
    "bert": "bert",
    "roberta": "bert",
    "distilbert": "bert",
    "xlm-roberta": "bert",
    "electra": "bert",
    "camembert": "bert",
}
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """Where the model comes from: `kind` (factory, keras, hf, onnx), `target` (the factory
    reference or an absolute path), and for factories an optional state_dict file."""

    kind: str
    target: str
    weights: str | None = None
    hf_task: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"kind": self.kind, "target": self.target}
        if self.weights:
            data["weights"] = self.weights
        if self.hf_task:
            data["hf_task"] = self.hf_task
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Source:
        if not isinstance(data, dict) or data.get("kind") not in KINDS or not data.get("target"):
            raise UserError(
                f"source {data!r} needs kind (one of {', '.join(KINDS)}) and target: "
                "write it as `workbench model init` does"
            )
        return cls(data["kind"], str(data["target"]), data.get("weights"), data.get("hf_task"))

    def digest(self) -> str:
        """sha256 (16 hex digits) of what defines the model: the factory's file (or module
        file), the .py files in its folder and its weights, the .keras / .onnx file, or the HF directory's files."""
        h = hashlib.sha256(self.kind.encode())
        for path in self._files():
            h.update(path.name.encode())
            with path.open("rb") as handle:
                while chunk := handle.read(_HASH_CHUNK):
                    h.update(chunk)
        return h.hexdigest()[:16]

    def _files(self) -> list[Path]:
        if self.kind == "factory":
            # the factory's file and the Python modules beside it: a helper module the
            # factory imports from its own folder is part of the model's code
            defining = factory_file(self.target)
            files = [defining, *sorted(p for p in defining.parent.glob("*.py") if p != defining)]
            if self.weights:
                files.append(Path(self.weights))
            return files
        path = Path(self.target)
        if path.is_dir():
            return sorted(p for p in path.rglob("*") if p.is_file())
        return [path]


def parse_source(text: str, weights: str | None = None, hf_task: str | None = None) -> Source:
    """The Source a command-line argument names; a one-line UserError for what cannot be a
    source (missing file, a benchmark-only format, a pickle)."""
    if ":" in text and not Path(text).exists():
        module, _, func = text.rpartition(":")
        if not module or not func.isidentifier():
            raise UserError(
                f"source {text!r}: a factory is module:function or path/to/file.py:function"
            )
        if module.endswith(".py"):
            module = str(Path(module).resolve())
        source = Source("factory", f"{module}:{func}", _abs(weights), None)
        factory_file(source.target)  # not found: say so now
        return source
    path = Path(text)
    if not path.exists():
        raise UserError(
            f"source {text!r} does not exist: give a .keras or .onnx file, a Hugging Face "
            "directory, or a factory module:function"
        )
    if weights:
        raise UserError("--weights goes with a PyTorch factory (module:function), not a file")
    if path.is_dir():
        if (path / "config.json").exists():
            return Source("hf", str(path.resolve()), None, hf_task)
        if (path / "saved_model.pb").exists():
            return Source("savedmodel", str(path.resolve()))
        raise UserError(
            f"{text!r} is a directory without config.json or saved_model.pb: a Hugging Face "
            "directory needs config.json, its weights and a tokenizer or image processor; a "
            "SavedModel directory needs saved_model.pb"
        )
    if path.suffix == ".keras":
        return Source("keras", str(path.resolve()))
    # lazy: onnx (detect_format reads the file's own bytes)
    from workbench.formats import detect_format

    try:
        fmt = detect_format(path)
    except UserError as exc:
        if "torch.save checkpoint" in str(exc):
            raise UserError(
                f"{text!r} is a torch.save pickle, which is never loaded (unpickling runs "
                "code): write a factory `file.py:make_model` that builds the nn.Module, and "
                "give its state_dict with --weights (read with weights_only=True)"
            ) from None
        raise
    if fmt == "onnx":
        return Source("onnx", str(path.resolve()))
    raise UserError(
        f"{text!r} is a {fmt} file: it can be timed (`workbench bench {text}`) but not "
        "converted to other formats; to export and quantize, give the model's source (a "
        "PyTorch or Keras factory, a .keras file, a Hugging Face directory or an ONNX file)"
    )


def _abs(path: str | None) -> str | None:
    if path is None:
        return None
    if not Path(path).is_file():
        raise UserError(f"--weights {path!r}: no such file")
    return str(Path(path).resolve())


def factory_file(target: str) -> Path:
    """The file that defines factory `target` (module:function); a UserError if none."""
    module, _, _ = target.rpartition(":")
    if module.endswith(".py"):
        path = Path(module)
        if not path.is_file():
            raise UserError(f"factory {target!r}: no file {module!r}")
        return path
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        spec = None
        reason = str(exc)
    else:
        reason = "no such module"
    if spec is None or spec.origin is None or not Path(spec.origin).is_file():
        raise UserError(
            f"factory {target!r}: cannot find module {module!r} ({reason}); check the name "
            "and PYTHONPATH, or give path/to/file.py:function"
        )
    return Path(spec.origin)


def load_factory(target: str) -> Any:
    """The callable `target` names (importing its module runs the user's code)."""
    module_name, _, func = target.rpartition(":")
    if module_name.endswith(".py"):
        path = Path(module_name)
        name = "workbench_user_" + hashlib.sha256(str(path).encode()).hexdigest()[:8]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise UserError(f"factory {target!r}: cannot import {module_name!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        sys.path.insert(0, str(path.parent))  # its sibling modules
        spec.loader.exec_module(module)
    else:
        factory_file(target)
        module = importlib.import_module(module_name)
    if not hasattr(module, func):
        raise UserError(f"factory {target!r}: {module_name} has no {func!r}")
    factory = getattr(module, func)
    if not callable(factory):
        raise UserError(f"factory {target!r} is a {type(factory).__name__}, not a function")
    return factory


def framework_of(model: Any) -> str | None:
    """ "torch" for an nn.Module, "keras" for a Keras model, else None (no import needed:
    the model's class already loaded its framework)."""
    for cls in type(model).__mro__:
        if cls.__module__.startswith("torch.nn") and cls.__name__ == "Module":
            return "torch"
        if cls.__module__.startswith("keras") and cls.__name__ in ("Model", "Layer"):
            return "keras"
    return None


def build_factory(source: Source) -> tuple[str, Any]:
    """(framework, model) from the factory, weights loaded, in inference mode."""
    factory = load_factory(source.target)
    required = [
        p
        for p in inspect.signature(factory).parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if required:
        raise UserError(
            f"factory {source.target!r} takes required arguments "
            f"({', '.join(p.name for p in required)}): it must build the model with none"
        )
    model = factory()
    framework = framework_of(model)
    if framework is None:
        raise UserError(
            f"factory {source.target!r} returned a {type(model).__module__}."
            f"{type(model).__qualname__}, not a torch.nn.Module or a Keras model"
        )
    if source.weights:
        if framework != "torch":
            raise UserError("--weights is a PyTorch state_dict; a Keras factory loads its own")
        # lazy: torch
        import torch

        state = torch.load(source.weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    if framework == "torch":
        model.eval()
    return framework, model


def hf_config(directory: Path) -> dict[str, Any]:
    path = directory / "config.json"
    if not path.is_file():
        raise UserError(f"Hugging Face directory {str(directory)!r} has no config.json")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None


def hf_task_of(config: dict[str, Any], given: str | None = None) -> str:
    """The task for an HF config: `given`, else from `architectures` (feature-extraction
    for a bare encoder)."""
    if given:
        if given not in HF_AUTO:
            raise UserError(f"--hf-task {given!r}: choose one of {', '.join(HF_AUTO)}")
        return given
    for arch in config.get("architectures") or []:
        for suffix, task in HF_TASKS.items():
            if arch.endswith(suffix):
                return task
    return "feature-extraction"


def hf_preprocessor(directory: Path, task: str) -> Any:
    """The directory's tokenizer (or image processor for image classification)."""
    # lazy: transformers
    import transformers

    try:
        if task == "image-classification":
            return transformers.AutoImageProcessor.from_pretrained(
                str(directory), local_files_only=True
            )
        return transformers.AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError) as exc:
        what = "image processor" if task == "image-classification" else "tokenizer"
        raise UserError(
            f"Hugging Face directory {str(directory)!r} has no usable {what} "
            f"({' '.join(str(exc).split())[:160]}): save it there with save_pretrained"
        ) from None


def build_hf(source: Source) -> Any:
    """The HF model for its task with eager attention (what ORT's optimizer fuses)."""
    # lazy: transformers
    import transformers

    directory = Path(source.target)
    config = hf_config(directory)
    task = hf_task_of(config, source.hf_task)
    auto = getattr(transformers, HF_AUTO[task])
    try:
        model = auto.from_pretrained(
            str(directory), local_files_only=True, attn_implementation="eager"
        )
    except (OSError, ValueError) as exc:
        raise UserError(
            f"cannot load the Hugging Face model in {str(directory)!r} as {task} "
            f"({' '.join(str(exc).split())[:200]})"
        ) from None
    model.eval()
    return model


def load_keras(path: str) -> Any:
    import_tensorflow()  # after Triton: TensorFlow first makes a later Triton import segfault
    # lazy: keras
    import keras

    return keras.saving.load_model(path, compile=False, safe_mode=True)
