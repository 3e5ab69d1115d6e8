"""Calibration and evaluation data for a user's model, read and checked item by item.

An *item* is one feed: a dict from input name to array with the batch axis first, as the
model takes it. Every item is checked against the model's input specs (names, dtypes,
ranks, fixed dimensions; symbolic dimensions are free but must agree between the inputs
of one item), and a bad one is named by its index in a one-line `UserError`, e.g.
"calibration item 3: input 'pixel_values' has rank 3, the model expects 4 (batch, 3,
224, 224)". Nothing here invents data: random calibration is asked for elsewhere.

Sources (`source` of `iter_items`, `load_items`, `load_labeled`):

- a `.npz` file: one item, one array per input (first axis = batch);
- several `.npz` shards: a directory holding `.npz` files or a glob (`data/cal-*.npz`),
  one item per shard, in sorted file-name order;
- a directory holding one `.npy` file per input (`input_ids.npy`, `attention_mask.npy`):
  one item, the file stem is the input name;
- `package.module:function` or `path/to/file.py:function`: called with no argument, it
  returns one dict of arrays or an iterable (e.g. a generator) of them, one per item;
- in Python, a dict of arrays (one item), an iterable of dicts, or a callable as above.

A big single file is one big item: `split_batches` cuts items into batches of a size.
`limit` counts rows (samples along the batch axis), not items, so "calibrate on 128
samples" means the same whatever the storage; the last item is cut short to fit.

Dtypes: an array whose dtype differs from the model's is cast only where nothing is lost
in kind: float to float (float64 data for a float32 input is the usual case), integer to
integer when every value fits (int32 token ids for an int64 input), bool to bool. Any
other mismatch (floats for token ids, integers for a float image) is an error, since it
usually means a missing pre-processing step.

Labels for evaluation (`load_labeled`), rows aligned with the items' rows in order:

- stored beside the inputs under `label_key` ("labels" by default): a key of each `.npz`
  shard, a `labels.npy` in the `.npy` directory, a key of each dict a function yields;
- or a separate file given as `labels=`: a `.npy` array, or a `.npz` holding `label_key`,
  covering all rows of all items in order.
"""

from __future__ import annotations

import glob
import logging
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import UserError
from workbench.signature import TensorSpec
from workbench.usermodel.callref import is_callable_ref, load_callable

log = logging.getLogger(__name__)

Item = dict[str, np.ndarray]
Source = str | Path | Mapping[str, Any] | Iterable[Mapping[str, Any]] | Callable[[], Any]


@dataclass(frozen=True)
class LabeledData:
    """Evaluation data: items (feeds) and the true labels of all their rows, in order
    (`labels[i]` belongs to row i of the items' rows laid end to end)."""

    items: list[Item]
    labels: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.labels)

    def batches(self, batch_size: int) -> list[tuple[Item, np.ndarray]]:
        """(feed, labels) pairs of `batch_size` rows (the last may be smaller)."""
        feeds = split_batches(self.items, batch_size)
        out, start = [], 0
        for feed in feeds:
            n = item_rows(feed)
            out.append((feed, self.labels[start : start + n]))
            start += n
        return out


def iter_items(
    source: Source,
    specs: Sequence[TensorSpec],
    limit: int | None = None,
    what: str = "calibration",
) -> Iterator[Item]:
    """Validated items from `source`, lazily (a generator source is read only as far as
    needed). `limit`: at most that many rows in all. `what` names the data in errors."""
    if limit is not None and limit <= 0:
        raise UserError(f"{what} limit must be a positive number of rows, got {limit}")
    for item, _ in _iter_validated(source, specs, limit, what, label_key=None):
        yield item


def load_items(
    source: Source,
    specs: Sequence[TensorSpec],
    limit: int | None = None,
    what: str = "calibration",
) -> list[Item]:
    """All validated items of `source` (see the module docstring); an error if none."""
    items = list(iter_items(source, specs, limit, what))
    if not items:
        raise UserError(f"{what} data {_describe(source)} holds no items")
    return items


