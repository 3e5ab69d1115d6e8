"""End to end on real texts: which padding policy is fastest for a given model?

Three policies tokenize the same batches of texts:
- ``longest``: pad each batch to its longest text (one model call);
- ``max_length``: pad every batch to a fixed length (one call, the most padding);
- ``buckets``: split each batch by length into buckets, pad each bucket to its bucket
  length (one call per non-empty bucket, the least padding).

Each call is timed stage by stage (tokenize, model) with the clock in-process; the number
of batches and the time spent are bounded. Truncated texts are counted, not hidden.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from workbench.nlp.tokenize import DEFAULT_BUCKETS, PADDING_POLICIES, WordPieceTokenizer

ModelFn = Callable[[dict[str, np.ndarray]], object]


@dataclass(frozen=True)
class PolicyTiming:
    policy: str
    batches: int
    model_calls: int
    real_tokens: int
    padded_tokens: int  # tokens fed to the model, padding included
    truncated_texts: int
    tokenize_ms_p50: float
    model_ms_p50: float
    total_ms_p50: float

    @property
    def padding_fraction(self) -> float:
        return 1.0 - self.real_tokens / self.padded_tokens

    @property
    def tokenize_share(self) -> float:
        return self.tokenize_ms_p50 / self.total_ms_p50 if self.total_ms_p50 else 0.0

    def as_row(self) -> dict[str, object]:
        return {
            **self.__dict__,
            "padding_fraction": self.padding_fraction,
            "tokenize_share": self.tokenize_share,
        }


def feeds_for(
    tokenizer: WordPieceTokenizer,
    texts: Sequence[str],
    policy: str,
    max_length: int,
    buckets: Sequence[int] = DEFAULT_BUCKETS,
) -> tuple[list[dict[str, np.ndarray]], int, int, int]:
    """The model feeds of one batch under `policy`: (feeds, real tokens, fed tokens,
    truncated texts)."""
    if policy == "buckets":
        parts = [
            b for _, b in tokenizer.encode_buckets(texts, [s for s in buckets if s <= max_length])
        ]
    elif policy in ("longest", "max_length"):
        parts = [tokenizer.encode(texts, policy, max_length)]  # type: ignore[arg-type]
    else:
        raise ValueError(f"padding policy must be one of {PADDING_POLICIES}, got {policy!r}")
    real = sum(int(p.attention_mask.sum()) for p in parts)
    fed = sum(int(p.input_ids.size) for p in parts)
    return [p.feed() for p in parts], real, fed, sum(len(p.truncated) for p in parts)


def compare_padding(
    run_model: ModelFn,
    texts: Sequence[str],
    batch_size: int = 8,
    max_length: int = 128,
    policies: Sequence[str] = PADDING_POLICIES,
    buckets: Sequence[int] = DEFAULT_BUCKETS,
    max_batches: int = 20,
    max_seconds: float = 20.0,
) -> list[PolicyTiming]:
    """Time tokenize + model per batch of `texts` under each policy, over the same
    batches (at most `max_batches`, and at most `max_seconds` per policy; one untimed
    warm-up call per policy)."""
    tokenizer = WordPieceTokenizer(max_length)
    batches = [
        list(texts[i : i + batch_size]) for i in range(0, len(texts) - batch_size + 1, batch_size)
    ][:max_batches]
    if not batches:
        raise ValueError(f"need at least {batch_size} texts, got {len(texts)}")
    clock = time.perf_counter_ns
    results = []
    for policy in policies:
        for feed in feeds_for(tokenizer, batches[0], policy, max_length, buckets)[0]:
            run_model(feed)  # warm-up: first-call allocations are not the policy's cost
        tokenize_ms, model_ms = [], []
        real = fed = truncated = calls = 0
        deadline = clock() + int(max_seconds * 1e9)
        for batch in batches:
            t0 = clock()
            feeds, r, f, t = feeds_for(tokenizer, batch, policy, max_length, buckets)
            t1 = clock()
            for feed in feeds:
                run_model(feed)
            t2 = clock()
            tokenize_ms.append((t1 - t0) / 1e6)
            model_ms.append((t2 - t1) / 1e6)
            real, fed, truncated, calls = real + r, fed + f, truncated + t, calls + len(feeds)
            if clock() > deadline:
                break
        total = np.asarray(tokenize_ms) + np.asarray(model_ms)
        results.append(
            PolicyTiming(
                policy,
                len(tokenize_ms),
                calls,
                real,
                fed,
                truncated,
                float(np.median(tokenize_ms)),
                float(np.median(model_ms)),
                float(np.median(total)),
            )
        )
    return results


def onnx_runner(path: str, threads: int | None = None) -> ModelFn:
    """A CPU ONNX Runtime session as a feed -> outputs function."""
    # lazy: onnxruntime
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return lambda feed: session.run(None, feed)
