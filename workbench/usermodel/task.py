"""A Task made from a `model.yaml`, so that a user's model goes through every sweep,
export, parity check, report, `recommend`, `compare` and server like a built-in task,
without a class written by the user.

Worker processes find it by name: the CLI puts the spec's path in
$WORKBENCH_MODEL_SPECS (`register`), which the task registry reads in every process
(`workbench.registry.TASKS`, through `task_class`). Only the workers build the model,
so the user's code runs where a raise, crash or hang costs rows, not the command.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from workbench.errors import UnavailableError, UserError
from workbench.parity import argmax_agreement, output_errors
from workbench.registry import TASKS, builtin_task_names
from workbench.signature import TensorSpec, random_tensor, resolve_shape
from workbench.tasks.base import Preset, Task
from workbench.usermodel import data, metrics
from workbench.usermodel.infer import SEQUENCE_AXIS, crop_sequence, resize_batch
from workbench.usermodel.loaded import load
from workbench.usermodel.source import FUSABLE_MODEL_TYPES
from workbench.usermodel.spec import ModelSpec, load_spec

SPECS_ENV = "WORKBENCH_MODEL_SPECS"
# Hugging Face `model_type`s that are transformer encoders beyond the ones the ORT optimizer
# fuses (`FUSABLE_MODEL_TYPES`): NNCF quantizes them with its transformer scheme.
TRANSFORMER_ENCODERS = frozenset(
    {*FUSABLE_MODEL_TYPES, "albert", "deberta", "deberta-v2", "mpnet", "vit", "deit", "beit"}
)
# NNCF's transformer scheme, as the MiniLM tasks set it (workbench.tasks.text_task):
# softmax/normalization/GELU kept in float, SmoothQuant, asymmetric activations.
NNCF_TRANSFORMER = {"model_type": "transformer", "preset": "mixed"}
SYNTHETIC = "synthetic calibration"
NO_CALIBRATION = (
    "static INT8 needs calibration data: set data.calibration in the spec (.npz shards, a "
    "directory of .npy per input, or module:function yielding dicts), or pass "
    "--calibration random to calibrate on synthetic inputs (rows say so)"
)


@functools.lru_cache(maxsize=16)
def _spec(path: str) -> ModelSpec:
    return load_spec(path)


@functools.lru_cache(maxsize=16)
def _npz(path: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files}


def task_class(path: str) -> type[UserModelTask]:
    """The Task class of the spec at `path` (what the registry resolves spec paths with)."""
    spec = _spec(str(Path(path).resolve()))
    blob = Path(spec.path or path).read_bytes() + spec.digest.encode()
    version = hashlib.sha256(blob).hexdigest()[:16]
    pass_params: dict[str, dict[str, Any]] = openvino_pass_params(spec)
    model_type = spec.hf.get("optimizer_model_type")
    if spec.source.kind == "hf":
        # the TorchScript-based exporter: its attention pattern is what ORT fuses
        pass_params["torch_onnx"] = {"dynamo": False}
    if model_type:
        optimizer = (
            "onnx_source_transformer_optimize"
            if spec.framework == "onnx"
            else ("onnx_transformer_optimize")
        )
        pass_params[optimizer] = {"model_type": model_type}
    seq = spec.dims.get(SEQUENCE_AXIS)
    attrs = {
        "name": spec.name,
        "models": (spec.name,),
        "frameworks": (spec.framework,),
        "version": version,
        "pass_params": pass_params,
        "spec_path": str(spec.path),
        "presets": {
            "ci": Preset(
                formats=("onnx",),
                precisions=("fp32",),
                batch_sizes=(1, 4),
                devices=("cpu",),
                seq_lens=(seq,) if seq else None,
            ),
            "quick": Preset(
                batch_sizes=(1, 8, 32), devices=("cpu",), seq_lens=(seq,) if seq else None
            ),
            "full": Preset(seq_lens=(seq,) if seq else None),
        },
    }
    return type(f"UserModelTask_{spec.name}", (UserModelTask,), attrs)


def openvino_pass_params(spec: ModelSpec) -> dict[str, dict[str, Any]]:
    """The OpenVINO passes every user model plans in its quick and full presets (each
    source has an FP32 ONNX artifact to convert: the export, or the ONNX file itself);
    NNCF's transformer scheme for a Hugging Face transformer encoder. Static INT8 draws
    on the spec's calibration data like ORT's (`UserModelTask.calibration_inputs`)."""
    encoder = spec.source.kind == "hf" and (
        spec.hf.get("optimizer_model_type") or spec.hf.get("model_type") in TRANSFORMER_ENCODERS
    )
    return {
        "openvino_ir": {},
        "openvino_bf16": {},
        "openvino_int8_static": dict(NNCF_TRANSFORMER) if encoder else {},
    }


def register(spec: ModelSpec) -> str:
    """Make the spec's task known to this process and to every worker it starts; its name."""

    if spec.name in builtin_task_names():
        raise UserError(f"model name {spec.name!r} is a built-in task's: rename it in {spec.path}")
    path = str(spec.path)
    # a spec written again in this process (a notebook re-run) is read afresh, and an
    # older spec of the same name gives way
    _spec.cache_clear()
    paths = [
        p
        for p in os.environ.get(SPECS_ENV, "").split(os.pathsep)
        if p and p != path and not _names_model(p, spec.name)
    ]
    os.environ[SPECS_ENV] = os.pathsep.join([*paths, path])
    with contextlib.suppress(UserError):  # not registered yet
        TASKS.unregister(spec.name)
    TASKS.names()  # re-read the variable now
    return spec.name


