"""The Task interface: one job from the source guide, with its models in both frameworks.

A task builds the same model deterministically every time it is asked (fixed
seed, and for trained models a fixed training run), so an exporter in one
process and a benchmark worker in another see identical weights.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from workbench.errors import UserError
from workbench.profiles import get_profile
from workbench.signature import TensorSpec

FRAMEWORKS = ("torch", "keras")
FULL_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass(frozen=True)
class Preset:
    """What a task measures under one profile when the user does not say. None means
    every applicable value (every model, framework, format or precision), and for batch
    sizes and devices the generic preset's value for the profile."""

    models: tuple[str, ...] | None = None
    frameworks: tuple[str, ...] | None = None
    formats: tuple[str, ...] | None = None
    precisions: tuple[str, ...] | None = None
    batch_sizes: tuple[int, ...] | None = None
    # The notebooks measure on these; the CLI on its --device (default cpu).
    devices: tuple[str, ...] | None = None
    # Sequence lengths swept for tasks whose inputs have a "sequence" axis (text tasks);
    # None for the others. Each row records its `seq_len`.
    seq_lens: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Pipeline:
    """What surrounds the model in production, for end-to-end timing: raw inputs (e.g.
    encoded image files) -> `preprocess` -> model feed -> model -> `postprocess` ->
    results. `preprocess` also returns what `postprocess` needs (e.g. letterbox
    geometry)."""

    raw_inputs: Callable[[int, int], list[Any]]  # (batch size, seed) -> raw items
    preprocess: Callable[[Sequence[Any]], tuple[dict[str, np.ndarray], Any]]
    postprocess: Callable[[list[np.ndarray], Any], Any]


