"""Regenerate the gRPC stubs from open_inference_grpc.proto with grpcio-tools.

The stubs are committed (so a clean clone serves without a build step); this module
writes them, and `generated_sources()` lets a test compare the committed files with a
fresh generation (same grpcio-tools, same protobuf gencode version).
"""

from __future__ import annotations

import subprocess
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
    """Generate into a temporary folder; {stub file name: text}.

    protoc runs in its own process: called in-process it segfaulted inside a test session
    that had already loaded other native protobuf users (TensorFlow, ONNX)."""
    with tempfile.TemporaryDirectory() as tmp:
        rel = PROTO.relative_to(ROOT)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{ROOT}",
                f"--python_out={tmp}",
                f"--pyi_out={tmp}",
                f"--grpc_python_out={tmp}",
                str(rel),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"protoc failed with code {proc.returncode} on {PROTO}: {proc.stderr.strip()}"
            )
        out = Path(tmp) / rel.parent
        return {name: (out / name).read_text() for name in STUBS}


def main() -> int:
    for name, text in generated_sources().items():
        (HERE / name).write_text(text)
        print(f"wrote {HERE / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
