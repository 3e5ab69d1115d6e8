"""The claim verdicts as a characterization: realistic result rows (a CPU-only host, a GPU
host, failed and missing rows, too few rows) judged under both profiles, against the rows
`judge` gave before the claims became data (CLAIM_PARTS), written out literally."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.results import make_row
from workbench.study import claims


def _row(**fields) -> dict:
    base = {
        "status": "ok",
        "task": "tabular",
        "model": "mlp",
        "source_framework": "torch",
        "format": "onnx",
        "precision": "fp32",
        "runtime": "onnxruntime",
        "device": "cpu",
        "threads": 2,
        "batch_size": 1,
        "latency_ms_p50": 1.0,
        "throughput_items_per_s": 1000.0,
        "model_size_bytes": 4_000_000,
        "run_id": "r1",
    }
    return make_row(**{**base, **fields})


def _cnn(**fields) -> dict:
    base = {"task": "image_classification", "model": "resnet50", "model_size_bytes": 102_400_000}
    return _row(**{**base, **fields})


def _failed(error: str, **fields) -> dict:
    base = {"status": "failed", "error": error, "latency_ms_p50": None}
    return _row(**{"throughput_items_per_s": None, **base, **fields})


def _no_gpu(batch: int) -> dict:
    return _cnn(
        batch_size=batch,
        device="cuda",
        status="unavailable",
        error="no GPU on this host (no NVIDIA driver)",
        latency_ms_p50=None,
        throughput_items_per_s=None,
    )


def _sweep(fmt: str, runtime: str, lat_1: float, power: float, batches: list[int]) -> list:
    """A batch sweep whose latency grows as batch**power (so throughput rises with it)."""
    return [
        _row(
            format=fmt,
            runtime=runtime,
            batch_size=b,
            latency_ms_p50=lat_1 * b**power,
            throughput_items_per_s=b / (lat_1 * 1e-3 * b**power),
        )
        for b in batches
    ]


def _null(**fields) -> dict:
    return _row(model="null", format="null", runtime="null", precision=None, **fields)


def _serving(label: str, peak: float | None, **fields) -> dict:
    """A server-scenario peak-search row (9.2 under load) of one batcher setting."""
    row = _cnn(model="efficientnet_lite0", scenario="server", peak_qps=peak, **fields)
    return {**row, "batcher_label": label}


def cpu_only() -> dict[str, list[dict]]:
    """A CPU host running the ci sweeps: the GPU rows are unavailable."""
    small = [1, 8, 64, 256]
    return {
        "cnn": [
            _cnn(batch_size=1, latency_ms_p50=48.2, throughput_items_per_s=20.75),
            _cnn(batch_size=32, latency_ms_p50=1130.4, throughput_items_per_s=28.31, threads=4),
            _no_gpu(1),
            _no_gpu(32),
        ],
        "cnn_precisions": [
            _cnn(precision="fp16", latency_ms_p50=61.7, model_size_bytes=51_200_000),
            _cnn(
                precision="int8-dynamic",
                latency_ms_p50=21.9,
                model_size_bytes=25_900_000,
                parity_metric_value=0.9375,
            ),
        ],
        "keras": [
            _row(
                source_framework="keras",
                format="savedmodel",
                runtime="tensorflow",
                latency_ms_p50=0.412,
                model_size_bytes=812_345,
            ),
            _row(
                source_framework="keras",
                format="tflite",
                runtime="litert",
                latency_ms_p50=0.0381,
                model_size_bytes=201_876,
            ),
        ],
        "small": _sweep("eager", "torch", 0.0912, 0.3, small)
        + _sweep("torchscript", "torch", 0.0402, 0.4, small)
        + _sweep("onnx", "onnxruntime", 0.0154, 0.7, small),
        "null": [_null(latency_ms_p50=0.00182)],
        "serving": [_serving("none", 20.0), _serving("dynamic", 50.0)],
    }


def gpu_present() -> dict[str, list[dict]]:
    """A GPU host with the full profile's shapes; TFLite unavailable; the null run failed."""
    small = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    gpu = {"device": "cuda:0", "runtime": "onnxruntime-cuda"}
    keras = {"task": "image_classification", "model": "mobilenet_v2", "source_framework": "keras"}
    return {
        "cnn": [
            _cnn(batch_size=1, latency_ms_p50=24.6, throughput_items_per_s=40.65, threads=16),
            _cnn(batch_size=32, latency_ms_p50=468.0, throughput_items_per_s=68.38, threads=16),
            _cnn(batch_size=1, latency_ms_p50=2.31, throughput_items_per_s=432.9, **gpu),
            _cnn(batch_size=32, latency_ms_p50=27.84, throughput_items_per_s=1149.4, **gpu),
        ],
        "cnn_precisions": [
            _cnn(precision="fp16", latency_ms_p50=26.1, model_size_bytes=51_200_000),
            _cnn(precision="int8-static", latency_ms_p50=9.8, model_size_bytes=25_900_000),
        ],
        "keras": [
            _row(
                format="savedmodel",
                runtime="tensorflow",
                latency_ms_p50=14.2,
                model_size_bytes=14_536_120,
                **keras,
            ),
            _row(
                format="tflite",
                runtime="litert",
                status="unavailable",
                error="LiteRT cannot run here",
                latency_ms_p50=None,
                **keras,
            ),
        ],
        "small": _sweep("eager", "torch", 0.0871, 0.5, small)
        + _sweep("onnx", "onnxruntime", 0.0102, 0.5, small)
        + _sweep("torchscript", "torch", 0.0099, 0.5, small),
        "null": [_null(status="failed", error="null runtime crashed", latency_ms_p50=None)],
        "serving": [_serving("none", 10.0), _serving("dynamic", 80.0)],
    }


