"""Rank one user's candidate items by predicted CTR (guide §7.2), batched and correct.

The guide builds each candidate's input with `append(userFeatures, itemFeatures...)`,
which in Go may write the item features into the user slice's spare capacity, so one
candidate's features can overwrite another's; and it calls the model once per
candidate. Here the user's fields are broadcast into fresh rows (`FeatureTables.rows`)
and all candidates go through the model in ONE call (`rank`); `rank_per_candidate`
keeps the guide's one-call-per-candidate loop, for comparison only.

Ids are MovieLens' raw ids (user_id 1..943, item_id 1..1682). Defined behaviour for
bad input:
- a user id MovieLens does not know: cold start, every user field "unknown" (row 0);
  the ranking then rests on the item fields alone;
- a candidate item id MovieLens does not know: a UserError naming it (there are no
  features to rank it on);
- an empty candidate list: a UserError;
- any feed is checked by `ctr_features.validate_feed` before the model runs (ids inside
  their tables, finite 0/1 genres).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from workbench.errors import UserError
from workbench.harness.timing import time_calls
from workbench.recsys import ctr_features, movielens
from workbench.runtimes.base import by_input_name

Scorer = Callable[[dict[str, np.ndarray]], np.ndarray]  # feed -> logits [B] or [B, 1]


@dataclass(frozen=True)
class Ranking:
    """Candidates in descending CTR order (ties keep the candidates' given order)."""

    item_ids: np.ndarray  # raw MovieLens item ids
    ctr: np.ndarray  # sigmoid(logit), float64
    cold_start_user: bool


@cache
def _index_maps() -> tuple[np.ndarray, np.ndarray]:
    """Raw MovieLens id -> dense index lookup arrays (-1 where the id is unknown), so
    a request is mapped by one vectorized gather."""
    data = movielens.load()
    maps = []
    for frame, column in ((data.users, "user_id"), (data.items, "item_id")):
        raw = frame[column].to_numpy()
        lookup = np.full(int(raw.max()) + 1, -1, np.int64)
        lookup[raw] = np.arange(len(raw))
        maps.append(lookup)
    return maps[0], maps[1]


def _lookup(table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    inside = (ids >= 0) & (ids < len(table))
    return np.where(inside, table[np.where(inside, ids, 0)], -1)


def candidate_rows(user_id: int, item_ids: Sequence[int] | np.ndarray) -> tuple[dict, bool]:
    """Feature rows for one user and its candidates, and whether the user is a cold
    start (unknown to MovieLens)."""
    items = np.asarray(item_ids)
    if items.size == 0:
        raise UserError("the candidate list is empty: give at least one item id to rank")
    if items.ndim != 1 or items.dtype.kind not in "iu":
        raise UserError(f"candidate item ids must be a 1-D list of integers, got {items.dtype}")
    user_of, item_of = _index_maps()
    dense_items = _lookup(item_of, items)
    unknown = dense_items < 0
    if unknown.any():
        raise UserError(
            f"{int(unknown.sum())} candidate item id(s) unknown to MovieLens-100k, e.g. "
            f"{items[unknown][:5].tolist()}: valid item ids are 1..{len(item_of) - 1}"
        )
    if not isinstance(user_id, (int, np.integer)) or isinstance(user_id, bool):
        raise UserError(f"the user id must be an integer MovieLens user id, got {user_id!r}")
    user = int(_lookup(user_of, np.asarray([int(user_id)]))[0])
    cold = user < 0
    feed = ctr_features.tables().rows(max(user, 0), dense_items)
    if cold:  # every user field "unknown"
        feed["ids"][:, [0, 2, 3, 4, 5]] = 0  # user, age, gender, occupation, zip
    return feed, cold


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64).reshape(-1)))


def order_by_ctr(ctr: np.ndarray) -> np.ndarray:
    """Positions sorted by descending CTR, ties in given order (a stable sort)."""
    return np.argsort(-ctr, kind="stable")


def rank(score: Scorer, user_id: int, item_ids: Sequence[int] | np.ndarray) -> Ranking:
    """Every candidate scored in one model call, then sorted."""
    feed, cold = candidate_rows(user_id, item_ids)
    ctr_features.validate_feed(feed)
    ctr = sigmoid(score(feed))
    order = order_by_ctr(ctr)
    return Ranking(np.asarray(item_ids)[order], ctr[order], cold)


