"""Regenerate the gRPC stubs from open_inference_grpc.proto with grpcio-tools.

The stubs are committed (so a clean clone serves without a build step); this module
writes them, and `generated_sources()` lets a test compare the committed files with a
fresh generation (same grpcio-tools, same protobuf gencode version).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
PROTO = HERE / "open_inference_grpc.proto"
STUBS = (
    "open_inference_grpc_pb2.py",
    "open_inference_grpc_pb2.pyi",
    "open_inference_grpc_pb2_grpc.py",
)


def generated_sources() -> dict[str, str]:
    """Generate into a temporary folder; {stub file name: text}."""
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        rel = PROTO.relative_to(ROOT)
        code = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{ROOT}",
                f"--python_out={tmp}",
                f"--pyi_out={tmp}",
                f"--grpc_python_out={tmp}",
                str(rel),
            ]
        )
        if code != 0:
            raise RuntimeError(f"protoc failed with code {code} on {PROTO}")
        out = Path(tmp) / rel.parent
        return {name: (out / name).read_text() for name in STUBS}


def main() -> int:
    for name, text in generated_sources().items():
        (HERE / name).write_text(text)
        print(f"wrote {HERE / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