def failures() -> dict[str, list[dict]]:
    """Failed and missing rows everywhere, and no harness run."""
    cnn = {"task": "image_classification", "model": "resnet50"}
    return {
        "cnn": [
            _failed("onnxruntime: out of memory", batch_size=1, **cnn),
            _cnn(batch_size=32, device="cuda:0", latency_ms_p50=61.0, throughput_items_per_s=524.6),
        ],
        "cnn_precisions": [
            _failed("int8 calibration failed: zero range", precision="int8-dynamic", **cnn),
            _failed("fp16: unsupported op Resize", precision="fp16", **cnn),
            _failed("fp16: a second error", precision="fp16", **cnn),
        ],
        "keras": [
            _row(source_framework="keras", format="savedmodel", latency_ms_p50=0.5),
            _failed("tflite conversion failed: bad op", source_framework="keras", format="tflite"),
        ],
        "small": [
            _row(format="eager", runtime="torch", latency_ms_p50=0.09),
            _failed("onnx: session failed", format="onnx"),
            _failed("torchscript: trace failed", format="torchscript", runtime="torch"),
            _row(format="onnx", batch_size=8, latency_ms_p50=0.05, throughput_items_per_s=160000.0),
        ],
        "serving": [
            _serving("none", None, status="failed", error="export failed: no onnx"),
            _serving("dynamic", None, status="failed", error="export failed: no onnx"),
        ],
    }


def sparse() -> dict[str, list[dict]]:
    """Too little measured: one format, one batch size, and nothing that failed."""
    return {
        "cnn": [_cnn(batch_size=1, latency_ms_p50=100.0, throughput_items_per_s=10.0)],
        "cnn_precisions": [_cnn(precision="fp16", status="unavailable", latency_ms_p50=None)],
        "keras": [_row(source_framework="keras", format="savedmodel", latency_ms_p50=0.5)],
        "small": [_row(format="eager", runtime="torch", batch_size=8, latency_ms_p50=0.2)],
        "null": [_null(latency_ms_p50=0.0)],
    }


SCENARIOS = {
    "cpu_only": cpu_only,
    "gpu_present": gpu_present,
    "failures": failures,
    "sparse": sparse,
}

NO_IMAGENET = (
    "no trained ResNet-50 weights or labelled ImageNet images on this host (weights are "
    "random); the agreement with FP32 is shown instead"
)

