"""SparseDFAConstraint: a byte DFA stored as sorted edge lists, for automata too big for a dense table.

A dense :class:`~constrain.regex.dfa.ByteDFA` costs 1 KiB per state (``int32[256]``); a trie of
100,000 phrases has hundreds of thousands of states with one or two edges each. Here state ``s``
has the edges ``edge_byte[offsets[s]:offsets[s+1]]`` (ascending) -> ``edge_target[...]``. The same
invariants as ByteDFA hold: start 0, every state reachable and live (can reach acceptance), ``-1``
the only dead outcome. Masks come from the same trie walk as DFAConstraint (binary search per byte)
and are cached per state, bounded by ``Limits.max_cached_masks``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from constrain.compiled import CompiledConstraint, MaskCache
from constrain.constraints._kernels import (
    sparse_advance_kernel,
    sparse_token_ends_kernel,
    sparse_token_mask_kernel,
)
from constrain.dfa_constraint import DFAConstraint
from constrain.errors import InputError
from constrain.kernels.bitmask import bitmask_words
from constrain.kernels.walk import dfa_token_next_kernel
from constrain.limits import DEFAULT_LIMITS, Limits
from constrain.regex.dfa import ByteDFA
from constrain.vocab.vocabulary import Vocabulary


@dataclass(frozen=True, eq=False)
class SparseDFA:
    """Byte DFA as CSR edge lists (immutable); see the module docstring for the invariants."""

    offsets: np.ndarray  # int64 [n_states + 1]
    edge_byte: np.ndarray  # uint8 [n_edges], ascending within a state
    edge_target: np.ndarray  # int32 [n_edges]
    accepting: np.ndarray  # bool [n_states]
    start: int = 0

    @property
    def n_states(self) -> int:
        return int(self.accepting.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.edge_byte.shape[0])

    def advance(self, state: int, data: bytes) -> int:
        """State after ``data`` from ``state``, -1 if rejected."""
        return int(
            sparse_advance_kernel(
                self.offsets, self.edge_byte, self.edge_target, state, np.frombuffer(data, dtype=np.uint8)
            )
        )

    def matches(self, data: bytes) -> bool:
        s = self.advance(self.start, data)
        return s >= 0 and bool(self.accepting[s])

    def forced_bytes(self, state: int) -> bytes:
        """Bytes followed while the state is not accepting and has exactly one edge."""
        out = bytearray()
        while state >= 0 and not self.accepting[state]:
            lo, hi = int(self.offsets[state]), int(self.offsets[state + 1])
            if hi - lo != 1:
                break
            out.append(int(self.edge_byte[lo]))
            state = int(self.edge_target[lo])
        return bytes(out)

    def to_byte_dfa(self) -> ByteDFA:
        """The dense equivalent (1 KiB per state: only for small automata)."""
        n = self.n_states
        trans = np.full((n, 256), -1, dtype=np.int32)
        src = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.offsets))
        trans[src, self.edge_byte.astype(np.int64)] = self.edge_target
        return ByteDFA(trans, self.accepting.copy(), 0)


class ExcludingSparseDFA:
    """The strings of the byte automaton ``base`` except the byte strings ``excluded``: a
    :class:`SparseDFA` of that language (``offsets``, ``edge_byte``, ``edge_target``,
    ``accepting``, ``start`` and the methods, as there), built by ``build()`` on first use.

    An eager lexer with several such terminals over one ``base`` (a JSON object's "any key but
    its declared names", one per object) never builds them: it runs ``base`` once and reads each
    terminal's acceptance off which excluded strings end where ``base`` accepts
    (:class:`constrain.regex.dfa._ExclusionFold`), instead of running a copy per terminal side by
    side. Every other reader (a lazy lexer, error checks) gets the automaton. The language never
    changes; the automaton is cached on the object once built."""

    __slots__ = ("base", "excluded", "_build", "_dfa")

    def __init__(self, base: SparseDFA, excluded: tuple, build):
        self.base = base
        self.excluded = excluded  # bytes each; those ``base`` does not accept exclude nothing
        self._build = build
        self._dfa = None

    @property
    def dfa(self) -> SparseDFA:
        """The automaton (built on first use)."""
        if self._dfa is None:
            self._dfa = self._build()
            self._build = None
        return self._dfa

    @property
    def summary(self) -> str:
        """A description that does not build the automaton (for grammar listings)."""
        return f"<automaton: the strings of a {self.base.n_states}-state automaton but {len(self.excluded)}>"

    offsets = property(lambda self: self.dfa.offsets)
    edge_byte = property(lambda self: self.dfa.edge_byte)
    edge_target = property(lambda self: self.dfa.edge_target)
    accepting = property(lambda self: self.dfa.accepting)
    start = property(lambda self: self.dfa.start)
    n_states = property(lambda self: self.dfa.n_states)
    n_edges = property(lambda self: self.dfa.n_edges)

    def advance(self, state: int, data: bytes) -> int:
        return self.dfa.advance(state, data)

    def matches(self, data: bytes) -> bool:
        return self.dfa.matches(data)

    def forced_bytes(self, state: int) -> bytes:
        return self.dfa.forced_bytes(state)

    def to_byte_dfa(self) -> ByteDFA:
        return self.dfa.to_byte_dfa()


class SparseDFAConstraint(CompiledConstraint):
    """Constraint over a :class:`SparseDFA`; the state is an ``int``."""

    def __init__(self, dfa: SparseDFA, vocab: Vocabulary, *, source: str = "", limits: Limits = DEFAULT_LIMITS):
        if dfa.n_states == 0 or (dfa.n_edges == 0 and not dfa.accepting[0]):
            raise InputError(f"{source!r} matches no string at all")
        self.dfa = dfa
        self.vocab = vocab
        self.source = source
        self.limits = limits
        self._mask_cache = MaskCache(limits.max_cached_masks)
        self._token_arrays = vocab.token_arrays
        self._csr = (dfa.offsets, dfa.edge_byte, dfa.edge_target)

    def __repr__(self) -> str:
        return (
            f"SparseDFAConstraint({self.source!r}, states={self.dfa.n_states}, "
            f"edges={self.dfa.n_edges}, vocab={self.vocab.size})"
        )

    def initial_state(self) -> int:
        return 0

    def is_accepting(self, state: int) -> bool:
        return bool(self.dfa.accepting[state])

    def advance_bytes(self, state: int, data: bytes) -> int | None:
        nxt = sparse_advance_kernel(*self._csr, state, np.frombuffer(data, dtype=np.uint8))
        return None if nxt < 0 else int(nxt)

    def advance_token(self, state: int, token_id: int) -> int | None:
        if not 0 <= token_id < self.vocab.size:
            return None
        arr = self._token_arrays[token_id]
        if arr is None or arr.shape[0] == 0:
            return None
        nxt = sparse_advance_kernel(*self._csr, state, arr)
        return None if nxt < 0 else int(nxt)

    def forced_bytes(self, state: int) -> bytes:
        return self.dfa.forced_bytes(state)

    def compute_token_bits(self, state: int) -> np.ndarray:
        """Uncached mask of ``state`` (the trie walk)."""
        trie = self.vocab.trie
        words = np.zeros(bitmask_words(self.vocab.size), dtype=np.uint32)
        sparse_token_mask_kernel(
            *self._csr, state, trie.node_byte, trie.node_depth, trie.subtree_end,
            trie.node_token_start, trie.token_ids, trie.max_depth, words,
        )
        return words

    def token_bits(self, state: int) -> np.ndarray:
        return self._mask_cache.get(state, self.compute_token_bits)

    def fill_token_bits(self, state: int, words: np.ndarray) -> None:
        np.bitwise_or(words, self.token_bits(state), out=words)

    def clear_cache(self) -> None:
        self._mask_cache.clear()


# ------------------------------------------------------------------------------------------------
# Helpers shared by the combinators: the automaton behind a DFA-based constraint
# ------------------------------------------------------------------------------------------------


def is_dfa_based(c: CompiledConstraint) -> bool:
    """Whether ``c``'s states are the int states of a dense or sparse byte DFA."""
    return isinstance(c, (DFAConstraint, SparseDFAConstraint))


def dfa_n_states(c: CompiledConstraint) -> int:
    return int(c.dfa.n_states)


def dfa_accepting(c: CompiledConstraint) -> np.ndarray:
    return np.asarray(c.dfa.accepting, dtype=bool)


def token_ends(c: CompiledConstraint, state: int) -> np.ndarray:
    """``int32[V]``: the state after each token from ``state`` (-1: not allowed), by one trie walk."""
    trie = c.vocab.trie
    out = np.full(c.vocab.size, -1, dtype=np.int32)
    args = (trie.node_byte, trie.node_depth, trie.subtree_end, trie.node_token_start, trie.token_ids,
            trie.max_depth, out)
    if isinstance(c, SparseDFAConstraint):
        sparse_token_ends_kernel(*c._csr, state, *args)
    elif isinstance(c, DFAConstraint):
        dfa_token_next_kernel(c._transitions, state, *args)
    else:  # pragma: no cover - callers check is_dfa_based
        raise TypeError(f"{type(c).__name__} is not DFA-based")
    return out


def same_vocab(a: Vocabulary, b: Vocabulary) -> bool:
    """Whether two vocabularies map every id to the same bytes and share EOS ids."""
    return a is b or (a.size == b.size and a.eos_token_ids == b.eos_token_ids and a.tokens == b.tokens)
