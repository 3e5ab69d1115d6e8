"""Memory (issue 15): exports run side by side only as far as their estimated peaks fit
the budget, estimates come from the peaks that manifests record, and static-INT8
calibration streams one bounded batch at a time with the same ranges as all at once."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from exporters import onnx_quantize as oq
from exporters.base import ArtifactRequest, write_manifest
from exporters.memory_budget import UNKNOWN_PEAK_BYTES, MemoryGate, estimate_peak
from tests.support.model_files import tiny_onnx


def _run(gate: MemoryGate, estimates: list[int]) -> int:
    def hold(n: int) -> None:
        with gate.hold(n):
            time.sleep(0.05)

    threads = [threading.Thread(target=hold, args=(n,)) for n in estimates]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert gate.in_use == 0 and gate.running == 0
    return gate.peak_running


def test_gate_admits_only_what_fits_the_budget():
    assert _run(MemoryGate(10), [4, 4, 4, 4]) == 2  # 3 x 4 > 10
    assert _run(MemoryGate(100), [4, 4, 4, 4]) == 4
    assert _run(MemoryGate(10), [50, 50]) == 1  # over the budget alone: one at a time


def test_estimate_comes_from_recorded_peaks(workspace):
    request = ArtifactRequest("tabular", "mlp", "torch", "onnx", "int8-static")
    assert estimate_peak(request) == UNKNOWN_PEAK_BYTES
    folder = workspace / "artifacts" / "tabular-mlp"
    for key, peak, precision in (("a", 2**30, "int8-static"), ("b", 9 * 2**30, "fp32")):
        (folder / key).mkdir(parents=True)
        write_manifest(
            folder / key,
            {
                "source_framework": "torch",
                "format": "onnx",
                "precision": precision,
                "peak_rss_bytes": peak,
            },
        )
    assert estimate_peak(request) == int(2**30 * 1.25)  # its own conversion, not the fp32 one


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_streamed_calibration_in_small_batches(tmp_path, method, monkeypatch):
    sizes: list[int] = []

    class Counting(oq.OneBatchReader):
        def __init__(self, item):
            sizes.append(len(item["x"]))
            super().__init__(item)

    monkeypatch.setattr(oq, "OneBatchReader", Counting)
    model = tiny_onnx(tmp_path / "fp32.onnx")
    rng = np.random.default_rng(1)
    feed = {"x": rng.standard_normal((70, 8)).astype(np.float32)}
    (tmp_path / "small").mkdir()
    (tmp_path / "big").mkdir()
    small = oq.calibrate(model, feed, 70, None, method, tmp_path / "small" / "c.json", 1)
    assert sizes == [1] * 70  # a budget below one item: one item per collect_data call
    sizes.clear()
    big = oq.calibrate(model, feed, 70, None, method, tmp_path / "big" / "c.json", 1 << 40)
    assert sizes == [32, 32, 6]
    ranges_small, ranges_big = json.loads(small.read_text()), json.loads(big.read_text())
    assert ranges_small.keys() == ranges_big.keys() and ranges_small
    if method == "minmax":  # exact whatever the batch: a min of mins
        assert ranges_small == ranges_big