# (scenario, profile, ratio_tolerance, absolute_tolerance) -> judge's rows, in order.
EXPECTED: dict[tuple[str, str, float, float], list[tuple[str, ...]]] = {
    ("cpu_only", "ci", 0.25, 0.5): [
        (
            "2.3",
            "resnet50 batch 32 on the CPU",
            "~500 ms/batch (64 img/s)",
            "1130 ms/batch (28.3 img/s), onnxruntime 4 threads",
            "refuted",
            "1130 ms/batch is 2.26x the claimed 500 ms/batch (outside +/-50%; depends on the hardware)",
        ),
        (
            "2.3",
            "resnet50 batch 32 on the GPU",
            "~50 ms/batch (640 img/s)",
            "-",
            "not measurable here",
            "no GPU on this host (no NVIDIA driver)",
        ),
        (
            "2.3",
            "GPU vs CPU throughput",
            "~10x",
            "-",
            "not measurable here",
            "no GPU on this host (no NVIDIA driver)",
        ),
        (
            "3.2",
            "Keras mlp (tabular): size",
            "4x smaller",
            "SavedModel 0.812 MB vs TFLite 0.202 MB = 4.02x",
            "confirmed",
            "4.02x is within 4x (+/-25%)",
        ),
        (
            "3.2",
            "Keras mlp (tabular): latency at batch 1",
            "4x faster",
            "SavedModel 0.412 ms vs TFLite 0.0381 ms = 10.81x",
            "refuted",
            "10.81x is above 4x (+/-25%)",
        ),
        (
            "9.1",
            "resnet50 int8-dynamic vs fp32, batch 1, CPU: latency",
            "50 -> 15 ms (3.3x)",
            "48.2 -> 21.9 ms (2.20x; onnx on onnxruntime)",
            "not measured in this profile",
            "the ci profile measured int8-dynamic, not the claim's int8-static: the numbers "
            "are shown, not judged (the full profile measures int8-static)",
        ),
        (
            "9.1",
            "resnet50 int8-dynamic vs fp32, batch 1, CPU: size",
            "98 -> 25 MB (4x)",
            "102.4 -> 25.9 MB (3.95x)",
            "not measured in this profile",
            "the ci profile measured int8-dynamic, not the claim's int8-static: the numbers "
            "are shown, not judged (the full profile measures int8-static)",
        ),
        (
            "9.1",
            "resnet50 fp16 vs fp32, batch 1, CPU: latency",
            "2x faster",
            "48.2 -> 61.7 ms (0.78x)",
            "refuted",
            "0.78x is below 2x (+/-25%)",
        ),
        (
            "9.1",
            "resnet50 fp16 vs fp32, batch 1, CPU: size",
            "2x smaller",
            "102.4 -> 51.2 MB (2.00x)",
            "confirmed",
            "2.00x is within 2x (+/-25%)",
        ),
        (
            "9.1",
            "resnet50 int8-dynamic accuracy",
            "-0.3 points",
            "top-1 agreement of int8-dynamic with FP32: 0.938",
            "not measurable here",
            NO_IMAGENET,
        ),
        (
            "9.2",
            "resnet50 (onnx, CPU): best batch vs batch 1",
            "3-5x",
            "20.75 -> 28.31 items/s at batch 32 (1.4x)",
            "refuted",
            "1.36x is below 3-5x (+/-25%)",
        ),
        (
            "9.2",
            "tabular mlp (onnx, CPU): best batch vs batch 1",
            "3-5x",
            "6.494e+04 -> 3.427e+05 items/s at batch 256 (5.3x)",
            "confirmed",
            "5.28x is within 3-5x (+/-25%)",
        ),
        (
            "9.2",
            "efficientnet_lite0 (onnx, CPU), server scenario: max QPS with p99 under 100 ms, dynamic batcher vs none",
            "3-5x",
            "20 -> 50 QPS (2.50x; batcher max 8, 5 ms)",
            "confirmed",
            "2.50x is within 3-5x (+/-25%)",
        ),
        (
            "9.2",
            "minilm_classifier (onnx, CPU), server scenario: max QPS with p99 under 100 ms, dynamic batcher vs none",
            "3-5x",
            "-",
            "not measurable here",
            "no peak: no probe kept p99 under 100 ms with the offered load met (or the serving runs were not made)",
        ),
        (
            "1.1",
            "tabular mlp, batch 1: Python (torch eager) vs compiled graphs",
            "5-10x",
            "eager 91.2 us vs onnx 15.4 us, torchscript 40.2 us (5.9x); the harness's own Python call costs 1.82 us",
            "confirmed",
            "5.92x is within 5-10x (+/-25%)",
        ),
        (
            "1.1",
            "tabular mlp, batch 1, per call: onnxruntime's Python API vs a C++ caller on its C API",
            "5-10x",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "1.1",
            "tabular mlp, batch 64, per call: onnxruntime's Python API vs a C++ caller on its C API",
            "5-10x",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "1.1",
            "resnet50, batch 1, per call: onnxruntime's Python API vs a C++ caller on its C API",
            "5-10x",
            "-",
            "not measurable here",
            "not measured (the ci profile does not run it; quick and full do)",
        ),
        (
            "1.1",
            "tabular mlp served (KServe v2 HTTP, one request in flight): Python front vs compiled front, p50 latency",
            "5-10x",
            "-",
            "not measurable here",
            "not run in the ci profile: benchmarks/compiled_vs_python.py (its JSON as the notebook's compiled_measurements), or the quick/full profiles",
        ),
        (
            "1.1",
            "tabular mlp served: max QPS with p99 under the bound, compiled front vs Python front (summary: throughput)",
            "3-5x",
            "-",
            "not measurable here",
            "not run in the ci profile: benchmarks/compiled_vs_python.py (its JSON as the notebook's compiled_measurements), or the quick/full profiles",
        ),
        (
            "1.1",
            "tabular mlp served: server peak resident memory, Python front vs compiled front (summary: memory)",
            "2-3x less",
            "-",
            "not measurable here",
            "not run in the ci profile: benchmarks/compiled_vs_python.py (its JSON as the notebook's compiled_measurements), or the quick/full profiles",
        ),
        (
            "1.1",
            "Python serving fronts (FastAPI/uvicorn HTTP, grpcio gRPC), null model: added per request over in-process",
            "5-10x",
            "not run in the ci profile: benchmarks/serving_overhead.py or quick/full",
            "not measurable here",
            "shown, not judged: what each Python front adds over calling the server in-process; the compiled front is judged against the Python one above",
        ),
    ],
    ("cpu_only", "full", 0.25, 0.5): [
        (
            "2.3",
            "resnet50 batch 32 on the CPU",
            "~500 ms/batch (64 img/s)",
            "1130 ms/batch (28.3 img/s), onnxruntime 4 threads",
            "refuted",
            "1130 ms/batch is 2.26x the claimed 500 ms/batch (outside +/-50%; depends on the hardware)",
        ),
        (
            "2.3",
            "resnet50 batch 32 on the GPU",
            "~50 ms/batch (640 img/s)",
            "-",
            "not measurable here",
            "no GPU on this host (no NVIDIA driver)",
        ),
        (
            "2.3",
            "GPU vs CPU throughput",
            "~10x",
            "-",
            "not measurable here",
            "no GPU on this host (no NVIDIA driver)",
        ),
        (
            "3.2",
            "Keras mobilenet_v2 (image_classification): size",
            "4x smaller",
            "SavedModel 0.812 MB vs TFLite 0.202 MB = 4.02x",
            "confirmed",
            "4.02x is within 4x (+/-25%)",
        ),
        (
            "3.2",
            "Keras mobilenet_v2 (image_classification): latency at batch 1",
            "4x faster",
            "SavedModel 0.412 ms vs TFLite 0.0381 ms = 10.81x",
            "refuted",
            "10.81x is above 4x (+/-25%)",
        ),
        (
            "9.1",
            "resnet50 int8-static vs fp32, batch 1, CPU: latency",
            "50 -> 15 ms (3.3x)",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "9.1",
            "resnet50 int8-static vs fp32, batch 1, CPU: size",
            "98 -> 25 MB (4x)",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "9.1",
            "resnet50 fp16 vs fp32, batch 1, CPU: latency",
            "2x faster",
            "48.2 -> 61.7 ms (0.78x)",
            "refuted",
            "0.78x is below 2x (+/-25%)",
        ),
        (
            "9.1",
            "resnet50 fp16 vs fp32, batch 1, CPU: size",
            "2x smaller",
            "102.4 -> 51.2 MB (2.00x)",
            "confirmed",
            "2.00x is within 2x (+/-25%)",
        ),
        (
            "9.1",
            "resnet50 int8-static accuracy",
            "-0.3 points",
            "no INT8 parity result",
            "not measurable here",
            NO_IMAGENET,
        ),
        (
            "9.2",
            "resnet50 (onnx, CPU): best batch vs batch 1",
            "3-5x",
            "20.75 -> 28.31 items/s at batch 32 (1.4x)",
            "refuted",
            "1.36x is below 3-5x (+/-25%)",
        ),
        (
            "9.2",
            "tabular mlp (onnx, CPU): best batch vs batch 1",
            "3-5x",
            "6.494e+04 -> 3.427e+05 items/s at batch 256 (5.3x)",
            "confirmed",
            "5.28x is within 3-5x (+/-25%)",
        ),
        (
            "9.2",
            "efficientnet_lite0 (onnx, CPU), server scenario: max QPS with p99 under 100 ms, dynamic batcher vs none",
            "3-5x",
            "20 -> 50 QPS (2.50x; batcher max 8, 5 ms)",
            "confirmed",
            "2.50x is within 3-5x (+/-25%)",
        ),
        (
            "9.2",
            "minilm_classifier (onnx, CPU), server scenario: max QPS with p99 under 100 ms, dynamic batcher vs none",
            "3-5x",
            "-",
            "not measurable here",
            "no peak: no probe kept p99 under 100 ms with the offered load met (or the serving runs were not made)",
        ),
        (
            "1.1",
            "tabular mlp, batch 1: Python (torch eager) vs compiled graphs",
            "5-10x",
            "eager 91.2 us vs onnx 15.4 us, torchscript 40.2 us (5.9x); the harness's own Python call costs 1.82 us",
            "confirmed",
            "5.92x is within 5-10x (+/-25%)",
        ),
        (
            "1.1",
            "tabular mlp, batch 1, per call: onnxruntime's Python API vs a C++ caller on its C API",
            "5-10x",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "1.1",
            "tabular mlp, batch 64, per call: onnxruntime's Python API vs a C++ caller on its C API",
            "5-10x",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "1.1",
            "resnet50, batch 1, per call: onnxruntime's Python API vs a C++ caller on its C API",
            "5-10x",
            "-",
            "not measurable here",
            "not measured (the ci profile does not run it; quick and full do)",
        ),
        (
            "1.1",
            "tabular mlp served (KServe v2 HTTP, one request in flight): Python front vs compiled front, p50 latency",
            "5-10x",
            "-",
            "not measurable here",
            "not run in the ci profile: benchmarks/compiled_vs_python.py (its JSON as the notebook's compiled_measurements), or the quick/full profiles",
        ),
        (
            "1.1",
            "tabular mlp served: max QPS with p99 under the bound, compiled front vs Python front (summary: throughput)",
            "3-5x",
            "-",
            "not measurable here",
            "not run in the ci profile: benchmarks/compiled_vs_python.py (its JSON as the notebook's compiled_measurements), or the quick/full profiles",
        ),
        (
            "1.1",
            "tabular mlp served: server peak resident memory, Python front vs compiled front (summary: memory)",
            "2-3x less",
            "-",
            "not measurable here",
            "not run in the ci profile: benchmarks/compiled_vs_python.py (its JSON as the notebook's compiled_measurements), or the quick/full profiles",
        ),
        (
            "1.1",
            "Python serving fronts (FastAPI/uvicorn HTTP, grpcio gRPC), null model: added per request over in-process",
            "5-10x",
            "not run in the ci profile: benchmarks/serving_overhead.py or quick/full",
            "not measurable here",
            "shown, not judged: what each Python front adds over calling the server in-process; the compiled front is judged against the Python one above",
        ),
    ],
    ("gpu_present", "full", 0.25, 0.5): [
        (
            "2.3",
            "resnet50 batch 32 on the CPU",
            "~500 ms/batch (64 img/s)",
            "468 ms/batch (68.4 img/s), onnxruntime 16 threads",
            "confirmed",
            "468 ms/batch is within 500 ms/batch +/-50%",
        ),
        (
            "2.3",
            "resnet50 batch 32 on the GPU (cuda:0)",
            "~50 ms/batch (640 img/s)",
            "27.8 ms/batch (1149 img/s)",
            "confirmed",
            "27.84 ms/batch is within 50 ms/batch +/-50%",
        ),
        (
            "2.3",
            "GPU vs CPU throughput",
            "~10x",
            "16.8x",
            "refuted",
            "16.81x is above 10x (+/-25%)",
        ),
        (
            "3.2",
            "Keras mobilenet_v2 (image_classification): size",
            "4x smaller",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "3.2",
            "Keras mobilenet_v2 (image_classification): latency",
            "4x faster",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "9.1",
            "resnet50 int8-static vs fp32, batch 1, CPU: latency",
            "50 -> 15 ms (3.3x)",
            "24.6 -> 9.8 ms (2.51x; onnx on onnxruntime)",
            "confirmed",
            "2.51x is within 3.33x (+/-25%)",
        ),
        (
            "9.1",
            "resnet50 int8-static vs fp32, batch 1, CPU: size",
            "98 -> 25 MB (4x)",
            "102.4 -> 25.9 MB (3.95x)",
            "confirmed",
            "3.95x is within 3.92x (+/-25%)",
        ),
        (
            "9.1",
            "resnet50 fp16 vs fp32, batch 1, CPU: latency",
            "2x faster",
            "24.6 -> 26.1 ms (0.94x)",
            "refuted",
            "0.94x is below 2x (+/-25%)",
        ),
        (
            "9.1",
            "resnet50 fp16 vs fp32, batch 1, CPU: size",
            "2x smaller",
            "102.4 -> 51.2 MB (2.00x)",
            "confirmed",
            "2.00x is within 2x (+/-25%)",
        ),
        (
            "9.1",
            "resnet50 int8-static accuracy",
            "-0.3 points",
            "no INT8 parity result",
            "not measurable here",
            NO_IMAGENET,
        ),
        (
            "9.2",
            "resnet50 (onnx, CPU): best batch vs batch 1",
            "3-5x",
            "40.65 -> 68.38 items/s at batch 32 (1.7x)",
            "refuted",
            "1.68x is below 3-5x (+/-25%)",
        ),
        (
            "9.2",
            "tabular mlp (onnx, CPU): best batch vs batch 1",
            "3-5x",
            "9.804e+04 -> 1.569e+06 items/s at batch 256 (16.0x)",
            "refuted",
            "16.00x is above 3-5x (+/-25%)",
        ),
        (
            "9.2",
            "efficientnet_lite0 (onnx, CPU), server scenario: max QPS with p99 under 100 ms, dynamic batcher vs none",
            "3-5x",
            "10 -> 80 QPS (8.00x; batcher max 8, 5 ms)",
            "refuted",
            "8.00x is above 3-5x (+/-25%)",
        ),
        (
            "9.2",
            "minilm_classifier (onnx, CPU), server scenario: max QPS with p99 under 100 ms, dynamic batcher vs none",
            "3-5x",
            "-",
            "not measurable here",
            "no peak: no probe kept p99 under 100 ms with the offered load met (or the serving runs were not made)",
        ),
        (
            "1.1",
            "tabular mlp, batch 1: Python (torch eager) vs compiled graphs",
            "5-10x",
            "eager 87.1 us vs onnx 10.2 us, torchscript 9.9 us (8.8x)",
            "confirmed",
            "8.80x is within 5-10x (+/-25%)",
        ),
        (
            "1.1",
            "tabular mlp, batch 1, per call: onnxruntime's Python API vs a C++ caller on its C API",
            "5-10x",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "1.1",
            "tabular mlp, batch 64, per call: onnxruntime's Python API vs a C++ caller on its C API",
            "5-10x",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "1.1",
            "resnet50, batch 1, per call: onnxruntime's Python API vs a C++ caller on its C API",
            "5-10x",
            "-",
            "not measurable here",
            "not measured (the ci profile does not run it; quick and full do)",
        ),
        (
            "1.1",
            "tabular mlp served (KServe v2 HTTP, one request in flight): Python front vs compiled front, p50 latency",
            "5-10x",
            "-",
            "not measurable here",
            "not run in the ci profile: benchmarks/compiled_vs_python.py (its JSON as the notebook's compiled_measurements), or the quick/full profiles",
        ),
        (
            "1.1",
            "tabular mlp served: max QPS with p99 under the bound, compiled front vs Python front (summary: throughput)",
            "3-5x",
            "-",
            "not measurable here",
            "not run in the ci profile: benchmarks/compiled_vs_python.py (its JSON as the notebook's compiled_measurements), or the quick/full profiles",
        ),
        (
            "1.1",
            "tabular mlp served: server peak resident memory, Python front vs compiled front (summary: memory)",
            "2-3x less",
            "-",
            "not measurable here",
            "not run in the ci profile: benchmarks/compiled_vs_python.py (its JSON as the notebook's compiled_measurements), or the quick/full profiles",
        ),
        (
            "1.1",
            "Python serving fronts (FastAPI/uvicorn HTTP, grpcio gRPC), null model: added per request over in-process",
            "5-10x",
            "not run in the ci profile: benchmarks/serving_overhead.py or quick/full",
            "not measurable here",
            "shown, not judged: what each Python front adds over calling the server in-process; the compiled front is judged against the Python one above",
        ),
    ],
    ("gpu_present", "ci", 0.1, 0.2): [
        (
            "2.3",
            "resnet50 batch 32 on the CPU",
            "~500 ms/batch (64 img/s)",
            "468 ms/batch (68.4 img/s), onnxruntime 16 threads",
            "confirmed",
            "468 ms/batch is within 500 ms/batch +/-20%",
        ),
        (
            "2.3",
            "resnet50 batch 32 on the GPU (cuda:0)",
            "~50 ms/batch (640 img/s)",
            "27.8 ms/batch (1149 img/s)",
            "refuted",
            "27.84 ms/batch is 0.56x the claimed 50 ms/batch (outside +/-20%; depends on the hardware)",
        ),
        (
            "2.3",
            "GPU vs CPU throughput",
            "~10x",
            "16.8x",
            "refuted",
            "16.81x is above 10x (+/-10%)",
        ),
        (
            "3.2",
            "Keras mlp (tabular): size",
            "4x smaller",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "3.2",
            "Keras mlp (tabular): latency",
            "4x faster",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "9.1",
            "resnet50 int8-dynamic vs fp32, batch 1, CPU: latency",
            "50 -> 15 ms (3.3x)",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "9.1",
            "resnet50 int8-dynamic vs fp32, batch 1, CPU: size",
            "98 -> 25 MB (4x)",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "9.1",
            "resnet50 fp16 vs fp32, batch 1, CPU: latency",
            "2x faster",
            "24.6 -> 26.1 ms (0.94x)",
            "refuted",
            "0.94x is below 2x (+/-10%)",
        ),
        (
            "9.1",
            "resnet50 fp16 vs fp32, batch 1, CPU: size",
            "2x smaller",
            "102.4 -> 51.2 MB (2.00x)",
            "confirmed",
            "2.00x is within 2x (+/-10%)",
        ),
        (
            "9.1",
            "resnet50 int8-dynamic accuracy",
            "-0.3 points",
            "no INT8 parity result",
            "not measurable here",
            NO_IMAGENET,
        ),
        (
            "9.2",
            "resnet50 (onnx, CPU): best batch vs batch 1",
            "3-5x",
            "40.65 -> 68.38 items/s at batch 32 (1.7x)",
            "refuted",
            "1.68x is below 3-5x (+/-10%)",
        ),
        (
            "9.2",
            "tabular mlp (onnx, CPU): best batch vs batch 1",
            "3-5x",
            "9.804e+04 -> 1.569e+06 items/s at batch 256 (16.0x)",
            "refuted",
            "16.00x is above 3-5x (+/-10%)",
        ),
        (
            "9.2",
            "efficientnet_lite0 (onnx, CPU), server scenario: max QPS with p99 under 100 ms, dynamic batcher vs none",
            "3-5x",
            "10 -> 80 QPS (8.00x; batcher max 8, 5 ms)",
            "refuted",
            "8.00x is above 3-5x (+/-10%)",
        ),
        (
            "9.2",
            "minilm_classifier (onnx, CPU), server scenario: max QPS with p99 under 100 ms, dynamic batcher vs none",
            "3-5x",
            "-",
            "not measurable here",
            "no peak: no probe kept p99 under 100 ms with the offered load met (or the serving runs were not made)",
        ),
        (
            "1.1",
            "tabular mlp, batch 1: Python (torch eager) vs compiled graphs",
            "5-10x",
            "eager 87.1 us vs onnx 10.2 us, torchscript 9.9 us (8.8x)",
            "confirmed",
            "8.80x is within 5-10x (+/-10%)",
        ),
        (
            "1.1",
            "tabular mlp, batch 1, per call: onnxruntime's Python API vs a C++ caller on its C API",
            "5-10x",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "1.1",
            "tabular mlp, batch 64, per call: onnxruntime's Python API vs a C++ caller on its C API",
            "5-10x",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "1.1",
            "resnet50, batch 1, per call: onnxruntime's Python API vs a C++ caller on its C API",
            "5-10x",
            "-",
            "not measurable here",
            "not measured (the ci profile does not run it; quick and full do)",
        ),
        (
            "1.1",
            "tabular mlp served (KServe v2 HTTP, one request in flight): Python front vs compiled front, p50 latency",
            "5-10x",
            "-",
            "not measurable here",
            "not run in the ci profile: benchmarks/compiled_vs_python.py (its JSON as the notebook's compiled_measurements), or the quick/full profiles",
        ),
        (
            "1.1",
            "tabular mlp served: max QPS with p99 under the bound, compiled front vs Python front (summary: throughput)",
            "3-5x",
            "-",
            "not measurable here",
            "not run in the ci profile: benchmarks/compiled_vs_python.py (its JSON as the notebook's compiled_measurements), or the quick/full profiles",
        ),
        (
            "1.1",
            "tabular mlp served: server peak resident memory, Python front vs compiled front (summary: memory)",
            "2-3x less",
            "-",
            "not measurable here",
            "not run in the ci profile: benchmarks/compiled_vs_python.py (its JSON as the notebook's compiled_measurements), or the quick/full profiles",
        ),
        (
            "1.1",
            "Python serving fronts (FastAPI/uvicorn HTTP, grpcio gRPC), null model: added per request over in-process",
            "5-10x",
            "not run in the ci profile: benchmarks/serving_overhead.py or quick/full",
            "not measurable here",
            "shown, not judged: what each Python front adds over calling the server in-process; the compiled front is judged against the Python one above",
        ),
    ],
    ("failures", "ci", 0.25, 0.5): [
        (
            "2.3",
            "resnet50 batch 32 on the CPU",
            "~500 ms/batch (64 img/s)",
            "-",
            "not measurable here",
            "no successful measurement",
        ),
        (
            "2.3",
            "resnet50 batch 32 on the GPU (cuda:0)",
            "~50 ms/batch (640 img/s)",
            "61.0 ms/batch (525 img/s)",
            "confirmed",
            "61 ms/batch is within 50 ms/batch +/-50%",
        ),
        (
            "2.3",
            "GPU vs CPU throughput",
            "~10x",
            "-",
            "not measurable here",
            "no successful measurement",
        ),
        (
            "3.2",
            "Keras mlp (tabular): size",
            "4x smaller",
            "-",
            "not measurable here",
            "tflite conversion failed: bad op",
        ),
        (
            "3.2",
            "Keras mlp (tabular): latency",
            "4x faster",
            "-",
            "not measurable here",
            "tflite conversion failed: bad op",
        ),
        (
            "9.1",
            "resnet50 int8-dynamic vs fp32, batch 1, CPU: latency",
            "50 -> 15 ms (3.3x)",
            "-",
            "not measurable here",
            "int8 calibration failed: zero range",
        ),
        (
            "9.1",
            "resnet50 int8-dynamic vs fp32, batch 1, CPU: size",
            "98 -> 25 MB (4x)",
            "-",
            "not measurable here",
            "int8 calibration failed: zero range",
        ),
        (
            "9.1",
            "resnet50 fp16 vs fp32, batch 1, CPU: latency",
            "2x faster",
            "-",
            "not measurable here",
            "fp16: a second error",
        ),
        (
            "9.1",
            "resnet50 fp16 vs fp32, batch 1, CPU: size",
            "2x smaller",
            "-",
            "not measurable here",
            "fp16: a second error",
        ),
        (
            "9.1",
            "resnet50 int8-dynamic accuracy",
            "-0.3 points",
            "no INT8 parity result",
            "not measurable here",
            NO_IMAGENET,
        ),
        (
            "9.2",
            "resnet50 (onnx, CPU)",
            "3-5x",
            "-",
            "not measurable here",
            "fewer than two batch sizes measured",
        ),
        (
            "9.2",
            "tabular mlp (onnx, CPU)",
            "3-5x",
            "-",
            "not measurable here",
            "fewer than two batch sizes measured",
        ),
        (
            "9.2",
            "efficientnet_lite0 (onnx, CPU), server scenario: max QPS with p99 under 100 ms, dynamic batcher vs none",
            "3-5x",
            "-",
            "not measurable here",
            "export failed: no onnx",
        ),
        (
            "9.2",
            "minilm_classifier (onnx, CPU), server scenario: max QPS with p99 under 100 ms, dynamic batcher vs none",
            "3-5x",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "1.1",
            "tabular mlp, batch 1",
            "5-10x",
            "-",
            "not measurable here",
            "onnx: session failed",
        ),
        (
            "1.1",
            "tabular mlp, batch 1, per call: onnxruntime's Python API vs a C++ caller on its C API",
            "5-10x",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "1.1",
            "tabular mlp, batch 64, per call: onnxruntime's Python API vs a C++ caller on its C API",
            "5-10x",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "1.1",
            "resnet50, batch 1, per call: onnxruntime's Python API vs a C++ caller on its C API",
            "5-10x",
            "-",
            "not measurable here",
            "not measured (the ci profile does not run it; quick and full do)",
        ),
        (
            "1.1",
            "tabular mlp served (KServe v2 HTTP, one request in flight): Python front vs compiled front, p50 latency",
            "5-10x",
            "-",
            "not measurable here",
            "not run in the ci profile: benchmarks/compiled_vs_python.py (its JSON as the notebook's compiled_measurements), or the quick/full profiles",
        ),
        (
            "1.1",
            "tabular mlp served: max QPS with p99 under the bound, compiled front vs Python front (summary: throughput)",
            "3-5x",
            "-",
            "not measurable here",
            "not run in the ci profile: benchmarks/compiled_vs_python.py (its JSON as the notebook's compiled_measurements), or the quick/full profiles",
        ),
        (
            "1.1",
            "tabular mlp served: server peak resident memory, Python front vs compiled front (summary: memory)",
            "2-3x less",
            "-",
            "not measurable here",
            "not run in the ci profile: benchmarks/compiled_vs_python.py (its JSON as the notebook's compiled_measurements), or the quick/full profiles",
        ),
        (
            "1.1",
            "Python serving fronts (FastAPI/uvicorn HTTP, grpcio gRPC), null model: added per request over in-process",
            "5-10x",
            "not run in the ci profile: benchmarks/serving_overhead.py or quick/full",
            "not measurable here",
            "shown, not judged: what each Python front adds over calling the server in-process; the compiled front is judged against the Python one above",
        ),
    ],
    ("sparse", "ci", 0.25, 0.5): [
        (
            "2.3",
            "resnet50 batch 32 on the CPU",
            "~500 ms/batch (64 img/s)",
            "-",
            "not measurable here",
            "no successful measurement",
        ),
        (
            "2.3",
            "resnet50 batch 32 on the GPU",
            "~50 ms/batch (640 img/s)",
            "-",
            "not measurable here",
            "not measured",
        ),
        ("2.3", "GPU vs CPU throughput", "~10x", "-", "not measurable here", "not measured"),
        ("3.2", "Keras mlp (tabular): size", "4x smaller", "-", "not measurable here", "-"),
        ("3.2", "Keras mlp (tabular): latency", "4x faster", "-", "not measurable here", "-"),
        (
            "9.1",
            "resnet50 int8-dynamic vs fp32, batch 1, CPU: latency",
            "50 -> 15 ms (3.3x)",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "9.1",
            "resnet50 int8-dynamic vs fp32, batch 1, CPU: size",
            "98 -> 25 MB (4x)",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "9.1",
            "resnet50 fp16 vs fp32, batch 1, CPU: latency",
            "2x faster",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "9.1",
            "resnet50 fp16 vs fp32, batch 1, CPU: size",
            "2x smaller",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "9.1",
            "resnet50 int8-dynamic accuracy",
            "-0.3 points",
            "no INT8 parity result",
            "not measurable here",
            NO_IMAGENET,
        ),
        (
            "9.2",
            "resnet50 (onnx, CPU)",
            "3-5x",
            "-",
            "not measurable here",
            "fewer than two batch sizes measured",
        ),
        (
            "9.2",
            "tabular mlp (onnx, CPU)",
            "3-5x",
            "-",
            "not measurable here",
            "fewer than two batch sizes measured",
        ),
        (
            "9.2",
            "efficientnet_lite0 (onnx, CPU), server scenario: max QPS with p99 under 100 ms, dynamic batcher vs none",
            "3-5x",
            "-",
            "not measurable here",
            "no peak: no probe kept p99 under 100 ms with the offered load met (or the serving runs were not made)",
        ),
        (
            "9.2",
            "minilm_classifier (onnx, CPU), server scenario: max QPS with p99 under 100 ms, dynamic batcher vs none",
            "3-5x",
            "-",
            "not measurable here",
            "no peak: no probe kept p99 under 100 ms with the offered load met (or the serving runs were not made)",
        ),
        ("1.1", "tabular mlp, batch 1", "5-10x", "-", "not measurable here", "not measured"),
        (
            "1.1",
            "tabular mlp, batch 1, per call: onnxruntime's Python API vs a C++ caller on its C API",
            "5-10x",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "1.1",
            "tabular mlp, batch 64, per call: onnxruntime's Python API vs a C++ caller on its C API",
            "5-10x",
            "-",
            "not measurable here",
            "not measured",
        ),
        (
            "1.1",
            "resnet50, batch 1, per call: onnxruntime's Python API vs a C++ caller on its C API",
            "5-10x",
            "-",
            "not measurable here",
            "not measured (the ci profile does not run it; quick and full do)",
        ),
        (
            "1.1",
            "tabular mlp served (KServe v2 HTTP, one request in flight): Python front vs compiled front, p50 latency",
            "5-10x",
            "-",
            "not measurable here",
            "not run in the ci profile: benchmarks/compiled_vs_python.py (its JSON as the notebook's compiled_measurements), or the quick/full profiles",
        ),
        (
            "1.1",
            "tabular mlp served: max QPS with p99 under the bound, compiled front vs Python front (summary: throughput)",
            "3-5x",
            "-",
            "not measurable here",
            "not run in the ci profile: benchmarks/compiled_vs_python.py (its JSON as the notebook's compiled_measurements), or the quick/full profiles",
        ),
        (
            "1.1",
            "tabular mlp served: server peak resident memory, Python front vs compiled front (summary: memory)",
            "2-3x less",
            "-",
            "not measurable here",
            "not run in the ci profile: benchmarks/compiled_vs_python.py (its JSON as the notebook's compiled_measurements), or the quick/full profiles",
        ),
        (
            "1.1",
            "Python serving fronts (FastAPI/uvicorn HTTP, grpcio gRPC), null model: added per request over in-process",
            "5-10x",
            "not run in the ci profile: benchmarks/serving_overhead.py or quick/full",
            "not measurable here",
            "shown, not judged: what each Python front adds over calling the server in-process; the compiled front is judged against the Python one above",
        ),
    ],
}


