"""Words, subword alignment and BIO -> character-span decoding (guide §5.2, done right).

The guide tags whitespace words while its model sees other tokens. Here a *word* is a
whitespace-delimited chunk of the original string, in training and at inference alike;
each word's tag sits on its first subword (the other subwords are ignored, label -100),
and decoding maps tags back to character spans of the ORIGINAL string through the
tokenizer's offsets, so lower-casing, accents and multi-byte characters cannot shift them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

IGNORE = -100  # label of positions that carry no word tag (special, non-first, padding)
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Entity:
    """An entity as a character span [start, end) of the original text."""

    start: int
    end: int
    type: str
    text: str


def word_spans(text: str) -> list[tuple[int, int]]:
    """[start, end) of each whitespace-delimited word of `text`."""
    return [m.span() for m in _WORD.finditer(text)]


def first_subwords(text: str, offsets: Sequence[tuple[int, int]]) -> list[int | None]:
    """For each token: the index of the word it begins, or None (special tokens, pieces
    after a word's first, tokens of words already seen)."""
    spans = word_spans(text)
    starts = [s for s, _ in spans]
    out: list[int | None] = []
    word, seen = 0, -1
    for start, end in offsets:
        if end <= start:  # [CLS], [SEP], padding
            out.append(None)
            continue
        while word + 1 < len(starts) and starts[word + 1] <= start:
            word += 1
        if word > seen and spans and spans[word][0] <= start < spans[word][1]:
            out.append(word)
            seen = word
        else:
            out.append(None)
    return out


def align_labels(
    text: str, offsets: Sequence[tuple[int, int]], word_tags: Sequence[int], length: int
) -> list[int]:
    """Token labels of width `length`: each word's tag on its first subword, IGNORE
    elsewhere (words cut off by truncation get no label)."""
    labels = [IGNORE] * length
    for position, word in enumerate(first_subwords(text, offsets)):
        if word is not None and position < length:
            labels[position] = word_tags[word]
    return labels


def word_tags(
    text: str, offsets: Sequence[tuple[int, int]], token_tags: Sequence[str]
) -> list[str]:
    """The tag of each word of `text` that the tokens reached: its first subword's tag
    (words lost to truncation are left out)."""
    tags: list[str] = []
    for word, tag in zip(first_subwords(text, offsets), token_tags, strict=False):
        if word is not None:
            tags.append(tag)
    return tags


def decode_entities(
    text: str, offsets: Sequence[tuple[int, int]], token_tags: Sequence[str]
) -> list[Entity]:
    """BIO tags per token (first subwords count) -> entities over the original `text`.
    As in seqeval's default mode, an I-X that does not continue an X entity starts one."""
    spans = word_spans(text)
    entities: list[Entity] = []
    current: list[int] | None = None  # [start, end] of the open entity
    current_type = ""

    def close() -> None:
        if current is not None:
            s, e = current
            entities.append(Entity(s, e, current_type, text[s:e]))

    for word, tag in zip(first_subwords(text, offsets), token_tags, strict=False):
        if word is None:
            continue
        start, end = spans[word]
        prefix, _, kind = tag.partition("-")
        if prefix == "I" and current is not None and kind == current_type:
            current[1] = end
            continue
        close()
        current, current_type = ([start, end], kind) if prefix in ("B", "I") else (None, "")
    close()
    return entities
