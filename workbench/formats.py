"""Artifact formats: which runtime runs each, and recognising a user's model file.

Recognition checks the file's own bytes where the format has a signature (zip
for TorchScript/.pt2, the TFL3 identifier for TFLite, a protobuf that ONNX can
parse), so a renamed or truncated file gets a clear error before any runtime
is involved.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from workbench.errors import UserError

PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8-static")
# onnx-fused: ONNX rewritten by ORT's transformer optimizer (com.microsoft fused ops)
FORMATS = ("onnx", "torchscript", "pt2", "tflite", "savedmodel", "eager", "keras", "onnx-fused")
DEFAULT_RUNTIME = {
    "onnx": "onnxruntime",
    "onnx-fused": "onnxruntime",
    "torchscript": "torch",
    "pt2": "torch",
    "eager": "torch",
    "tflite": "litert",
    "savedmodel": "tensorflow",
    "keras": "tensorflow",
}
SOURCE_FRAMEWORK_OF_NATIVE = {"eager": "torch", "keras": "keras"}
_SUFFIX_FORMAT = {
    ".onnx": "onnx",
    ".tflite": "tflite",
    ".pt": "torchscript",
    ".pth": "torchscript",
    ".pt2": "pt2",
}


def detect_format(path: Path) -> str:
    """The format of the model at `path`; a UserError saying what is wrong otherwise."""
    if not path.exists():
        raise UserError(f"model file {str(path)!r} does not exist: check the path")
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "savedmodel"
        raise UserError(
            f"{str(path)!r} is a directory without saved_model.pb: pass a SavedModel directory "
            "or a .onnx, .tflite, .pt (TorchScript) or .pt2 file"
        )
    fmt = _SUFFIX_FORMAT.get(path.suffix.lower())
    if fmt is None:
        raise UserError(
            f"cannot tell the format of {str(path)!r} from its suffix: use .onnx, .tflite, "
            ".pt (TorchScript), .pt2 (ExportedProgram) or a SavedModel directory"
        )
    if path.stat().st_size == 0:
        raise UserError(f"model file {str(path)!r} is empty: re-export or re-download it")
    _check_bytes(path, fmt)
    return fmt


def _check_bytes(path: Path, fmt: str) -> None:
    head = path.read_bytes()[:8] if path.stat().st_size < 64 else _read_head(path)
    if fmt == "tflite" and head[4:8] != b"TFL3":
        raise UserError(
            f"{str(path)!r} is not a TFLite flatbuffer (no TFL3 identifier): check the file"
        )
    if fmt in ("torchscript", "pt2"):
        if not zipfile.is_zipfile(path):
            raise UserError(
                f"{str(path)!r} is not a complete {fmt} archive (not a readable zip; truncated?): "
                "re-export it with torch.jit.save / torch.export.save"
            )
    if fmt == "onnx":
        import onnx

        try:
            proto = onnx.load_model(str(path), load_external_data=False)
            if not proto.graph.node and not proto.graph.output:
                raise ValueError("no graph in the file")
        except Exception as exc:  # noqa: BLE001 - any parse failure means a bad file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(
                f"{str(path)!r} is not a valid ONNX model ({first}): the file may be truncated "
                "or not ONNX; re-export it"
            ) from None


def _read_head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(8)


def runtime_for(fmt: str) -> str:
    """The runtime that runs `fmt`: the built-in default, else the first registered runtime
    (a plugin's, say) that lists the format."""
    if fmt in DEFAULT_RUNTIME:
        return DEFAULT_RUNTIME[fmt]
    from workbench.registry import RUNTIMES

    for name, cls in RUNTIMES.all().items():
        if fmt in cls.formats:
            return name
    raise UserError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