@pytest.mark.parametrize("case", list(EXPECTED), ids=lambda c: "-".join(map(str, c)))
def test_judge_gives_the_recorded_rows(case: tuple[str, str, float, float]) -> None:
    scenario, profile, ratio_tolerance, absolute_tolerance = case
    frames = {role: pd.DataFrame(rows) for role, rows in SCENARIOS[scenario]().items()}
    verdicts = claims.judge(frames, profile, ratio_tolerance, absolute_tolerance)
    expected = pd.DataFrame(
        EXPECTED[case], columns=["section", "claim", "claimed", "measured", "verdict", "why"]
    )
    pd.testing.assert_frame_equal(verdicts, expected)


def test_every_claim_part_belongs_to_a_claim_in_order() -> None:
    sections = list(dict.fromkeys(part.section for part in claims.CLAIM_PARTS))
    assert sections == list(claims.CLAIMS)


def test_sweeps_builds_every_role_for_both_profiles() -> None:
    """The role -> sweep table the notebook measures (and the rows judge reads)."""
    for profile, settings in claims.SETTINGS.items():
        sweeps = claims.sweeps(profile, devices=["cpu"])
        assert list(sweeps) == ["cnn", "cnn_precisions", "keras", "small"]
        assert sweeps["cnn"].batch_sizes == [1, settings.cnn_batch]
        assert sweeps["cnn_precisions"].precisions == ["fp16", settings.int8]
        assert sweeps["small"].batch_sizes == settings.small_batches
    assert claims.sweeps("ci")["cnn"].devices == ["cpu", "cuda"]


