"""A running compiled caller: its tensor files and its line protocol.

Python writes each feed to a `.wbt` file (a small header, then raw bytes per tensor)
before timing; the caller reads the whole pool into memory, times its own loop with the
harness's rules and writes the per-call latencies as raw int64 nanoseconds, which the
harness's statistics read like its own. Commands and replies are tab-separated lines on
the caller's stdin and stdout (see src/wb_common.h).
"""

from __future__ import annotations

import struct
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import UserError
from workbench.signature import Dim, TensorSpec

MAGIC = b"WBT1"
REPLY_TIMEOUT_S = 600.0


@dataclass
class CallerMeasurement:
    """A timed loop run by the caller: the fields of workbench.harness.timing.Measurement
    (the harness reads it the same way; importing it here would make a package cycle)."""

    latencies_ns: np.ndarray
    n_warmup: int
    warmup_s: float
    duration_s: float
    stopped_by: str
    peak_rss_bytes: int | None = None


def write_tensors(path: Path, tensors: Sequence[tuple[str, np.ndarray]]) -> None:
    """Write named arrays in the callers' file format (little-endian, C order)."""
    parts = [MAGIC, struct.pack("<I", len(tensors))]
    for name, array in tensors:
        array = np.ascontiguousarray(array)
        dtype = array.dtype.name.encode()
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        encoded = name.encode()
        parts += [
            struct.pack("<I", len(encoded)), encoded, struct.pack("<I", len(dtype)), dtype,
            struct.pack("<I", array.ndim), struct.pack(f"<{array.ndim}q", *array.shape),
            struct.pack("<Q", len(data)), data,
        ]  # fmt: skip
    path.write_bytes(b"".join(parts))


def read_tensors(path: Path) -> list[tuple[str, np.ndarray]]:
    """The named arrays of a file the caller wrote."""
    raw = path.read_bytes()
    if raw[:4] != MAGIC:
        raise ValueError(f"{path} is not a tensor file")
    (count,), pos = struct.unpack_from("<I", raw, 4), 8
    out = []
    for _ in range(count):
        (n,) = struct.unpack_from("<I", raw, pos)
        name = raw[pos + 4 : pos + 4 + n].decode()
        pos += 4 + n
        (n,) = struct.unpack_from("<I", raw, pos)
        dtype = raw[pos + 4 : pos + 4 + n].decode()
        pos += 4 + n
        (ndim,) = struct.unpack_from("<I", raw, pos)
        shape = struct.unpack_from(f"<{ndim}q", raw, pos + 4)
        pos += 4 + 8 * ndim
        (nbytes,) = struct.unpack_from("<Q", raw, pos)
        pos += 8
        array = np.frombuffer(raw[pos : pos + nbytes], dtype=dtype).reshape(shape).copy()
        pos += nbytes
        out.append((name, array))
    return out


def parse_spec(line: str) -> TensorSpec:
    """An `input`/`output` line of the caller: name, dtype, comma-separated axes where a
    dynamic axis is `?` followed by its symbolic name (if any)."""
    _, name, dtype, axes = (line.split("\t") + [""])[:4]
    shape: list[Dim] = []
    for axis in axes.split(",") if axes else []:
        if axis.startswith("?"):
            shape.append(axis[1:] or None)
        else:
            shape.append(int(axis))
    return TensorSpec(name, dtype, tuple(shape))


class CallerProcess:
    """One compiled caller with one model loaded; `run` and `bench` talk to it."""

    def __init__(self, argv: list[str]) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="wb-compiled-"))
        self._stderr = (self.folder / "stderr.txt").open("w+")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True
        )
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []
        self._n = 0
        while True:
            line = self._line()
            if line == "ready":
                break
            if line.startswith("input\t"):
                self.inputs.append(parse_spec(line))
            elif line.startswith("output\t"):
                self.outputs.append(parse_spec(line))
            else:
                self.close()
                raise UserError(f"the compiled caller could not load the model: {_reason(line)}")

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self._stderr.seek(0)
            tail = self._stderr.read().strip().splitlines()[-3:]
            code = self.proc.poll()
            raise RuntimeError(
                f"the compiled caller exited (code {code}): {' | '.join(tail) or 'no message'}"
            )
        return line.rstrip("\n")

    def _ask(self, *fields: str) -> list[str]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\t".join(fields) + "\n")
        self.proc.stdin.flush()
        reply = self._line().split("\t")
        if reply[0] != "ok":
            raise RuntimeError(f"the compiled caller refused {fields[0]}: {_reason(reply)}")
        return reply[1:]

    def new_path(self, stem: str) -> Path:
        self._n += 1
        return self.folder / f"{stem}-{self._n}.wbt"

    def write_feed(self, tensors: Sequence[tuple[str, np.ndarray]]) -> Path:
        """The feed written to a new file (done before timing, like `prepare`)."""
        path = self.new_path("feed")
        write_tensors(path, tensors)
        return path

    def run(self, feed_path: Path) -> list[np.ndarray]:
        """One call on a written feed; its outputs in output order."""
        out = self.new_path("out")
        self._ask("run", str(feed_path), str(out))
        arrays = [array for _, array in read_tensors(out)]
        out.unlink()
        return arrays

    def bench(self, pool: Sequence[Path], rule: Any) -> CallerMeasurement:
        """The caller's own timed loop over the pool, with `rule` (a harness StopRule)."""
        out = self.new_path("latencies")
        ns = [int(rule.warmup_time_s * 1e9), int(rule.min_time_s * 1e9), int(rule.max_time_s * 1e9)]
        fields = [
            "bench", str(out), str(rule.warmup_iters), str(ns[0]), str(rule.min_iters),
            str(ns[1]), str(ns[2]), str(rule.max_iters), *[str(p) for p in pool],
        ]  # fmt: skip
        n_warm, warmup_ns, duration_ns, stopped_by, peak = self._ask(*fields)
        latencies = np.fromfile(out, dtype="<i8").astype(np.int64)
        out.unlink()
        return CallerMeasurement(
            latencies,
            int(n_warm),
            int(warmup_ns) / 1e9,
            int(duration_ns) / 1e9,
            stopped_by,
            peak_rss_bytes=int(peak) or None,
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
        for path in self.folder.iterdir():
            path.unlink()
        self.folder.rmdir()


def _reason(reply: str | list[str]) -> str:
    fields = reply if isinstance(reply, list) else reply.split("\t")
    return " ".join(fields[1:]) if fields and fields[0] == "error" else "\t".join(fields)
