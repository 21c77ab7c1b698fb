"""Vocabulary: every token id of a model mapped to the exact bytes it stands for.

A constraint engine must reason about bytes, not token strings: byte-level BPE (GPT-2 style) spells
bytes as printable unicode characters, SentencePiece spells spaces as ``▁`` and unknown bytes as
``<0xNN>``. :meth:`Vocabulary.from_tokenizer` undoes those spellings; :meth:`Vocabulary.from_tokens`
builds one directly (tests, toy models). A ``Vocabulary`` is immutable once built.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from constrain.errors import VocabularyError

if TYPE_CHECKING:
    from constrain.vocab.slices import VocabSlices
    from constrain.vocab.trie import TokenTrie


class VocabType(enum.Enum):
    """How a tokenizer spells bytes in its token strings."""

    RAW = "raw"  # the token string's UTF-8 encoding is its bytes
    BYTE_LEVEL = "byte_level"  # GPT-2 byte<->unicode table (Ġ for space, Ċ for newline, ...)
    BYTE_FALLBACK = "byte_fallback"  # SentencePiece: ▁ for space, <0xNN> for single bytes


class Vocabulary:
    """Token id -> bytes for a model whose logits have ``size`` columns.

    Parameters
    ----------
    token_bytes : sequence of bytes or None
        ``token_bytes[i]`` is what token ``i`` decodes to; ``None`` for special tokens and unused ids:
        such tokens never match any text. Padded with ``None`` up to ``vocab_size``.
    eos_token_ids : iterable of int
        Tokens that end generation; a constraint allows them exactly when it can end.
    vocab_size : int, optional
        The model's logits width (default: ``len(token_bytes)``). Ids at or beyond it are never allowed.
    vocab_type : VocabType, default: RAW
        Informational: the spelling the tokens were decoded from.
    """

    def __init__(
        self,
        token_bytes: Sequence[bytes | None],
        eos_token_ids: Iterable[int],
        *,
        vocab_size: int | None = None,
        vocab_type: VocabType = VocabType.RAW,
    ):
        tokens = list(token_bytes)
        if vocab_size is None:
            vocab_size = len(tokens)
        if vocab_size <= 0:
            raise ValueError(f"vocab_size must be positive, got {vocab_size}")
        if len(tokens) > vocab_size:
            # Tokenizer ids beyond the model's logits width can never be sampled.
            tokens = tokens[:vocab_size]
        tokens.extend([None] * (vocab_size - len(tokens)))
        for i, b in enumerate(tokens):
            if b is not None and not isinstance(b, bytes):
                raise TypeError(f"token_bytes[{i}] must be bytes or None, got {type(b).__name__}")
        eos = tuple(sorted(set(int(e) for e in eos_token_ids)))
        if not eos:
            raise VocabularyError("a vocabulary needs at least one EOS token id")
        for e in eos:
            if not 0 <= e < vocab_size:
                raise VocabularyError(f"EOS token id {e} is outside the vocabulary (size {vocab_size})")
        self._tokens: tuple[bytes | None, ...] = tuple(
            None if i in eos else b for i, b in enumerate(tokens)
        )
        self.eos_token_ids: tuple[int, ...] = eos
        self.size: int = vocab_size
        self.vocab_type = vocab_type

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_tokens(
        cls,
        tokens: Sequence[bytes | str | None],
        eos_token_ids: Iterable[int] | int,
        *,
        vocab_size: int | None = None,
    ) -> Vocabulary:
        """Build a vocabulary from literal token texts (``str`` is UTF-8 encoded)."""
        if isinstance(eos_token_ids, int):
            eos_token_ids = [eos_token_ids]
        token_bytes = [t.encode("utf-8") if isinstance(t, str) else t for t in tokens]
        return cls(token_bytes, eos_token_ids, vocab_size=vocab_size)

    @classmethod
    def from_tokenizer(
        cls,
        tokenizer: object,
        vocab_size: int | None = None,
        *,
        eos_token_ids: Iterable[int] | None = None,
    ) -> Vocabulary:
        """Map a Hugging Face tokenizer (``transformers`` or ``tokenizers.Tokenizer``) to bytes.

        Handles byte-level BPE, SentencePiece with byte fallback and plain vocabularies; special
        tokens map to ``None``. ``vocab_size`` is the model's logits width (``model.config.vocab_size``
        or the logits' last dimension), which may exceed the tokenizer's length.

        Raises
        ------
        VocabularyError
            The tokenizer's spelling is unknown (e.g. WordPiece ``##`` continuations) or too many
            tokens cannot be mapped to bytes.
        """
        from constrain.vocab.tokenizers import tokenizer_token_bytes

        token_bytes, eos, vocab_type = tokenizer_token_bytes(tokenizer)
        if eos_token_ids is not None:
            eos = list(eos_token_ids)
        if vocab_size is not None and vocab_size < len(token_bytes):
            beyond = [i for i in eos if i >= vocab_size]
            if beyond:
                raise VocabularyError(
                    f"EOS token ids {beyond} are beyond vocab_size={vocab_size}: wrong vocab_size?"
                )
        return cls(token_bytes, eos, vocab_size=vocab_size, vocab_type=vocab_type)

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return (
            f"Vocabulary(size={self.size}, text_tokens={self.n_text_tokens}, "
            f"eos={list(self.eos_token_ids)}, type={self.vocab_type.value})"
        )

    def token_bytes(self, token_id: int) -> bytes | None:
        """Bytes of one token, ``None`` for special tokens and EOS."""
        return self._tokens[token_id]

    @property
    def tokens(self) -> tuple[bytes | None, ...]:
        """All token bytes by id (``None`` for special and EOS tokens)."""
        return self._tokens

    @functools.cached_property
    def n_text_tokens(self) -> int:
        """Number of tokens that stand for non-empty text."""
        return sum(1 for b in self._tokens if b)

    def decode(self, token_ids: Iterable[int]) -> bytes:
        """Concatenate the bytes of ``token_ids``; special tokens and EOS contribute nothing."""
        return b"".join(self._tokens[t] or b"" for t in token_ids)

    def is_eos(self, token_id: int) -> bool:
        """Whether ``token_id`` ends generation."""
        return token_id in self.eos_token_ids

    @functools.cached_property
    def eos_array(self) -> np.ndarray:
        """EOS ids as an int32 array (for kernels)."""
        return np.asarray(self.eos_token_ids, dtype=np.int32)

    @functools.cached_property
    def token_arrays(self) -> tuple[np.ndarray | None, ...]:
        """Token bytes as uint8 arrays (views, built once) for kernels that advance by token."""
        return tuple(None if b is None else np.frombuffer(b, dtype=np.uint8) for b in self._tokens)

    @functools.cached_property
    def single_byte_tokens(self) -> np.ndarray:
        """``bool[256]``: which byte values are a token on their own."""
        out = np.zeros(256, dtype=bool)
        for b in self._tokens:
            if b is not None and len(b) == 1:
                out[b[0]] = True
        return out

    @functools.cached_property
    def trie(self) -> TokenTrie:
        """The flat token trie over this vocabulary (built once, on first use)."""
        from constrain.vocab.trie import TokenTrie

        return TokenTrie.build(self._tokens)

    @functools.cached_property
    def slices(self) -> VocabSlices:
        """The trie split into text slices and the rest (built once, on first use; see
        :mod:`constrain.vocab.slices`)."""
        from constrain.kernels.bitmask import bitmask_words
        from constrain.vocab.slices import build_slices

        return build_slices(list(self._tokens), bitmask_words(self.size), self.trie)