def test_serving_fronts_part_shows_what_each_front_adds() -> None:
    frames = {
        "serving_overhead": pd.DataFrame(
            [
                {"path": "in-process", "status": "ok", "added_p50_ms": None, "added_p99_ms": None},
                {"path": "http", "status": "ok", "added_p50_ms": 0.42, "added_p99_ms": 1.5},
                {"path": "grpc", "status": "ok", "added_p50_ms": 0.16, "added_p99_ms": -0.2},
            ]
        )
    }
    verdicts = claims.judge(frames, "quick")
    row = verdicts.iloc[-1]
    assert row["section"] == "1.1" and row["verdict"] == claims.NOT_MEASURABLE
    assert row["measured"] == (
        "HTTP +0.420 ms (p99 +1.500), gRPC +0.160 ms (p99 -0.200) per request at p50; "
        "in-process and client baseline subtracted"
    )
    assert "the compiled front is judged" in row["why"]


def test_compiled_parts_judge_per_call_and_both_fronts() -> None:
    """1.1 against the compiled caller and server (issue 24): per-call ratios of the two
    runtimes, and the Python front over the compiled one for latency, peak QPS, memory."""
    mib = 2**20
    frames = {
        "compiled": pd.DataFrame(
            [
                _row(runtime="onnxruntime", latency_ms_p50=0.020),
                _row(runtime="onnxruntime-c", latency_ms_p50=0.012),
                _row(runtime="onnxruntime", batch_size=64, latency_ms_p50=0.080),
                _row(runtime="onnxruntime-c", batch_size=64, latency_ms_p50=0.072),
            ]
        ),
        "compiled_serving": pd.DataFrame(
            [
                {
                    "front": "python",
                    "model": "mlp",
                    "status": "ok",
                    "p50_ms": 1.8,
                    "peak_qps": 200.0,
                    "peak_rss_bytes": 140 * mib,
                    "bound_ms": 100.0,
                },
                {
                    "front": "compiled",
                    "model": "mlp",
                    "status": "ok",
                    "p50_ms": 0.3,
                    "peak_qps": 1000.0,
                    "peak_rss_bytes": 36 * mib,
                    "bound_ms": 100.0,
                },
            ]
        ),  # fmt: skip
    }
    verdicts = claims.judge(frames, "quick")
    got = [
        (r.measured, r.verdict)
        for r in verdicts[verdicts["claim"].str.contains("C API|front vs|front \\(")].itertuples()
    ]
    assert got == [
        ("Python 20.0 us vs C API 12.0 us: Python adds 8.0 us per call (1.67x)", "refuted"),
        ("Python 80.0 us vs C API 72.0 us: Python adds 8.0 us per call (1.11x)", "refuted"),
        ("-", "not measurable here"),
        ("1.800 ms vs 0.300 ms (6.00x)", "confirmed"),
        ("200 -> 1000 QPS under p99 100 ms (5.00x)", "confirmed"),
        ("Python front 140 MiB vs compiled front 36 MiB (3.89x)", "refuted"),
    ]
