"""Parity of an artifact whose batch axis is fixed: it runs the held-out set in chunks."""

from __future__ import annotations

import numpy as np

from workbench.runtimes.base import LoadedModel, run_in_batches
from workbench.signature import TensorSpec


class FixedBatchDoubler(LoadedModel):
    """Doubles its input; refuses any batch other than its own, like a fixed TFLite file."""

    def __init__(self, batch: int) -> None:
        self.inputs = [TensorSpec("x", "float32", (batch, 3))]
        self.outputs = [TensorSpec("y", "float32", (batch, 3))]
        self.batches: list[int] = []

    def run(self, prepared):
        x = prepared["x"]
        assert x.shape[0] == self.inputs[0].shape[0], "wrong batch"
        self.batches.append(x.shape[0])
        return [x * 2]


def test_fixed_batch_artifact_runs_in_padded_chunks():
    x = np.arange(21, dtype=np.float32).reshape(7, 3)
    model = FixedBatchDoubler(batch=2)
    (out,) = run_in_batches(model, {"x": x})
    np.testing.assert_array_equal(out, x * 2)
    assert model.batches == [2, 2, 2, 2]  # 7 items: the last chunk padded with item 7


def test_matching_batch_runs_once():
    x = np.ones((4, 3), np.float32)
    model = FixedBatchDoubler(batch=4)
    (out,) = run_in_batches(model, {"x": x})
    assert model.batches == [4] and out.shape == (4, 3)
