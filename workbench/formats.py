"""Artifact formats: which runtime runs each, and recognising a user's model file.

Recognition reads the file's own bytes (the TFL3 identifier for TFLite, the zip
layout for TorchScript and .pt2, a protobuf that ONNX can parse, saved_model.pb
for a SavedModel directory); the suffix is only a hint for the error message, so a
TorchScript file named .jit or .torchscript works and a renamed or truncated file
gets a clear error before any runtime is involved.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from workbench.errors import UserError
from workbench.registry import RUNTIMES

PRECISIONS = ("fp32", "fp16", "bf16", "int8-dynamic", "int8-static")
# onnx-fused: ONNX rewritten by ORT's transformer optimizer (com.microsoft fused ops)
# openvino: an OpenVINO IR (model.xml + model.bin)
FORMATS = (
    "onnx",
    "torchscript",
    "pt2",
    "tflite",
    "savedmodel",
    "eager",
    "keras",
    "onnx-fused",
    "openvino",
    "inductor",
)
DEFAULT_RUNTIME = {
    "onnx": "onnxruntime",
    "onnx-fused": "onnxruntime",
    "torchscript": "torch",
    "pt2": "torch",
    "eager": "torch",
    "inductor": "torch",
    "tflite": "litert",
    "savedmodel": "tensorflow",
    "keras": "tensorflow",
    "openvino": "openvino",
}
# inductor: the eager PyTorch model under torch.compile (TorchInductor), a native format
SOURCE_FRAMEWORK_OF_NATIVE = {"eager": "torch", "inductor": "torch", "keras": "keras"}
_SUFFIX_HINT = {
    ".onnx": "onnx",
    ".tflite": "tflite",
    ".pt": "torchscript",
    ".pth": "torchscript",
    ".jit": "torchscript",
    ".torchscript": "torchscript",
    ".ts": "torchscript",
    ".pt2": "pt2",
    ".xml": "openvino",
}
# Sizes above which a file is refused before parsing (2 GiB: ONNX's protobuf limit).
MAX_ONNX_BYTES = 2 << 30


def detect_format(path: Path) -> str:
    """The format of the model at `path`, told by its content (the suffix is only a
    hint, used in the error when the content matches nothing); a UserError saying what
    is wrong otherwise."""
    if not path.exists():
        raise UserError(f"model file {str(path)!r} does not exist: check the path")
    if path.is_dir():
        return _check_savedmodel(path)
    if not path.is_file():
        raise UserError(f"{str(path)!r} is not a regular file: pass a model file")
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"model file {str(path)!r} is empty: re-export or re-download it")
    head = _read_head(path)
    if head[4:8] == b"TFL3":
        return "tflite"
    if zipfile.is_zipfile(path):
        return _zip_format(path)
    hint = _SUFFIX_HINT.get(path.suffix.lower())
    if hint == "openvino":
        return _check_openvino_ir(path)
    if hint in ("torchscript", "pt2") or head[:2] == b"PK":
        raise UserError(
            f"{str(path)!r} is not a complete {hint or 'torch'} archive (not a readable zip; "
            "truncated?): re-export it with torch.jit.save / torch.export.save"
        )
    if hint == "tflite":
        raise UserError(
            f"{str(path)!r} is not a TFLite flatbuffer (no TFL3 identifier): check the file"
        )
    if hint == "onnx" or size <= MAX_ONNX_BYTES:
        error = _onnx_error(path)
        if error is None:
            return "onnx"
        if hint == "onnx":
            raise UserError(
                f"{str(path)!r} is not a valid ONNX model ({error}): the file may be truncated "
                "or not ONNX; re-export it"
            )
    raise UserError(
        f"cannot tell the format of {str(path)!r} from its content: it is not ONNX, TFLite "
        "(TFL3 identifier), a TorchScript/.pt2 zip archive, an OpenVINO IR (.xml), or a "
        "SavedModel directory"
    )


def _check_savedmodel(path: Path) -> str:
    pb = path / "saved_model.pb"
    if not pb.is_file():
        raise UserError(
            f"{str(path)!r} is a directory without saved_model.pb: pass a SavedModel directory "
            "or a .onnx, .tflite, TorchScript or .pt2 file"
        )
    head = _read_head(pb)
    # A SavedModel proto starts with field 1 (schema version) or 2 (meta graphs).
    if not head or head[0] not in (0x08, 0x12):
        raise UserError(
            f"{str(pb)!r} is not a SavedModel protobuf (empty or corrupted): re-export it"
        )
    return "savedmodel"


def _check_openvino_ir(path: Path) -> str:
    """An OpenVINO IR: XML whose root is <net>, with its weights (.bin) beside it."""
    with path.open("rb") as fh:
        head = fh.read(512).lstrip()
    if head.startswith(b"<?xml"):
        head = head[head.find(b"?>") + 2 :].lstrip()
    if not head.startswith(b"<net"):
        raise UserError(
            f"{str(path)!r} is XML but not an OpenVINO IR (its root is not <net>): pass the "
            "IR's .xml file"
        )
    if not path.with_suffix(".bin").is_file():
        raise UserError(
            f"{str(path)!r} is an OpenVINO IR without its weights: put "
            f"{path.with_suffix('.bin').name} beside it"
        )
    return "openvino"


def _zip_format(path: Path) -> str:
    """TorchScript (code/ in the archive), an ExportedProgram (.pt2), or a refusal: a
    torch.save checkpoint holds pickled Python objects, which are never loaded."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except Exception as exc:  # noqa: BLE001 - zipfile raises many kinds on a bad archive
        # (BadZipFile, OSError, UnicodeDecodeError, NotImplementedError for a "zip file
        # version 8.4" header: the last found by fuzzing)
        raise UserError(
            f"{str(path)!r} is a damaged zip archive ({exc}): re-export the model"
        ) from None
    parts = {part for name in names for part in name.split("/")[1:2]}
    leaves = {name.split("/", 1)[-1] for name in names}
    if "code" in parts and "data.pkl" in leaves:
        return "torchscript"
    if "archive_format" in leaves or any(
        n.endswith("serialized_exported_program.json") for n in names
    ):
        return "pt2"
    if "data.pkl" in leaves:
        raise UserError(
            f"{str(path)!r} is a torch.save checkpoint (pickled weights or objects), not a "
            "TorchScript or .pt2 model; it is not loaded, since unpickling runs code: export "
            "the model with torch.jit.save or torch.export.save"
        )
    raise UserError(
        f"{str(path)!r} is a zip archive but not a TorchScript or .pt2 model: check the file"
    )


def _onnx_error(path: Path) -> str | None:
    """None when `path` parses as an ONNX model with a graph; else the reason."""
    # lazy: onnx
    import onnx

    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure means a bad file
        lines = str(exc).strip().splitlines()
        return lines[0] if lines else type(exc).__name__
    if not proto.graph.node and not proto.graph.output:
        return "no graph in the file"
    if not proto.opset_import and not proto.ir_version:
        return "no IR version or opset: not an ONNX model"
    return None


def _read_head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(8)


def runtime_for(fmt: str) -> str:
    """The runtime that runs `fmt`: the built-in default, else the first registered runtime
    (a plugin's, say) that lists the format."""
    if fmt in DEFAULT_RUNTIME:
        return DEFAULT_RUNTIME[fmt]

    for name, cls in RUNTIMES.all().items():
        if fmt in cls.formats:
            return name
    raise UserError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
