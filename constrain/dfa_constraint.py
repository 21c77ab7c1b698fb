"""DFAConstraint: a constraint whose language is a byte-level DFA (regular expressions).

The token mask of a DFA state depends on the state alone, so masks are computed once per state by
the trie-walk kernel and cached (bounded by ``Limits.max_cached_masks``); a repeated state costs a
6 KiB copy for a 49k vocabulary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from constrain._nogc import without_gc
from constrain.compiled import CompiledConstraint, MaskCache
from constrain.errors import InputError, VocabularyError
from constrain.kernels.bitmask import bitmask_words
from constrain.kernels.walk import dfa_advance_kernel, dfa_token_mask_kernel, dfa_token_next_kernel
from constrain.limits import DEFAULT_LIMITS, Limits
from constrain.vocab.vocabulary import Vocabulary

if TYPE_CHECKING:
    from constrain.regex.dfa import ByteDFA


class DFAConstraint(CompiledConstraint):
    """Constraint over a minimized byte DFA whose states are all live; the state is an ``int``.

    Every DFA state can reach acceptance by *bytes*; when the vocabulary lacks a single-byte token
    for some byte the DFA uses, a state may still be unreachable-to-acceptance by *tokens* (e.g.
    after " cat" when "ch" is needed and no token spells "c", "h" or "ch"). Such states are found
    at compile time (token-level backward reachability, up to ``limits.max_liveness_states``) and
    tokens leading into them are never allowed, so a masked walk can always finish.

    Parameters
    ----------
    dfa : ByteDFA
        Full-match byte automaton (every state can reach an accepting state).
    vocab : Vocabulary
    source : str
        What the DFA was compiled from (for ``repr`` and errors).
    limits : Limits, default: DEFAULT_LIMITS
    """

    def __init__(self, dfa: ByteDFA, vocab: Vocabulary, *, source: str = "", limits: Limits = DEFAULT_LIMITS):
        if dfa.n_states == 0:
            raise InputError(f"{source!r} matches no string at all")
        self.dfa = dfa
        self.vocab = vocab
        self.source = source
        self.limits = limits
        self._transitions = np.ascontiguousarray(dfa.transitions, dtype=np.int32)
        self._mask_cache = MaskCache(limits.max_cached_masks)
        self._token_arrays = vocab.token_arrays
        self._token_live = self._token_liveness()

    def _token_next(self, state: int) -> np.ndarray:
        """``int32[V]``: the state after each token from ``state`` (-1: a byte has no transition)."""
        trie = self.vocab.trie
        out = np.full(self.vocab.size, -1, dtype=np.int32)
        dfa_token_next_kernel(
            self._transitions, state, trie.node_byte, trie.node_depth, trie.subtree_end,
            trie.node_token_start, trie.token_ids, trie.max_depth, out,
        )
        return out

    def _token_liveness(self) -> np.ndarray | None:
        """``bool[n_states]`` token-level liveness, or None when every state is token-live (or unchecked)."""
        used = np.flatnonzero((self._transitions >= 0).any(axis=0))
        if self.vocab.single_byte_tokens[used].all():
            return None  # every byte path is spelled by single-byte tokens
        n = self.dfa.n_states
        if n > self.limits.max_liveness_states:
            return None
        successors = []
        for s in range(n):
            row = self._token_next(s)
            successors.append(np.unique(row[row >= 0]))
        live = np.asarray(self.dfa.accepting, dtype=bool).copy()
        changed = True
        while changed:
            changed = False
            for s in np.flatnonzero(~live):
                if live[successors[s]].any():
                    live[s] = True
                    changed = True
        if not live[self.dfa.start]:
            raise VocabularyError(
                f"no sequence of this vocabulary's tokens spells a string matching {self.source!r} "
                "(it needs bytes that no token provides)"
            )
        return None if live.all() else live

    def __repr__(self) -> str:
        return f"DFAConstraint({self.source!r}, states={self.dfa.n_states}, vocab={self.vocab.size})"

    def initial_state(self) -> int:
        return int(self.dfa.start)

    def is_accepting(self, state: int) -> bool:
        return bool(self.dfa.accepting[state])

    def advance_bytes(self, state: int, data: bytes) -> int | None:
        nxt = dfa_advance_kernel(self._transitions, state, np.frombuffer(data, dtype=np.uint8))
        return None if nxt < 0 else int(nxt)

    def advance_token(self, state: int, token_id: int) -> int | None:
        if not 0 <= token_id < self.vocab.size:
            return None
        arr = self._token_arrays[token_id]
        if arr is None or arr.shape[0] == 0:
            return None
        nxt = dfa_advance_kernel(self._transitions, state, arr)
        if nxt < 0 or (self._token_live is not None and not self._token_live[nxt]):
            return None
        return int(nxt)

    def forced_bytes(self, state: int) -> bytes:
        return self.dfa.forced_bytes(state)

    def compute_token_bits(self, state: int) -> np.ndarray:
        """Run the trie-walk kernel for ``state`` (uncached): uint32 words of allowed non-EOS tokens."""
        trie = self.vocab.trie
        words = np.zeros(bitmask_words(self.vocab.size), dtype=np.uint32)
        if self._token_live is not None:
            nxt = self._token_next(state)
            allowed = np.zeros(words.shape[0] * 32, dtype=bool)
            ok = nxt >= 0
            ok[ok] = self._token_live[nxt[ok]]
            allowed[: self.vocab.size] = ok
            return np.packbits(allowed, bitorder="little").view("<u4").astype(np.uint32)
        dfa_token_mask_kernel(
            self._transitions,
            state,
            trie.node_byte,
            trie.node_depth,
            trie.subtree_end,
            trie.node_token_start,
            trie.token_ids,
            trie.max_depth,
            words,
        )
        return words

    def token_bits(self, state: int) -> np.ndarray:
        return self._mask_cache.get(state, self.compute_token_bits)

    def fill_token_bits(self, state: int, words: np.ndarray) -> None:
        np.bitwise_or(words, self.token_bits(state), out=words)

    def clear_cache(self) -> None:
        """Drop cached masks (mutates the cache only; results are unchanged)."""
        self._mask_cache.clear()


@without_gc
def compile_regex(
    pattern: str,
    vocab: Vocabulary,
    *,
    ignore_case: bool = False,
    dotall: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> DFAConstraint:
    """Compile ``pattern`` (Python regex syntax, full-match) into a constraint over ``vocab``.

    Raises
    ------
    RegexSyntaxError
        The pattern is malformed (the message gives the position).
    UnsupportedFeatureError
        Lookaround, backreferences or inner anchors (the message gives the position).
    LimitExceededError
        The DFA would exceed ``limits.max_dfa_states`` (or another regex bound).
    """
    if not isinstance(vocab, Vocabulary):
        raise TypeError(f"vocab must be a constrain.Vocabulary, got {type(vocab).__name__}")
    from constrain.regex.dfa import regex_to_dfa

    dfa = regex_to_dfa(pattern, limits=limits, ignore_case=ignore_case, dotall=dotall)
    return DFAConstraint(dfa, vocab, source=pattern, limits=limits)
