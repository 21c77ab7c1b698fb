"""Matcher: one sequence's progress through a compiled constraint.

The contract every constraint type serves (regex, grammar, JSON schema)::

    m = constraint.matcher()
    m.fill_bitmask(bitmask, row=0)   # query: write allowed tokens (EOS iff the output may end here)
    m.accept_token(t) -> bool        # mutates: advance, or return False and stay unchanged
    m.is_accepting(); m.is_terminated()
    m.rollback(n); m.copy(); m.reset()
    m.forced_tokens() -> list[int]   # query: tokens the constraint forces next

The matcher keeps the stack of states it passed through, so ``rollback(n)`` is ``n`` pops and
``copy()`` copies a list of immutable states.
"""

from __future__ import annotations

import numpy as np

from constrain.compiled import CompiledConstraint, State
from constrain.kernels.bitmask import check_bitmask


class Matcher:
    """Per-sequence state over a :class:`CompiledConstraint` (mutable; not thread-safe)."""

    __slots__ = ("constraint", "_states", "_tokens", "_terminated")

    def __init__(self, constraint: CompiledConstraint):
        self.constraint = constraint
        self._states: list[State] = [constraint.initial_state()]
        self._tokens: list[int] = []
        self._terminated: list[bool] = [False]

    # ------------------------------------------------------------------ queries
    @property
    def vocab_size(self) -> int:
        return self.constraint.vocab.size

    @property
    def state(self) -> State:
        """The current state (an immutable value)."""
        return self._states[-1]

    @property
    def consumed_tokens(self) -> list[int]:
        """Tokens accepted so far, EOS included (a copy)."""
        return list(self._tokens)

    def is_accepting(self) -> bool:
        """Whether the output may end here (EOS is allowed). Does not change state."""
        return self._terminated[-1] or self.constraint.is_accepting(self._states[-1])

    def is_terminated(self) -> bool:
        """Whether EOS has been accepted. Does not change state."""
        return self._terminated[-1]

    def fill_bitmask(self, bitmask: np.ndarray, row: int = 0) -> None:
        """Write the allowed tokens of the current state into ``bitmask[row]``; no state change.

        The row is overwritten. EOS is allowed iff the output may end here; after EOS has been
        accepted, only EOS stays allowed (so finished rows of a batch can keep padding).
        """
        words = check_bitmask(bitmask, row, self.vocab_size)
        if self._terminated[-1]:
            words[:] = 0
        else:
            np.copyto(words, self.constraint.token_bits(self._states[-1]))
        if self.is_accepting():
            for e in self.constraint.vocab.eos_token_ids:
                words[e >> 5] |= np.uint32(1) << np.uint32(e & 31)

    def allowed_token_ids(self) -> np.ndarray:
        """Allowed token ids, ascending (convenience; allocates)."""
        from constrain.kernels.bitmask import allocate_bitmask, allowed_token_ids

        bm = allocate_bitmask(1, self.vocab_size)
        self.fill_bitmask(bm, 0)
        return allowed_token_ids(bm[0], self.vocab_size)

    def is_token_allowed(self, token_id: int) -> bool:
        """Whether ``accept_token(token_id)`` would succeed. Does not change state."""
        if self.constraint.vocab.is_eos(token_id):
            return self.is_accepting()
        if self._terminated[-1]:
            return False
        return self.constraint.advance_token(self._states[-1], token_id) is not None

    def forced_tokens(self) -> list[int]:
        """Tokens that every valid continuation starts with, tokenized greedily; no state change.

        The constraint's forced bytes are split into longest vocabulary tokens; tokenization stops
        before a position where some token could span past the forced bytes (the model might prefer
        it), so the returned tokens never depend on text the constraint leaves open.
        """
        if self._terminated[-1]:
            return []
        forced = self.constraint.forced_bytes(self._states[-1])
        if not forced:
            return []
        trie = self.constraint.vocab.trie
        out: list[int] = []
        pos = 0
        state = self._states[-1]
        while pos < len(forced):
            rest = forced[pos:]
            node = trie.find(rest)
            if node >= 0 and trie.has_children(node):
                break  # a token starting here may reach past the forced bytes
            token_id, length = trie.longest_token_prefix(rest)
            if token_id < 0:
                break
            state = self.constraint.advance_token(state, token_id)
            if state is None:  # pragma: no cover - forced bytes are valid by construction
                break
            out.append(token_id)
            pos += length
        return out

    # ------------------------------------------------------------------ mutations
    def accept_token(self, token_id: int) -> bool:
        """Advance by one token; return False and stay unchanged if it is not allowed."""
        token_id = int(token_id)
        if 0 <= token_id < self.vocab_size and self.constraint.vocab.is_eos(token_id):
            if not self.is_accepting():
                return False
            self._states.append(self._states[-1])
            self._terminated.append(True)
            self._tokens.append(token_id)
            return True
        if self._terminated[-1]:
            return False
        nxt = self.constraint.advance_token(self._states[-1], token_id)
        if nxt is None:
            return False
        self._states.append(nxt)
        self._terminated.append(False)
        self._tokens.append(token_id)
        return True

    def accept_tokens(self, token_ids) -> int:
        """Accept tokens in order until one is rejected; return how many were accepted."""
        n = 0
        for t in token_ids:
            if not self.accept_token(t):
                break
            n += 1
        return n

    def accept_bytes(self, data: bytes) -> bool:
        """Advance by raw text (not a token: rollback cannot split it); False leaves state unchanged."""
        if self._terminated[-1]:
            return False
        nxt = self.constraint.advance_bytes(self._states[-1], data)
        if nxt is None:
            return False
        self._states.append(nxt)
        self._terminated.append(False)
        self._tokens.append(-1)
        return True

    def rollback(self, num_tokens: int = 1) -> None:
        """Undo the last ``num_tokens`` accepted tokens (mutates)."""
        if num_tokens < 0 or num_tokens > len(self._tokens):
            raise ValueError(f"cannot roll back {num_tokens} tokens; {len(self._tokens)} were accepted")
        if num_tokens:
            del self._states[-num_tokens:]
            del self._terminated[-num_tokens:]
            del self._tokens[-num_tokens:]

    def reset(self) -> None:
        """Return to the initial state (mutates)."""
        self.rollback(len(self._tokens))

    def copy(self) -> Matcher:
        """An independent matcher with the same history."""
        other = Matcher.__new__(Matcher)
        other.constraint = self.constraint
        other._states = list(self._states)
        other._tokens = list(self._tokens)
        other._terminated = list(self._terminated)
        return other

    def __repr__(self) -> str:
        return (
            f"Matcher({type(self.constraint).__name__}, tokens={len(self._tokens)}, "
            f"accepting={self.is_accepting()}, terminated={self.is_terminated()})"
        )
