"""Two runs side by side: per matching configuration, the change in p50, p99 and
throughput, with a verdict that knows about noise.

The verdict comes from the raw per-call latencies each row keeps, in call order: a
bootstrap 95 % confidence interval of the ratio of medians (B over A) that resamples
blocks of consecutive calls, so a stretch of host load inside a run widens the interval.
A configuration is "slower" (or "faster") only when the interval excludes 1 AND the
point ratio moves by at least the noise floor (default 5 %): a tight interval around a
2 % drift on a shared host is real but not a change worth a verdict. Everything else
is "within noise". Where the runs were taken with `--repeats N`, the floor of a configuration grows
to the wider spread of its repeated p50s in either run: between-run drift that a
single timing loop cannot see. A configuration the harness flagged unstable in either run
(`stable` false: its p50 interval or its repeats spread too wide) is "unstable" and
never counted as a change. Rows without raw latencies get "no raw latencies".

What no statistic inside two runs can see is run-to-run drift: a host busier during one
whole run, another CPU frequency, another memory layout. Two back-to-back quick tabular
sweeps on the 2-core dev host differ by 5-20 % in many configurations with tight intervals,
so a gate's floor should come from an A/A pair of the same host: `calibrate` (CLI:
`--noise-from A0 A1`) measures, on one or more earlier pairs of identical runs, each
configuration's between-run |log ratio| of p50s and a run-wide quantile of it; `compare`
then raises each configuration's floor to the larger of its own A/A figure and the
run-wide one (one A/A pair is one draw of a configuration's drift, so its own figure alone
undershoots, see `NoiseCalibration.floor_for`). Each row says which floor it used and where it came from. Without a
calibration a warning says that between-run noise is not accounted for. A busy host
(load average above the cores, from the manifests) and a shift of the whole run are warned
about. The method in words: docs/method.md §13.

Between-run drift is what interleaving removes: `harness.runner.run_interleaved` times A
and B alternately in one session (A, B, then B, A, ... for several rounds per
configuration), so a host that gets busier slows both arms of a round alike.
`compare_interleaved` judges such a run from the per-round ratios p50(B) / p50(A): their
median and a bootstrap 95 % interval of that median over rounds (a sign test beside it);
"slower" needs the interval above 1 and the median ratio at least the floor above 1.
Each verdict row says which mode made it (`mode`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench import results
from workbench.analysis import tables
from workbench.analysis.recommend import CONFIG_KEYS
from workbench.errors import UserError

MATCH_KEYS = [*CONFIG_KEYS, "scenario"]  # a configuration, and the load it ran under
VERDICTS = ("slower", "faster", "within noise", "unstable", "no raw latencies")
DEFAULT_FLOOR = 0.05
N_BOOT = 1000
MAX_CALLS = 2000  # each side is thinned (evenly, in time order) to this many calls
N_BLOCKS = 20  # consecutive-call blocks resampled by the bootstrap


@dataclass
class NoiseCalibration:
    """Between-run noise measured on A/A pairs: per configuration key, the largest
    |log(p50 B / p50 A)| over the pairs, and the run-wide `quantile` of all of them."""

    per_config: dict[str, float]
    run_wide: float
    quantile: float
    sources: list[str]  # "A0 vs A1" per pair

    def floor_for(self, key: str) -> tuple[float, str]:
        """The floor (a fraction) this calibration sets for a configuration, and its source:
        the larger of its own A/A drift and the run-wide quantile. Measured on this host's
        tabular pairs, one configuration's drift in one pair barely predicts its drift in
        the next (the big movers change), so the own figure alone left 17-52 of 146 false
        verdicts; the run-wide quantile is what brings them to 0."""
        pairs = ", ".join(self.sources)
        wide = float(np.expm1(self.run_wide))
        own = self.per_config.get(key)
        if own is not None and np.expm1(own) > wide:
            return float(np.expm1(own)), f"A/A of this configuration ({pairs})"
        return wide, f"A/A p{self.quantile * 100:.0f} of all configurations ({pairs})"


@dataclass
class Comparison:
    run_a: str
    run_b: str
    table: pd.DataFrame  # one row per matched configuration
    only_a: pd.DataFrame  # configurations measured in A only
    only_b: pd.DataFrame
    fingerprint_diff: list[str] = field(default_factory=list)
    floor: float = DEFAULT_FLOOR
    warnings: list[str] = field(default_factory=list)  # host load, run-wide drift
    calibration: NoiseCalibration | None = None

    def counts(self) -> dict[str, int]:
        if self.table.empty:
            return {}
        return self.table["verdict"].value_counts().to_dict()

    def regressions(self, threshold: float) -> pd.DataFrame:
        """Matched configurations judged slower whose p50 grew by more than `threshold`."""
        if self.table.empty:
            return self.table
        slower = self.table[self.table["verdict"] == "slower"]
        return slower[slower["p50 ratio"] - 1 > threshold]

    def summary(self) -> str:
        counts = self.counts()
        parts = [f"{counts.get(v, 0)} {v}" for v in VERDICTS if counts.get(v)]
        text = (
            f"{len(self.table)} matching configurations: " + ", ".join(parts)
            if parts
            else "no matching configurations"
        )
        if len(self.only_a) or len(self.only_b):
            text += f"; {len(self.only_a)} only in A, {len(self.only_b)} only in B"
        return text


def _blocks(calls: np.ndarray, n_blocks: int) -> np.ndarray:
    """The calls in time order, thinned evenly to at most MAX_CALLS, cut into `n_blocks`
    contiguous blocks of equal length (rows: blocks)."""
    if len(calls) > MAX_CALLS:
        calls = calls[np.linspace(0, len(calls) - 1, MAX_CALLS).astype(int)]
    length = len(calls) // n_blocks
    return calls[: length * n_blocks].reshape(n_blocks, length)


def _block_medians(calls: np.ndarray, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Bootstrap medians that resample whole blocks of consecutive calls: a burst of host
    load lasts many calls, so resampling single calls would call a disturbed stretch
    precise; resampling blocks widens the interval by as much as the run drifted."""
    n_blocks = int(min(N_BLOCKS, max(2, len(calls) // 5)))
    blocks = _blocks(calls, n_blocks)
    picks = rng.integers(0, n_blocks, size=(n_boot, n_blocks))
    return np.median(blocks[picks].reshape(n_boot, -1), axis=1)


def _median_ratio_ci(
    a: np.ndarray, b: np.ndarray, rng: np.random.Generator, n_boot: int = N_BOOT
) -> tuple[float, float, float]:
    """median(b)/median(a) and its block-bootstrap 95 % percentile interval."""
    point = float(np.median(b) / np.median(a))
    ratios = _block_medians(b, rng, n_boot) / _block_medians(a, rng, n_boot)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return point, float(low), float(high)


def _verdict(point: float, low: float, high: float, floor: float) -> str:
    if low > 1 and point - 1 >= floor:
        return "slower"
    if high < 1 and 1 - point >= floor:
        return "faster"
    return "within noise"


def _stable(row: pd.Series) -> bool:
    """False only where the harness flagged the row unstable (None: not judged)."""
    value = row.get("stable")
    return True if value is None or pd.isna(value) else bool(value)


def _repeat_spread(row: pd.Series) -> float:
    """The largest relative deviation of a row's repeated p50s (0 without repeats)."""
    value = row.get("repeat_p50_max_dev")
    try:
        return 0.0 if value is None or pd.isna(value) else float(value)
    except (TypeError, ValueError):
        return 0.0


def _calls(value: Any) -> np.ndarray | None:
    if isinstance(value, (list, np.ndarray)) and len(value) >= 5:
        return np.asarray(value, dtype=float)
    return None


def _key_frame(frame: pd.DataFrame) -> pd.DataFrame:
    ok = tables.ok_rows(frame)
    keys = [k for k in MATCH_KEYS if k in ok]
    ok = ok.sort_values("timestamp").drop_duplicates(subset=keys, keep="last")
    ok["_key"] = [" | ".join(map(str, values)) for values in ok[keys].itertuples(index=False)]
    return ok.set_index("_key")


def fingerprint_diff(fa: dict[str, Any], fb: dict[str, Any]) -> list[str]:
    """What differs between two environment fingerprints that can move timings: CPU,
    cores, GPU, OS release, Python, library versions and thread variables (timestamps,
    hostnames and git state aside)."""
    out = []
    if not fa or not fb:
        return ["a fingerprint is missing: the runs cannot be checked for a changed host"]
    pairs = [
        (f"cpu {key}", fa.get("cpu", {}).get(key), fb.get("cpu", {}).get(key))
        for key in ("model", "logical_cores", "physical_cores", "affinity_cores")
    ]
    pairs.append(("gpu", _gpus(fa), _gpus(fb)))
    pairs.append(("os release", fa.get("os", {}).get("release"), fb.get("os", {}).get("release")))
    pairs.append(
        ("python", fa.get("python", {}).get("version"), fb.get("python", {}).get("version"))
    )
    for section in ("libraries", "threads"):
        sa, sb = fa.get(section) or {}, fb.get(section) or {}
        pairs += [(name, sa.get(name), sb.get(name)) for name in sorted(set(sa) | set(sb))]
    for name, va, vb in pairs:
        if va != vb:
            out.append(
                f"{name}: {va if va is not None else 'absent'} -> {vb if vb is not None else 'absent'}"
            )
    return out


def _gpus(fp: dict[str, Any]) -> str:
    gpus = fp.get("gpu", {}).get("gpus", [])
    return (
        ", ".join(str(g.get("name", g)) if isinstance(g, dict) else str(g) for g in gpus) or "none"
    )


def calibrate(
    pairs: list[tuple[pd.DataFrame, pd.DataFrame]],
    names: list[str] | None = None,
    quantile: float = 0.95,
) -> NoiseCalibration:
    """Between-run noise from A/A pairs of identical runs (module doc)."""
    if not pairs:
        raise UserError("a noise calibration needs at least one A/A pair of runs")
    if not 0 < quantile <= 1:
        raise UserError(f"the calibration quantile must be in (0, 1], got {quantile}")
    per_config: dict[str, float] = {}
    for frame_0, frame_1 in pairs:
        a, b = _key_frame(frame_0), _key_frame(frame_1)
        for key in (k for k in a.index if k in b.index):
            pa, pb = a.loc[key, "latency_ms_p50"], b.loc[key, "latency_ms_p50"]
            if pd.isna(pa) or pd.isna(pb) or pa <= 0 or pb <= 0:
                continue
            drift = abs(float(np.log(pb / pa)))
            per_config[key] = max(per_config.get(key, 0.0), drift)
    if not per_config:
        raise UserError(
            "the A/A runs share no measured configuration: give --noise-from two runs of "
            "the same sweep"
        )
    run_wide = float(np.quantile(list(per_config.values()), quantile))
    names = names or [f"pair {i + 1}" for i in range(len(pairs))]
    return NoiseCalibration(per_config, run_wide, quantile, names)


def compare(
    frame_a: pd.DataFrame,
    frame_b: pd.DataFrame,
    manifest_a: dict[str, Any] | None = None,
    manifest_b: dict[str, Any] | None = None,
    floor: float = DEFAULT_FLOOR,
    seed: int = 0,
    calibration: NoiseCalibration | None = None,
) -> Comparison:
    """Match the ok rows of two runs by configuration and judge each change (module doc)."""
    if not 0 <= floor < 1:
        raise UserError(f"the noise floor must be a fraction in [0, 1), got {floor}")
    run_a = str((manifest_a or {}).get("run_id", "A"))
    run_b = str((manifest_b or {}).get("run_id", "B"))
    a, b = _key_frame(frame_a), _key_frame(frame_b)
    common = [k for k in a.index if k in b.index]
    rng = np.random.default_rng(seed)
    rows = []
    for key in common:
        ra, rb = a.loc[key], b.loc[key]
        calls_a, calls_b = _calls(ra["latencies_ms"]), _calls(rb["latencies_ms"])
        row = {k: ra[k] for k in MATCH_KEYS if k in a.columns}
        threads = "" if pd.isna(ra["threads"]) else f" t{int(ra['threads'])}"
        row["config"] = f"{ra['model']} {tables.label(ra)} b{int(ra['batch_size'])}{threads}"
        row["p50 A ms"], row["p50 B ms"] = ra["latency_ms_p50"], rb["latency_ms_p50"]
        row["p99 A ms"], row["p99 B ms"] = ra["latency_ms_p99"], rb["latency_ms_p99"]
        row["items/s A"], row["items/s B"] = (
            ra["throughput_items_per_s"],
            rb["throughput_items_per_s"],
        )
        row["p99 change"] = rb["latency_ms_p99"] / ra["latency_ms_p99"] - 1
        row["throughput change"] = rb["throughput_items_per_s"] / ra["throughput_items_per_s"] - 1
        # a run whose own repeated timing loops disagree by x % cannot vouch for a change
        # smaller than that: the floor grows to the wider repeat spread of the two rows
        spread = max(_repeat_spread(ra), _repeat_spread(rb))
        row["floor"], row["floor source"] = floor, f"default {floor:.0%}"
        if spread > row["floor"]:
            row["floor"], row["floor source"] = spread, "repeats spread"
        if calibration is not None:
            aa, source = calibration.floor_for(key)
            if aa > row["floor"]:
                row["floor"], row["floor source"] = aa, source
        if calls_a is not None and calls_b is not None:
            point, low, high = _median_ratio_ci(calls_a, calls_b, rng)
            verdict = _verdict(point, low, high, row["floor"])
            if verdict != "within noise" and not (_stable(ra) and _stable(rb)):
                verdict = "unstable"
        else:
            point = rb["latency_ms_p50"] / ra["latency_ms_p50"]
            low = high = float("nan")
            verdict = "no raw latencies"
        row["p50 ratio"], row["ratio CI low"], row["ratio CI high"] = point, low, high
        row["p50 change"] = point - 1
        row["verdict"] = verdict
        row["mode"] = SEPARATE
        rows.append(row)
    table = pd.DataFrame(rows)
    if not table.empty:
        order = {"slower": 0, "faster": 1, "unstable": 2, "no raw latencies": 3, "within noise": 4}
        table = table.sort_values(
            ["verdict", "p50 change"],
            key=lambda s: s.map(order) if s.name == "verdict" else -s.abs(),
        ).reset_index(drop=True)
    cols = [k for k in MATCH_KEYS if k in a.columns]
    only_a = a.loc[[k for k in a.index if k not in b.index], cols].reset_index(drop=True)
    only_b = b.loc[[k for k in b.index if k not in a.index], cols].reset_index(drop=True)
    diff = fingerprint_diff(
        (manifest_a or {}).get("fingerprint", {}), (manifest_b or {}).get("fingerprint", {})
    )
    warnings = _load_warnings(manifest_a or {}, manifest_b or {}, ("A", "B"))
    if calibration is None:
        warnings.append(
            "between-run noise is not accounted for: verdicts use within-run statistics and "
            f"a {floor:.0%} floor only, and identical runs on a shared host can differ by "
            "more; calibrate with --noise-from A0 A1 (an earlier pair of identical runs)"
        )
    if len(table) >= 5:
        drift = float(np.median(table["p50 ratio"].dropna()))
        if abs(drift - 1) >= floor / 2:
            warnings.append(
                f"the median configuration moved by {drift - 1:+.1%}: a shift of the whole run "
                "(host load, CPU frequency, or a change that touches everything, such as a "
                "library): rerun both on a quiet host before trusting per-configuration verdicts"
            )
    return Comparison(run_a, run_b, table, only_a, only_b, diff, floor, warnings, calibration)


SEPARATE = "separate runs"


def sign_test(successes: int, n: int) -> float:
    """Two-sided exact binomial test of `successes` in `n` against p = 1/2 (scipy's
    `binomtest` for this one case; a few lines, so no scipy import on the CLI's path)."""
    extreme = max(successes, n - successes)
    tail = sum(math.comb(n, k) for k in range(extreme, n + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_verdict(
    p50_a: np.ndarray,
    p50_b: np.ndarray,
    floor: float,
    rng: np.random.Generator,
    n_boot: int = N_BOOT,
) -> dict[str, Any]:
    """The verdict of interleaved rounds: per round the ratio p50 B / p50 A; their median
    and a bootstrap 95 % interval of the median (resampling rounds). Slower (faster) when
    the interval lies above (below) 1 and the median moved by at least `floor`. The
    two-sided sign test of "B slower in a round" against a coin is reported beside it (on
    a host loaded past its cores it rejected real 10 % slowdowns in 8 rounds, so it does
    not veto)."""
    ratios = np.asarray(p50_b, float) / np.asarray(p50_a, float)
    point = float(np.median(ratios))
    picks = rng.integers(0, len(ratios), size=(n_boot, len(ratios)))
    low, high = (float(v) for v in np.percentile(np.median(ratios[picks], axis=1), [2.5, 97.5]))
    slower_rounds = int((ratios > 1).sum())
    p_value = sign_test(slower_rounds, len(ratios))
    verdict = _verdict(point, low, high, floor)
    return {
        "p50 ratio": point,
        "ratio CI low": low,
        "ratio CI high": high,
        "rounds": len(ratios),
        "rounds B slower": slower_rounds,
        "sign test p": p_value,
        "verdict": verdict,
    }


def compare_interleaved(
    frame: pd.DataFrame,
    manifest: dict[str, Any] | None = None,
    floor: float = DEFAULT_FLOOR,
    seed: int = 0,
) -> Comparison:
    """Judge an interleaved run (rows with `compare_arm` A/B and `compare_round`): per
    configuration, the paired per-round p50 ratios (`paired_verdict`)."""
    if not 0 <= floor < 1:
        raise UserError(f"the noise floor must be a fraction in [0, 1), got {floor}")
    if frame.empty or "compare_arm" not in frame or frame["compare_arm"].isna().all():
        raise UserError(
            "this run has no interleaved A/B rows: compare two runs (workbench compare A B), "
            "or measure A and B interleaved (benchmarks/compare_interleaved.py)"
        )
    ok = tables.ok_rows(frame)
    ok = ok[ok["compare_arm"].isin(["A", "B"])]
    keys = [k for k in MATCH_KEYS if k in ok and k != "runtime_options"]
    rng = np.random.default_rng(seed)
    rounds = int(ok["compare_round"].max()) + 1 if not ok.empty else 0
    mode = f"interleaved ({rounds} rounds)"
    rows = []
    for _, group in ok.groupby(keys, sort=True, dropna=False):
        a = group[group["compare_arm"] == "A"].set_index("compare_round")
        b = group[group["compare_arm"] == "B"].set_index("compare_round")
        both = sorted(set(a.index) & set(b.index))
        first = group.iloc[0]
        threads = "" if pd.isna(first["threads"]) else f" t{int(first['threads'])}"
        row = {k: first[k] for k in keys}
        row["config"] = (
            f"{first['model']} {tables.label(first)} b{int(first['batch_size'])}{threads}"
        )
        pa, pb = a.loc[both, "latency_ms_p50"], b.loc[both, "latency_ms_p50"]
        row["p50 A ms"], row["p50 B ms"] = float(pa.median()), float(pb.median())
        row["p99 A ms"], row["p99 B ms"] = (
            float(a.loc[both, "latency_ms_p99"].median()),
            float(b.loc[both, "latency_ms_p99"].median()),
        )
        row["items/s A"] = float(a.loc[both, "throughput_items_per_s"].median())
        row["items/s B"] = float(b.loc[both, "throughput_items_per_s"].median())
        row["p99 change"] = row["p99 B ms"] / row["p99 A ms"] - 1
        row["throughput change"] = row["items/s B"] / row["items/s A"] - 1
        row["floor"], row["floor source"] = floor, f"default {floor:.0%}"
        if len(both) >= 2:
            row.update(paired_verdict(pa.to_numpy(), pb.to_numpy(), floor, rng))
        else:
            row.update({"p50 ratio": float("nan"), "verdict": "no raw latencies"})
        row["p50 change"] = row["p50 ratio"] - 1
        row["mode"] = mode
        rows.append(row)
    table = pd.DataFrame(rows)
    if not table.empty:
        order = {"slower": 0, "faster": 1, "unstable": 2, "no raw latencies": 3, "within noise": 4}
        table = table.sort_values(
            ["verdict", "p50 change"],
            key=lambda s: s.map(order) if s.name == "verdict" else -s.abs(),
        ).reset_index(drop=True)
    run_id = str((manifest or {}).get("run_id", "A/B"))
    empty = pd.DataFrame(columns=keys)
    warnings = _load_warnings(manifest or {}, {}, ("A/B", "-"))
    return Comparison(
        f"{run_id} arm A", f"{run_id} arm B", table, empty, empty, [], floor, warnings
    )


def _load_warnings(ma: dict[str, Any], mb: dict[str, Any], names: tuple[str, str]) -> list[str]:
    """A warning per run whose host was busier than its cores while it ran."""
    out = []
    for name, m in zip(names, (ma, mb), strict=True):
        cores = m.get("fingerprint", {}).get("cpu", {}).get("logical_cores")
        loads = [v[0] for v in (m.get("load_avg") or {}).values() if v]
        if cores and loads and max(loads) > cores:
            out.append(
                f"run {name} ran on a busy host: 1-minute load average up to {max(loads):.1f} on "
                f"{cores} cores, so its timings are contended"
            )
    return out


def parse_threshold(text: str) -> float:
    """`5%` or `0.05` -> 0.05."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UserError(f"a regression threshold looks like 5% or 0.05, got {text!r}") from None
    if not 0 <= value < 10:
        raise UserError(f"the regression threshold must be between 0% and 1000%, got {text!r}")
    return value


def load_run(run_id: str) -> tuple[dict[str, Any], pd.DataFrame]:
    """A run's manifest and rows, by id, unique id prefix, or `latest` / `previous`."""
    manifests = results.load_manifests()
    if not manifests:
        raise UserError("no runs yet: run `workbench bench ...` first")
    if run_id in ("latest", "previous"):
        index = -1 if run_id == "latest" else -2
        if len(manifests) < -index:
            raise UserError(f"there is no {run_id} run: only {len(manifests)} run(s) stored")
        manifest = manifests[index]
    else:
        found = [m for m in manifests if str(m.get("run_id", "")).startswith(run_id)]
        if len(found) != 1:
            known = ", ".join(m["run_id"] for m in manifests[-5:])
            what = "no run" if not found else f"{len(found)} runs match"
            raise UserError(f"{what} {run_id!r}: give a full run id (latest: {known})")
        manifest = found[0]
    return manifest, results.load(run_ids=[manifest["run_id"]])


def load_calibration(run_ids: list[str], quantile: float = 0.95) -> NoiseCalibration:
    """A calibration from stored runs given as A/A pairs: A0 A1 [A2 A3 ...]."""
    if len(run_ids) < 2 or len(run_ids) % 2:
        raise UserError(
            f"--noise-from takes pairs of identical runs (A0 A1 [A2 A3 ...]), got {len(run_ids)} "
            "run id(s)"
        )
    loaded = [load_run(r) for r in run_ids]
    pairs = [(loaded[i][1], loaded[i + 1][1]) for i in range(0, len(loaded), 2)]
    names = [
        f"{loaded[i][0]['run_id']} vs {loaded[i + 1][0]['run_id']}"
        for i in range(0, len(loaded), 2)
    ]
    return calibrate(pairs, names, quantile)
