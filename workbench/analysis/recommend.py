"""Which configuration to ship: the best one within a budget, its runners-up, the Pareto front.

Modelled on Triton Model Analyzer's "best configuration within a latency budget" and
Olive's goals: the reader states constraints (p99 at a batch size, a throughput
target, parity or an accuracy-drop limit, a size limit, a device) and gets one
configuration (format x precision x runtime x batch x threads) with its margin to
the tightest constraint, the runners-up with what each gives up, every rejected
configuration with its reason, and the latency x accuracy x size front. It only
reads measured rows; it never measures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from workbench.analysis import tables
from workbench.columns import format_value
from workbench.errors import UserError
from workbench.formats import SOURCE_FRAMEWORK_OF_NATIVE

CONFIG_KEYS = [
    "task",
    "model",
    "source_framework",
    "format",
    "precision",
    "runtime",
    "device",
    "threads",
    "batch_size",
    "seq_len",
]
OBJECTIVES = ("latency", "throughput")
# The latency statistics a recommendation may rank by, tail first: a profile that measures
# too few calls for a p99 (100) is ranked by the highest percentile every candidate has.
LATENCY_STATS = (
    ("p99", "latency_ms_p99"),
    ("p95", "latency_ms_p95"),
    ("p90", "latency_ms_p90"),
    ("p50", "latency_ms_p50"),
)
TAIL = "latency_ms_tail"  # the column holding the chosen statistic


@dataclass(frozen=True)
class Constraints:
    """What a configuration must meet. None leaves a constraint out."""

    p99_ms: float | None = None  # p99 latency per call at most this
    batch_size: int | None = None  # only this batch size
    min_throughput: float | None = None  # items/s at least this
    max_accuracy_drop: float | None = None  # points below the FP32 reference; None: parity
    max_size_mb: float | None = None  # artifact size at most this
    device: str | None = None  # e.g. cpu, cuda:0
    model: str | None = None  # one model variant of the task (None: every variant competes)
    objective: str | None = None  # latency (lowest p99) or throughput; None: from the rest

    def __post_init__(self) -> None:
        for name in ("p99_ms", "min_throughput", "max_size_mb"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UserError(f"{name} must be a positive number, got {value}")
        if self.max_accuracy_drop is not None and self.max_accuracy_drop < 0:
            raise UserError(f"max_accuracy_drop must be >= 0 points, got {self.max_accuracy_drop}")
        if self.batch_size is not None and self.batch_size <= 0:
            raise UserError(f"batch_size must be a positive integer, got {self.batch_size}")
        if self.objective is not None and self.objective not in OBJECTIVES:
            raise UserError(f"objective must be one of {', '.join(OBJECTIVES)}")

    @property
    def goal(self) -> str:
        """Throughput is maximised under a latency budget; otherwise the lowest p99 wins."""
        if self.objective:
            return self.objective
        return (
            "throughput" if self.p99_ms is not None and self.min_throughput is None else "latency"
        )

    def describe(self) -> str:
        parts = []
        if self.p99_ms is not None:
            parts.append(f"p99 <= {self.p99_ms:g} ms")
        if self.batch_size is not None:
            parts.append(f"batch {self.batch_size}")
        if self.min_throughput is not None:
            parts.append(f">= {self.min_throughput:g} items/s")
        if self.max_accuracy_drop is None:
            parts.append("parity must pass")
        else:
            parts.append(f"accuracy drop <= {self.max_accuracy_drop:g} points")
        if self.max_size_mb is not None:
            parts.append(f"size <= {self.max_size_mb:g} MB")
        if self.device:
            parts.append(f"device {self.device}")
        if self.model:
            parts.append(f"model {self.model}")
        goal = "highest throughput" if self.goal == "throughput" else "lowest p99"
        return ", ".join(parts) + f"; best = {goal}"


@dataclass
class Recommendation:
    constraints: Constraints
    best: dict[str, Any] | None
    margin: str
    runners_up: pd.DataFrame
    rejected: pd.DataFrame
    front: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    latency_stat: str = "p99"  # the statistic the ranking and margins use (see LATENCY_STATS)

    def summary(self) -> str:
        """One line: the answer, or why there is none (the rejected rows' reasons)."""
        if self.best is None:
            return (
                f"No configuration meets {self.constraints.describe()}: "
                + "; ".join([*self.notes, *self.rejection_counts()])
                or "no ok rows"
            ).rstrip(": ") + "."
        return f"Ship {describe_config(self.best)}: {self.margin}."

    def rejection_counts(self, most: int = 3) -> list[str]:
        """`<reason> (<n> of <m> rows)` for the most common reasons rows were rejected."""
        if self.rejected.empty:
            return []
        rows, c = self.rejected, self.constraints
        for key, value in (("device", c.device), ("model", c.model), ("batch_size", c.batch_size)):
            if value is not None and key in rows:  # rows outside the scope asked about
                rows = rows[rows[key] == value]
        if rows.empty:
            rows = self.rejected
        counts = rows["why"].value_counts()
        total = len(rows)
        return [f"{why} ({n} of {total} rows)" for why, n in list(counts.items())[:most]]

    def to_json(self) -> dict[str, Any]:
        return {
            "constraints": self.constraints.describe(),
            "latency_stat": self.latency_stat,
            "best": None if self.best is None else _plain(self.best),
            "margin": self.margin,
            "summary": self.summary(),
            "runners_up": [_plain(r) for r in self.runners_up.to_dict(orient="records")],
            "rejected": [_plain(r) for r in self.rejected.to_dict(orient="records")],
            "pareto_front": [
                _plain(r) for r in self.front[self.front["on_front"]].to_dict(orient="records")
            ]
            if not self.front.empty
            else [],
        }


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if key == "latencies_ms":
            continue
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, float) and value != value:
            value = None
        out[key] = value
    return out


