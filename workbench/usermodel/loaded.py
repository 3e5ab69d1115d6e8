"""A loaded user model behind one calling convention: named numpy inputs in, named numpy
outputs out, whatever the source (nn.Module with keyword or positional inputs and
dict/tuple outputs, Keras model, Hugging Face model, SavedModel signature, ONNX file).

PyTorch models are wrapped in an adapter module whose `forward` takes the inputs
positionally in the spec's order and returns a flat tuple: that is what the export
passes (torch.onnx.export, TorchScript, .pt2) and the workers' reference call expect.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import UserError
from workbench.runtimes.tf_runtime import import_tensorflow
from workbench.usermodel.source import (
    Source,
    build_factory,
    build_hf,
    hf_config,
    hf_task_of,
    load_keras,
)

HF_OUTPUT = {"feature-extraction": "last_hidden_state"}  # other HF tasks: logits


@dataclass
class Loaded:
    """`model` is what the export passes convert (for PyTorch the positional adapter over
    `input_names`, rebuilt when they change; the Keras model; or an `OnnxSource`);
    `input_names` the call order, `accepted` the names the model's own signature takes
    (None: any)."""

    framework: str
    raw: Any
    input_names: list[str] = field(default_factory=list)
    accepted: list[str] | None = None
    keyword: bool = True
    outputs: list[str] | None = None
    _adapter: Any = None
    _adapter_names: tuple[str, ...] = ()

    @property
    def model(self) -> Any:
        if self.framework != "torch":
            return self.raw
        if self._adapter is None or self._adapter_names != tuple(self.input_names):
            self._adapter = torch_adapter(self.raw, self.input_names, self.keyword, self.outputs)
            self._adapter_names = tuple(self.input_names)
        return self._adapter

    def run(self, feed: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
        """Named outputs for `feed` (keys in `input_names`)."""
        values = [feed[name] for name in self.input_names]
        if self.framework == "torch":
            # lazy: torch
            import torch

            model = self.model
            with torch.inference_mode():
                out = model(*[torch.from_numpy(np.ascontiguousarray(v)) for v in values])
            return [
                (n, t.detach().cpu().numpy()) for n, t in zip(model.output_names, out, strict=True)
            ]
        if self.framework == "keras":
            out = self.model(values if len(values) > 1 else values[0], training=False)
            flat = flatten(out)
            # a tensor or list of them: the model's own output names (what tf2onnx and
            # the TFLite converter name them too), not a generic `output`
            own = list(getattr(self.raw, "output_names", None) or [])
            if not isinstance(out, dict) and len(own) == len(flat):
                flat = [(name, value) for name, (_, value) in zip(own, flat, strict=True)]
            return [(n, np.asarray(v)) for n, v in flat]
        return self.model.named_outputs(feed)


def flatten(out: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Tensors of a nested output (tensor, tuple/list, dict or ModelOutput) in order, each
    named by its key path; None entries are left out."""
    if out is None:
        return []
    if isinstance(out, dict) or hasattr(out, "keys") and hasattr(out, "__getitem__"):
        items = [(str(k), out[k]) for k in out.keys()]  # noqa: SIM118 - ModelOutput
    elif isinstance(out, (list, tuple)):
        items = [(f"output_{i}", v) for i, v in enumerate(out)]
    else:
        return [(prefix or "output", out)]
    flat: list[tuple[str, Any]] = []
    for key, value in items:
        flat.extend(flatten(value, f"{prefix}.{key}" if prefix else key))
    return flat


def forward_params(model: Any) -> list[str] | None:
    """The names `model.forward` takes (None when it takes *args only)."""
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return None
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    names += [p.name for p in params if p.kind == p.POSITIONAL_ONLY]
    return names or None