def _names_model(path: str, name: str) -> bool:
    """The spec at `path` is gone, broken, or names the model `name`."""
    try:
        return _spec(path).name == name
    except (UserError, OSError):
        return True


class UserModelTask(Task):
    """The dynamic task: everything comes from the spec and its data files."""

    spec_path: ClassVar[str]
    bench_on_own_inputs = True  # real ids and values from the user's sample

    @property
    def spec(self) -> ModelSpec:
        return _spec(self.spec_path)

    # ------------------------------------------------------------------ model

    def build(self, framework: str, model: str) -> Any:

        self.check_model(model)
        spec = self.spec
        loaded = load(
            spec.absolute_source(), [s.name for s in spec.inputs], [s.name for s in spec.outputs]
        )
        if loaded.framework != framework:
            raise UserError(
                f"{spec.path}: the source builds a {loaded.framework} model, but the spec says "
                f"framework {framework}: run `workbench model init` again"
            )
        return loaded.model

    def build_torch(self, model: str) -> Any:
        return self.build("torch", model)

    def build_keras(self, model: str) -> Any:
        return self.build("keras", model)

    # ------------------------------------------------------------------ inputs

    def input_specs(self, model: str, framework: str = "torch") -> list[TensorSpec]:
        return self.spec.input_specs()

    def output_specs(self, model: str) -> list[TensorSpec]:
        """The model's outputs as its spec names them: exported ONNX files (and so the
        served outputs) carry these names and dynamic axes, not a generic `output`."""
        return list(self.spec.outputs)

    def _sample(self) -> dict[str, np.ndarray] | None:
        path = self.spec.resolve(self.spec.sample)
        if not path:
            return None
        arrays = _npz(path)
        names = [s.name for s in self.spec.inputs]
        if set(names) <= set(arrays):
            return {n: arrays[n] for n in names}
        keys = list(arrays)
        return {n: arrays[k] for n, k in zip(names, keys, strict=False)}

    def make_inputs(
        self,
        model: str,
        batch_size: int,
        seed: int = 0,
        framework: str = "torch",
        seq_len: int | None = None,
    ) -> dict[str, np.ndarray]:
        """`batch_size` rows of the user's sample (drawn with `seed`), at `seq_len` on a
        sequence axis; random values from the spec where there is no sample."""
        sample = self._sample()
        rng = np.random.default_rng(seed)
        if sample is None:
            dims = {**self.spec.dims, **({SEQUENCE_AXIS: seq_len} if seq_len else {})}

            return {
                s.name: random_tensor(rng, s.dtype, resolve_shape(s, batch_size, dims))
                for s in self.spec.inputs
            }
        count = next(iter(sample.values())).shape[0]
        order = rng.permutation(count) if seed else np.arange(count)
        feed = {k: v[order] for k, v in sample.items()}
        feed = resize_batch(feed, batch_size)
        have = self.spec.dims.get(SEQUENCE_AXIS)
        if seq_len and have and seq_len != have:
            feed = crop_sequence(feed, seq_len, have)
        return feed

    def bench_feeds(
        self, model: str, batch_size: int, seq_len: int | None, count: int, framework: str = "torch"
    ) -> list[dict[str, np.ndarray]] | None:
        return [self.make_inputs(model, batch_size, s, framework, seq_len) for s in range(count)]

    def parity_count(self, model: str) -> int:
        feed, _ = self.held_out(model, 0)
        return len(next(iter(feed.values())))

    def held_out(
        self, model: str, n: int, framework: str = "torch"
    ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """The evaluation set with its labels where the spec names one, else the sample."""
        spec = self.spec
        if spec.evaluation:
            labeled = data.load_labeled(
                spec.resolve(spec.evaluation),
                spec.input_specs(),
                labels=spec.resolve(spec.labels),
            )
            return _stack(labeled.items, spec), np.asarray(labeled.labels)
        sample = self._sample()
        if sample is None:
            return self.make_inputs(model, 8, seed=12345), None
        return sample, None

    def calibration_inputs(
        self, model: str, n: int, framework: str = "torch"
    ) -> dict[str, np.ndarray]:
        spec = self.spec
        if spec.calibration:
            items = data.load_items(spec.resolve(spec.calibration), spec.input_specs())
            return _stack(items, spec)
        if spec.calibration_random:
            return self._synthetic(max(n, 1))
        raise UnavailableError(NO_CALIBRATION)

    def _synthetic(self, n: int) -> dict[str, np.ndarray]:
        """Random inputs in the range of the user's sample (integers between its least and
        greatest id, floats with its mean and spread); standard ones without a sample."""
        rng = np.random.default_rng(777)
        sample = self._sample() or {}
        feed = {}
        for s in self.spec.inputs:
            shape = resolve_shape(s, n, self.spec.dims)
            seen = sample.get(s.name)
            if seen is None or not seen.size:
                feed[s.name] = random_tensor(rng, s.dtype, shape)
            elif seen.dtype.kind in "iub":
                low, high = int(seen.min()), int(seen.max())
                feed[s.name] = rng.integers(low, high + 1, shape).astype(seen.dtype)
            else:
                values = rng.normal(float(seen.mean()), float(seen.std()) or 1.0, shape)
                feed[s.name] = values.astype(seen.dtype)
        return feed

    def manifest_extras(self, precision: str) -> dict[str, Any]:
        """Stamps an artifact's manifest (and rows) carry: synthetic calibration."""
        if (
            precision == "int8-static"
            and not self.spec.calibration
            and self.spec.calibration_random
        ):
            return {"calibration": SYNTHETIC}
        return {}

    # ------------------------------------------------------------------ quality

    def scored_output(self, outputs: list[np.ndarray]) -> np.ndarray:
        """The output the spec's metric scores (`metric_output`; default the first)."""
        names = [o.name for o in self.spec.outputs]
        scored = self.spec.metric_output
        return outputs[names.index(scored)] if scored in names else outputs[0]

    def accuracy(self, outputs: np.ndarray, labels: np.ndarray) -> float:
        """The spec's metric on a higher-is-better scale (`Metric.score`: MSE and MAE
        negated), which is how the rows' `accuracy` column, `recommend`'s accuracy drop
        (best FP32 row minus the row, x100) and the quality rule all read it."""
        metric = metrics.get_metric(self.spec.metric)
        return metric.score(metric(outputs, labels))

    def accuracy_gate(self, source: float, artifact: float) -> dict[str, Any]:
        """The one accuracy budget every format and quantizer is held to: the drop in
        points between two `accuracy` scores (positive: the artifact is worse; for MSE
        and MAE, the growth of the error) against the spec's budget."""
        metric = metrics.get_metric(self.spec.metric)
        drop = metric.points(source - artifact)
        gate = {
            "accuracy_metric": metric.name,
            "accuracy_drop": float(drop),
            # a float subtraction must not fail an exactly-at-budget drop (as judge_quality)
            "accuracy_gate_pass": bool(drop <= self.spec.max_accuracy_drop + 1e-9),
        }
        if not metric.higher_is_better:
            gate["accuracy_note"] = f"accuracy columns hold -{metric.name} (higher is better)"
        return gate

    def parity(
        self, reference: list[np.ndarray], candidate: list[np.ndarray], model: str | None = None
    ) -> dict[str, float]:
        """Output agreement over every output: errors, and the worst of each output's
        agreement (integer outputs: exact matches; float [batch, classes]: arg-max
        agreement; other floats: the least cosine similarity of a row)."""
        errors = output_errors(reference, candidate)
        scores = [
            _agreement(np.asarray(r), np.asarray(c))
            for r, c in zip(reference, candidate, strict=True)
        ]
        names = sorted({name for name, _ in scores})
        return {
            **errors,
            "metric_name": "+".join(names),
            "metric_value": float(min(value for _, value in scores)),
        }


def _agreement(ref: np.ndarray, cand: np.ndarray) -> tuple[str, float]:
    cand = cand.reshape(ref.shape)
    if ref.dtype.kind in "iub":
        return "exact_match", float(np.mean(ref == cand)) if ref.size else 1.0
    if ref.ndim == 2 and ref.shape[1] > 1:
        return "top1_agreement", argmax_agreement(ref, cand)
    a = ref.reshape(len(ref), -1).astype(np.float64) if ref.ndim else ref.reshape(1, -1)
    b = cand.reshape(a.shape).astype(np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    both_zero = (na < 1e-12) & (nb < 1e-12)
    cosine = np.where(both_zero, 1.0, (a * b).sum(axis=1) / np.maximum(na * nb, 1e-12))
    return "min_cosine_similarity", float(cosine.min(initial=1.0))


def _stack(items: list[dict[str, np.ndarray]], spec: ModelSpec) -> dict[str, np.ndarray]:
    """Items (each one example or a batch) as one feed: concatenated on the batch axis."""
    feed: dict[str, np.ndarray] = {}
    for s in spec.inputs:
        parts = [np.asarray(item[s.name]) for item in items]
        batched = all(p.ndim == len(s.shape) for p in parts)
        feed[s.name] = np.concatenate(parts) if batched else np.stack(parts)
    return feed