def describe_config(row: dict[str, Any] | pd.Series) -> str:
    """`mlp torch/onnx/int8-dynamic on onnxruntime (cpu), batch 8, 2 threads`."""
    threads = row.get("threads")
    threads_text = "" if threads is None or pd.isna(threads) else f", {int(threads)} threads"
    return f"{row['model']} {tables.label(row)}, batch {int(row['batch_size'])}{threads_text}"


def _latest(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: the latest measurement where several runs have it."""
    keys = [k for k in CONFIG_KEYS if k in frame]
    ordered = frame.sort_values("timestamp", na_position="first")
    return ordered.drop_duplicates(subset=keys, keep="last").reset_index(drop=True)


def _reference_quality(ok: pd.DataFrame) -> pd.Series:
    """Per task: the FP32 reference accuracy, the best over the task's model variants (from
    the native source models where measured), so a smaller variant's lower accuracy counts
    as a drop too."""
    fp32 = ok[(ok["precision"] == "fp32") & ok["accuracy"].notna()]
    native = fp32[fp32["format"].isin(list(SOURCE_FRAMEWORK_OF_NATIVE))]
    chosen = native if not native.empty else fp32
    return chosen.groupby("task", dropna=False)["accuracy"].max().rename("ref_accuracy")


def _check(row: pd.Series, c: Constraints, stat: str = "p99") -> list[str]:
    """Why `row` fails the constraints (empty: it meets them all); `stat` names the latency
    statistic in the row's `latency_ms_tail` that ranks the rows."""
    why = []
    if c.device and row["device"] != c.device:
        why.append(f"device {row['device']}, not {c.device}")
    if c.model and row["model"] != c.model:
        why.append(f"model {row['model']}, not {c.model}")
    if c.batch_size is not None and row["batch_size"] != c.batch_size:
        why.append(f"batch {int(row['batch_size'])}, not {c.batch_size}")
    p99 = row.get("latency_ms_p99")
    if c.goal == "latency" and c.p99_ms is None and pd.isna(row.get(TAIL)):
        why.append(f"no {stat} measured (too few calls)")
    if (
        c.goal == "throughput"
        and c.min_throughput is None
        and pd.isna(row.get("throughput_items_per_s"))
    ):
        why.append("no throughput measured")
    if c.p99_ms is not None:
        if pd.isna(p99):  # a p99 budget is judged on a p99, never on a lower percentile
            why.append("no p99 measured (too few calls for the p99 budget)")
        elif p99 > c.p99_ms:
            why.append(f"p99 {p99:.3g} ms > {c.p99_ms:g} ms")
    thr = row.get("throughput_items_per_s")
    if c.min_throughput is not None:
        if pd.isna(thr):
            why.append("no throughput measured")
        elif thr < c.min_throughput:
            why.append(f"{thr:.4g} items/s < {c.min_throughput:g}")
    size = row.get("model_size_bytes")
    if c.max_size_mb is not None:
        if pd.isna(size):
            why.append("size unknown")
        elif size / 1e6 > c.max_size_mb:
            why.append(f"size {size / 1e6:.3g} MB > {c.max_size_mb:g} MB")
    native = row["format"] in SOURCE_FRAMEWORK_OF_NATIVE
    if c.max_accuracy_drop is None:
        parity = row.get("parity_pass")  # True / False (numpy or Python) / None
        if pd.isna(parity):
            # The fp32 source model is the reference; its bf16 (autocast) rows are not.
            if not native or row.get("precision") != "fp32":
                why.append("parity not checked")
        elif not bool(parity):
            rule = row.get("parity_rule")
            why.append("parity failed" + (f" ({rule} rule)" if isinstance(rule, str) else ""))
    else:
        drop = row.get("accuracy_drop")
        if pd.isna(drop):
            why.append("no accuracy measured")
        elif drop > c.max_accuracy_drop:
            why.append(f"accuracy drop {drop:.2f} points > {c.max_accuracy_drop:g}")
    return why


