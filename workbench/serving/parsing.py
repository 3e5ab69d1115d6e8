"""Parsing a v2 infer request body into tensors, off the server's event loop.

A body with binary tensors parses in microseconds (the tensors are views of the body);
a JSON tensor does not: `json.loads` of a 224 x 224 image (3 MB) holds the GIL for tens
of milliseconds and the list -> array conversion more, so on a thread it still stalls the
event loop (health, metadata and metrics wait behind it). Large JSON bodies therefore
parse in worker processes (`--parse-workers`, spawned on first use); the rest, and
everything when the count is 0, on the thread pool.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor

from workbench.procs import die_with_parent
from workbench.serving.errors import BadRequest
from workbench.serving.tensors import check_shape, from_json_data, from_raw, numpy_dtype

HEADER_LENGTH = "inference-header-content-length"
PROCESS_MIN_BYTES = 256 * 1024  # smaller JSON bodies parse faster than a process hop


class Parser:
    """Where request bodies parse: a process pool for large JSON, else threads.

    It also says how long a body would wait for a parse worker (`wait_s`): under overload
    of large JSON bodies the pool is the bottleneck, and a body whose wait outlasts its
    deadline would be parsed, then answered 504, having cost a parse that a body with time
    left needed. Measured at 2.5x the JSON peak (`benchmarks/serving_overload.py`), that
    collapse served 1.3 requests/s of a 15.6/s peak (26 answered 200, 610 answered 504);
    the front now answers such a body 429 before it queues (`http_app`)."""

    SMOOTHING = 0.2  # weight of the newest parse in the moving average of parse times

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._queued = 0  # process-path bodies submitted and not yet parsed
        # Moving average of the pool's time per body: a call's whole round trip (its wait,
        # the copies to and from the worker, the parse, on a core the server shares)
        # divided by the bodies it waited behind plus itself. The worker's own parse time
        # alone undercounted: at 2.5x the JSON peak 279 of 280 504s ran out while parsing.
        self._parse_s: float | None = None

    def wait_s(self, body: bytes, header_length: str | None) -> float:
        """Expected seconds until this body is parsed (0 on the thread path, or before any
        parse in a worker was measured)."""
        if not self._uses_process(body, header_length) or self._parse_s is None:
            return 0.0
        return (self._queued // self.workers + 1) * self._parse_s

    def _uses_process(self, body: bytes, header_length: str | None) -> bool:
        return self.workers > 0 and header_length is None and len(body) >= PROCESS_MIN_BYTES

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawn: the server has threads (gRPC, batchers) that fork would not copy
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(
                    self.workers,
                    mp_context=context,
                    initializer=_worker_init,
                    initargs=(os.getpid(),),
                )
            return self._pool

    async def parse(self, body: bytes, header_length: str | None) -> tuple[dict, dict, set[str]]:
        # lazy: starlette (the HTTP stack)
        from starlette.concurrency import run_in_threadpool

        if self._uses_process(body, header_length):
            loop = asyncio.get_running_loop()
            turns = self._queued // self.workers + 1  # its place in the pool's queue
            self._queued += 1
            began = time.perf_counter()
            try:
                parsed = await loop.run_in_executor(self._executor(), parse_lean, body)
            finally:
                self._queued -= 1
            seconds = (time.perf_counter() - began) / turns
            last = self._parse_s
            self._parse_s = seconds if last is None else last + self.SMOOTHING * (seconds - last)
            return parsed
        return await run_in_threadpool(parse_infer, body, header_length)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _worker_init(parent_pid: int) -> None:
    """A parse worker stops with the server: Ctrl-C in a terminal reaches the whole
    process group, but the server shuts its pool down itself; and if the server is
    killed outright, the kernel ends the worker too."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)


def parse_lean(body: bytes) -> tuple[dict, dict, set[str]]:
    """parse_infer in a worker process, without the inputs' JSON data in the payload that
    travels back (the feed has it as arrays)."""
    payload, feed, binary_out = parse_infer(body, None)
    for tensor in payload.get("inputs", []):
        tensor.pop("data", None)
    return payload, feed, binary_out


def parse_infer(body: bytes, header_length: str | None) -> tuple[dict, dict, set[str]]:
    """A v2 infer request body -> (JSON payload, feed, names of outputs wanted binary)."""
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise BadRequest(
                f"{HEADER_LENGTH} {header_length!r} is not a length within the body "
                f"({len(body)} bytes)"
            )
        split = int(header_length)
        head, blobs = body[:split], body[split:]
    else:
        head, blobs = body, b""
    try:
        payload = json.loads(head)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        raise BadRequest("an infer request is a JSON object with an 'inputs' list")
    if not payload["inputs"]:
        raise BadRequest("'inputs' is empty: send at least one input tensor")
    feed, at = {}, 0
    for tensor in payload["inputs"]:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise BadRequest("each input is an object with a 'name', 'shape', 'datatype'")
        name = tensor["name"]
        if name in feed:
            raise BadRequest(f"input {name!r} is given twice")
        dtype = numpy_dtype(tensor.get("datatype"), name)
        shape = check_shape(tensor.get("shape"), name)
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or at + size > len(blobs):
                raise BadRequest(
                    f"input {name!r}: binary_data_size {size!r} runs past the body's "
                    f"{len(blobs)} binary bytes"
                )
            feed[name] = from_raw(blobs[at : at + size], shape, dtype, name)
            at += size
        else:
            feed[name] = from_json_data(tensor.get("data"), shape, dtype, name)
    if at != len(blobs):
        raise BadRequest(f"{len(blobs) - at} binary bytes after the last input's data")
    binary_out = _binary_outputs(payload)
    return payload, feed, binary_out


def _binary_outputs(payload: dict) -> set[str]:
    """Outputs the client asked for as binary ('*' = all, by the request's parameter)."""
    wanted: set[str] = set()
    params = payload.get("parameters") or {}
    if isinstance(params, dict) and params.get("binary_data_output"):
        wanted.add("*")
    for out in payload.get("outputs") or []:
        if isinstance(out, dict) and (out.get("parameters") or {}).get("binary_data"):
            wanted.add(str(out.get("name")))
    return wanted