def load_labeled(
    source: Source,
    specs: Sequence[TensorSpec],
    label_key: str = "labels",
    labels: str | Path | np.ndarray | None = None,
    limit: int | None = None,
    what: str = "evaluation",
) -> LabeledData:
    """Items and their true labels. Labels come from `label_key` inside the source (each
    shard, `.npy` directory or yielded dict), or from `labels` (a `.npy` file, a `.npz`
    holding `label_key`, or an array) covering every row of every item in order."""
    if limit is not None and limit <= 0:
        raise UserError(f"{what} limit must be a positive number of rows, got {limit}")
    inline = labels is None
    items: list[Item] = []
    parts: list[np.ndarray] = []
    for index, (item, item_labels) in enumerate(
        _iter_validated(source, specs, limit, what, label_key=label_key)
    ):
        items.append(item)
        if not inline and item_labels is not None:
            raise UserError(
                f"{what} item {index} holds {label_key!r} labels and a labels file is given "
                "too: give the labels in one place"
            )
        if inline:
            if item_labels is None:
                raise UserError(
                    f"{what} item {index} has no {label_key!r} labels: store them under that "
                    "key beside the inputs, or give a separate labels file"
                )
            parts.append(item_labels)
    if not items:
        raise UserError(f"{what} data {_describe(source)} holds no items")
    rows = sum(item_rows(item) for item in items)
    if inline:
        all_labels = np.concatenate(parts) if len(parts) > 1 else parts[0]
    else:
        all_labels = _read_labels(labels, label_key, what)
        if limit is not None:  # the file covers the whole source; only `rows` were read
            all_labels = all_labels[:rows]
    if len(all_labels) != rows:
        raise UserError(
            f"{what} labels have {len(all_labels)} rows but the inputs have {rows}: give one "
            "label row per input row"
        )
    return LabeledData(items, all_labels)


def item_rows(item: Mapping[str, np.ndarray]) -> int:
    """Rows (batch size) of an item: axis 0 of its first input that has an axis."""
    for array in item.values():
        if np.ndim(array) > 0:
            return int(np.shape(array)[0])
    return 1


def split_batches(items: Sequence[Item], batch_size: int) -> list[Item]:
    """The rows of `items`, laid end to end, cut into feeds of `batch_size` rows (the last
    may be smaller). Items must agree on every axis but the batch axis; items of another
    sequence length are kept apart rather than padded, so this is an error then."""
    if batch_size <= 0:
        raise UserError(f"batch size must be a positive integer, got {batch_size}")
    if not items:
        return []
    first = items[0]
    for index, item in enumerate(items[1:], start=1):
        for name, array in item.items():
            if array.shape[1:] != first[name].shape[1:]:
                raise UserError(
                    f"item {index}: input {name!r} has shape {array.shape} but item 0 has "
                    f"{first[name].shape}: items that differ beyond the batch axis cannot be "
                    "re-batched; keep them as they are or give items of one shape"
                )
    joined = {name: np.concatenate([item[name] for item in items]) for name in first}
    total = item_rows(joined)
    return [
        {name: array[start : start + batch_size] for name, array in joined.items()}
        for start in range(0, total, batch_size)
    ]


# ---------------------------------------------------------------------------- reading


def _iter_validated(
    source: Source,
    specs: Sequence[TensorSpec],
    limit: int | None,
    what: str,
    label_key: str | None,
) -> Iterator[tuple[Item, np.ndarray | None]]:
    """(item, its labels or None) pairs, each item checked; stops after `limit` rows."""
    remaining = limit
    for index, (raw, origin) in enumerate(_raw_items(source, what)):
        if remaining is not None and remaining <= 0:
            return
        where = f"{what} item {index}" + (f" ({origin})" if origin else "")
        if not isinstance(raw, Mapping):
            raise UserError(
                f"{where} is a {type(raw).__name__}, not a dict of arrays keyed by input name"
            )
        raw = dict(raw)
        labels = None
        if label_key is not None and label_key in raw:
            labels = _as_array(raw.pop(label_key), where, f"labels {label_key!r}")
            if labels.ndim == 0:
                raise UserError(f"{where}: labels {label_key!r} is a scalar, not one per row")
        item = validate_item(raw, specs, where)
        rows = item_rows(item)
        if labels is not None and len(labels) != rows:
            raise UserError(
                f"{where}: labels {label_key!r} have {len(labels)} rows but the inputs have {rows}"
            )
        if remaining is not None and rows > remaining:
            if any(not spec.is_symbolic(0) for spec in specs if spec.shape):
                return  # a fixed batch axis cannot be cut short
            item = {name: array[:remaining] for name, array in item.items()}
            labels = None if labels is None else labels[:remaining]
            rows = remaining
        if remaining is not None:
            remaining -= rows
        yield item, labels


