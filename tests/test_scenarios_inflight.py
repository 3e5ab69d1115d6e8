"""The asynchronous issue path's bookkeeping (workbench.scenarios.inflight): every LoadGen
sample completes exactly once, whether its reply arrives, fails, never comes before the
run closes, or the client refuses it; and the schedule seed reaches LoadGen."""

from __future__ import annotations

from workbench.scenarios.inflight import InFlight
from workbench.scenarios.settings import for_profile, loadgen_settings


def test_each_sample_completes_once_whatever_happens_to_it():
    completed: list[int] = []
    pending = {}

    def submit(index, done):
        if index == 3:
            raise ConnectionRefusedError("nobody listening")
        pending[index] = done

    flight = InFlight(submit, completed.append)
    for sample_id, index in ((10, 0), (11, 1), (12, 2), (13, 3)):
        flight.issue(sample_id, index)
    assert completed == [13] and flight.in_flight == 3
    pending[0](None)
    pending[1](RuntimeError("HTTP 503: draining"))
    assert completed == [13, 10, 11]
    flight.close("the run passed its maximum duration plus grace")
    assert sorted(completed) == [10, 11, 12, 13] and flight.in_flight == 0
    pending[2](None)  # a reply after the close: already completed, ignored
    flight.issue(14, 0)  # an issue after the close fails at once
    assert sorted(completed) == [10, 11, 12, 13, 14]
    stats = flight.stats
    assert stats.completed == 1 and stats.failed == 4
    reasons = dict(stats.failure_reasons)
    assert reasons["ConnectionRefusedError: nobody listening"] == 1
    assert reasons["RuntimeError: HTTP 503: draining"] == 1
    assert reasons["the run passed its maximum duration plus grace"] == 2
    assert len(stats.compute_s) == 1  # the one round trip that ended in a reply


def test_schedule_seed_reaches_loadgen():
    plain = for_profile("ci", "server", target_qps=10, latency_bound_ms=100)
    seeded = plain.with_(schedule_seed=7)
    default_seed = loadgen_settings(plain, 0, 0).schedule_rng_seed
    assert loadgen_settings(seeded, 0, 0).schedule_rng_seed == 7 != default_seed
    assert seeded.to_json()["schedule_seed"] == 7