def _score(row: pd.Series, goal: str) -> float:
    """Larger is better."""
    if goal == "throughput":
        return float(row["throughput_items_per_s"])
    return -float(row[TAIL])


def _margin(row: pd.Series, c: Constraints, stat: str = "p99") -> str:
    """The slack to each stated numeric constraint, tightest first."""
    slack = []
    if c.p99_ms is not None:
        slack.append(
            (
                (c.p99_ms - row["latency_ms_p99"]) / c.p99_ms,
                f"p99 {row['latency_ms_p99']:.3g} ms",
                f"under the {c.p99_ms:g} ms budget",
            )
        )
    if c.min_throughput is not None:
        thr = row["throughput_items_per_s"]
        slack.append(
            (
                (thr - c.min_throughput) / c.min_throughput,
                f"{thr:.4g} items/s",
                f"over the {c.min_throughput:g} items/s target",
            )
        )
    if c.max_size_mb is not None:
        mb = row["model_size_bytes"] / 1e6
        slack.append(
            (
                (c.max_size_mb - mb) / c.max_size_mb,
                f"{mb:.3g} MB",
                f"under the {c.max_size_mb:g} MB limit",
            )
        )
    if c.max_accuracy_drop is not None and pd.notna(row.get("accuracy_drop")):
        drop = row["accuracy_drop"]
        slack.append((None, f"accuracy drop {drop:.2f} points", f"(limit {c.max_accuracy_drop:g})"))
    numeric = sorted((s for s in slack if s[0] is not None), key=lambda s: s[0])
    text = [f"{what} ({frac:.0%} {where})" for frac, what, where in numeric]
    text += [f"{what} {where}" for frac, what, where in slack if frac is None]
    if c.p99_ms is None and c.min_throughput is None:  # the speed, for context
        text.insert(
            0,
            f"{stat} {format_value(row[TAIL], 'ms')} ms, "
            f"{format_value(row['throughput_items_per_s'], 'rate')} items/s",
        )
    return "; ".join(text) if slack else text[0] + " (no numeric budget given)"


def _gives_up(row: pd.Series, best: pd.Series, stat: str = "p99") -> str:
    """What choosing `row` instead of `best` costs (and what it gains)."""
    parts = []
    for field_, name, fmt, higher_better in (
        (TAIL, stat, "{:+.0%}", False),
        ("throughput_items_per_s", "throughput", "{:+.0%}", True),
        ("model_size_bytes", "size", "{:+.0%}", False),
    ):
        a, b = row.get(field_), best.get(field_)
        if pd.isna(a) or pd.isna(b) or not b:
            continue
        change = a / b - 1
        if abs(change) < 0.005:
            continue
        worse = (change < 0) if higher_better else (change > 0)
        parts.append(f"{name} {fmt.format(change)}" + (" (worse)" if worse else " (better)"))
    qa, qb = row.get("accuracy"), best.get("accuracy")
    if pd.notna(qa) and pd.notna(qb) and abs(qa - qb) >= 5e-5:
        parts.append(f"accuracy {100 * (qa - qb):+.2f} points")
    return ", ".join(parts) or "same figures"


