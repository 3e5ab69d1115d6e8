"""Profiles: how big a measurement is, named once for the CLI and the notebooks.

- `ci`: the notebooks' smoke-test sizes in CI (tiny sweeps, short bounded timing);
- `quick`: `workbench bench --quick`, a short look at a task or a model file;
- `full`: the real study (the default of `workbench bench`).

A profile fixes the timing rule and a model file's default batch sizes; what each
task measures under a profile is the task's own preset table (`Task.presets`).
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.errors import UserError
from workbench.harness.timing import StopRule


@dataclass(frozen=True)
class Profile:
    name: str
    rule: StopRule  # how long each configuration is timed
    file_batch_sizes: tuple[int, ...]  # `workbench bench FILE` when --batch is not given
    summary: str


PROFILES: dict[str, Profile] = {
    "ci": Profile(
        "ci",
        # short, bounded by max_time so a slow artifact (e.g. an int8-dynamic CNN on a
        # small CPU) cannot eat the CI budget
        StopRule(warmup_iters=2, warmup_time_s=0.1, min_iters=20, min_time_s=0.3, max_time_s=2.0),
        (1,),
        "smoke-test sizes for CI",
    ),
    "quick": Profile(
        "quick",
        StopRule(min_iters=30, min_time_s=0.2, warmup_time_s=0.05),
        (1, 8, 64, 256),
        "a short look: few batch sizes, short timing",
    ),
    "full": Profile("full", StopRule(), (1,), "the real study"),
}
PROFILE_NAMES = tuple(PROFILES)


def get_profile(name: str) -> Profile:
    """The profile called `name`; a UserError listing the valid ones otherwise."""
    if name not in PROFILES:
        raise UserError(f"profile must be one of {', '.join(PROFILES)}, got {name!r}")
    return PROFILES[name]
