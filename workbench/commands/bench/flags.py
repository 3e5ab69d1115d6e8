"""The flags of `workbench bench`, and which of them say what a run measures.

A stored run brings its own values for every flag that says what it measures, so
`--rerun` and `--resume` refuse those flags when given. They are the flags added through
`SweepFlags.on(...)`: a new flag added that way is refused too, with no list to edit.
Every other flag is added through `SweepFlags.off(...)`, and `check_complete` refuses a
parser with a flag added neither way, so a new flag cannot slip past the rule unclassified."""

from __future__ import annotations

import argparse
from typing import Any, Protocol

from workbench.profiles import PROFILE_NAMES


class ArgumentContainer(Protocol):
    """A parser or an argument group."""

    def add_argument(self, *names: str, **kwargs: Any) -> argparse.Action: ...


class AddArgument(Protocol):
    def __call__(self, *names: str, **kwargs: Any) -> argparse.Action: ...


class SweepFlags:
    """The flags that say what a run measures, as the parser added them (with their
    defaults)."""

    def __init__(self) -> None:
        self.actions: list[argparse.Action] = []  # say what a run measures
        self.others: list[argparse.Action] = []  # do not (where to print, how to load...)

    def on(self, container: ArgumentContainer) -> AddArgument:
        """`container.add_argument`, recording each flag it adds as a sweep flag."""
        return _recording(container, self.actions)

    def off(self, container: ArgumentContainer) -> AddArgument:
        """`container.add_argument`, recording each flag it adds as one that does not say
        what a run measures (a stored run is repeated whatever its value)."""
        return _recording(container, self.others)

    def check_complete(self, parser: argparse.ArgumentParser) -> None:
        """Refuse a parser with a flag added neither through `on` nor through `off`: a
        programming error, caught by any test that builds the parser."""
        known = {id(action) for action in self.actions + self.others}
        missing = [
            action.option_strings[0] if action.option_strings else action.dest
            for action in parser._actions  # argparse keeps no public list of its actions
            if id(action) not in known and not isinstance(action, argparse._HelpAction)
        ]
        if missing:
            raise RuntimeError(
                f"bench flag(s) {', '.join(missing)} added neither through SweepFlags.on "
                "(what a run measures: --rerun/--resume refuse it) nor through SweepFlags.off"
            )

    def given(self, args: argparse.Namespace) -> list[str]:
        """The sweep flags whose parsed value is not their default, as a person types them
        (MODEL_FILE for the positional), in the parser's order."""
        return [
            action.option_strings[0] if action.option_strings else action.dest.upper()
            for action in self.actions
            if getattr(args, action.dest) != action.default
        ]


def _recording(container: ArgumentContainer, into: list[argparse.Action]) -> AddArgument:
    def add_argument(*names: str, **kwargs: Any) -> argparse.Action:
        action = container.add_argument(*names, **kwargs)
        into.append(action)
        return action

    return add_argument


def add_arguments(bench: argparse.ArgumentParser, sweep: SweepFlags) -> None:
    """The general flags of `workbench bench` (scenario and fleet flags come in groups)."""
    add = sweep.on(bench)  # a flag saying what is measured: --rerun and --resume refuse it
    add("model_file", nargs="?", help=".onnx, .tflite, .pt, .pt2 or SavedModel dir")
    add("--task", help="benchmark a registered task across its artifacts")
    other = sweep.off(bench)  # what to do with a stored run, not what to measure
    other("--rerun", metavar="RUN_ID", help="repeat a stored run from its manifest, as a new run")
    other(
        "--resume",
        metavar="RUN_ID",
        help="finish a task sweep that was cut short: measure only its missing configurations",
    )
    _add_what(add)
    _add_inputs(add)
    _add_timing(add)
    _add_runtime_settings(add)
    add(
        "--max-accuracy-drop",
        type=float,
        default=None,
        metavar="POINTS",
        help="INT8 parity: the points of accuracy (F1, mAP, AUC) an artifact may lose against "
        "its source on true labels (default 1.0); other precisions keep numeric tolerances",
    )
    add(
        "--profile",
        choices=PROFILE_NAMES,
        help="what to measure when not told: ci (tiny), quick, full (default); a task's "
        "own presets per profile",
    )
    add(
        "--quick",
        action="store_true",
        help="the quick profile: short measurements; batches 1,8,64,256 (a task may set its own)",
    )