class Task(ABC):
    """A registered task. Framework imports happen inside the build methods only."""

    name: ClassVar[str]
    models: ClassVar[tuple[str, ...]]  # model variants; the first is the default
    frameworks: ClassVar[tuple[str, ...]] = FRAMEWORKS
    version: ClassVar[str] = "1"  # bump when a model's architecture or weights change
    parity_samples: ClassVar[int] = 256  # held-out items each artifact is checked on
    # What each profile (workbench.profiles: ci, quick, full) measures when the user does
    # not say, for the CLI (`--profile`, `--quick`) and the notebooks (`profile`) alike.
    # A profile missing here gets `generic_preset`.
    presets: ClassVar[dict[str, Preset]] = {}
    # Default parameters per export pass for this task's models, under a request's own
    # (exporters.base.effective_params); listing an opt-in pass (Pass.opt_in) here lets
    # sweeps plan it, e.g. {"torch_onnx": {"dynamo": False}, "onnx_transformer_optimize": {}}
    pass_params: ClassVar[dict[str, dict[str, Any]]] = {}
    # Time task sweeps on `make_inputs` (real users, candidates, ids) rather than on inputs
    # drawn from the signature (see `bench_feeds`).
    bench_on_own_inputs: ClassVar[bool] = False
    # All-format sweeps add PyTorch's own fast CPU rows: the eager model under bf16
    # autocast and the `inductor` format (torch.compile), fp32 and bf16.
    torch_cpu_rows: ClassVar[bool] = False

    def preset(self, profile: str) -> Preset:
        """The task's preset for `profile` (a UserError for an unknown profile)."""
        get_profile(profile)
        generic = self.generic_preset(profile)
        own = self.presets.get(profile)
        if own is None:
            return generic
        return replace(
            own,
            batch_sizes=own.batch_sizes or generic.batch_sizes,
            devices=own.devices or generic.devices,
        )

    def generic_preset(self, profile: str) -> Preset:
        """For a task without its own preset: in ci its first model and framework as FP32
        ONNX at batches 1 and 4; quick and full measure everything."""
        if profile == "ci":
            model = self.models[0]
            return Preset(
                models=(model,),
                frameworks=(self.frameworks_for(model)[0],),
                formats=("onnx",),
                precisions=("fp32",),
                batch_sizes=(1, 4),
                devices=("cpu",),
            )
        if profile == "quick":
            return Preset(batch_sizes=(1, 8, 64, 256), devices=("cpu",))
        return Preset(batch_sizes=FULL_BATCHES, devices=("cpu", "cuda"))

    def check_model(self, model: str) -> str:
        if model not in self.models:
            raise UserError(
                f"task {self.name!r} has no model {model!r}: choose one of {', '.join(self.models)}"
            )
        return model

    def frameworks_for(self, model: str) -> tuple[str, ...]:
        """The source frameworks that have this model (default: all of the task's)."""
        return self.frameworks

    @abstractmethod
    def input_specs(self, model: str, framework: str = "torch") -> list[TensorSpec]:
        """The model's inputs in `framework`'s layout, axis 0 symbolic ("batch")."""

    @abstractmethod
    def make_inputs(
        self, model: str, batch_size: int, seed: int = 0, framework: str = "torch"
    ) -> dict[str, np.ndarray]:
        """A realistic feed of `batch_size` items (name -> array) in `framework`'s layout."""

    @abstractmethod
    def build_torch(self, model: str) -> Any:
        """The PyTorch nn.Module in eval mode, with the task's deterministic weights."""

    @abstractmethod
    def build_keras(self, model: str) -> Any:
        """The Keras model with the task's deterministic weights."""

    def build(self, framework: str, model: str) -> Any:
        if framework not in self.frameworks_for(self.check_model(model)):
            raise UserError(
                f"task {self.name!r} has no {framework!r} version of {model!r}: choose one of "
                f"{', '.join(self.frameworks_for(model))}"
            )
        builder = self.build_torch if framework == "torch" else self.build_keras
        return builder(self.check_model(model))

    def parity_count(self, model: str) -> int:
        """How many held-out items each artifact of `model` is checked on."""
        return self.parity_samples

    def pipeline(self, model: str, framework: str = "torch") -> Pipeline | None:
        """Pre- and post-processing around `model` in `framework`'s layout, or None when
        the model consumes its inputs as they come (nothing to time end to end)."""
        return None

    def bench_feeds(
        self,
        model: str,
        batch_size: int,
        seq_len: int | None,
        count: int,
        framework: str = "torch",
    ) -> list[dict[str, np.ndarray]] | None:
        """`count` realistic feeds for the timed loop (at `seq_len`, the point of a
        sequence-length sweep, for tasks with a sequence axis), or None to let the runner
        draw inputs from the model's signature (fine where values do not change the cost
        or the validity of a call; ids must be real, as random ones may be out of range).
        With `bench_on_own_inputs`, the feeds are `make_inputs` with seeds 0..count-1."""
        if not self.bench_on_own_inputs:
            return None
        return [self.make_inputs(model, batch_size, seed, framework) for seed in range(count)]

    def held_out(
        self, model: str, n: int, framework: str = "torch"
    ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """Held-out inputs for parity checks, with true labels where the task has them."""
        return self.make_inputs(model, n, seed=12345, framework=framework), None

    def calibration_inputs(
        self, model: str, n: int, framework: str = "torch"
    ) -> dict[str, np.ndarray]:
        """Calibration data for static quantization: the task's own generator, with a seed
        distinct from the held-out parity set and the benchmark pools."""
        return self.make_inputs(model, n, seed=777, framework=framework)

    def scored_output(self, outputs: list[np.ndarray]) -> np.ndarray:
        """The output `accuracy` scores: the first (a user's model names its own)."""
        return outputs[0]

    def accuracy(self, outputs: np.ndarray, labels: np.ndarray) -> float:
        """The task's quality score of `outputs` against true `labels` (classifiers: top-1)."""
        return float(np.mean(np.asarray(outputs).argmax(axis=1) == labels))

    @abstractmethod
    def parity(
        self, reference: list[np.ndarray], candidate: list[np.ndarray], model: str | None = None
    ) -> dict[str, float]:
        """Compare an artifact's outputs with its source model's: errors and the task metric.
        `model` names the model variant the outputs came from (None when unknown)."""
