"""Tokenizer, BIO span decoding, entity F1 and bad inputs of the text tasks."""

from __future__ import annotations

import os

import numpy as np
import pytest

from workbench.errors import UserError
from workbench.nlp.data import NER_TAGS, ner_sentences, parse_conll, rating_to_sentiment, reviews
from workbench.nlp.metrics import entity_f1, tag_sequences
from workbench.nlp.spans import IGNORE, Entity, align_labels, decode_entities, first_subwords
from workbench.nlp.tokenize import WordPieceTokenizer, minilm_dir

SENTENCES = [
    "Loved this dress! The fabric is soft, but it runs small.",
    "Naïve café façade in São Paulo, 東京 and Zürich 😀 were fine",
    "",
    "   ",
    "unbelievably overpriced; returned it immediately",
]


@pytest.fixture(scope="module")
def tokenizer() -> WordPieceTokenizer:
    return WordPieceTokenizer(max_length=64)


def test_tokenizer_matches_transformers(tokenizer: WordPieceTokenizer) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(str(minilm_dir()))
    batch = tokenizer.encode(SENTENCES, padding="max_length")
    expected = reference(
        SENTENCES, padding="max_length", max_length=64, truncation=True, return_tensors="np"
    )
    np.testing.assert_array_equal(batch.input_ids, expected["input_ids"])
    np.testing.assert_array_equal(batch.attention_mask, expected["attention_mask"])


def test_offsets_point_into_the_original_text(tokenizer: WordPieceTokenizer) -> None:
    text = SENTENCES[1]
    batch = tokenizer.encode([text])
    pieces = [text[s:e] for s, e in batch.offsets[0] if e > s]
    assert "São" in pieces and "東" in pieces and "😀" in pieces
    assert batch.offsets[0][0] == (0, 0) and batch.offsets[0][-1] == (0, 0)  # CLS, SEP


def test_padding_policies(tokenizer: WordPieceTokenizer) -> None:
    longest = tokenizer.encode(SENTENCES, padding="longest")
    assert longest.seq_len == max(longest.lengths) < 64
    assert tokenizer.encode(SENTENCES, padding="max_length").seq_len == 64
    buckets = tokenizer.encode_buckets(SENTENCES, buckets=(4, 16, 32))
    seen = sorted(int(i) for idx, _ in buckets for i in idx)
    assert seen == list(range(len(SENTENCES)))
    for idx, batch in buckets:
        assert batch.seq_len in (4, 16, 32)
        for k, i in enumerate(idx):
            assert batch.lengths[k] == min(tokenizer.token_counts([SENTENCES[i]])[0], 32)


def test_truncation_is_recorded_and_keeps_sep(tokenizer: WordPieceTokenizer) -> None:
    long_text = "word " * 100_000  # far beyond the model's 512 positions
    batch = tokenizer.encode(["short", long_text], padding="longest")
    assert batch.truncated == {1: 100_002}
    assert batch.seq_len == 64 and batch.input_ids[1, -1] == 102  # [SEP]
    assert 0 not in batch.truncated and batch.lengths[0] == 3  # the short one is intact


def test_empty_and_whitespace_are_cls_sep(tokenizer: WordPieceTokenizer) -> None:
    batch = tokenizer.encode(["", " \t\n "])
    assert batch.input_ids.tolist() == [[101, 102], [101, 102]]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["fine", None], "text #1 is None"),
        ([b"ok", b"\xff\xfe bad"], "text #1 is not valid UTF-8"),
        ([3.5], "text #0 is float"),
        ([], "the batch is empty"),
        ("a single string", "a list of texts"),
    ],
)
def test_bad_inputs_are_named(tokenizer: WordPieceTokenizer, items, message: str) -> None:
    with pytest.raises(UserError, match=message):
        tokenizer.encode(items)


def test_valid_utf8_bytes_are_text(tokenizer: WordPieceTokenizer) -> None:
    as_bytes = tokenizer.encode(["café".encode()])
    as_str = tokenizer.encode(["café"])
    np.testing.assert_array_equal(as_bytes.input_ids, as_str.input_ids)


# ------------------------------------------------------------------ BIO -> spans