def recommend(
    frame: pd.DataFrame, constraints: Constraints | None = None, top: int = 3
) -> Recommendation:
    """The best configuration of `frame`'s ok rows under `constraints` (see the module doc)."""
    c = constraints or Constraints()
    ok = _latest(tables.ok_rows(frame)) if not frame.empty else frame
    notes = []
    models = sorted(set(ok["model"].dropna())) if not ok.empty else []
    if c.model and not ok.empty and c.model not in models:
        notes.append(f"no row of model {c.model} (measured: {', '.join(models)})")
    elif not c.model and len(models) > 1 and c.max_accuracy_drop is None:
        notes.append(
            f"{len(models)} model variants ({', '.join(models)}) compete on speed alone: give "
            "a model or an accuracy-drop limit to weigh their accuracy"
        )
    if c.device and not ok.empty and c.device not in set(ok["device"]):
        notes.append(
            f"no row on device {c.device} (measured: {', '.join(sorted(set(ok['device'])))})"
        )
    if ok.empty:
        empty = pd.DataFrame()
        return Recommendation(c, None, "", empty, empty, empty, notes or ["no ok rows"])
    ref = _reference_quality(ok)
    ok = ok.join(ref, on="task") if not ref.empty else ok.assign(ref_accuracy=float("nan"))
    ok["accuracy_drop"] = 100 * (ok["ref_accuracy"].astype(float) - ok["accuracy"].astype(float))
    stat = latency_stat(ok, c)
    ok[TAIL] = ok[dict(LATENCY_STATS)[stat]].astype(float)
    if stat != "p99":
        notes.append(
            f"ranked by {stat} latency: too few calls per configuration for a p99 "
            "(a longer profile measures one)"
        )
    reasons = ok.apply(lambda r: _check(r, c, stat), axis=1)
    feasible = ok[reasons.map(len) == 0].copy()
    rejected = ok[reasons.map(len) > 0].copy()
    rejected["why"] = reasons[reasons.map(len) > 0].map("; ".join)
    shown = [k for k in CONFIG_KEYS if k in ok and k != "task"]
    metrics = [
        "latency_ms_p50",
        "latency_ms_p99",
        "throughput_items_per_s",
        "model_size_bytes",
        "accuracy",
    ]
    if stat not in ("p50", "p99"):
        metrics.insert(1, dict(LATENCY_STATS)[stat])
    extra = [k for k in ("parity_rule", "parity_reason") if k in ok]
    rejected = rejected[[*shown, *metrics, *extra, "why"]].reset_index(drop=True)
    batch = c.batch_size
    if feasible.empty:
        return Recommendation(
            c, None, "", pd.DataFrame(), rejected, pd.DataFrame(), notes, latency_stat=stat
        )
    feasible["score"] = feasible.apply(lambda r: _score(r, c.goal), axis=1)
    feasible = feasible.sort_values("score", ascending=False).reset_index(drop=True)
    best = feasible.iloc[0]
    runners = feasible.iloc[1 : 1 + top].copy()
    runners["gives up"] = runners.apply(lambda r: _gives_up(r, best, stat), axis=1)
    runners = runners[[*shown, *metrics, "gives up"]].reset_index(drop=True)
    front_batch = batch if batch is not None else int(best["batch_size"])
    front = _front(feasible, front_batch, stat)
    return Recommendation(
        c, dict(best), _margin(best, c, stat), runners, rejected, front, notes, latency_stat=stat
    )


