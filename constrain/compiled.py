"""CompiledConstraint: a constraint bound to one vocabulary, queried by state.

A compiled constraint is immutable and shared by every matcher made from it. It never holds a
sequence's progress: that is a *state* value, owned by a :class:`~constrain.matcher.Matcher`, which
keeps the stack of states it passed through (rollback is popping). States must be immutable values
(an int for a DFA; a persistent parser configuration for grammars), so copying a matcher is cheap.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np

from constrain.vocab.vocabulary import Vocabulary

if TYPE_CHECKING:
    from constrain.matcher import Matcher

State = Any


class MaskCache:
    """Per-state token masks of one compiled constraint, bounded by ``Limits.max_cached_masks``.

    Values are uint32 words made read-only, so a cached mask can be handed out without a copy.
    When full, the oldest entry goes (states visited early, i.e. prefixes, are rarely revisited).
    """

    __slots__ = ("_masks", "limit")

    def __init__(self, limit: int):
        self._masks: dict[Any, np.ndarray] = {}
        self.limit = limit

    def get(self, state: Any, compute) -> np.ndarray:
        """The mask of ``state``, from the cache or from ``compute(state)`` (then cached)."""
        words = self._masks.get(state)
        if words is None:
            words = compute(state)
            words.flags.writeable = False
            if len(self._masks) >= self.limit:
                self._masks.pop(next(iter(self._masks)))
            self._masks[state] = words
        return words

    def __len__(self) -> int:
        return len(self._masks)

    def __contains__(self, state: Any) -> bool:
        return state in self._masks

    def clear(self) -> None:
        """Drop every cached mask (results are unchanged, only recomputed)."""
        self._masks.clear()


class CompiledConstraint(ABC):
    """A constraint over the tokens of ``vocab``; subclasses define the state machine."""

    vocab: Vocabulary

    @abstractmethod
    def initial_state(self) -> State:
        """The state before any token (no side effects)."""

    @abstractmethod
    def advance_bytes(self, state: State, data: bytes) -> State | None:
        """The state after ``data``, or ``None`` if ``data`` cannot continue a valid output."""

    @abstractmethod
    def is_accepting(self, state: State) -> bool:
        """Whether the output may end in ``state`` (EOS allowed)."""

    @abstractmethod
    def fill_token_bits(self, state: State, words: np.ndarray) -> None:
        """OR the bits of every non-EOS token allowed in ``state`` into ``words`` (uint32 row)."""

    def token_bits(self, state: State) -> np.ndarray:
        """uint32 words of the non-EOS tokens allowed in ``state``; callers must not modify them.

        The default allocates and calls :meth:`fill_token_bits`; constraints that cache masks per
        state return the cached array itself (no copy).
        """
        words = np.zeros((self.vocab.size + 31) // 32, dtype=np.uint32)
        self.fill_token_bits(state, words)
        return words

    def forced_bytes(self, state: State) -> bytes:
        """Bytes every valid continuation of ``state`` starts with (default: none known)."""
        return b""

    def literals(self) -> tuple[bytes, ...]:
        """Strings that outputs of this constraint are likely to contain verbatim (literal
        terminals, JSON property names and enum values): a corpus for lookup drafters. Default: none."""
        return ()

    def candidate_bytes(self, state: State) -> list[int]:
        """Byte values, ascending, that include every byte that can continue ``state`` (a cheap
        superset for searches that probe bytes one by one). Default: all 256."""
        return list(range(256))

    def next_bytes(self, state: State, exclude: bytes = b"", stop_after: int = 256) -> list[int]:
        """The byte values (not in ``exclude``) that can continue ``state``, ascending; at most
        ``stop_after`` of them. Default: one ``advance_bytes`` probe per byte value."""
        out = []
        for b in range(256):
            if b in exclude:
                continue
            if self.advance_bytes(state, bytes((b,))) is not None:
                out.append(b)
                if len(out) >= stop_after:
                    break
        return out

    def advance_token(self, state: State, token_id: int) -> State | None:
        """The state after the text of ``token_id``; ``None`` if not allowed or not text."""
        if not 0 <= token_id < self.vocab.size:
            return None
        data = self.vocab.token_bytes(token_id)
        if not data:
            return None
        return self.advance_bytes(state, data)

    def matcher(self) -> Matcher:
        """A fresh matcher at the initial state."""
        from constrain.matcher import Matcher

        return Matcher(self)