def _decode(tokenizer: WordPieceTokenizer, text: str, word_level: list[str]) -> list[Entity]:
    """Put word tags on first subwords (others get 'O', which decoding must ignore)."""
    offsets = tokenizer.encode([text]).offsets[0]
    token_tags = ["O"] * len(offsets)
    for position, word in enumerate(first_subwords(text, offsets)):
        if word is not None:
            token_tags[position] = word_level[word]
    return decode_entities(text, offsets, token_tags)


def test_entities_at_start_and_end(tokenizer: WordPieceTokenizer) -> None:
    text = "Obama flew to Paris"
    got = _decode(tokenizer, text, ["B-person", "O", "O", "B-geo-loc"])
    assert got == [Entity(0, 5, "person", "Obama"), Entity(14, 19, "geo-loc", "Paris")]


def test_adjacent_entities_and_i_without_b(tokenizer: WordPieceTokenizer) -> None:
    text = "Apple Google Empire State Building"
    tags = ["B-company", "B-company", "I-facility", "I-facility", "I-facility"]
    got = _decode(tokenizer, text, tags)
    assert got == [
        Entity(0, 5, "company", "Apple"),
        Entity(6, 12, "company", "Google"),
        Entity(13, 34, "facility", "Empire State Building"),
    ]


def test_subword_splits_and_multibyte(tokenizer: WordPieceTokenizer) -> None:
    text = "Ich besuchte Zürichsee 😀 mit Björnström"
    offsets = tokenizer.encode([text]).offsets[0]
    firsts = first_subwords(text, offsets)
    assert sum(w is not None for w in firsts) == 6  # one first subword per word
    # tags on later subwords of a word must not matter: mark them all as B-other
    token_tags = ["B-other" if w is None else "O" for w in firsts]
    token_tags[firsts.index(2)] = "B-geo-loc"
    token_tags[firsts.index(5)] = "B-person"
    assert decode_entities(text, offsets, token_tags) == [
        Entity(13, 22, "geo-loc", "Zürichsee"),
        Entity(29, 39, "person", "Björnström"),
    ]


def test_align_labels_first_subword_only(tokenizer: WordPieceTokenizer) -> None:
    text = "unbelievably Zürich"
    batch = tokenizer.encode([text], padding="max_length")
    labels = align_labels(text, batch.offsets[0], [3, 7], batch.seq_len)
    assert len(labels) == 64 and labels[0] == IGNORE
    assert [x for x in labels if x != IGNORE] == [3, 7]
    assert labels[1] == 3  # first piece of "unbelievably"


# ------------------------------------------------------------------ metrics and data


def test_entity_f1_against_seqeval() -> None:
    from seqeval.metrics import f1_score

    true = [["B-person", "I-person", "O", "B-geo-loc"], ["O", "B-company", "O"]]
    pred = [["B-person", "O", "O", "B-geo-loc"], ["O", "B-company", "B-company"]]
    # by hand: true 3 entities, predicted 4, 2 exact matches -> P 0.5, R 2/3, F1 4/7
    assert entity_f1(true, pred) == pytest.approx(4 / 7)
    assert entity_f1(true, pred) == pytest.approx(f1_score(true, pred))


def test_tag_sequences_skip_ignored_positions() -> None:
    labels = np.array([[IGNORE, 1, IGNORE, 0, IGNORE]])
    predicted = np.array([[5, 1, 3, 2, IGNORE + 100]])
    true, pred = tag_sequences(labels, predicted, NER_TAGS)
    assert true == [["B-company", "O"]] and pred == [["B-company", "I-company"]]


def test_data_splits_are_fixed_and_disjoint() -> None:
    train, test = reviews()
    assert len(test.texts) == 2000 and len(train.texts) + len(test.texts) == 22641
    assert not set(test.texts[:200]) & set(train.texts)
    assert set(np.unique(test.labels)) == {0, 1, 2}
    assert [rating_to_sentiment(r) for r in (1, 2, 3, 4, 5)] == [0, 0, 1, 2, 2]
    ner_train, ner_test = ner_sentences()
    assert len(ner_train) + len(ner_test) == 2394 and len(ner_test) == 400
    assert all(len(s.words) == len(s.tags) for s in ner_test)


def test_parse_conll_rejects_unknown_tags() -> None:
    assert parse_conll("a\tO\nb\tB-person\n\t\nc\tO\n")[1].words == ("c",)
    with pytest.raises(ValueError, match="line 1"):
        parse_conll("a\tB-weird\n")
