"""Scenario settings per profile, turned into LoadGen's TestSettings.

`full` keeps MLPerf's 600 s minimum duration and LoadGen's own query counts; `ci` and
`quick` scale durations down. Every row stores the settings it ran with, and
`full_length` says whether they meet the 600 s minimum, so a short run is never taken
for a compliant one. Every profile sets a maximum duration: LoadGen stops issuing there,
and the driver fails whatever is still queued a short grace later, so a run always ends.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from workbench.errors import UserError

SCENARIOS = ("single_stream", "multi_stream", "offline", "server")
MLPERF_MIN_DURATION_MS = 600_000
PassRule = Literal["loadgen_valid", "p99_under_bound"]


@dataclass(frozen=True)
class ScenarioSettings:
    """One LoadGen run. `target_qps` is the server's Poisson arrival rate (and the
    offline scenario's expected rate); `latency_bound_ms` the server's bound at
    `target_latency_percentile`."""

    scenario: str
    profile: str = "ci"
    target_qps: float | None = None
    latency_bound_ms: float | None = None
    target_latency_percentile: float = 0.99
    min_duration_ms: int = 1000
    max_duration_ms: int = 5000
    min_query_count: int = 64
    samples_per_query: int = 8  # multi_stream
    sample_count: int = 64  # distinct samples in the query sample library
    drain_grace_ms: int = 5000  # after max duration, queued requests fail
    # How a peak-finding probe passes: LoadGen's VALID (needs enough queries for early
    # stopping: full runs), or only the measured percentile under the bound (short runs).
    pass_rule: PassRule = "loadgen_valid"
    # LoadGen's arrival schedule seed (None: its own fixed default, as MLPerf runs). A
    # short server run's p99 hangs on the schedule's largest burst, and a fixed seed gives
    # the same bursts every time: other seeds show how much of a verdict is the schedule.
    schedule_seed: int | None = None

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise UserError(
                f"unknown scenario {self.scenario!r}: LoadGen runs {', '.join(SCENARIOS)}"
            )
        if self.target_qps is not None and not self.target_qps > 0:
            raise UserError(f"target QPS must be > 0, got {self.target_qps}")
        if self.latency_bound_ms is not None and not self.latency_bound_ms > 0:
            raise UserError(f"latency bound must be > 0 ms, got {self.latency_bound_ms}")
        if self.scenario == "server" and (self.target_qps is None or self.latency_bound_ms is None):
            raise UserError(
                "the server scenario needs --target-qps and --latency-bound-ms "
                "(or --find-peak --latency-bound-ms)"
            )
        if not 0 < self.target_latency_percentile < 1:
            raise UserError(
                f"target latency percentile must be in (0, 1), got {self.target_latency_percentile}"
            )
        if self.min_duration_ms < 0 or self.max_duration_ms <= 0:
            raise UserError("durations must be positive (ms)")
        if self.max_duration_ms < self.min_duration_ms:
            raise UserError(
                f"max duration {self.max_duration_ms} ms is below the minimum "
                f"{self.min_duration_ms} ms: the run could never be VALID"
            )
        if self.samples_per_query < 1 or self.sample_count < 1 or self.min_query_count < 1:
            raise UserError("samples per query, sample count and min query count must be >= 1")

    @property
    def full_length(self) -> bool:
        """Whether the run meets MLPerf's 600 s minimum duration."""
        return self.min_duration_ms >= MLPERF_MIN_DURATION_MS

    def with_(self, **changes: Any) -> ScenarioSettings:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "full_length": self.full_length}


# Durations per profile. full: MLPerf's minimum duration, LoadGen's default query count.
_PROFILE_DURATIONS: dict[str, dict[str, Any]] = {
    "ci": dict(
        min_duration_ms=1000,
        max_duration_ms=4000,
        min_query_count=64,
        sample_count=64,
        drain_grace_ms=5000,
        pass_rule="p99_under_bound",
    ),
    "quick": dict(
        min_duration_ms=5000,
        max_duration_ms=20000,
        min_query_count=100,
        sample_count=256,
        drain_grace_ms=10000,
        pass_rule="p99_under_bound",
    ),
    "full": dict(
        min_duration_ms=MLPERF_MIN_DURATION_MS,
        max_duration_ms=MLPERF_MIN_DURATION_MS + 60_000,
        min_query_count=100,
        sample_count=1024,
        drain_grace_ms=60_000,
        pass_rule="loadgen_valid",
    ),
}


def for_profile(profile: str, scenario: str, **given: Any) -> ScenarioSettings:
    """The profile's settings for `scenario`, with the caller's explicit values (None: unset)
    on top."""
    if profile not in _PROFILE_DURATIONS:
        raise UserError(f"profile must be one of {', '.join(_PROFILE_DURATIONS)}, got {profile!r}")
    values = {**_PROFILE_DURATIONS[profile], **{k: v for k, v in given.items() if v is not None}}
    if "max_duration_ms" not in given or given["max_duration_ms"] is None:
        # a longer minimum than the profile's: leave the same room above it
        values["max_duration_ms"] = max(values["max_duration_ms"], 2 * values["min_duration_ms"])
    return ScenarioSettings(scenario=scenario, profile=profile, **values)


def loadgen_settings(
    settings: ScenarioSettings, estimated_qps: float, estimated_latency_s: float
) -> Any:
    """LoadGen's TestSettings for `settings` (performance mode). The estimates (a few
    timed batches before the test) size what LoadGen pre-generates: the offline query's
    sample count, the single- and multi-stream query counts."""
    # lazy: mlperf_loadgen
    import mlperf_loadgen as lg

    ts = lg.TestSettings()
    ts.scenario = {
        "single_stream": lg.TestScenario.SingleStream,
        "multi_stream": lg.TestScenario.MultiStream,
        "offline": lg.TestScenario.Offline,
        "server": lg.TestScenario.Server,
    }[settings.scenario]
    ts.mode = lg.TestMode.PerformanceOnly
    ts.min_duration_ms = int(settings.min_duration_ms)
    ts.max_duration_ms = int(settings.max_duration_ms)
    ts.min_query_count = int(settings.min_query_count)
    if settings.schedule_seed is not None:
        ts.schedule_rng_seed = int(settings.schedule_seed)
    percentile = settings.target_latency_percentile
    if settings.scenario == "server":
        ts.server_target_qps = float(settings.target_qps)
        ts.server_target_latency_ns = int(settings.latency_bound_ms * 1e6)
        ts.server_target_latency_percentile = percentile
    elif settings.scenario == "offline":
        ts.offline_expected_qps = float(settings.target_qps or estimated_qps)
    elif settings.scenario == "multi_stream":
        ts.multi_stream_samples_per_query = int(settings.samples_per_query)
        ts.multi_stream_target_latency_percentile = percentile
        # a low guess: LoadGen generates duration / expected latency queries up front
        ts.multi_stream_expected_latency_ns = max(int(estimated_latency_s * 1e9 / 4), 10_000)
    else:
        ts.single_stream_target_latency_percentile = percentile
        ts.single_stream_expected_latency_ns = max(int(estimated_latency_s * 1e9 / 4), 10_000)
    return ts


def settings_json(settings: ScenarioSettings) -> dict[str, Any]:
    return settings.to_json()
