"""The shared shape of the run-time checks over a JSON grammar (``uniqueItems`` over strings,
distinct keys): a constraint whose state is ``(inner state, scanner state)``.

A subclass follows the text with a scanner of its own (an immutable value) and says, per piece of
text, whether the check still holds (:meth:`RuntimeCheckConstraint._step`); it computes its mask as
the inner mask minus the tokens its check refuses. This base delegates the rest to the inner
constraint (acceptance, literals, next bytes) and applies the check to advancing and to the inner
constraint's forced bytes.
"""

from __future__ import annotations

import weakref
from typing import Callable, TypeVar

import numpy as np

from constrain.compiled import CompiledConstraint, MaskCache

__all__ = ["RuntimeCheckConstraint", "per_vocabulary"]

_T = TypeVar("_T")
_PER_VOCABULARY: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def per_vocabulary(vocab, build: Callable[[object], _T]) -> _T:
    """``build(vocab)``, computed once per (vocabulary, builder) while the vocabulary lives.

    The checks' token tables come from a pass over every token in Python (tens of milliseconds for
    a 49k vocabulary); a vocabulary is immutable, so they are built once, not per compile."""
    tables = _PER_VOCABULARY.get(vocab)
    if tables is None:
        tables = _PER_VOCABULARY[vocab] = {}
    got = tables.get(build)
    if got is None:
        got = tables[build] = build(vocab)
    return got


def tokens_spelling_prefixes(vocab, rest: bytes) -> list[int]:
    """The tokens whose bytes are a non-empty prefix of ``rest``: those that continue a text
    along ``rest`` (an earlier key or item) without leaving it (read off the vocabulary's trie)."""
    return vocab.trie.tokens_along(rest)


class RuntimeCheckConstraint(CompiledConstraint):
    """``inner`` plus a check on a scanner of the text; subclasses set ``_scan_start`` and define
    :meth:`_step`, :meth:`token_bits` and :meth:`rewrap`."""

    _scan_start: tuple = ()

    def __init__(self, inner: CompiledConstraint):
        self.inner = inner
        self.vocab = inner.vocab
        self.limits = getattr(inner, "limits", None)
        self.literal_hints = getattr(inner, "literal_hints", ())
        self._mask_cache = MaskCache(getattr(self.limits, "max_cached_masks", 20_000))

    def rewrap(self, inner: CompiledConstraint) -> RuntimeCheckConstraint:
        """The same check over another inner constraint (e.g. the grammar under length bounds)."""
        raise NotImplementedError

    def _step(self, inner_state, scan_state: tuple, data: bytes, inner_after=None):
        """The scanner state after ``data``, or None when the check refuses it. ``inner_after``:
        the inner state after ``data``, when the caller has it."""
        raise NotImplementedError

    # -- CompiledConstraint
    def initial_state(self):
        return (self.inner.initial_state(), self._scan_start)

    def advance_bytes(self, state, data: bytes):
        g = self.inner.advance_bytes(state[0], data)
        if g is None:
            return None
        s = self._step(state[0], state[1], data, g)
        return None if s is None else (g, s)

    def advance_token(self, state, token_id: int):
        g = self.inner.advance_token(state[0], token_id)
        if g is None:
            return None
        s = self._step(state[0], state[1], self.vocab.token_bytes(token_id), g)
        return None if s is None else (g, s)

    def is_accepting(self, state) -> bool:
        return self.inner.is_accepting(state[0])

    def fill_token_bits(self, state, words: np.ndarray) -> None:
        words |= self.token_bits(state)

    def forced_bytes(self, state) -> bytes:
        forced = self.inner.forced_bytes(state[0])
        return forced if forced and self._step(state[0], state[1], forced) is not None else b""

    def literals(self) -> tuple[bytes, ...]:
        return self.inner.literals()

    def next_bytes(self, state, exclude: bytes = b"", stop_after: int = 256) -> list[int]:
        return self.inner.next_bytes(state[0], exclude, stop_after)

    def candidate_bytes(self, state) -> list[int]:
        return self.inner.candidate_bytes(state[0])

    def clear_cache(self) -> None:
        self._mask_cache.clear()
        clear = getattr(self.inner, "clear_cache", None)
        if clear is not None:
            clear()
