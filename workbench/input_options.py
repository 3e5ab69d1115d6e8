"""Parsing the command-line options that describe a model file's inputs (`--shape`,
`--batch-axis`, `--int-range`, `--input`, `--inputs`) and reading the user's data files.

Every parser gives a one-line UserError naming the option and an example; data files
are read with allow_pickle=False, so an object array (which would unpickle) is refused.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np

from workbench.errors import UserError
from workbench.signature import normalize_dtype

BATCH = "B"  # marks the batch axis in a --shape value
_NAME = r"[^=]+"


def _split(item: str, flag: str, example: str) -> tuple[str, str]:
    match = re.fullmatch(rf"\s*({_NAME}?)\s*=(.*)", item, flags=re.S)
    if not match or not match.group(1).strip() or "\n" in item:
        raise UserError(f"{flag} {item!r} is not NAME=VALUE, e.g. {flag} {example}")
    return match.group(1).strip(), match.group(2).strip()


def parse_shapes(items: Sequence[str]) -> tuple[dict[str, list[int | str]], dict[str, str]]:
    """`--shape NAME=2xBx128[:DTYPE]` items: each axis a positive integer or B (the batch
    axis); `NAME=scalar` for a 0-d input. Returns (shapes, dtypes given)."""
    shapes: dict[str, list[int | str]] = {}
    dtypes: dict[str, str] = {}
    for item in items:
        name, text = _split(item, "--shape", "input_ids=Bx128")
        text, colon, dtype = text.partition(":")
        if colon:
            try:
                dtypes[name] = normalize_dtype(dtype.strip())
            except UserError as exc:
                raise UserError(f"--shape {item!r}: {exc}") from None
        if text.lower() in ("scalar", "()"):
            shapes[name] = []
            continue
        axes: list[int | str] = []
        for part in re.split(r"[x,]", text.lower()):
            part = part.strip()
            if part in ("b", "batch"):
                axes.append(BATCH)
            elif part.isascii() and part.isdigit() and 0 < int(part) <= 1 << 31:
                axes.append(int(part))
            else:
                raise UserError(
                    f"--shape {item!r}: axis {part!r} must be a positive integer or B (the "
                    "batch axis), e.g. --shape state=2xBx128"
                )
        if axes.count(BATCH) > 1:
            raise UserError(f"--shape {item!r}: only one axis can be the batch axis B")
        shapes[name] = axes
    return shapes, dtypes


def parse_batch_axes(items: Sequence[str]) -> dict[str, int | None]:
    """`--batch-axis NAME=AXIS` items; AXIS `none` marks an input that is not batched."""
    axes: dict[str, int | None] = {}
    for item in items:
        name, text = _split(item, "--batch-axis", "state=1")
        if text.lower() == "none":
            axes[name] = None
        elif text.isascii() and text.isdigit() and int(text) < 64:
            axes[name] = int(text)
        else:
            raise UserError(
                f"--batch-axis {item!r}: AXIS must be a non-negative axis number or none"
            )
    return axes


def parse_int_ranges(items: Sequence[str]) -> dict[str, list[int]]:
    """`--int-range NAME=LOW:HIGH` items: generated integers in [LOW, HIGH)."""
    ranges: dict[str, list[int]] = {}
    for item in items:
        name, text = _split(item, "--int-range", "input_ids=0:30522")
        match = re.fullmatch(r"(-?[0-9]{1,19}):(-?[0-9]{1,19})", text)
        if not match:
            raise UserError(
                f"--int-range {item!r}: the value must be LOW:HIGH integers (HIGH excluded), "
                "e.g. --int-range input_ids=0:30522"
            )
        low, high = int(match.group(1)), int(match.group(2))
        if not -(1 << 63) <= low < high <= 1 << 63:
            raise UserError(f"--int-range {item!r}: LOW must be below HIGH, both within int64")
        ranges[name] = [low, high]
    return ranges


def parse_input_files(items: Sequence[str]) -> dict[str, str]:
    """`--input NAME=path.npy` items; each file must be a readable .npy array (read
    without pickle)."""
    data: dict[str, str] = {}
    for item in items:
        name, text = _split(item, "--input", "input_ids=ids.npy")
        load_npy(text, f"--input {name}")
        data[name] = text
    return data


def check_npz(path: str) -> str:
    """`--inputs feeds.npz`: a readable .npz of arrays (read without pickle)."""
    npz_arrays(path)
    return path


def load_npy(path: str, what: str) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False, mmap_mode="r")
    except FileNotFoundError:
        raise UserError(f"{what}: no file {path!r}: check the path") from None
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(
            f"{what}: {path!r} is not a readable .npy array ({first_line(exc)}); object "
            "arrays are refused, since reading them would unpickle the file"
        ) from None
    if not isinstance(array, np.ndarray):
        raise UserError(f"{what}: {path!r} is a .npz archive: pass it with --inputs")
    return array


def npz_names(path: str) -> list[str]:
    return list(npz_arrays(path))


@functools.lru_cache(maxsize=2)
def npz_arrays(path: str) -> dict[str, np.ndarray]:
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise UserError(
                f"--inputs: {path!r} is a single array, not a .npz archive: pass it with "
                "--input NAME=FILE.npy, or save a .npz with np.savez(path, NAME=array)"
            )
        with archive:
            return {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise UserError(f"--inputs: no file {path!r}: check the path") from None
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - zip and format errors alike mean a bad file
        raise UserError(
            f"--inputs: {path!r} is not a readable .npz of arrays ({first_line(exc)}); "
            "object arrays are refused, since reading them would unpickle the file"
        ) from None


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