def torch_adapter(model: Any, names: list[str], keyword: bool, outputs: list[str] | None) -> Any:
    """An nn.Module calling `model` with `names` (by keyword or in order) and returning
    the tensors of its output flattened into a tuple; `outputs` keeps only those keys."""
    # lazy: torch
    import torch

    class Adapter(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model
            self.output_names: list[str] = list(outputs or [])

        def call(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
            out = (
                self.inner(**dict(zip(names, args, strict=True))) if keyword else self.inner(*args)
            )
            flat = flatten(out)
            if outputs:
                by_name = dict(flat)
                flat = [(n, by_name[n]) for n in outputs]
            elif not self.output_names:
                self.output_names = [n for n, _ in flat]
            return tuple(t for _, t in flat)

    # forward takes one named parameter per input (not *args): torch.export matches its
    # dynamic_shapes to forward's parameters one by one
    params = ", ".join(f"x{i}" for i in range(len(names)))
    namespace: dict[str, Any] = {}
    exec(f"def forward(self, {params}):\n    return self.call(({params},))", namespace)  # noqa: S102
    Adapter.forward = namespace["forward"]
    adapter = Adapter()
    adapter.eval()
    # Where the wrapped model is a Hugging Face one, the transformer optimizer pass reads
    # num_attention_heads / hidden_size from a `config` it finds on the modules.
    return adapter


class OnnxSource:
    """An ONNX file used as the source model: run with ONNX Runtime on the CPU."""

    def __init__(self, path: str) -> None:
        # lazy: onnxruntime
        import onnxruntime

        self.path = Path(path)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(
            str(self.path), options, providers=["CPUExecutionProvider"]
        )
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def named_outputs(self, feed: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
        out = self.session.run(None, {n: feed[n] for n in self.input_names})
        return list(zip(self.output_names, out, strict=True))

    def reference_outputs(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """What the export worker compares artifacts with (see exporters.worker)."""
        values = list(feed.values())
        return [o for _, o in self.named_outputs(dict(zip(self.input_names, values, strict=True)))]


SERVING = "serving_default"


class SavedModelSource:
    """A TensorFlow SavedModel directory used as the source model: its serving signature
    (`serving_default`, else the first one) called with keyword inputs. The signature
    gives the input names, dtypes and shapes and the output names."""

    def __init__(self, path: str) -> None:
        tf = import_tensorflow()  # after Triton: TensorFlow first makes Triton segfault
        self.path = Path(path)
        try:
            self.loaded = tf.saved_model.load(str(self.path))
        except Exception as exc:  # noqa: BLE001 - TF's many load errors: say which file
            detail = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise UserError(
                f"cannot load {str(self.path)!r} as a SavedModel ({detail}): check it is a "
                "complete SavedModel directory (saved_model.pb and variables/)"
            ) from None
        signatures = dict(self.loaded.signatures)
        if not signatures:
            raise UserError(
                f"SavedModel {str(self.path)!r} has no serving signature: export it with "
                "model.export(...) or tf.saved_model.save(..., signatures=...)"
            )
        self.signature_key = SERVING if SERVING in signatures else next(iter(signatures))
        self.function = signatures[self.signature_key]
        args, kwargs = self.function.structured_input_signature
        if args:
            raise UserError(
                f"SavedModel signature {self.signature_key!r} takes positional inputs: "
                "re-export it with named inputs"
            )
        self.signature_inputs = {
            name: (spec.dtype.name, spec.shape.as_list()) for name, spec in kwargs.items()
        }
        self.input_names = list(kwargs)
        structured = self.function.structured_outputs
        self.output_names = (
            list(structured)
            if isinstance(structured, dict)
            else [n for n, _ in flatten(structured)]
        )

    def named_outputs(self, feed: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
        tf = import_tensorflow()
        wrong = [
            f"{n} {feed[n].dtype} (the signature takes {self.signature_inputs[n][0]})"
            for n in self.input_names
            if np.dtype(feed[n].dtype).name != self.signature_inputs[n][0]
        ]
        if wrong:
            raise TypeError("wrong input dtype: " + ", ".join(wrong))
        out = self.function(**{n: tf.constant(feed[n]) for n in self.input_names})
        if isinstance(out, dict):
            return [(n, np.asarray(out[n])) for n in self.output_names]
        return [(n, np.asarray(v)) for n, v in flatten(out)]

    def reference_outputs(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """What the export worker compares artifacts with (see exporters.worker): the
        feed's values in the task's input order."""
        if set(feed) != set(self.input_names):
            feed = dict(zip(self.input_names, feed.values(), strict=True))
        return [o for _, o in self.named_outputs(feed)]


def load(
    source: Source, names: list[str] | None = None, outputs: list[str] | None = None
) -> Loaded:
    """Build the model `source` names. `names`: the input order (from the spec; None while
    probing: the model's own order); `outputs`: the output keys to keep."""
    if source.kind == "onnx":
        onnx_model = OnnxSource(source.target)
        return Loaded("onnx", onnx_model, names or onnx_model.input_names, onnx_model.input_names)
    if source.kind == "savedmodel":
        saved = SavedModelSource(source.target)
        if outputs:
            unknown = [n for n in outputs if n not in saved.output_names]
            if unknown:
                raise UserError(
                    f"outputs {', '.join(unknown)} are not outputs of the SavedModel's "
                    f"signature {saved.signature_key!r} ({', '.join(saved.output_names)}): "
                    "run `workbench model init` again"
                )
            saved.output_names = list(outputs)
        return Loaded(
            "savedmodel", saved, names or saved.input_names, saved.input_names, True, outputs
        )
    if source.kind == "keras":
        model = load_keras(source.target)
        return _keras(model, names)
    if source.kind == "hf":
        config = hf_config(Path(source.target))
        task = hf_task_of(config, source.hf_task)
        model = build_hf(source)
        accepted = forward_params(model) or []
        keep = outputs or [HF_OUTPUT.get(task, "logits")]
        return Loaded("torch", model, list(names or accepted), accepted, True, keep)
    framework, model = build_factory(source)
    if framework == "keras":
        return _keras(model, names)
    accepted = forward_params(model)
    return Loaded(
        "torch", model, list(names or accepted or []), accepted, accepted is not None, outputs
    )


def _keras(model: Any, names: list[str] | None) -> Loaded:
    own = [str(getattr(t, "name", f"input_{i}")).split(":")[0] for i, t in enumerate(model.inputs)]
    return Loaded("keras", model, names or own, own)


def check_feed_names(loaded: Loaded, sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`sample` keyed by the model's input names, in call order: matched by name, or by
    position for unnamed arrays (np.savez's arr_0, arr_1...). A UserError when the keys
    do not match what the model takes."""
    keys = list(sample)
    accepted = loaded.accepted
    if accepted is None:  # forward(*args): the sample's own order
        loaded.input_names = keys
        return dict(sample)
    positional = all(k.startswith("arr_") for k in keys)
    if positional and len(keys) <= len(accepted):
        renamed = {accepted[i]: sample[k] for i, k in enumerate(keys)}
        loaded.input_names = list(renamed)
        return renamed
    if len(accepted) == 1 and len(keys) == 1:
        loaded.input_names = list(accepted)
        return {accepted[0]: sample[keys[0]]}
    unknown = [k for k in keys if k not in accepted]
    if unknown:
        raise UserError(
            f"sample keys {', '.join(unknown)} are not inputs of the model, which takes "
            f"({', '.join(accepted)}): rename the arrays in the sample to those names"
        )
    loaded.input_names = [n for n in accepted if n in sample]
    return {n: sample[n] for n in loaded.input_names}
