"""The highest server QPS whose latency stays under a bound: a bounded search on the
target QPS, each probe a real LoadGen server run.

LoadGen's own FindPeakPerformance mode needs a first target that is already VALID and
runs as long as its search takes; this search is bounded in probes (so in time: each
probe ends within its max duration), starts from the model's measured capacity, doubles
or halves to bracket the peak, then bisects. A probe passes by the settings' pass rule:
LoadGen's VALID in the full profile, the measured p99 under the bound (with the offered
load achieved and nothing rejected) in the short profiles, where early stopping cannot
have enough queries.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.batching import BatcherConfig
from workbench.scenarios.driver import ServedModel, estimate, passes, run_scenario
from workbench.scenarios.settings import ScenarioSettings

Row = dict[str, Any]


def find_peak(
    served: ServedModel,
    settings: ScenarioSettings,
    batcher: BatcherConfig | None,
    max_probes: int = 6,
    start_qps: float | None = None,
    tolerance: float = 0.1,
    log_root: Path | None = None,
    on_row: Callable[[Row], None] | None = None,
) -> tuple[float | None, list[Row]]:
    """(peak QPS or None when even the lowest probe failed, one row per probe). Every row
    gets `peak_qps` once the search ends, and its probe number in `scenario_settings`."""
    if max_probes < 1:
        raise ValueError("max_probes must be >= 1")
    if start_qps is None:
        qps, _ = estimate(served, batcher or _single(served), settings)
        start_qps = max(qps * 0.5, 1.0)
    rows: list[Row] = []
    lo: float | None = None
    hi: float | None = None
    target = float(start_qps)
    for probe in range(max_probes):
        probe_settings = settings.with_(target_qps=round(target, 2))
        log_dir = Path(log_root) / f"probe-{probe:02d}" if log_root else None
        row = run_scenario(served, probe_settings, batcher, log_dir=log_dir)
        row["scenario_settings"] = {**row["scenario_settings"], "find_peak_probe": probe}
        rows.append(row)
        if passes(row, probe_settings):
            lo = target if lo is None else max(lo, target)
        else:
            hi = target if hi is None else min(hi, target)
        if lo is not None and hi is not None:
            if hi - lo <= tolerance * lo:
                break
            target = (lo + hi) / 2
        elif lo is not None:
            target = lo * 2
        else:
            target = max((hi or target) / 2, 0.01)
    for row in rows:
        row["peak_qps"] = lo
        if on_row:
            on_row(row)
    return lo, rows


def _single(served: ServedModel) -> BatcherConfig:
    return BatcherConfig(max_batch_size=1, max_queue_delay_ms=0, instances=len(served.run_batches))
