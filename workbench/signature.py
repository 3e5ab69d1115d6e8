"""Model input signatures and input generation from them.

A runtime reports each input as a `TensorSpec` whose shape may hold symbolic
dimensions (a name such as "batch_size", or None when the file gives no name).
`resolve_shape` turns them into concrete sizes from the batch size and the
user's `--dim NAME=VALUE` settings; `make_input_pool` then draws several
distinct batches so the timed loop can rotate through them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from workbench.errors import UserError

Dim = int | str | None

# Names runtimes use for element types, mapped to numpy dtypes.
_DTYPE_ALIASES = {
    "float": "float32",
    "float32": "float32",
    "float16": "float16",
    "half": "float16",
    "double": "float64",
    "float64": "float64",
    "bfloat16": "bfloat16",
    "int8": "int8",
    "uint8": "uint8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "bool": "bool",
}
BATCH_DIM_NAMES = ("batch", "batch_size", "n", "N", "unk__0", "s0")


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: its name, numpy dtype name and (maybe symbolic) shape."""

    name: str
    dtype: str
    shape: tuple[Dim, ...]

    def is_symbolic(self, axis: int) -> bool:
        return not isinstance(self.shape[axis], int) or self.shape[axis] < 0


def normalize_dtype(name: str) -> str:
    """Map a runtime's element-type name (e.g. ONNX 'tensor(float)') to a numpy dtype name."""
    key = name.lower().removeprefix("tensor(").removesuffix(")").removeprefix("torch.")
    if key not in _DTYPE_ALIASES:
        raise UserError(
            f"input dtype {name!r} is not supported for generated inputs: "
            f"supported are {', '.join(sorted(set(_DTYPE_ALIASES.values())))}"
        )
    return _DTYPE_ALIASES[key]


def parse_dims(items: Sequence[str]) -> dict[str, int]:
    """Parse `--dim NAME=VALUE` items into a mapping; values must be positive integers."""
    dims: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--dim {item!r} is not NAME=VALUE, e.g. --dim sequence_length=128")
        try:
            size = int(value)
        except ValueError:
            raise UserError(f"--dim {item!r}: the value must be an integer") from None
        if size <= 0:
            raise UserError(f"--dim {item!r}: the value must be a positive integer")
        dims[name.strip()] = size
    return dims


class FixedBatchError(ValueError):
    """The model's batch axis is fixed at another size than the one asked for: measuring
    it would label one batch size with another's numbers, so that row fails instead."""


def resolve_shape(spec: TensorSpec, batch_size: int, dims: Mapping[str, int]) -> tuple[int, ...]:
    """Concrete shape for `spec`: axis 0 is the batch axis and takes the batch size when
    symbolic (a fixed axis 0 must equal it); other named dims take `dims[name]`; anything
    still unknown is a user error naming the dimension."""
    if batch_size <= 0:
        raise UserError(f"batch size must be a positive integer, got {batch_size}")
    shape: list[int] = []
    for axis, dim in enumerate(spec.shape):
        fixed = isinstance(dim, int) and dim >= 0
        if axis == 0 and fixed and dim != batch_size:
            raise FixedBatchError(
                f"input {spec.name!r} has a fixed batch dimension of {dim} (shape "
                f"{list(spec.shape)}), so batch {batch_size} cannot be measured: use batch "
                f"{dim} or re-export the model with a dynamic batch axis"
            )
        if fixed:
            shape.append(dim)
        elif axis == 0:
            shape.append(batch_size)
        elif isinstance(dim, str) and dim in dims:
            shape.append(dims[dim])
        else:
            label = dim if isinstance(dim, str) else f"axis {axis}"
            raise UserError(
                f"input {spec.name!r} has symbolic dimension {label!r} (shape {list(spec.shape)}) "
                f"that is not set: pass --dim {label if isinstance(dim, str) else 'NAME'}=VALUE"
            )
    return tuple(shape)


def random_tensor(rng: np.random.Generator, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """A random array of `dtype`: standard normal for floats, small non-negative ints for
    integers (valid as token ids and indices), random booleans."""
    if dtype in ("float32", "float16", "float64"):
        return rng.standard_normal(shape).astype(dtype)
    if dtype == "bfloat16":
        raise UserError("bfloat16 inputs cannot be generated with numpy; pass float32 instead")
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype in ("int8", "uint8", "int16", "int32", "int64"):
        return rng.integers(0, 100, size=shape).astype(dtype)
    raise UserError(f"cannot generate inputs of dtype {dtype!r}")


def make_input_pool(
    specs: Sequence[TensorSpec],
    batch_size: int,
    dims: Mapping[str, int] | None = None,
    pool_size: int = 8,
    seed: int = 0,
) -> list[dict[str, np.ndarray]]:
    """`pool_size` distinct feeds (name -> array) drawn before timing starts."""
    dims = dims or {}
    shapes = {spec.name: resolve_shape(spec, batch_size, dims) for spec in specs}
    rng = np.random.default_rng(seed)
    return [
        {spec.name: random_tensor(rng, spec.dtype, shapes[spec.name]) for spec in specs}
        for _ in range(pool_size)
    ]