def _add_what(add: AddArgument) -> None:
    """Which artifacts, where, and at which sizes."""
    add("--model", help="task model variant(s), comma-separated (default: the task's own)")
    add("--frameworks", help="source frameworks: torch,keras")
    add("--formats", help="formats, e.g. onnx,torchscript,tflite")
    add("--precisions", help="fp32,fp16,bf16,int8-dynamic,int8-static (default: all that apply)")
    add(
        "--runtime",
        help="runtime for a model file (default: from the file); with --task, runtimes "
        "measured beside each format's own on the same artifacts, e.g. onnxruntime-c",
    )
    add("--device", help="cpu, cuda or cuda:N; comma-separated (default cpu)")
    add("--threads", help="intra-op thread counts, e.g. 1,2 (default: all cores available)")
    add("--batch", help="batch sizes, e.g. 1,8,32")
    add("--seq-len", help="sequence lengths of a text task, e.g. 16,64,256 (default: preset)")
    add(
        "--calibration",
        choices=("random",),
        help="a model.yaml without calibration data: calibrate static INT8 on synthetic "
        "inputs (its rows say `synthetic calibration`); without it those rows are unavailable",
    )


def _add_inputs(add: AddArgument) -> None:
    """A model file's inputs: dimensions, shapes, integer ranges, real data."""
    add(
        "--dim",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a symbolic input dimension (repeatable)",
    )
    add(
        "--shape",
        action="append",
        default=[],
        metavar="NAME=AXES",
        help="a model file's input shape, overriding its signature: axes joined by x, B for "
        "the batch axis, e.g. --shape state=2xBx128 or --shape image=Bx3x224x320 (repeatable)",
    )
    add(
        "--batch-axis",
        action="append",
        default=[],
        metavar="NAME=AXIS",
        help="the axis of a model file's input that takes the batch size, or none "
        "(default: found from the symbol the inputs share)",
    )
    add(
        "--int-range",
        action="append",
        default=[],
        metavar="NAME=LOW:HIGH",
        help="generated integers of a model file's input in [LOW, HIGH) (default: the range "
        "the file declares, else 0:100)",
    )
    add(
        "--input",
        action="append",
        default=[],
        metavar="NAME=FILE.npy",
        help="real data for one input of a model file; cut or tiled to each batch size",
    )
    add(
        "--inputs",
        metavar="FEEDS.npz",
        help="real data for some or all inputs of a model file (.npz of NAME -> array)",
    )


def _add_timing(add: AddArgument) -> None:
    """How long each configuration is timed (the profile's rule where not given)."""
    add(
        "--min-iters",
        type=int,
        help="minimum measured iterations (default: the profile's; full 100)",
    )
    add(
        "--min-time", type=float, help="minimum measured seconds (default: the profile's; full 1.0)"
    )
    add("--max-time", type=float, help="maximum measured seconds (default: the profile's; full 30)")
    add("--warmup", type=int, help="warm-up iterations (default: the profile's; full 10)")
    add(
        "--repeats",
        type=int,
        default=1,
        help="independent timed runs per configuration; >1 flags p50 drift across them",
    )


def _add_runtime_settings(add: AddArgument) -> None:
    """Runtime settings, and whether tasks time their pre/post-processing too."""
    add(
        "--tensorrt",
        action="store_true",
        help="onnxruntime on cuda: put the TensorRT provider first (CUDA provider after it)",
    )
    add(
        "--graph-optimization",
        choices=("disable", "basic", "extended", "all"),
        help="onnxruntime graph optimization level (default all)",
    )
    add(
        "--no-spinning",
        action="store_true",
        help="onnxruntime: idle intra-op threads sleep instead of spinning (frees the cores "
        "for pre/post-processing between calls; may cost model latency)",
    )
    add(
        "--setting",
        action="append",
        default=[],
        metavar="RUNTIME.NAME=VALUE",
        help="a runtime's own setting, e.g. onnxruntime.allow_spinning=false (repeatable; "
        "`workbench list runtimes` shows each runtime's settings)",
    )
    add(
        "--no-end-to-end",
        dest="end_to_end",
        action="store_false",
        help="tasks with pre/post-processing: time the model only (skip the end-to-end loop)",
    )