def rank_per_candidate(
    score: Scorer, user_id: int, item_ids: Sequence[int] | np.ndarray
) -> Ranking:
    """The guide's way: one model call per candidate (batch 1), each row built afresh."""
    feed, cold = candidate_rows(user_id, item_ids)
    ctr_features.validate_feed(feed)
    ctr = np.empty(len(feed["ids"]))
    for i in range(len(ctr)):
        row = {name: value[i : i + 1] for name, value in feed.items()}
        ctr[i] = sigmoid(score(row))[0]
    order = order_by_ctr(ctr)
    return Ranking(np.asarray(item_ids)[order], ctr[order], cold)


# ---------------------------------------------------------------------------- scorers


def torch_scorer(model: Any) -> Scorer:
    """A PyTorch DeepFM as a Scorer (no autograd)."""
    # lazy: torch
    import torch

    def score(feed: dict[str, np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            out = model(torch.from_numpy(feed["ids"]), torch.from_numpy(feed["genres"]))
        return out.numpy()

    return score


def loaded_scorer(loaded: Any) -> Scorer:
    """A runtime's LoadedModel (any artifact format) as a Scorer; its first output."""

    def score(feed: dict[str, np.ndarray]) -> np.ndarray:
        return loaded.to_numpy(loaded.run(loaded.prepare(by_input_name(loaded, feed))))[0]

    return score


# ---------------------------------------------------------------------------- timing


def time_ranking(
    score: Scorer, pool: Sequence[tuple[int, np.ndarray]], rule: Any, loop_rule: Any
) -> dict[str, Any]:
    """Latency of ranking requests (user id, candidate item ids) from `pool`, timed by
    the workbench's loop (`harness.timing.time_calls` with StopRules): `batched` (one
    model call per request, features to sorted result), `model_only` (that call on a
    prepared feed) and `per_candidate` (the guide's loop, `loop_rule`); p50/p99 in ms and
    candidates per second, and whether both ways rank the first requests alike."""
    n = len(pool[0][1])
    feeds = [candidate_rows(user, items)[0] for user, items in pool]
    batched = time_calls(lambda req: rank(score, *req), pool, rule)
    model_only = time_calls(score, feeds, rule)
    looped = time_calls(lambda req: rank_per_candidate(score, *req), pool, loop_rule)
    same = all(
        np.array_equal(rank(score, *req).item_ids, rank_per_candidate(score, *req).item_ids)
        for req in pool[:2]
    )
    return {
        "batched": _latency_summary(batched.latencies_ns, n),
        "model_only": _latency_summary(model_only.latencies_ns, n),
        "per_candidate": _latency_summary(looped.latencies_ns, n),
        "same_ranking": same,
    }


def _latency_summary(latencies_ns: np.ndarray, n_candidates: int) -> dict[str, Any]:
    ms = np.asarray(latencies_ns) / 1e6
    p50 = float(np.percentile(ms, 50))
    return {
        "p50_ms": p50,
        "p99_ms": float(np.percentile(ms, 99)),
        "candidates_per_s": n_candidates / (p50 / 1e3) if p50 > 0 else None,
        "iterations": len(ms),
    }


# ---------------------------------------------------------------------------- agreement


def per_user_agreement(
    users: np.ndarray, reference: np.ndarray, candidate: np.ndarray, k: int = 10
) -> dict[str, float]:
    """How alike two models rank each user's rows: mean Kendall tau (scipy, tau-b) and
    mean top-k overlap, over the users with more than k rows."""
    # lazy: scipy
    from scipy.stats import kendalltau

    reference = np.asarray(reference, np.float64).reshape(-1)
    candidate = np.asarray(candidate, np.float64).reshape(-1)
    taus, overlaps = [], []
    for user in np.unique(users):
        rows = np.flatnonzero(users == user)
        if len(rows) <= k:
            continue
        ref, cand = reference[rows], candidate[rows]
        tau = kendalltau(ref, cand).statistic
        taus.append(1.0 if np.isnan(tau) else float(tau))  # NaN: both constant
        overlaps.append(top_k_overlap(ref, cand, k))
    return {
        "kendall_tau": float(np.mean(taus)) if taus else float("nan"),
        f"top{k}_overlap": float(np.mean(overlaps)) if overlaps else float("nan"),
        "ranked_users": len(taus),
    }


def top_k_overlap(reference: np.ndarray, candidate: np.ndarray, k: int = 10) -> float:
    """|top-k(reference) & top-k(candidate)| / k, ties broken by position (stable)."""
    k = min(k, len(reference))
    ref = set(order_by_ctr(np.asarray(reference))[:k].tolist())
    cand = set(order_by_ctr(np.asarray(candidate))[:k].tolist())
    return len(ref & cand) / k
