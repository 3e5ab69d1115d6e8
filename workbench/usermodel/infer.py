"""The input and output spec of a user's model, inferred from one real batch.

Names come from the model (forward's signature, the Keras inputs, the ONNX graph);
dtypes and shapes from the sample. Axis 0 is dynamic ("batch") when the model also runs
on a batch of another size and its outputs follow it; an integer input's axis 1 shared
by the integer inputs is dynamic ("sequence") when the model also runs on a shorter one.
Explicit `--input NAME=Bx3x224x224:float32` items win over all of it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.errors import UserError
from workbench.input_options import BATCH
from workbench.signature import Dim
from workbench.usermodel.loaded import Loaded, check_feed_names

log = logging.getLogger(__name__)

BATCH_AXIS = "batch"
SEQUENCE_AXIS = "sequence"


@dataclass
class Inferred:
    """What a probe learnt: inputs and outputs as (name, dtype, shape with symbolic axes),
    the benchmark size of every named non-batch axis, and how each was found."""

    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    dims: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _run(loaded: Loaded, feed: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]] | None:
    try:
        return loaded.run(feed)
    except Exception as exc:  # noqa: BLE001 - a model that rejects the variant: axis is fixed
        log.debug("probe variant failed: %s", exc)
        return None


def resize_batch(feed: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """`feed` with `size` items on axis 0 (rows repeated cyclically)."""
    out = {}
    for name, value in feed.items():
        index = np.arange(size) % value.shape[0]
        out[name] = np.ascontiguousarray(value[index])
    return out


def sequence_length(feed: dict[str, np.ndarray]) -> int | None:
    """The shared axis-1 size of the integer inputs of rank >= 2, when there is one > 1."""
    sizes = {v.shape[1] for v in feed.values() if v.dtype.kind in "iub" and v.ndim >= 2}
    return sizes.pop() if len(sizes) == 1 and next(iter(sizes)) > 1 else None


def crop_sequence(feed: dict[str, np.ndarray], length: int, seq: int) -> dict[str, np.ndarray]:
    """Integer inputs whose axis 1 is `seq` cut (or zero-padded) to `length`."""
    out = {}
    for name, value in feed.items():
        if value.dtype.kind in "iub" and value.ndim >= 2 and value.shape[1] == seq:
            if length <= seq:
                value = value[:, :length]
            else:
                pad = [(0, 0)] * value.ndim
                pad[1] = (0, length - seq)
                value = np.pad(value, pad)
        out[name] = np.ascontiguousarray(value)
    return out


def infer(
    loaded: Loaded,
    sample: dict[str, np.ndarray],
    overrides: dict[str, tuple[list[int | str], str | None]] | None = None,
) -> Inferred:
    """Run the model on `sample` (and variants of it) and describe its inputs and outputs.
    A UserError when the model rejects the sample itself."""
    feed = check_feed_names(loaded, sample)
    if not feed:
        raise UserError("the sample holds no arrays: save the model's inputs with np.savez")
    batch_sizes = {v.shape[0] if v.ndim else None for v in feed.values()}
    if len(batch_sizes) != 1 or None in batch_sizes:
        raise UserError(
            "the sample's arrays do not share a batch size on axis 0 ("
            + ", ".join(f"{k} {list(v.shape)}" for k, v in feed.items())
            + "): save one batch of the model's inputs"
        )
    batch = batch_sizes.pop()
    try:
        base = loaded.run(feed)
    except Exception as exc:  # noqa: BLE001 - the user's model said no: say what it said
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        dtypes = ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in feed.items())
        raise UserError(
            f"the model rejected the sample ({dtypes}): {type(exc).__name__}: {detail}; "
            "save the sample in the dtypes and shapes the model takes"
        ) from None
    notes: list[str] = []
    other = batch + 1 if batch < 3 else batch - 1
    varied = _run(loaded, resize_batch(feed, other))
    dynamic_batch = varied is not None and all(o.ndim and o.shape[0] == other for _, o in varied)
    notes.append(
        f"batch axis: dynamic (ran at {batch} and {other})"
        if dynamic_batch
        else f"batch axis: fixed at {batch} (the model did not run at {other})"
    )
    seq = sequence_length(feed)
    dynamic_seq = False
    if seq is not None:
        shorter = max(1, seq // 2)
        varied = _run(loaded, crop_sequence(feed, shorter, seq))
        dynamic_seq = varied is not None
        notes.append(
            f"sequence axis: dynamic (ran at {seq} and {shorter})"
            if dynamic_seq
            else f"sequence axis: fixed at {seq}"
        )
    inputs = []
    for name, value in feed.items():
        shape: list[Dim] = list(value.shape)
        if dynamic_batch:
            shape[0] = BATCH_AXIS
        if dynamic_seq and value.dtype.kind in "iub" and value.ndim >= 2 and value.shape[1] == seq:
            shape[1] = SEQUENCE_AXIS
        inputs.append({"name": name, "dtype": str(value.dtype), "shape": shape})
    for name, (axes, dtype) in (overrides or {}).items():
        match = [i for i in inputs if i["name"] == name]
        if not match:
            raise UserError(
                f"--input {name}=...: the model has no input {name!r}: it takes "
                f"{', '.join(i['name'] for i in inputs)}"
            )
        match[0]["shape"] = [BATCH_AXIS if a == BATCH else a for a in axes]
        if dtype:
            match[0]["dtype"] = dtype
        notes.append(f"{name}: shape and dtype as given by --input")
    for name, value in base:
        array = np.asarray(value)
        if array.size and array.dtype.kind == "f" and float(np.ptp(array)) == 0.0:
            notes.append(
                f"warning: output {name!r} is the same value ({float(array.flat[0]):g}) "
                "everywhere on the sample: parity against it proves little; give a sample "
                "that moves it, or the trained weights"
            )
    outputs = []
    for name, value in base:
        shape = list(np.shape(value))
        if dynamic_batch and shape and shape[0] == batch:
            shape[0] = BATCH_AXIS
        if dynamic_seq and len(shape) >= 2 and shape[1] == seq:
            shape[1] = SEQUENCE_AXIS
        outputs.append({"name": name, "dtype": str(np.asarray(value).dtype), "shape": shape})
    dims = {SEQUENCE_AXIS: int(seq)} if dynamic_seq and seq else {}
    return Inferred(inputs, outputs, dims, notes)
