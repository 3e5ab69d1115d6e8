"""The compiled KServe v2 HTTP front (`workbench serve --front compiled`).

A C++ server over ONNX Runtime's C API (workbench/runtimes/compiled/src/ort_server.cpp)
serving one ONNX file: health, metadata and infer with JSON tensors or the binary tensor
extension, no batcher, no gRPC, loopback only. It stands beside the Python front so the
same clients (tritonclient, LoadGen's server scenario) measure what Python costs a server.
"""

from __future__ import annotations

from pathlib import Path

from workbench.errors import UserError
from workbench.runtimes.compiled.build import binary

LOOPBACK = "127.0.0.1"


def server_argv(
    path: str | Path,
    name: str = "m",
    port: int = 0,
    threads: int | None = None,
    inter_op_threads: int | None = None,
    max_body_mb: float = 16.0,
) -> list[str]:
    """The command line of a compiled server for the ONNX file `path` (built on first use;
    UnavailableError when this host cannot build it). It prints one JSON line
    {"http_port": N, "pid": P, "front": "compiled"} once listening."""
    path = Path(path)
    if path.suffix != ".onnx" or not path.is_file():
        raise UserError(f"the compiled front serves one .onnx file; {path} is not one")
    if max_body_mb <= 0:
        raise UserError(f"--max-body-mb must be > 0, got {max_body_mb}")
    return [
        str(binary("ort_server")), str(path), name, str(port), str(threads or 0),
        str(inter_op_threads or 0), str(max_body_mb),
    ]  # fmt: skip
