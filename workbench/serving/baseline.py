"""Trivial servers for the client-cost baseline: a raw asyncio HTTP/1.1 server and a
generic gRPC handler, each answering every request with one fixed, pre-encoded KServe v2
response. The same client timed against them costs what the client, the loopback and
a minimal server cost; the difference to the real fronts is what the fronts add.

    python -m workbench.serving.baseline   # prints {"http_port": ..., "grpc_port": ...}
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from concurrent import futures

import grpc

from workbench.serving.proto import open_inference_grpc_pb2 as pb

HTTP_BODY = json.dumps({"model_name": "null", "model_version": "1", "outputs": []}).encode()
HTTP_REPLY = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(HTTP_BODY)).encode()
    + b"\r\n\r\n"
    + HTTP_BODY
)
GRPC_REPLY = pb.ModelInferResponse(model_name="null", model_version="1").SerializeToString()


class FixedReply(asyncio.Protocol):
    """Reads whole requests (headers + content-length body), answers the fixed reply."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                key, _, value = line.partition(b":")
                if key.strip().lower() == b"content-length":
                    length = int(value.strip())
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(HTTP_REPLY)


def start_grpc_baseline(host: str = "127.0.0.1") -> tuple[grpc.Server, int]:
    handler = grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService",
        {"ModelInfer": grpc.unary_unary_rpc_method_handler(lambda request, context: GRPC_REPLY)},
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"{host}:0")
    server.start()
    return server, port


async def _main(host: str) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FixedReply, host, 0)
    grpc_server, grpc_port = start_grpc_baseline(host)
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"http_port": port, "grpc_port": grpc_port}), flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()
    grpc_server.stop(0)


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"))
