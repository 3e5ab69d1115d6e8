"""The server's clients as scenario models: each `run_batch` sends one request over
HTTP (binary tensors, as tritonclient does) or gRPC (raw contents), so LoadGen and the
scenario driver (workbench.scenarios) drive a server exactly as they drive a local model.

Two ways to send: `run_batches` block (one client connection per instance, for
one-at-a-time timings and the offline scenario), and `submit_async` sends a sample's
pre-encoded request without waiting (aiohttp on its own event-loop thread, gRPC futures),
which LoadGen's server scenario uses so that the client never queues by itself."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from typing import Any

import numpy as np

from workbench.scenarios.driver import ServedModel
from workbench.scenarios.inflight import Done
from workbench.serving.proto import open_inference_grpc_pb2 as pb
from workbench.serving.tensors import v2_datatype

Feed = dict[str, np.ndarray]


# Connections the asynchronous HTTP client may open: HTTP/1.1 carries one request at a time
# per connection, so this bounds its requests on the wire (more wait for a connection, and
# LoadGen counts that wait); far above what a bounded-latency run keeps in flight.
MAX_HTTP_CONNECTIONS = 256


def http_model(url: str, model: str, samples: list[Feed], instances: int = 1) -> ServedModel:
    """KServe v2 REST with the binary-data extension, keep-alive, TCP_NODELAY; `instances`
    blocking clients, and one asynchronous client."""
    # lazy: httpx
    import httpx

    clients = [
        httpx.Client(
            base_url=url,
            timeout=30,
            transport=httpx.HTTPTransport(
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
            ),
        )
        for _ in range(instances)
    ]
    path = f"/v2/models/{model}/infer"

    def runner(client: Any):
        def run(feed: Feed) -> list[np.ndarray]:
            body, headers = _binary_request(feed)
            reply = client.post(path, content=body, headers=headers)
            if reply.status_code != 200:
                raise RuntimeError(f"HTTP {reply.status_code}: {reply.text[:200]}")
            return _binary_outputs(reply)

        return run

    sender = _AsyncHttp(url + path, [_binary_request(f) for f in samples], MAX_HTTP_CONNECTIONS)
    return ServedModel(
        run_batches=[runner(c) for c in clients],
        samples=samples,
        labels={"front": "http"},
        closers=[c.close for c in clients] + [sender.close],
        submit_async=sender.submit,
    )


def _binary_request(feed: Feed) -> tuple[bytes, dict[str, str]]:
    """A KServe v2 binary-data request body and its header-length header."""
    arrays = [np.ascontiguousarray(v) for v in feed.values()]
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": name,
                    "shape": list(a.shape),
                    "datatype": v2_datatype(a.dtype),
                    "parameters": {"binary_data_size": a.nbytes},
                }
                for name, a in zip(feed, arrays, strict=True)
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    body = b"".join([head, *(a.tobytes() for a in arrays)])
    return body, {"Inference-Header-Content-Length": str(len(head))}


class _AsyncHttp:
    """aiohttp on a daemon event-loop thread: `submit` schedules a POST from any thread
    and returns at once; at most `connections` requests are on the wire, the rest wait
    for a connection as in any pooled client."""

    def __init__(self, url: str, requests: list[tuple[bytes, dict[str, str]]], connections: int):
        # lazy: aiohttp
        import aiohttp

        self._url, self._requests = url, requests
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="http-client", daemon=True
        )
        self._thread.start()

        async def open_session() -> Any:
            return aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=connections),
                timeout=aiohttp.ClientTimeout(total=30),
            )

        self._session = asyncio.run_coroutine_threadsafe(open_session(), self._loop).result()

    async def _post(self, index: int) -> None:
        body, headers = self._requests[index]
        async with self._session.post(self._url, data=body, headers=headers) as reply:
            content = await reply.read()
            if reply.status != 200:
                raise RuntimeError(f"HTTP {reply.status}: {content[:200]!r}")

    def submit(self, index: int, done: Done) -> None:
        future = asyncio.run_coroutine_threadsafe(self._post(index), self._loop)
        future.add_done_callback(
            lambda f: done(f.exception() if not f.cancelled() else RuntimeError("cancelled"))
        )

    def close(self) -> None:
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._session.close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


def _binary_outputs(reply: Any) -> list[np.ndarray]:
    split = int(reply.headers.get("inference-header-content-length", len(reply.content)))
    meta = json.loads(reply.content[:split])
    outputs, at = [], split
    for out in meta.get("outputs", []):
        size = (out.get("parameters") or {}).get("binary_data_size")
        if size is None:
            outputs.append(np.asarray(out["data"]))
            continue
        dtype = {"FP32": np.float32, "FP16": np.float16, "INT64": np.int64}.get(
            out["datatype"], np.float32
        )
        outputs.append(np.frombuffer(reply.content[at : at + size], dtype).reshape(out["shape"]))
        at += size
    return outputs


def grpc_model(target: str, model: str, samples: list[Feed], instances: int = 1) -> ServedModel:
    """KServe v2 gRPC ModelInfer with raw input contents: one channel per blocking
    instance, and one for the asynchronous sends."""
    # lazy: grpc (via workbench.serving.proto.open_inference_grpc_pb2_grpc)
    import grpc

    from workbench.serving.proto import open_inference_grpc_pb2_grpc as pb_grpc

    channels = [grpc.insecure_channel(target) for _ in range(instances)]

    def runner(channel: Any):
        stub = pb_grpc.GRPCInferenceServiceStub(channel)

        def run(feed: Feed) -> list[np.ndarray]:
            reply = stub.ModelInfer(_infer_request(model, feed), timeout=30)
            return [
                np.frombuffer(raw, np.float32).reshape(list(out.shape))
                if out.datatype == "FP32"
                else np.frombuffer(raw, np.uint8)
                for out, raw in zip(reply.outputs, reply.raw_output_contents, strict=True)
            ]

        return run

    # One more channel for the asynchronous sends: HTTP/2 carries them all at once.
    async_channel = grpc.insecure_channel(target)
    async_infer = pb_grpc.GRPCInferenceServiceStub(async_channel).ModelInfer
    requests = [_infer_request(model, f) for f in samples]

    def submit(index: int, done: Done) -> None:
        future = async_infer.future(requests[index], timeout=30)
        future.add_done_callback(
            lambda f: done(f.exception() if not f.cancelled() else RuntimeError("cancelled"))
        )

    return ServedModel(
        run_batches=[runner(c) for c in channels],
        samples=samples,
        labels={"front": "grpc"},
        closers=[c.close for c in channels] + [async_channel.close],
        submit_async=submit,
    )


def _infer_request(model: str, feed: Feed) -> Any:
    """A ModelInferRequest with raw input contents."""
    request = pb.ModelInferRequest(model_name=model)
    for name, value in feed.items():
        a = np.ascontiguousarray(value)
        request.inputs.add(name=name, datatype=v2_datatype(a.dtype), shape=a.shape)
        request.raw_input_contents.append(a.tobytes())
    return request


def in_process_model(
    service: Any, model: str, samples: list[Feed], instances: int = 1
) -> ServedModel:
    """The same service called directly (registry + batcher, no front)."""

    def run(feed: Feed) -> list[np.ndarray]:
        return service.infer_sync(model, feed, protocol="inproc").outputs

    return ServedModel(
        run_batches=[run] * instances, samples=samples, labels={"front": "in-process"}
    )


def noop_model(samples: list[Feed], instances: int = 1) -> ServedModel:
    """Returns at once: what LoadGen and the scenario driver cost by themselves."""

    def run(feed: Feed) -> list[np.ndarray]:
        return []

    return ServedModel(run_batches=[run] * instances, samples=samples, labels={"front": "driver"})
