"""Probe a user's model in a worker process: build it, run it on the sample (and on
variants of it for the dynamic axes), and report the inferred spec as JSON.

The user's code runs here, not in the CLI: a factory that raises, crashes or hangs
becomes a one-line error naming what happened (`run_probe`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import UserError
from workbench.procs import die_with_parent, worker_env
from workbench.usermodel.infer import infer
from workbench.usermodel.loaded import load
from workbench.usermodel.source import (
    FUSABLE_MODEL_TYPES,
    Source,
    hf_config,
    hf_preprocessor,
    hf_task_of,
)

PROBE_TIMEOUT_S = 300.0
DEFAULT_TEXTS = (
    "The workbench measures every format of this model.",
    "A short one.",
    "Latency, throughput and accuracy are measured, never guessed, on this host.",
    "Quantization may cost accuracy; parity checks say how much.",
)


def read_sample(path: str) -> dict[str, np.ndarray]:
    """The arrays of a .npz sample (read without pickle)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise UserError(f"sample {path!r} is one array: save a .npz with np.savez")
            return {k: archive[k] for k in archive.files}
    except FileNotFoundError:
        raise UserError(f"sample {path!r}: no such file") from None
    except (ValueError, OSError) as exc:
        raise UserError(f"sample {path!r} is not a readable .npz ({exc})") from None


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def image_files(items: list[str]) -> list[Path]:
    """The image files `items` name: files as given, folders' images in name order."""
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"--images {item!r}: no such file or folder")
    if not files:
        raise UserError(
            f"--images {' '.join(items)}: no image files there ({', '.join(IMAGE_SUFFIXES)})"
        )
    return files


def hf_sample(
    source: Source,
    texts: list[str] | None,
    accepted: list[str],
    images: list[str] | None = None,
) -> dict[str, Any]:
    """The HF directory's own preprocessing of `texts` (padded to the longest), or of
    `images` for an image classifier."""
    config = hf_config(Path(source.target))
    task = hf_task_of(config, source.hf_task)
    processor = hf_preprocessor(Path(source.target), task)
    if task == "image-classification":
        if not images:
            raise UserError(
                "an image model needs a sample: give image files with --images (its image "
                "processor prepares them), or a batch of pixel_values saved with np.savez "
                "with --sample"
            )
        # lazy: PIL (a transformers image-processing dependency)
        from PIL import Image, UnidentifiedImageError

        pictures = []
        for path in image_files(images):
            try:
                with Image.open(path) as picture:
                    pictures.append(picture.convert("RGB"))
            except (UnidentifiedImageError, OSError) as exc:
                raise UserError(f"--images {str(path)!r} is not a readable image ({exc})") from None
        encoded = processor(images=pictures, return_tensors="np")
    else:
        if images:
            raise UserError(f"--images goes with an image classifier; this directory is {task}")
        encoded = processor(list(texts or DEFAULT_TEXTS), padding=True, return_tensors="np")
    return {k: np.asarray(v) for k, v in encoded.items() if k in accepted}


def probe(job: dict[str, Any]) -> dict[str, Any]:
    source = Source.from_json(job["source"])
    hf: dict[str, Any] = {}
    if source.kind == "hf":
        config = hf_config(Path(source.target))
        task = hf_task_of(config, source.hf_task)
        hf_preprocessor(Path(source.target), task)  # missing tokenizer: say so first
        hf = {"task": task, "model_type": config.get("model_type")}
        fusable = FUSABLE_MODEL_TYPES.get(str(config.get("model_type")))
        if fusable:
            hf["optimizer_model_type"] = fusable
    loaded = load(source)
    if job.get("sample"):
        sample = read_sample(job["sample"])
    elif source.kind == "hf":
        sample = hf_sample(source, job.get("texts"), loaded.accepted or [], job.get("images"))
        loaded.input_names = list(sample)
    elif loaded.framework == "savedmodel":
        wanted = ", ".join(
            f"{name}: {dtype} {shape}"
            for name, (dtype, shape) in loaded.raw.signature_inputs.items()
        )
        raise UserError(
            f"give one real batch of the SavedModel's inputs with --sample batch.npz: its "
            f"signature {loaded.raw.signature_key!r} takes {wanted} (None: any size)"
        )
    else:
        raise UserError(
            "give one real batch of the model's inputs with --sample batch.npz "
            "(np.savez(path, NAME=array, ...) with the names forward takes)"
        )
    overrides = {k: (v[0], v[1]) for k, v in (job.get("overrides") or {}).items()}
    inferred = infer(loaded, sample, overrides)
    if job.get("sample_out") and not job.get("sample"):
        np.savez(job["sample_out"], **{i["name"]: sample[i["name"]] for i in inferred.inputs})
    return {
        "framework": loaded.framework,
        "inputs": inferred.inputs,
        "outputs": inferred.outputs,
        "dims": inferred.dims,
        "notes": inferred.notes,
        "hf": hf,
    }


def run_probe(job: dict[str, Any], timeout_s: float = PROBE_TIMEOUT_S) -> dict[str, Any]:
    """Probe in a worker process; a UserError for bad input, a crash or a hang."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "workbench.usermodel.probe"],
            input=json.dumps(job),
            text=True,
            capture_output=True,
            timeout=timeout_s,
            env=worker_env(TF_CPP_MIN_LOG_LEVEL="3"),
        )
    except subprocess.TimeoutExpired:
        raise UserError(
            f"the model did not load and run on the sample within {timeout_s:.0f} s "
            "(the factory hangs?): check it builds quickly on its own"
        ) from None
    for line in proc.stdout.splitlines():
        if line.startswith("USER_ERROR "):
            raise UserError(line[len("USER_ERROR ") :])
        if line.startswith("PROBE "):
            return json.loads(line[len("PROBE ") :])
    died = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
    tail = " | ".join([ln.strip() for ln in proc.stderr.splitlines() if ln.strip()][-2:])
    raise UserError(f"loading the model failed ({died}): {tail or 'no message'}")


def main() -> int:
    die_with_parent()
    job = json.loads(sys.stdin.read())
    try:
        result = probe(job)
    except UserError as exc:
        print("USER_ERROR " + str(exc), flush=True)
        return 0
    except Exception as exc:  # noqa: BLE001 - the user's code raised: say what it said
        message = " ".join(str(exc).split())[:400] or type(exc).__name__
        print(f"USER_ERROR building or running the model raised {type(exc).__name__}: {message}")
        return 0
    print("PROBE " + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