def _raw_items(source: Source, what: str) -> Iterator[tuple[Any, str]]:
    """(unchecked item, where it came from) pairs from any kind of source."""
    if isinstance(source, (str, Path)):
        text = str(source)
        if isinstance(source, str) and is_callable_ref(text):
            fn = load_callable(text, f"{what} function")
            yield from _call(fn, text, what)
            return
        yield from _read_path(text, what)
        return
    if isinstance(source, Mapping):
        yield source, ""
        return
    if callable(source):
        yield from _call(source, getattr(source, "__name__", "function"), what)
        return
    if isinstance(source, Iterable):
        for item in source:
            yield item, ""
        return
    raise UserError(f"{what} data must be a path, a MODULE:FUNCTION, or dicts of arrays")


def _call(fn: Callable[[], Any], name: str, what: str) -> Iterator[tuple[Any, str]]:
    """Items from a user function: one dict, or an iterable of dicts. Its exceptions
    become one-line errors naming it and the item it was producing."""
    try:
        produced = fn()
    except Exception as exc:
        raise UserError(f"{what} function {name} raised {type(exc).__name__}: {exc}") from None
    if isinstance(produced, Mapping):
        yield produced, ""
        return
    if not isinstance(produced, Iterable) or isinstance(produced, (str, bytes)):
        raise UserError(
            f"{what} function {name} returned a {type(produced).__name__}: it must return a "
            "dict of arrays or yield such dicts"
        )
    iterator = iter(produced)
    index = 0
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            raise UserError(
                f"{what} function {name} raised {type(exc).__name__} while producing item "
                f"{index}: {exc}"
            ) from None
        yield item, ""
        index += 1


def _read_path(text: str, what: str) -> Iterator[tuple[Any, str]]:
    path = Path(text).expanduser()
    if any(ch in text for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(str(path)))
        files = [f for f in files if f.suffix == ".npz"]
        if not files:
            raise UserError(f"{what} data: no .npz file matches {text}")
        for f in files:
            yield _read_npz(f, what), f.name
        return
    if path.is_dir():
        shards = sorted(path.glob("*.npz"))
        arrays = sorted(path.glob("*.npy"))
        if shards and arrays:
            raise UserError(
                f"{what} data: {text} holds both .npz shards and .npy files; keep one kind "
                "(shards: one item each; .npy: one file per input)"
            )
        if shards:
            for f in shards:
                yield _read_npz(f, what), f.name
            return
        if arrays:
            yield {f.stem: _load_npy(f, what) for f in arrays}, path.name
            return
        raise UserError(f"{what} data: {text} holds no .npz or .npy file")
    if not path.exists():
        raise UserError(
            f"{what} data: no file or directory {text} (give a .npz file, a directory of "
            ".npz shards or of one .npy per input, a glob, or MODULE:FUNCTION)"
        )
    if path.suffix == ".npz":
        yield _read_npz(path, what), path.name
        return
    if path.suffix == ".npy":
        raise UserError(
            f"{what} data: {text} is a single .npy file: put one .npy per input in a directory "
            "(named after the inputs), or save the inputs together with numpy.savez"
        )
    raise UserError(f"{what} data: {text} is not a .npz file, a directory or a glob")


def _read_npz(path: Path, what: str) -> dict[str, np.ndarray]:
    if not zipfile.is_zipfile(path):  # numpy would take any other bytes for a pickle
        raise UserError(f"{what} data {path.name} is not a readable .npz (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise UserError(
                f"{what} data {path.name}: an array holds Python objects (ragged lists?); "
                "store numeric arrays of one shape each"
            ) from None
        raise UserError(f"{what} data {path.name} is not a readable .npz: {exc}") from None
    except Exception as exc:  # zipfile.BadZipFile, OSError, EOFError ...
        raise UserError(f"{what} data {path.name} is not a readable .npz: {exc}") from None


