"""KServe v2 tensors: datatype names, JSON and binary (de)coding, checks against a model.

JSON tensors are `{"name", "shape", "datatype", "data"}` with `data` flat or nested in
row-major order. The binary-data extension (Triton's, used by `tritonclient` by default)
puts a tensor's raw little-endian bytes after the JSON header, its size in
`parameters.binary_data_size`; the header's length travels in the
`Inference-Header-Content-Length` HTTP header.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench.serving.errors import BadRequest

V2_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
NUMPY_TO_V2 = {dtype: name for name, dtype in V2_TO_NUMPY.items()}


def v2_datatype(dtype: Any) -> str:
    """The v2 name of a numpy dtype (strings and bytes are BYTES)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "SUO":
        return "BYTES"
    try:
        return NUMPY_TO_V2[dtype]
    except KeyError:
        raise BadRequest(f"dtype {dtype} has no KServe v2 datatype") from None


def numpy_dtype(datatype: Any, name: str) -> np.dtype:
    if not isinstance(datatype, str) or datatype not in V2_TO_NUMPY:
        raise BadRequest(
            f"input {name!r}: datatype {datatype!r} is not a v2 datatype ({', '.join(V2_TO_NUMPY)})"
        )
    return V2_TO_NUMPY[datatype]


def check_shape(shape: Any, name: str) -> tuple[int, ...]:
    if not isinstance(shape, Sequence) or isinstance(shape, str):
        raise BadRequest(f"input {name!r}: shape must be a list of integers, got {shape!r}")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise BadRequest(f"input {name!r}: shape must be non-negative integers, got {shape!r}")
    return tuple(shape)


def from_json_data(data: Any, shape: tuple[int, ...], dtype: np.dtype, name: str) -> np.ndarray:
    """A JSON `data` list (flat or nested) -> an array of `shape`, checked element count."""
    if not isinstance(data, list):
        raise BadRequest(f"input {name!r}: 'data' must be a list, got {type(data).__name__}")
    try:
        if dtype.kind == "O":
            flat = np.array(_flatten(data), dtype=object)
            flat = np.array([v.encode() if isinstance(v, str) else v for v in flat], dtype=object)
        else:
            flat = np.asarray(data, dtype=dtype).reshape(-1)
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadRequest(f"input {name!r}: data does not fit datatype {dtype}: {exc}") from None
    expected = math.prod(shape)
    if flat.size != expected:
        raise BadRequest(
            f"input {name!r}: {flat.size} values for shape {list(shape)} (which needs {expected})"
        )
    return flat.reshape(shape)


def from_raw(raw: bytes, shape: tuple[int, ...], dtype: np.dtype, name: str) -> np.ndarray:
    """Raw little-endian bytes (the binary extension, gRPC raw contents) -> an array."""
    if dtype.kind == "O":
        return _bytes_elements(raw, shape, name)
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise BadRequest(
            f"input {name!r}: {len(raw)} bytes of raw data for shape {list(shape)} of "
            f"{dtype} (which needs {expected})"
        )
    return (
        np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False).reshape(shape)
    )


def _bytes_elements(raw: bytes, shape: tuple[int, ...], name: str) -> np.ndarray:
    """BYTES in raw form: each element a 4-byte little-endian length, then its bytes."""
    items, at = [], 0
    while at < len(raw):
        if at + 4 > len(raw):
            raise BadRequest(f"input {name!r}: truncated BYTES element length")
        n = int.from_bytes(raw[at : at + 4], "little")
        items.append(raw[at + 4 : at + 4 + n])
        at += 4 + n
    if at != len(raw) or len(items) != math.prod(shape):
        raise BadRequest(f"input {name!r}: {len(items)} BYTES elements for shape {list(shape)}")
    return np.array(items, dtype=object).reshape(shape)


def to_raw(array: np.ndarray) -> bytes:
    """An array as raw little-endian bytes (BYTES: length-prefixed elements)."""
    if array.dtype.kind in "SUO":
        parts = []
        for item in array.reshape(-1):
            data = item.encode() if isinstance(item, str) else bytes(item)
            parts.append(len(data).to_bytes(4, "little") + data)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def to_json(name: str, array: np.ndarray) -> dict[str, Any]:
    """A v2 JSON output tensor (flat row-major data)."""
    array = np.asarray(array)
    datatype = v2_datatype(array.dtype)
    if datatype == "BYTES":
        data = [
            v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            for v in array.reshape(-1)
        ]
    else:
        data = array.reshape(-1).tolist()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def _flatten(data: list) -> list:
    out: list = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def check_against(feed: dict[str, np.ndarray], specs: Sequence[Any], model: str) -> None:
    """Every model input given, no extra ones, each of the model's dtype and rank, fixed
    dims equal (symbolic dims take any size). `specs` are the model's TensorSpecs."""
    if not specs:
        return
    names = [s.name for s in specs]
    extra = sorted(set(feed) - set(names))
    if extra:
        raise BadRequest(f"model {model!r} has no input {extra[0]!r}: its inputs are {names}")
    for spec in specs:
        if spec.name not in feed:
            raise BadRequest(f"model {model!r} needs input {spec.name!r}: its inputs are {names}")
        value = feed[spec.name]
        want = np.dtype(spec.dtype)
        if value.dtype != want:
            raise BadRequest(
                f"input {spec.name!r}: datatype {v2_datatype(value.dtype)}, but model "
                f"{model!r} takes {v2_datatype(want)}"
            )
        if len(value.shape) != len(spec.shape) or any(
            isinstance(d, int) and d >= 0 and d != got
            for d, got in zip(spec.shape, value.shape, strict=True)
        ):
            raise BadRequest(
                f"input {spec.name!r}: shape {list(value.shape)}, but model {model!r} takes "
                f"{metadata_shape(spec.shape)} (-1: any size)"
            )
        if not value.shape or value.shape[0] < 1:
            raise BadRequest(f"input {spec.name!r}: needs a batch axis of at least 1 row")


def metadata_shape(shape: Sequence[Any]) -> list[int]:
    """A TensorSpec shape for v2 metadata: symbolic dims are -1."""
    return [d if isinstance(d, int) and d >= 0 else -1 for d in shape]