def latency_stat(ok: pd.DataFrame, c: Constraints) -> str:
    """The latency statistic to rank `ok` by: p99 under a p99 budget; otherwise the highest
    percentile that every row in the constraints' scope (device, model, batch) measured,
    so a ci profile's few calls still get an answer, named by what it is."""
    if c.p99_ms is not None:
        return "p99"
    scope = ok
    for key, value in (("device", c.device), ("model", c.model), ("batch_size", c.batch_size)):
        if value is not None:
            scope = scope[scope[key] == value]
    if scope.empty:
        return "p99"
    for stat, column in LATENCY_STATS:
        if column in scope and scope[column].notna().all():
            return stat
    for stat, column in LATENCY_STATS:  # none measured by all: the tail the most rows have
        if column in scope and scope[column].notna().any():
            return stat
    return "p99"


def _front(feasible: pd.DataFrame, batch: int, stat: str = "p99") -> pd.DataFrame:
    """Latency (the ranking statistic, column `latency_ms_<stat>`) x quality x size front
    among the feasible rows at `batch`."""
    part = feasible[feasible["batch_size"] == batch].copy()
    # tables.pareto works on p50; rank on the statistic the recommendation uses.
    part["latency_ms_p50"] = part[TAIL]
    front = tables.pareto(part.assign(status="ok"), batch_size=batch)
    return front.rename(columns={"latency_ms_p50": f"latency_ms_{stat}"})


# How `readable` writes each number of `per_batch_and_device` (workbench.columns kinds).
SHIP_KINDS = {"latency ms": "ms", "items/s": "rate", "of": "count", "accuracy": "ratio"}


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """`per_batch_and_device`'s table with its numbers written as the CLI writes them
    (`3.25`, `93,230`, speedup `4.2x`), for printing."""
    out = table.astype(object).copy()
    for column, kind in SHIP_KINDS.items():
        if column in out:
            out[column] = [format_value(v, kind) for v in table[column]]
    if "speedup" in out:
        out["speedup"] = [
            "-" if pd.isna(v) else (f"{v:.2g}x" if v < 100 else f"{v:,.0f}x")
            for v in table["speedup"]
        ]
    return out.fillna("-")


def per_batch_and_device(frame: pd.DataFrame) -> pd.DataFrame:
    """For each (model, device, batch size): the lowest-p99 configuration whose parity passes,
    with its p50 speedup over the source model in FP32 (or over the slowest configuration):
    the answer the run report opens with."""
    ok = tables.ok_rows(frame)
    columns = [
        "model",
        "device",
        "batch",
        "recommended",
        "latency",  # which statistic: p99, or p90/p50 where too few calls were measured
        "latency ms",
        "items/s",
        "speedup",
        "over",
        "of",
        "accuracy",
    ]
    rows = []
    if ok.empty:
        return pd.DataFrame(columns=columns)
    for (model, device, batch), candidates in ok.groupby(
        ["model", "device", "batch_size"], sort=True
    ):
        rec = recommend(
            frame, Constraints(model=model, device=device, batch_size=int(batch)), top=0
        )
        head = {"model": model, "device": device, "batch": int(batch)}
        if rec.best is None:
            why = "; ".join(rec.rejection_counts(2))
            rows.append(
                {
                    **head,
                    "recommended": f"none qualifies: {why or 'no ok row'}",
                    "of": len(candidates),
                }
            )
            continue
        b = rec.best
        # the speedup is a p50 ratio: a p99 of a few calls is one stall away from 800x
        native = candidates[
            candidates["format"].isin(list(SOURCE_FRAMEWORK_OF_NATIVE))
            & (candidates["precision"] == "fp32")
        ].dropna(subset=["latency_ms_p50"])
        if not native.empty:
            baseline, over = native["latency_ms_p50"].min(), "source model, fp32"
        else:
            baseline, over = candidates["latency_ms_p50"].max(), "slowest"
        threads = "" if pd.isna(b.get("threads")) else f", {int(b['threads'])} threads"
        rows.append(
            {
                **head,
                "recommended": f"{tables.label(b)}{threads}",
                "latency": rec.latency_stat,
                "latency ms": b[TAIL],
                "items/s": b["throughput_items_per_s"],
                "speedup": baseline / b["latency_ms_p50"],
                "accuracy": b.get("accuracy"),
                "over": over,
                "of": len(candidates),
            }
        )
    return pd.DataFrame(rows, columns=columns)