def _load_npy(path: Path, what: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise UserError(
                f"{what} data {path.name}: the array holds Python objects (ragged lists?); "
                "store a numeric array of one shape"
            ) from None
        raise UserError(f"{what} data {path.name} is not a readable .npy: {exc}") from None


def _read_labels(labels: str | Path | np.ndarray | None, key: str, what: str) -> np.ndarray:
    if isinstance(labels, np.ndarray):
        return _as_array(labels, f"{what} labels", "labels")
    path = Path(str(labels)).expanduser()
    if not path.is_file():
        raise UserError(f"{what} labels: no file {labels}")
    if path.suffix == ".npy":
        return _load_npy(path, what)
    if path.suffix == ".npz":
        data = _read_npz(path, what)
        if key not in data:
            raise UserError(
                f"{what} labels {path.name} has no key {key!r} (it has: "
                f"{', '.join(sorted(data)) or 'nothing'})"
            )
        return data[key]
    raise UserError(f"{what} labels {labels} must be a .npy file or a .npz holding {key!r}")


# ------------------------------------------------------------------------- validation


def _as_array(value: Any, where: str, name: str) -> np.ndarray:
    """`value` as a numeric numpy array; ragged nested lists are named as such."""
    try:
        array = np.asarray(value)
    except ValueError:  # numpy >= 1.24: inhomogeneous nested sequences
        raise UserError(f"{where}: {name} is ragged (rows of different lengths)") from None
    if array.dtype == object:
        raise UserError(f"{where}: {name} is ragged or holds Python objects, not numbers")
    if array.dtype.kind not in "biuf":
        raise UserError(f"{where}: {name} has dtype {array.dtype}, not a numeric type")
    return array


def _shape_text(spec: TensorSpec) -> str:
    dims = [("?" if d is None else str(d)) for d in spec.shape]
    return "(" + ", ".join(dims) + ")"


def _cast(array: np.ndarray, spec: TensorSpec, where: str) -> np.ndarray:
    """`array` as the spec's dtype, where nothing is lost in kind (module docstring)."""
    want = np.dtype(spec.dtype)
    have = array.dtype
    if have == want:
        return array
    label = f"{where}: input {spec.name!r} has dtype {have}, the model expects {want}"
    if have.kind == "f" and want.kind == "f":
        return array.astype(want)
    if have.kind in "iu" and want.kind in "iu":
        info = np.iinfo(want)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise UserError(f"{label}, and some values do not fit in {want}")
        return array.astype(want)
    if have.kind == "b" and want.kind == "b":
        return array
    hint = ""
    if want.kind in "iu" and have.kind == "f":
        hint = " (token ids and indices are integers: check the pre-processing)"
    elif want.kind == "f" and have.kind in "iu":
        hint = " (raw integer pixels? convert and normalise as the model was trained)"
    raise UserError(label + hint)


def validate_item(
    item: Mapping[str, Any], specs: Sequence[TensorSpec], where: str = "item"
) -> Item:
    """`item` checked against `specs` and cast where harmless (module docstring): the
    same names, the same ranks, fixed dimensions equal, symbolic dimensions of one name
    (and the batch axis) equal across inputs. Errors name `where` and the input."""
    names = [spec.name for spec in specs]
    missing = [n for n in names if n not in item]
    extra = [k for k in item if k not in names]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing input {', '.join(repr(n) for n in missing)}")
        if extra:
            parts.append(f"unknown key {', '.join(repr(str(k)) for k in extra)}")
        raise UserError(f"{where}: {'; '.join(parts)} (the model's inputs: {', '.join(names)})")
    out: Item = {}
    seen: dict[str, tuple[int, str]] = {}  # symbolic dim name -> (size, input that set it)
    batch: tuple[int, str] | None = None
    for spec in specs:
        array = _as_array(item[spec.name], where, f"input {spec.name!r}")
        if array.ndim != len(spec.shape):
            hint = " (add the batch axis: x[None])" if array.ndim + 1 == len(spec.shape) else ""
            raise UserError(
                f"{where}: input {spec.name!r} has rank {array.ndim}, the model expects "
                f"{len(spec.shape)} {_shape_text(spec)}{hint}"
            )
        for axis, dim in enumerate(spec.shape):
            size = array.shape[axis]
            if isinstance(dim, int) and dim >= 0:
                if size != dim:
                    raise UserError(
                        f"{where}: input {spec.name!r} has shape {tuple(array.shape)}, the "
                        f"model expects {_shape_text(spec)}: axis {axis} must be {dim}"
                    )
                continue
            if axis == 0:
                if batch is not None and batch[0] != size:
                    raise UserError(
                        f"{where} is ragged: input {spec.name!r} has {size} rows on the batch "
                        f"axis but {batch[1]!r} has {batch[0]}"
                    )
                batch = batch or (size, spec.name)
            if isinstance(dim, str):
                if dim in seen and seen[dim][0] != size:
                    raise UserError(
                        f"{where} is ragged: input {spec.name!r} has {dim}={size} (axis {axis}) "
                        f"but {seen[dim][1]!r} has {dim}={seen[dim][0]}"
                    )
                seen.setdefault(dim, (size, spec.name))
        if array.ndim and array.shape[0] == 0:
            raise UserError(f"{where}: input {spec.name!r} has no rows")
        out[spec.name] = _cast(array, spec, where)
    return out


def _describe(source: Source) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    return f"({type(source).__name__})"
