"""A served version's configuration in the shape of Triton's model configuration extension.

    GET /v2/models/{name}[/versions/{v}]/config   ->  a Triton ModelConfig as JSON

Triton's tools (perf_analyzer, Model Analyzer) read it before sending a request: the
batch cap (`max_batch_size`, from the version's batcher; the batch axis is then left out
of `dims`), each input's `data_type` and `dims` (-1: any size, given per request),
`dynamic_batching` (preferred sizes, the queue delay in microseconds), the instance
count and the version policy. Field names follow Triton's model_config.proto; the gRPC
front sends the same dict parsed into the ModelConfig message.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workbench.serving.tensors import metadata_shape, v2_datatype


def triton_datatype(dtype: Any) -> str:
    """TYPE_FP32 and friends (BYTES is Triton's TYPE_STRING)."""
    name = v2_datatype(np.dtype(dtype))
    return "TYPE_STRING" if name == "BYTES" else f"TYPE_{name}"


def model_config(entry: Any, versions: list[str]) -> dict[str, Any]:
    """The Triton ModelConfig of one loaded version (`entry`: a registry ModelVersion)."""
    batcher = entry.batcher.config
    labels = entry.served.labels
    device = str(labels.get("device") or "cpu")

    def tensors(specs: list[Any], is_input: bool) -> list[dict[str, Any]]:
        out = []
        for spec in specs:
            tensor: dict[str, Any] = {
                "name": spec.name,
                "data_type": triton_datatype(spec.dtype),
                "dims": metadata_shape(tuple(spec.shape)[1:]),
            }
            if is_input:
                tensor["format"] = "FORMAT_NONE"
            out.append(tensor)
        return out

    config: dict[str, Any] = {
        "name": entry.name,
        "platform": entry.platform,
        "backend": str(labels.get("runtime") or "unknown"),
        "version_policy": _version_policy(versions),
        "max_batch_size": batcher.max_batch_size,
        "input": tensors(entry.served.inputs, True),
        "output": tensors(entry.served.outputs, False),
        "instance_group": [
            {
                "name": entry.name,
                "kind": "KIND_GPU" if device.startswith("cuda") else "KIND_CPU",
                "count": len(entry.served.run_batches),
            }
        ],
        "parameters": {
            key: {"string_value": str(value)} for key, value in entry.parameters().items()
        },
    }
    if entry.batched:
        config["dynamic_batching"] = {
            "preferred_batch_size": list(batcher.preferred_batch_sizes),
            "max_queue_delay_microseconds": int(round(batcher.max_queue_delay_ms * 1000)),
            "preserve_ordering": False,
        }
    return config


def _version_policy(versions: list[str]) -> dict[str, Any]:
    """Triton's policy naming exactly the versions served (all of them, when a version is
    not an integer, which Triton's `specific` policy cannot name)."""
    if versions and all(v.isdigit() for v in versions):
        return {"specific": {"versions": [int(v) for v in versions]}}
    return {"all": {}}
