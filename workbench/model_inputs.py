"""Inputs for a user's model file: shapes, batch axes, value ranges and real data.

A model file declares its inputs loosely: an axis may be symbolic with or without a
name, the batch may sit on another axis than 0 (a recurrent state `[2, batch, 128]`),
an integer input may need values from a range the file only implies (token ids below
an embedding table's size). An `InputPlan` holds what the user said about that on
the command line (`--shape`, `--batch-axis`, `--int-range`, `--input`, `--inputs`;
parsed by `workbench.input_options`) plus the ranges the file itself declares; `make_feeds` turns it and the runtime's
signature into the pool of feeds the timed loop rotates through, and `describe`
says in one line, for the result row, where each input's values came from.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import UserError
from workbench.input_options import BATCH, load_npy, npz_arrays, npz_names
from workbench.signature import BATCH_DIM_NAMES, FixedBatchError, TensorSpec

DEFAULT_INT_RANGE = (0, 100)  # generated integers when neither user nor file bounds them
MAX_POOL_BYTES = 4 << 30  # a pool of generated inputs larger than this is refused

_INT_DTYPES = ("int8", "uint8", "int16", "int32", "int64")


@dataclass
class InputPlan:
    """What is known about the inputs beyond the runtime's signature (all JSON-friendly).

    `shapes`: input -> axes (ints, or "B" for the batch axis), replacing the signature's;
    `dtypes`: input -> numpy dtype name given with a shape (`--shape ids=Bx128:int64`).
    `batch_axes`: input -> the axis that takes the batch size (None: not batched).
    `int_ranges`: input -> [low, high) for generated integers, from the user.
    `declared_ranges`: input -> [low, high, why], what the model file itself implies.
    `data`: input -> .npy path; `data_file`: a .npz of name -> array for any inputs."""

    shapes: dict[str, list[int | str]] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)
    batch_axes: dict[str, int | None] = field(default_factory=dict)
    int_ranges: dict[str, list[int]] = field(default_factory=dict)
    declared_ranges: dict[str, list[Any]] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)
    data_file: str | None = None
    # the format declares no value constraints at all (said in each row's input note)
    no_declared_constraints: bool = False

    @classmethod
    def from_json(cls, value: InputPlan | dict[str, Any] | None) -> InputPlan:
        if value is None:
            return cls()
        return value if isinstance(value, cls) else cls(**value)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def named_inputs(self) -> set[str]:
        """Every input name the user mentioned (checked against the model's)."""
        names = set(self.shapes) | set(self.batch_axes) | set(self.int_ranges) | set(self.data)
        return names | set(npz_names(self.data_file)) if self.data_file else names


# --------------------------------------------------------------- constraints in files


def declared_int_ranges(path: Path, fmt: str) -> tuple[dict[str, list[Any]], bool]:
    """Integer ranges the model file implies for its inputs, and whether the format
    could declare any: in ONNX, an input that indexes a constant table (Gather on an
    initializer) must stay below the table's size on that axis. Other formats carry no
    such information in a form read here (the second value is then True)."""
    if fmt not in ("onnx", "onnx-fused"):
        return {}, True
    # lazy: onnx
    import onnx

    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - detection already vetted the file; stay quiet
        return {}, False
    graph = proto.graph
    tables = {t.name: list(t.dims) for t in graph.initializer}
    inputs = {i.name for i in graph.input} - set(tables)
    ranges: dict[str, list[Any]] = {}
    for node in graph.node:
        if node.op_type != "Gather" or len(node.input) < 2:
            continue
        table, index = node.input[0], node.input[1]
        if index not in inputs or table not in tables:
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        dims = tables[table]
        if not dims or not -len(dims) <= axis < len(dims):
            continue
        size = int(dims[axis])
        if size <= 0:
            continue
        previous = ranges.get(index)
        if previous is None or size < previous[1]:
            ranges[index] = [0, size, f"indexes a {size}-row table ({table})"]
    return ranges, False


# ------------------------------------------------------------------- feeds from a plan


def planned_specs(specs: Sequence[TensorSpec], plan: InputPlan) -> list[TensorSpec]:
    """The signature with the user's --shape overrides applied (B becomes the batch
    symbol); a UserError names an input the model does not have."""
    names = [s.name for s in specs]
    unknown = sorted(plan.named_inputs() - set(names))
    if unknown:
        raise UserError(
            f"the model has no input {', '.join(map(repr, unknown))}: its inputs are "
            f"{', '.join(map(repr, names))}"
        )
    out = []
    for spec in specs:
        shape = plan.shapes.get(spec.name)
        if shape is not None:
            spec = TensorSpec(spec.name, plan.dtypes.get(spec.name, spec.dtype), tuple(shape))
        out.append(spec)
    return out


def signature_from_shapes(plan: InputPlan) -> list[dict[str, Any]]:
    """Input specs (as JSON) from the --shape items alone, in the order given, for a file
    that carries no typed signature (TorchScript): float32 unless a dtype is given."""
    return [
        {"name": name, "dtype": plan.dtypes.get(name, "float32"), "shape": list(shape)}
        for name, shape in plan.shapes.items()
    ]


def batch_axes(specs: Sequence[TensorSpec], plan: InputPlan) -> dict[str, int | None]:
    """The axis of each input that takes the batch size, or None where it has none.

    Order: the user's --batch-axis; the B of a --shape; else the batch symbol -- the
    named dimension most inputs have on axis 0 (a batch-like name wins ties) -- wherever
    it sits in the input (a state [2, batch, 128] is batched on axis 1). Inputs without
    the symbol are batched on a symbolic axis 0 and not batched otherwise (a fixed [1]
    sample rate, a scalar). When no input is symbolic at all, axis 0 is the batch axis
    of every input that has one (a fixed batch then fails its rows as before)."""
    free = [s for s in specs if s.name not in plan.shapes and s.name not in plan.batch_axes]
    named = Counter(
        s.shape[0] for s in free if s.shape and isinstance(s.shape[0], str) and s.shape[0]
    )
    symbol = None
    if named:
        best = max(named.values())
        tied = [name for name, n in named.items() if n == best]
        symbol = next((n for n in tied if n in BATCH_DIM_NAMES), tied[0])
    any_symbolic = any(s.shape and s.is_symbolic(0) for s in free)
    axes: dict[str, int | None] = {}
    for spec in specs:
        if spec.name in plan.batch_axes:
            axis = plan.batch_axes[spec.name]
            if axis is not None and axis >= len(spec.shape):
                raise UserError(
                    f"--batch-axis {spec.name}={axis}: the input has {len(spec.shape)} axes "
                    f"(shape {list(spec.shape)})"
                )
            axes[spec.name] = axis
        elif spec.name in plan.shapes:
            axes[spec.name] = spec.shape.index(BATCH) if BATCH in spec.shape else None
        elif symbol is not None and symbol in spec.shape:
            axes[spec.name] = spec.shape.index(symbol)
        elif spec.shape and (spec.is_symbolic(0) or not any_symbolic):
            axes[spec.name] = 0
        else:
            axes[spec.name] = None
    return axes


def _resolve(
    spec: TensorSpec,
    axis: int | None,
    batch_size: int,
    dims: Mapping[str, int],
    batch_symbols: set[str],
) -> tuple[int, ...]:
    shape: list[int] = []
    for i, dim in enumerate(spec.shape):
        fixed = isinstance(dim, int) and dim >= 0
        if i == axis:
            if fixed and dim != batch_size:
                raise FixedBatchError(
                    f"input {spec.name!r} has a fixed batch dimension of {dim} on axis {i} "
                    f"(shape {list(spec.shape)}), so batch {batch_size} cannot be measured: "
                    f"use batch {dim}, re-export with a dynamic batch axis, or set another "
                    "batch axis with --batch-axis"
                )
            shape.append(batch_size)
        elif fixed:
            shape.append(dim)
        elif isinstance(dim, str) and dim in dims:
            shape.append(dims[dim])
        elif isinstance(dim, str) and dim in batch_symbols:
            shape.append(batch_size)
        else:
            label = repr(dim) if isinstance(dim, str) and dim else f"axis {i} (unnamed)"
            hint = f"--dim {dim}=VALUE or " if isinstance(dim, str) and dim else ""
            raise UserError(
                f"input {spec.name!r} has symbolic dimension {label} (shape "
                f"{['?' if d is None else d for d in spec.shape]}) that is not set: pass "
                f"{hint}--shape {spec.name}=... with every axis (B for the batch), e.g. "
                f"--shape {spec.name}={'x'.join(_example_axes(spec, axis))}"
            )
    return tuple(shape)


def _example_axes(spec: TensorSpec, axis: int | None) -> list[str]:
    return [
        BATCH if i == axis else str(d) if isinstance(d, int) and d >= 0 else "N"
        for i, d in enumerate(spec.shape)
    ]


def resolve_shapes(
    specs: Sequence[TensorSpec], batch_size: int, dims: Mapping[str, int], plan: InputPlan
) -> dict[str, tuple[int, ...]]:
    """Concrete shapes of every input at `batch_size` under `plan`."""
    specs = planned_specs(specs, plan)
    axes = batch_axes(specs, plan)
    if batch_size != 1 and specs and all(a is None for a in axes.values()):
        raise FixedBatchError(
            f"no input has a batch axis (shapes {[list(s.shape) for s in specs]}), so batch "
            f"{batch_size} cannot be measured: use batch 1, or mark the batch axis with "
            "--shape NAME=Bx... or --batch-axis NAME=AXIS"
        )
    # a symbol on any input's batch axis means the batch wherever else it appears
    symbols = {
        d
        for s in specs
        if (a := axes[s.name]) is not None and isinstance(d := s.shape[a], str) and d
    }
    return {s.name: _resolve(s, axes[s.name], batch_size, dims, symbols) for s in specs}


def _int_range(spec: TensorSpec, plan: InputPlan) -> tuple[int, int]:
    chosen = plan.int_ranges.get(spec.name) or plan.declared_ranges.get(spec.name)
    low, high = (chosen[0], chosen[1]) if chosen else DEFAULT_INT_RANGE
    info = np.iinfo(spec.dtype)
    if low < info.min or high - 1 > info.max:
        raise UserError(
            f"--int-range {spec.name}={low}:{high} does not fit the input's {spec.dtype}: "
            f"use values within {info.min}:{info.max + 1}"
        )
    return low, high


def _generate(
    rng: np.random.Generator, spec: TensorSpec, shape: tuple[int, ...], plan: InputPlan
) -> np.ndarray:
    if spec.name in plan.int_ranges and spec.dtype not in _INT_DTYPES:
        raise UserError(
            f"--int-range {spec.name}=...: input {spec.name!r} is {spec.dtype}, not an integer"
        )
    if spec.dtype in ("float32", "float16", "float64"):
        return rng.standard_normal(shape).astype(spec.dtype)
    if spec.dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    if spec.dtype in _INT_DTYPES:
        low, high = _int_range(spec, plan)
        return rng.integers(low, high, size=shape, dtype=np.int64).astype(spec.dtype)
    raise UserError(
        f"cannot generate input {spec.name!r} of dtype {spec.dtype}: give its values with "
        f"--input {spec.name}=values.npy"
    )


def _from_data(
    spec: TensorSpec,
    array: np.ndarray,
    shape: tuple[int, ...],
    axis: int | None,
    batch_size: int,
    index: int,
) -> np.ndarray:
    """Batch `index` of the pool cut from the user's array along the batch axis, tiled
    round when the array holds fewer items; an unbatched input takes the array as is."""
    if array.ndim != len(shape):
        raise UserError(
            f"the data for input {spec.name!r} has shape {list(array.shape)} but the input "
            f"takes {len(shape)} axes (shape {list(spec.shape)}): reshape it or set --shape"
        )
    if axis is not None:
        items = array.shape[axis]
        if items == 0:
            raise UserError(f"the data for input {spec.name!r} holds no items on axis {axis}")
        take = (index * batch_size + np.arange(batch_size)) % items
        array = np.take(array, take, axis=axis)
    for i, (have, want) in enumerate(zip(array.shape, shape, strict=True)):
        if i != axis and have != want and _fixed(spec, i):
            raise UserError(
                f"the data for input {spec.name!r} has {have} on axis {i}, but the model "
                f"fixes it at {want} (shape {list(spec.shape)})"
            )
    target = np.dtype(spec.dtype)
    if array.dtype != target:
        kinds = {array.dtype.kind, target.kind}
        if not (kinds <= {"f"} or kinds <= {"i", "u"} or kinds <= {"b"}):
            raise UserError(
                f"the data for input {spec.name!r} is {array.dtype} but the model takes "
                f"{target}: save it as {target}"
            )
        array = array.astype(target)
    return np.ascontiguousarray(array)


def _fixed(spec: TensorSpec, axis: int) -> bool:
    return axis < len(spec.shape) and not spec.is_symbolic(axis)


def make_feeds(
    specs: Sequence[TensorSpec],
    batch_size: int,
    dims: Mapping[str, int],
    plan: InputPlan,
    pool_size: int = 8,
    seed: int = 0,
) -> list[dict[str, np.ndarray]]:
    """`pool_size` feeds for `batch_size`: the user's data where given (cut or tiled to
    the batch), generated values elsewhere within the plan's ranges."""
    planned = planned_specs(specs, plan)
    shapes = resolve_shapes(specs, batch_size, dims, plan)
    axes = batch_axes(planned, plan)
    data = {name: load_npy(path, f"--input {name}") for name, path in plan.data.items()}
    if plan.data_file:
        data = {**npz_arrays(plan.data_file), **data}
    size = sum(
        int(np.prod(shape, dtype=np.float64)) * np.dtype(s.dtype).itemsize
        for s, shape in zip(planned, shapes.values(), strict=True)
        if s.name not in data
    )
    if size * pool_size > MAX_POOL_BYTES:
        raise UserError(
            f"the generated inputs would take {size * pool_size / 2**30:.1f} GiB at batch "
            f"{batch_size} (shapes {list(shapes.values())}): use smaller --shape/--dim/--batch"
        )
    rng = np.random.default_rng(seed)
    return [
        {
            s.name: (
                _from_data(s, data[s.name], shapes[s.name], axes[s.name], batch_size, k)
                if s.name in data
                else _generate(rng, s, shapes[s.name], plan)
            )
            for s in planned
        }
        for k in range(pool_size)
    ]


def describe(specs: Sequence[TensorSpec], plan: InputPlan) -> str:
    """One line for the result row: where each input's values came from."""
    planned = planned_specs(specs, plan)
    axes = batch_axes(planned, plan)
    data_names = set(plan.data) | (set(npz_names(plan.data_file)) if plan.data_file else set())
    parts = []
    for spec in planned:
        axis = axes[spec.name]
        where = f"batch axis {axis}" if axis is not None else "not batched"
        if spec.name in data_names:
            what = "user data"
        elif spec.dtype in _INT_DTYPES:
            if spec.name in plan.int_ranges:
                low, high = plan.int_ranges[spec.name]
                what = f"ints [{low}, {high}) from --int-range"
            elif spec.name in plan.declared_ranges:
                low, high, why = plan.declared_ranges[spec.name]
                what = f"ints [{low}, {high}): the model {why}"
            else:
                low, high = DEFAULT_INT_RANGE
                reason = (
                    "this format declares no value constraints"
                    if plan.no_declared_constraints
                    else "the file declares no range"
                )
                what = f"ints [{low}, {high}) by default ({reason}; set --int-range)"
        else:
            what = "random"
        parts.append(f"{spec.name}: {what}, {where}")
    return "; ".join(parts).replace("\n", " ")
