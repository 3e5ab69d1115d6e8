"""The server's clients as scenario models: each `run_batch` sends one request over
HTTP (binary tensors, as tritonclient does) or gRPC (raw contents), so LoadGen and the
scenario driver (workbench.scenarios) drive a server exactly as they drive a local model.
One client connection per instance (scenario worker thread)."""

from __future__ import annotations

import json
import socket
from typing import Any

import numpy as np

from workbench.scenarios.driver import ServedModel
from workbench.serving.proto import open_inference_grpc_pb2 as pb
from workbench.serving.tensors import v2_datatype

Feed = dict[str, np.ndarray]


def http_model(url: str, model: str, samples: list[Feed], instances: int = 1) -> ServedModel:
    """KServe v2 REST with the binary-data extension, keep-alive, TCP_NODELAY."""
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
            reply = client.post(
                path,
                content=b"".join([head, *(a.tobytes() for a in arrays)]),
                headers={"Inference-Header-Content-Length": str(len(head))},
            )
            if reply.status_code != 200:
                raise RuntimeError(f"HTTP {reply.status_code}: {reply.text[:200]}")
            return _binary_outputs(reply)

        return run

    return ServedModel(
        run_batches=[runner(c) for c in clients],
        samples=samples,
        labels={"front": "http"},
        closers=[c.close for c in clients],
    )


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
    """KServe v2 gRPC ModelInfer with raw input contents, one channel per instance."""
    # lazy: grpc (via workbench.serving.proto.open_inference_grpc_pb2_grpc)
    import grpc

    from workbench.serving.proto import open_inference_grpc_pb2_grpc as pb_grpc

    channels = [grpc.insecure_channel(target) for _ in range(instances)]

    def runner(channel: Any):
        stub = pb_grpc.GRPCInferenceServiceStub(channel)

        def run(feed: Feed) -> list[np.ndarray]:
            request = pb.ModelInferRequest(model_name=model)
            for name, value in feed.items():
                a = np.ascontiguousarray(value)
                request.inputs.add(name=name, datatype=v2_datatype(a.dtype), shape=a.shape)
                request.raw_input_contents.append(a.tobytes())
            reply = stub.ModelInfer(request, timeout=30)
            return [
                np.frombuffer(raw, np.float32).reshape(list(out.shape))
                if out.datatype == "FP32"
                else np.frombuffer(raw, np.uint8)
                for out, raw in zip(reply.outputs, reply.raw_output_contents, strict=True)
            ]

        return run

    return ServedModel(
        run_batches=[runner(c) for c in channels],
        samples=samples,
        labels={"front": "grpc"},
        closers=[c.close for c in channels],
    )


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
