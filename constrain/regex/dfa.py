"""Regular expressions -> minimized byte-level DFAs over UTF-8 (one pattern, or a lexer of several).

Pipeline: :func:`constrain.regex._parse.parse` (our scanner reads the characters, a small parser
the structure into interegular's AST; a pattern with top-level groups is parsed piece by piece)
-> Thompson NFA over *bytes* with byte-range edges (each code-point set is encoded as UTF-8
byte-range sequences, so invalid UTF-8 and surrogates are never accepted), assembled from
per-entry fragments kept in a bounded process-wide cache -> subset construction over byte
equivalence classes in numba, bounded by ``Limits.max_dfa_states`` -> Hopcroft minimization in
numba -> removal of dead states -> an ``int32[n_states, 256]`` table.

Semantics are those of ``re.fullmatch`` with ``re.ASCII`` for ``\\d \\w \\s`` (and their negations),
while ignore-case folds all of Unicode by simple one-character case mapping, like ``re`` without
``re.ASCII``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from typing import Union

import numpy as np
from interegular import patterns as ip

from constrain._cache import BoundedCache
from constrain.errors import InternalError, LimitExceededError, RegexSyntaxError, UnsupportedFeatureError
from constrain.limits import DEFAULT_LIMITS, Limits
from constrain.regex import _charset as cs
from constrain.regex._kernels import live_terminals_kernel
from constrain.regex._lazy_kernels import (
    NEED_ROOM,
    OUT_FULL,
    TOO_MANY_STATES,
    coreach_kernel,
    lazy_closure,
    lazy_expand_ahead_kernel,
    lazy_expand_kernel,
    lazy_expand_walk_kernel,
    lazy_find,
    lazy_intern,
    lazy_rehash,
    reads_byte_kernel,
)
from constrain.regex._parse import CharSpec, Parsed, parse

__all__ = ["ByteDFA", "LexerDFA", "LazyLexerDFA", "regex_to_dfa", "terminals_to_dfa", "terminals_to_lazy_dfa", "literal_to_regex"]

_DOT_TYPE = type(ip._DOT)
_EMPTY_TYPE = type(ip._EMPTY)
_ALL_SCALARS = cs.normalize([(0, cs.MAX_CODE_POINT)])
_ALL_BUT_NEWLINE = cs.normalize([(0, 9), (11, cs.MAX_CODE_POINT)])


# ------------------------------------------------------------------------------------------------
# Thompson NFA over bytes
# ------------------------------------------------------------------------------------------------


def _charset_size(ranges: cs.Ranges) -> int:
    """Return the number of NFA states :meth:`_NFA.charset` adds for ``ranges``."""
    return _charset_shape_cached(ranges if isinstance(ranges, tuple) else tuple(ranges))[0]


@lru_cache(maxsize=4096)
def _resolve(spec: CharSpec, icase: bool) -> cs.Ranges:
    """Return ``spec.resolve(icase)``, cached."""
    return spec.resolve(icase)


def _node_ranges(node, flags: ip.REFlags, specs) -> cs.Ranges:
    """Return the code points matched by a ``_CharGroup`` or ``.`` node under ``flags``."""
    if isinstance(node, _DOT_TYPE):
        return _ALL_SCALARS if flags & ip.REFlags.S else _ALL_BUT_NEWLINE
    icase = bool(flags & ip.REFlags.I)
    if len(node.chars) == 1 and not node.negated:
        (ch,) = node.chars
        spec = specs.get(ch)
        if spec is not None:
            return _resolve(spec, icase)
    return _group_ranges(node.chars, node.negated, icase)


@lru_cache(maxsize=8192)
def _group_ranges(chars: frozenset, negated: bool, icase: bool) -> cs.Ranges:
    """The code points of a character group (literal characters, maybe negated), cached: schema
    lexers repeat the same JSON-string classes in every terminal."""
    ranges = cs.normalize((ord(c), ord(c)) for c in chars)
    if icase:
        ranges = cs.case_closure(ranges)
    return cs.complement(ranges) if negated else ranges


COUNTED_REPEAT_MIN = 32
"""In a lazily built lexer, a repetition ``{n,m}`` whose bound exceeds this becomes a counter
(the body once, the iteration count kept in the lexer state) instead of ``m`` copies of the body."""


def _is_counted(node, counted: bool) -> bool:
    """Whether :meth:`_NFA.build` builds this ``_Repeated`` node as a counted loop."""
    return counted and max(node.min, node.max or 0) > COUNTED_REPEAT_MIN


def _nfa_size(node, flags: ip.REFlags, specs, memo: dict, counted: bool = False) -> int:
    """Return exactly how many states :meth:`_NFA.build` adds for ``node`` (without building it).

    ``counted``: as built for a lazy lexer (large repetitions are counted loops: the body plus
    three states; repetitions inside a counted body are expanded)."""
    key = (id(node), flags, counted)
    got = memo.get(key)
    if got is not None:
        return got
    if isinstance(node, ip.Pattern):
        flags = ip._combine_flags(flags, node.added_flags, node.removed_flags)
        sizes = [_nfa_size(o, flags, specs, memo, counted) for o in node.options]
        n = sizes[0] if len(sizes) == 1 else 2 + sum(sizes)
    elif isinstance(node, ip._Concatenation):
        n = sum(_nfa_size(p, flags, specs, memo, counted) for p in node.parts) if node.parts else 1
    elif isinstance(node, (ip._CharGroup, _DOT_TYPE)):
        n = _charset_size(_node_ranges(node, flags, specs))
    elif isinstance(node, _EMPTY_TYPE):
        n = 1
    elif isinstance(node, ip._Repeated):
        if _is_counted(node, counted):
            n = 3 + _nfa_size(node.base, flags, specs, memo, False)
        else:
            b = _nfa_size(node.base, flags, specs, memo, counted)
            n = 2 + (node.min + 1) * b if node.max is None else 2 + node.max * b
    else:
        raise InternalError(f"unexpected regex AST node {type(node).__name__}")
    memo[key] = n
    return n


_CHARSET_SHAPES = BoundedCache(4096)


def _charset_shape_cached(key: tuple) -> tuple[int, list[tuple[int, int, int, int]]]:
    """:func:`_charset_shape` of ``key``, kept in a bounded process-wide table."""
    shape = _CHARSET_SHAPES.get(key)
    if shape is None:
        shape = _CHARSET_SHAPES.put(key, _charset_shape(key))
    return shape


def _charset_shape(ranges: tuple) -> tuple[int, list[tuple[int, int, int, int]]]:
    """``(states, edges)`` of the minimal acyclic automaton of the UTF-8 encodings of one code
    point of ``ranges``: local state 0 is the start, 1 the end; edges ``(src, lo, hi, dst)``
    (:func:`sequences_shape` of the UTF-8 byte-range sequences)."""
    return sequences_shape(cs.utf8_sequences(ranges))


def sequences_shape(sequences) -> tuple[int, list[tuple[int, int, int, int]]]:
    """``(states, edges)`` of the acyclic automaton of byte-range ``sequences`` (each a tuple of
    ``(lo, hi)``; none a proper prefix of another): local state 0 is the start, 1 the end; edges
    ``(src, lo, hi, dst)``.

    Built as the trie of the byte-range sequences, then states with the same outgoing edges are
    merged bottom-up (suffix sharing: "two continuation bytes 80-BF left" is one state whatever
    the lead byte). Without the merge every lead-byte range keeps its own continuation states, and
    the lexer's subset construction copies them once per place the class occurs (the JSON string
    body class has 20 states as a trie, 9 shared), to be merged again only by minimization."""
    trie: list[dict[tuple[int, int], int]] = [{}, {}]  # node -> {(lo, hi): child}; node 1 = end
    for seq in sequences:
        cur = 0
        for k, (lo, hi) in enumerate(seq):
            if k == len(seq) - 1:
                trie[cur][(lo, hi)] = 1
            else:
                nxt = trie[cur].get((lo, hi))
                if nxt is None:
                    nxt = trie[cur][(lo, hi)] = len(trie)
                    trie.append({})
                cur = nxt
    # children are created after their parents: signatures bottom-up in reverse creation order
    rep = list(range(len(trie)))
    by_sig: dict[tuple, int] = {}
    for node in range(len(trie) - 1, 1, -1):
        sig = tuple(sorted((lo, hi, rep[c]) for (lo, hi), c in trie[node].items()))
        rep[node] = by_sig.setdefault(sig, node)
    local = {0: 0, 1: 1}
    edges: list[tuple[int, int, int, int]] = []
    stack = [0]
    while stack:
        node = stack.pop()
        for (lo, hi), c in sorted(trie[node].items()):
            c = rep[c]
            if c not in local:
                local[c] = len(local)
                stack.append(c)
            edges.append((local[node], lo, hi, local[c]))
    return len(local), edges


class _NFA:
    """A Thompson NFA with epsilon edges and byte-range edges; built by mutation (``new_state``...)."""

    def __init__(self, limits: Limits, what: str, counted: bool = False, cap: int | None = None):
        self.limits = limits
        self.what = what
        # states allowed: limits.max_nfa_states, or fewer for a fragment of a lexer with a budget
        self.cap = limits.max_nfa_states if cap is None else min(cap, limits.max_nfa_states)
        self.eps: list[list[int]] = []
        self.edges: list[list[tuple[int, int, int]]] = []
        # Counted loops (``counted``: large repetitions, see COUNTED_REPEAT_MIN). A configuration
        # is (state, count): ``count`` is the number of completed iterations of the loop the state
        # belongs to (0 outside loops). loop_of: state -> loop index (body states and the loop's
        # back state); loops[i] = (body_start, back, exit, min, max or None).
        self.counted = counted
        self.loop_of: dict[int, int] = {}
        self.loops: list[tuple[int, int, int, int, int | None]] = []

    def new_state(self) -> int:
        """Add a state and return its id (mutates); raise when ``max_nfa_states`` is exceeded."""
        n = len(self.eps)
        if n >= self.cap:
            raise _nfa_limit(self.limits, self.what, n + 1)
        self.eps.append([])
        self.edges.append([])
        return n

    def charset(self, ranges: cs.Ranges) -> tuple[int, int]:
        """Add a fragment matching one code point of ``ranges`` as UTF-8 (mutates). The fragment's
        shape depends on ``ranges`` only: built once (a trie of UTF-8 byte ranges, local states
        0 = start, 1 = end) and copied with an offset."""
        n_local, edges = _charset_shape_cached(ranges if isinstance(ranges, tuple) else tuple(ranges))
        if len(self.eps) + n_local > self.cap:
            raise _nfa_limit(self.limits, self.what, len(self.eps) + n_local)
        base = len(self.eps)
        self.eps.extend([] for _ in range(n_local))
        self.edges.extend([] for _ in range(n_local))
        for src, lo, hi, dst in edges:
            self.edges[base + src].append((lo, hi, base + dst))
        return base, base + 1

    def embed_dfa(self, dfa) -> tuple[int, int]:
        """Add a fragment equal to a byte DFA (:class:`ByteDFA` or a sparse one with CSR edges) and
        return its (start, end) (mutates): one NFA state per DFA state, runs of bytes with the same
        target as one range edge, an epsilon edge from each accepting state to the end."""
        n = int(dfa.n_states)
        if len(self.eps) + n + 1 > self.cap:
            raise _nfa_limit(self.limits, self.what, len(self.eps) + n + 1)
        base = len(self.eps)
        self.eps.extend([] for _ in range(n))
        self.edges.extend([] for _ in range(n))
        end = self.new_state()
        if hasattr(dfa, "offsets"):  # sparse: CSR edge lists, bytes ascending within a state
            offsets = np.asarray(dfa.offsets).tolist()
            eb = np.asarray(dfa.edge_byte).tolist()
            et = np.asarray(dfa.edge_target).tolist()
            rows = ((eb[offsets[q]:offsets[q + 1]], et[offsets[q]:offsets[q + 1]]) for q in range(n))
        else:
            trans = np.asarray(dfa.transitions)
            rows = ((np.flatnonzero(r >= 0).tolist(), r[r >= 0].tolist()) for r in trans)
        for q, (bs, ts) in enumerate(rows):
            out = self.edges[base + q]
            i = 0
            while i < len(bs):
                j = i
                while j + 1 < len(bs) and bs[j + 1] == bs[j] + 1 and ts[j + 1] == ts[i]:
                    j += 1
                out.append((bs[i], bs[j], base + ts[i]))
                i = j + 1
        for q in np.flatnonzero(np.asarray(dfa.accepting)).tolist():
            self.eps[base + q].append(end)
        return base + int(dfa.start), end

    def build_entry(self, p, flags: ip.REFlags) -> tuple[int, int]:
        """Add the fragment of a lexer entry (a :class:`Parsed` pattern, a :class:`ParsedConcat`
        whose pieces are joined in order by epsilon edges, or a byte DFA) and return its
        (start, end) (mutates)."""
        if isinstance(p, Parsed):
            return self.build(p.ast, flags | p.global_flags, p.specs)
        if isinstance(p, ParsedConcat):
            return self._chain(self.build_entry(q, flags) for q in p.parts)
        if isinstance(p, ParsedLiteral):
            return self.build_entry(p.parsed, flags) if p.folds(flags) else self.literal(p.data)
        return self.embed_dfa(p)

    def literal(self, data: bytes) -> tuple[int, int]:
        """Add a chain of states reading exactly ``data`` and return its (start, end) (mutates)."""
        if len(self.eps) + len(data) + 1 > self.cap:
            raise _nfa_limit(self.limits, self.what, len(self.eps) + len(data) + 1)
        start = cur = self.new_state()
        for b in data:
            nxt = self.new_state()
            self.edges[cur].append((b, b, nxt))
            cur = nxt
        return start, cur

    def _chain(self, fragments) -> tuple[int, int]:
        """Join fragments ``(start, end)`` (built one at a time as the iterable is consumed) end to
        start by epsilon edges; return the first start and the last end (mutates)."""
        first = last = None
        for a, b in fragments:
            if first is None:
                first = a
            else:
                self.eps[last].append(a)
            last = b
        return first, last

    def build(self, node, flags: ip.REFlags, specs) -> tuple[int, int]:
        """Add the fragment for an interegular AST node and return its (start, end) (mutates)."""
        if isinstance(node, ip.Pattern):
            flags = ip._combine_flags(flags, node.added_flags, node.removed_flags)
            if len(node.options) == 1:
                return self.build(node.options[0], flags, specs)
            s, e = self.new_state(), self.new_state()
            for opt in node.options:
                a, b = self.build(opt, flags, specs)
                self.eps[s].append(a)
                self.eps[b].append(e)
            return s, e
        if isinstance(node, ip._Concatenation):
            if not node.parts:
                s = self.new_state()
                return s, s
            return self._chain(self.build(part, flags, specs) for part in node.parts)
        if isinstance(node, (ip._CharGroup, _DOT_TYPE)):
            return self.charset(_node_ranges(node, flags, specs))
        if isinstance(node, _EMPTY_TYPE):
            s = self.new_state()
            return s, s
        if isinstance(node, ip._Repeated) and _is_counted(node, self.counted):
            return self._counted_loop(node, flags, specs)
        if isinstance(node, ip._Repeated):
            s = self.new_state()
            cur = s
            for _ in range(node.min):
                a, b = self.build(node.base, flags, specs)
                self.eps[cur].append(a)
                cur = b
            if node.max is None:
                a, b = self.build(node.base, flags, specs)
                e = self.new_state()
                self.eps[cur].extend((a, e))
                self.eps[b].extend((a, e))
                return s, e
            e = self.new_state()
            for _ in range(node.max - node.min):
                a, b = self.build(node.base, flags, specs)
                self.eps[cur].extend((a, e))
                cur = b
            self.eps[cur].append(e)
            return s, e
        raise InternalError(f"unexpected regex AST node {type(node).__name__}")

    def _counted_loop(self, node, flags: ip.REFlags, specs) -> tuple[int, int]:
        """Add ``base{min,max}`` as one copy of the body with a counter (mutates): entry ``E``
        (count 0) -> body; body end -> back state ``B`` (count + 1, saturating at ``min`` when
        unbounded); ``B`` -> body while count < max, ``B`` -> exit ``F`` once count >= min."""
        entry = self.new_state()
        lo = len(self.eps)
        was, self.counted = self.counted, False  # repetitions inside the body are expanded
        try:
            a, b = self.build(node.base, flags, specs)
        finally:
            self.counted = was
        hi = len(self.eps)
        back, exit_ = self.new_state(), self.new_state()
        index = len(self.loops)
        self.loops.append((a, back, exit_, int(node.min), None if node.max is None else int(node.max)))
        for q in range(lo, hi):
            self.loop_of[q] = index
        self.loop_of[back] = index
        self.eps[entry].append(a)
        if node.min == 0:
            self.eps[entry].append(exit_)
        self.eps[b].append(back)
        self.eps[back].extend((a, exit_))
        return entry, exit_


def _nfa_limit(limits: Limits, what: str, n: int) -> LimitExceededError:
    """Return the error for an NFA of ``n`` states."""
    return LimitExceededError(
        "max_nfa_states", limits.max_nfa_states, f"{what} needs at least {n} NFA states"
    )


_FRAGMENT_SIZES = BoundedCache(8192)


def _fragment_size(p, flags: ip.REFlags, memo: dict, counted: bool = False) -> int:
    """NFA states of one lexer entry: a parsed regex, or an embedded DFA (its states + an end).

    A parsed regex's size is kept per (parse, flags, counted) in a bounded process-wide table
    (the parse itself is cached; the lazy lexer sizes its NFA before building it): the entry
    holds the ``Parsed`` object, so its ``id`` cannot be reused while the entry exists."""
    if isinstance(p, ParsedConcat):
        return sum(_fragment_size(q, flags, memo, counted) for q in p.parts)
    if isinstance(p, ParsedLiteral):
        return _fragment_size(p.parsed, flags, memo, counted) if p.folds(flags) else len(p.data) + 1
    if not isinstance(p, Parsed):
        return int(p.n_states) + 1
    got = _FRAGMENT_SIZES.get_for(p, (flags, counted))
    if got is not None:
        return got
    n = _nfa_size(p.ast, flags | p.global_flags, p.specs, memo, counted)
    return _FRAGMENT_SIZES.put_for(p, n, (flags, counted))


def _build_nfa(
    parsed: list[tuple[Parsed, ip.REFlags]], limits: Limits, what: str, counted: bool = False
) -> tuple[_NFA, int, list[int]]:
    """Return an NFA with one start state and one final state per pattern (``counted``: large
    repetitions as counted loops, for :class:`LazyLexerDFA` only).

    The exact size is computed first, so an oversized NFA fails before any of it is built.
    """
    total = 1
    memo: dict = {}
    try:
        for p, flags in parsed:
            total += 1 + _fragment_size(p, flags, memo, counted)
    except RecursionError:
        raise UnsupportedFeatureError(f"group nesting this deep in {what}") from None
    if total > limits.max_nfa_states:
        raise _nfa_limit(limits, what, total)
    nfa = _NFA(limits, what, counted)
    start = nfa.new_state()
    finals = []
    for p, flags in parsed:
        try:
            a, b = nfa.build_entry(p, flags)
        except RecursionError:
            raise UnsupportedFeatureError(f"group nesting this deep in {what}") from None
        f = nfa.new_state()
        nfa.eps[start].append(a)
        nfa.eps[b].append(f)
        finals.append(f)
    return nfa, start, finals


# NFA fragments by entry, bounded by their states (about 60 bytes of arrays each: 30 MB at most)
_FRAGMENTS = BoundedCache(16384, max_weight=500_000, weight=lambda entry: entry[1].n)


class _Fragment:
    """One lexer entry's NFA as arrays over local state ids: ``n`` states, epsilon edges
    ``eps_src -> eps_dst``, byte-range edges ``src --lo..hi--> dst``, entry ``start``, exit ``end``.
    Immutable once built (shared through the fragment cache)."""

    __slots__ = ("n", "eps_src", "eps_dst", "src", "lo", "hi", "dst", "start", "end", "loops", "loop_of")

    def __init__(self, n, eps_src, eps_dst, src, lo, hi, dst, start, end, loops=None, loop_of=None):
        self.n, self.start, self.end = n, start, end
        self.eps_src, self.eps_dst, self.src, self.lo, self.hi, self.dst = eps_src, eps_dst, src, lo, hi, dst
        # counted loops (a lazy lexer's fragments only; None: none): ``loops`` int64[k, 5] rows
        # (body, back, exit, min, max or -1) over local ids, ``loop_of`` int64[n] (-1: outside)
        self.loops, self.loop_of = loops, loop_of


def _regex_fragment(p: Parsed, flags: ip.REFlags, limits: Limits, what: str, cap: int | None = None,
                    counted: bool = False) -> _Fragment:
    """The Thompson fragment of a parsed regex, as :meth:`_NFA.build` makes it, in arrays; more
    than ``cap`` states (default ``limits.max_nfa_states``) raise the ``max_nfa_states`` error.
    ``counted``: large repetitions as counted loops (a lazy lexer's fragment)."""
    nfa = _NFA(limits, what, counted=counted, cap=cap)
    try:
        a, b = nfa.build(p.ast, flags | p.global_flags, p.specs)
    except RecursionError:
        raise UnsupportedFeatureError(f"group nesting this deep in {what}") from None
    eps_ptr, eps_idx, edge_ptr, lo, hi, tgt = _nfa_arrays(nfa)
    n = len(nfa.eps)
    ids = np.arange(n, dtype=np.int64)
    loops = loop_of = None
    if nfa.loops:
        loops = np.asarray([(body, back, exit_, lo_, -1 if hi_ is None else hi_)
                            for body, back, exit_, lo_, hi_ in nfa.loops], dtype=np.int64).reshape(-1, 5)
        loop_of = np.full(n, -1, dtype=np.int64)
        for x, li in nfa.loop_of.items():
            loop_of[x] = li
    return _Fragment(n, np.repeat(ids, np.diff(eps_ptr)), eps_idx, np.repeat(ids, np.diff(edge_ptr)),
                     lo, hi, tgt, a, b, loops, loop_of)


def _dfa_fragment(dfa) -> _Fragment:
    """The fragment of a byte DFA (dense :class:`ByteDFA` or sparse with CSR edges), as
    :meth:`_NFA.embed_dfa` makes it: one state per DFA state, runs of consecutive bytes with the
    same target as one range edge, an epsilon edge from each accepting state to the end (state
    ``n``)."""
    n = int(dfa.n_states)
    if hasattr(dfa, "offsets"):
        offsets = np.asarray(dfa.offsets, dtype=np.int64)
        row = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
        byte = np.asarray(dfa.edge_byte, dtype=np.int64)
        tgt = np.asarray(dfa.edge_target, dtype=np.int64)
    else:
        trans = np.asarray(dfa.transitions)
        row, byte = np.nonzero(trans >= 0)
        row = row.astype(np.int64)
        byte = byte.astype(np.int64)
        tgt = trans[row, byte].astype(np.int64)
    # a run starts where the row changes, the byte is not the previous + 1, or the target changes
    new_run = np.ones(len(row), dtype=bool)
    if len(row) > 1:
        new_run[1:] = (row[1:] != row[:-1]) | (byte[1:] != byte[:-1] + 1) | (tgt[1:] != tgt[:-1])
    first = np.flatnonzero(new_run)
    last = np.append(first[1:] - 1, len(row) - 1) if len(first) else first
    acc = np.flatnonzero(np.asarray(dfa.accepting)).astype(np.int64)
    return _Fragment(
        n + 1, acc, np.full(len(acc), n, dtype=np.int64),
        row[first], byte[first], byte[last], tgt[first], int(dfa.start), n,
    )


def _literal_fragment(data: bytes) -> _Fragment:
    """The fragment of a literal: states ``0..len(data)``, byte ``data[i]`` from ``i`` to ``i + 1``."""
    k = len(data)
    ids = np.arange(k, dtype=np.int64)
    b = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    empty = np.zeros(0, dtype=np.int64)
    return _Fragment(k + 1, empty, empty, ids, b, b.copy(), ids + 1, 0, k)


def _fragment(p, flags: ip.REFlags, limits: Limits, what: str, cap: int | None = None,
              counted: bool = False) -> _Fragment:
    """The fragment of a lexer entry or of one piece of a :class:`ParsedConcat`, kept in a
    bounded process-wide table keyed by the object's identity (the table holds the object, so
    its ``id`` is not reused while there): parses are cached, and schema lexers repeat the same
    terminals and pieces across compiles. A fragment not in the table stops being built past
    ``cap`` states (the ``max_nfa_states`` error); one in the table comes back whatever its size
    (the caller checks the total). ``counted``: as a lazy lexer builds it (a regex with a large
    repetition gets a counted loop, kept apart; any other fragment is the same either way)."""
    counted = counted and isinstance(p, Parsed) and _parsed_max_repeat(p) > COUNTED_REPEAT_MIN
    key = (flags, True) if counted else flags
    hit = _FRAGMENTS.get_for(p, key)
    if hit is not None:
        return hit
    if isinstance(p, Parsed):
        frag = _regex_fragment(p, flags, limits, what, cap, counted)
    elif isinstance(p, ParsedLiteral):
        frag = _fragment(p.parsed, flags, limits, what, cap) if p.folds(flags) else _literal_fragment(p.data)
    else:
        frag = _dfa_fragment(p)
    return _FRAGMENTS.put_for(p, frag, key)


def _lexer_arrays(parsed: list[tuple[Parsed, ip.REFlags]], limits: Limits, what: str, max_eager: int | None = None,
                  counted: bool = False):
    """The lexer NFA of ``parsed`` as CSR arrays, assembled from cached fragments: state 0 the
    start (an epsilon edge to each entry), then each entry's states followed by its final state.

    Returns ``(eps_ptr, eps_idx, edge_ptr, lo, hi, tgt, finals)`` with byte bounds ``lo..hi``.
    The same language as :func:`_build_nfa`, with the same bound ``limits.max_nfa_states`` on the
    total. Fragments not yet cached are built within what the bound leaves (no separate sizing
    pass). ``max_eager``: over this many NFA states, raise ``LimitExceededError`` (field
    ``max_dfa_states``), the grammar compiler's cue to build the lexer lazily.

    ``counted``: the lazy lexer's NFA (large repetitions as counted loops, as :func:`_build_nfa`
    with ``counted=True`` makes it); two more arrays come back, ``loops`` (int64[k, 5]: body,
    back, exit, min, max or -1) and ``loop_of`` (int64[n]: a state's loop, -1 outside)."""
    budget = limits.max_nfa_states if max_eager is None else min(max_eager, limits.max_nfa_states)

    def over(total: int):
        if total > limits.max_nfa_states:
            return _nfa_limit(limits, what, total)
        return LimitExceededError("max_dfa_states", limits.max_dfa_states,
                                  f"large lexer NFA (over {budget} states): build it lazily")

    # every entry as its parts' fragments (a ParsedConcat's pieces are cached one by one and
    # joined here by epsilon edges, not copied into a fragment of their own), then its final state
    total = 1
    frags = []
    owner = []
    for i, (p, flags) in enumerate(parsed):
        for q in p.parts if isinstance(p, ParsedConcat) else (p,):
            try:
                frag = _fragment(q, flags, limits, what, budget - total, counted)
            except RecursionError:
                raise UnsupportedFeatureError(f"group nesting this deep in {what}") from None
            except LimitExceededError as exc:
                if exc.field != "max_nfa_states":
                    raise
                raise over(budget + 1) from None
            total += frag.n
            frags.append(frag)
            owner.append(i)
        total += 1
        if total > budget:
            raise over(total)
    k = len(frags)
    own = np.asarray(owner, dtype=np.int64)
    sizes = np.fromiter((f.n for f in frags), dtype=np.int64, count=k)
    bases = 1 + np.cumsum(sizes) - sizes + own  # entries before this part each added a final state
    last = np.ones(k, dtype=bool)
    last[:-1] = own[1:] != own[:-1]
    first = np.ones(k, dtype=bool)
    first[1:] = last[:-1]
    finals = bases[last] + sizes[last]
    n = int(1 + sizes.sum() + len(parsed))
    starts = np.fromiter((f.start for f in frags), dtype=np.int64, count=k) + bases
    ends = np.fromiter((f.end for f in frags), dtype=np.int64, count=k) + bases
    b = bases.tolist()
    inner = ~last
    # each fragment's edges shifted by its base: one concatenation per array, then one add of
    # the bases repeated per edge (not an add per fragment)
    empty = [np.zeros(0, dtype=np.int64)]
    n_eps = np.fromiter((len(f.eps_src) for f in frags), dtype=np.int64, count=k)
    n_edges = np.fromiter((len(f.src) for f in frags), dtype=np.int64, count=k)
    eps_shift = np.repeat(bases, n_eps)
    edge_shift = np.repeat(bases, n_edges)
    eps_src = np.concatenate([np.zeros(len(parsed), dtype=np.int64), ends[last], ends[inner],
                              np.concatenate([f.eps_src for f in frags] or empty) + eps_shift])
    eps_dst = np.concatenate([starts[first], finals, starts[1:][inner[:-1]],
                              np.concatenate([f.eps_dst for f in frags] or empty) + eps_shift])
    src = np.concatenate([f.src for f in frags] or empty) + edge_shift
    lo = np.concatenate([f.lo for f in frags] or empty)
    hi = np.concatenate([f.hi for f in frags] or empty)
    dst = np.concatenate([f.dst for f in frags] or empty) + edge_shift
    eps_ptr, order = csr_order(eps_src, n)
    edge_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=edge_ptr[1:])
    if len(src) > 1 and (src[1:] < src[:-1]).any():  # fragments list their edges by source
        order_e = np.argsort(src, kind="stable")
        lo, hi, dst = lo[order_e], hi[order_e], dst[order_e]
    if not counted:
        return eps_ptr, eps_dst[order], edge_ptr, lo, hi, dst, finals
    loop_of = np.full(n, -1, dtype=np.int64)
    loops = [np.zeros((0, 5), dtype=np.int64)]
    n_loops = 0
    for j, f in enumerate(frags):
        if f.loops is None:
            continue
        shifted = f.loops.copy()
        shifted[:, :3] += b[j]
        loops.append(shifted)
        inside = f.loop_of >= 0
        loop_of[b[j] : b[j] + f.n][inside] = f.loop_of[inside] + n_loops
        n_loops += len(f.loops)
    return eps_ptr, eps_dst[order], edge_ptr, lo, hi, dst, finals, np.concatenate(loops), loop_of


def csr_order(src: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR of edges given by their source states ``src`` (over ``0..n-1``): ``(ptr, order)``, where
    ``order`` lists the edges by source (stable, so each state keeps its edges' order) and state
    ``s``'s edges are ``order[ptr[s]:ptr[s + 1]]``. Pure."""
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=ptr[1:])
    return ptr, np.argsort(src, kind="stable")


# ------------------------------------------------------------------------------------------------
# Subset construction over byte classes
# ------------------------------------------------------------------------------------------------


def _byte_classes(nfa: _NFA) -> tuple[np.ndarray, int]:
    """Partition 0..255 into classes that no byte-range edge of the NFA distinguishes."""
    boundary = np.zeros(257, dtype=bool)
    boundary[0] = True
    for edges in nfa.edges:
        for lo, hi, _ in edges:
            boundary[lo] = True
            boundary[hi + 1] = True
    class_of = (np.cumsum(boundary[:256]) - 1).astype(np.int32)
    return class_of, int(class_of[-1]) + 1


def _nfa_arrays(nfa: _NFA):
    """An :class:`_NFA` as the CSR arrays of :func:`_subset_construction`: epsilon edges
    (``eps_ptr``, ``eps_idx``) and range edges (``edge_ptr``, byte bounds ``lo``..``hi``, ``tgt``)."""
    from itertools import chain

    eps, edges = nfa.eps, nfa.edges
    eps_ptr = np.zeros(len(eps) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, eps), dtype=np.int64, count=len(eps)), out=eps_ptr[1:])
    eps_idx = np.fromiter(chain.from_iterable(eps), dtype=np.int64, count=int(eps_ptr[-1]))
    edge_ptr = np.zeros(len(edges) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, edges), dtype=np.int64, count=len(edges)), out=edge_ptr[1:])
    n_edges = int(edge_ptr[-1])
    flat = np.fromiter(chain.from_iterable(chain.from_iterable(edges)), dtype=np.int64, count=3 * n_edges)
    flat = flat.reshape(n_edges, 3)
    return eps_ptr, eps_idx, edge_ptr, flat[:, 0].copy(), flat[:, 1].copy(), flat[:, 2].copy()


def _subset_construction(eps_ptr, eps_idx, edge_ptr, lo, hi, tgt, finals, start: int, limits: Limits, what: str,
                         max_work: int | None = None):
    """Return ``(table, accepts, class_of, n_classes)`` of the subset construction of an NFA in
    CSR arrays (byte-range edges ``lo..hi``; ``finals[i]``: the final state of pattern ``i``), in
    numba (:func:`~constrain.regex._kernels.subset_kernel`).

    ``table`` is ``int32[n, n_classes]``: ``table[d, k]`` is the successor of DFA state ``d`` on
    byte class ``k`` (-1: none); ``accepts[d]`` the sorted tuple of pattern indices whose final
    NFA state is in ``d``. Raises ``LimitExceededError`` (field ``max_dfa_states``) when more than
    ``limits.max_dfa_states`` states would be needed, or when the subsets would hold more than
    ``max_work`` NFA states in all (None: no such bound; eager lexers set one, see
    :func:`terminals_to_dfa`).
    """
    table, acc_ptr, acc_idx, class_of, n_cls = _subset_arrays(
        eps_ptr, eps_idx, edge_ptr, lo, hi, tgt, finals, start, limits, what, max_work)
    ptr = acc_ptr.tolist()
    idx = acc_idx.tolist()
    accepts = [tuple(idx[ptr[d] : ptr[d + 1]]) for d in range(len(table))]
    return table, accepts, class_of, n_cls


def _range_classes(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, int]:
    """Partition 0..255 into classes that no byte range ``lo[i]..hi[i]`` splits: ``(class_of
    int32[256], n_classes)``, classes numbered from byte 0 up. Pure."""
    boundary = np.zeros(257, dtype=bool)
    boundary[0] = True
    boundary[lo] = True
    boundary[hi + 1] = True
    class_of = (np.cumsum(boundary[:256]) - 1).astype(np.int32)
    return class_of, int(class_of[-1]) + 1


def _subset_arrays(eps_ptr, eps_idx, edge_ptr, lo, hi, tgt, finals, start: int, limits: Limits, what: str,
                   max_work: int | None = None):
    """:func:`_subset_construction` with the accepted patterns as CSR arrays: returns
    ``(table, acc_ptr, acc_idx, class_of, n_classes)``, ``acc_idx[acc_ptr[d]:acc_ptr[d + 1]]`` the
    sorted pattern indices accepted in state ``d`` (no per-state tuples: the lexer path)."""
    from constrain.regex._kernels import subset_kernel

    class_of, n_cls = _range_classes(lo, hi)
    final_of = np.full(len(eps_ptr) - 1, -1, dtype=np.int64)
    final_of[np.asarray(finals, dtype=np.int64)] = np.arange(len(finals), dtype=np.int64)
    max_states = limits.max_dfa_states
    max_pool = 2**62 if max_work is None else max_work
    n, table, acc_ptr, acc_idx = subset_kernel(
        eps_ptr, eps_idx, edge_ptr, class_of[lo].astype(np.int64), class_of[hi].astype(np.int64), tgt, final_of,
        start, n_cls, max_states, max_pool,
    )
    if n == -1:
        raise LimitExceededError("max_dfa_states", max_states, f"{what} needs more than {max_states} DFA states")
    if n == -2:
        raise LimitExceededError(
            "max_dfa_states", max_states, f"{what}: its subset construction passes {max_pool} NFA states in all"
        )
    return table[:n], acc_ptr[: n + 1], acc_idx, class_of, n_cls


def _label_ids(acc_ptr: np.ndarray, acc_idx: np.ndarray) -> np.ndarray:
    """An id per state of its accepted-pattern set (CSR): equal sets, equal ids; the empty set is
    :data:`_EMPTY_LABEL`, ``{i}`` is ``1 + i``, larger sets come after (in numpy, but for the
    rare states that accept several patterns)."""
    counts = np.diff(acc_ptr)
    n = len(counts)
    key = np.zeros(n, dtype=np.int64)
    one = counts == 1
    key[one] = 1 + acc_idx[acc_ptr[:-1][one]]
    many = np.flatnonzero(counts > 1)
    if len(many):
        base = 2 + int(acc_idx.max(initial=0))
        seen: dict[tuple, int] = {}
        ptr = acc_ptr.tolist()
        idx = acc_idx.tolist()
        for d in many.tolist():
            key[d] = base + seen.setdefault(tuple(idx[ptr[d] : ptr[d + 1]]), len(seen))
    return key


def _determinize(nfa: _NFA, start: int, finals: list[int], limits: Limits, what: str):
    """:func:`_subset_construction` of an :class:`_NFA` (:func:`_determinize_reference` is the
    Python original the tests compare it with)."""
    return _subset_construction(*_nfa_arrays(nfa), finals, start, limits, what)


def _determinize_reference(nfa: _NFA, start: int, finals: list[int], limits: Limits, what: str):
    """:func:`_determinize` in plain Python (``table`` a list of rows; states numbered in
    another order, so compare the minimized results)."""
    class_of, n_cls = _byte_classes(nfa)
    class_of_l = class_of.tolist()
    eps, edges = nfa.eps, nfa.edges
    final_index = {f: i for i, f in enumerate(finals)}
    closures: dict[int, frozenset[int]] = {}

    def closure(s: int) -> frozenset[int]:
        c = closures.get(s)
        if c is not None:
            return c
        seen = {s}
        stack = [s]
        out = []
        while stack:
            x = stack.pop()
            if edges[x] or x in final_index:
                out.append(x)
            for y in eps[x]:
                if y not in seen:
                    seen.add(y)
                    stack.append(y)
        c = closures[s] = frozenset(out)
        return c

    moves: dict[int, list[tuple[int, frozenset[int]]]] = {}

    def move_list(s: int) -> list[tuple[int, frozenset[int]]]:
        m = moves.get(s)
        if m is None:
            m = []
            for lo, hi, t in edges[s]:
                tc = closure(t)
                for k in range(class_of_l[lo], class_of_l[hi] + 1):
                    m.append((k, tc))
            moves[s] = m
        return m

    max_states = limits.max_dfa_states
    start_set = closure(start)
    index: dict[frozenset[int], int] = {start_set: 0}
    sets = [start_set]
    table: list[list[int]] = []
    accepts: list[tuple[int, ...]] = []
    d = 0
    while d < len(sets):
        row = [-1] * n_cls
        acc: dict[int, set[int]] = {}
        fin = []
        for s in sets[d]:
            if s in final_index:
                fin.append(final_index[s])
            for k, tc in move_list(s):
                a = acc.get(k)
                if a is None:
                    acc[k] = set(tc)
                else:
                    a |= tc
        for k, a in acc.items():
            key = frozenset(a)
            t = index.get(key)
            if t is None:
                t = len(sets)
                if t >= max_states:
                    raise LimitExceededError(
                        "max_dfa_states", max_states, f"{what} needs more than {max_states} DFA states"
                    )
                index[key] = t
                sets.append(key)
            row[k] = t
        table.append(row)
        accepts.append(tuple(sorted(fin)))
        d += 1
    return table, accepts, class_of, n_cls


# ------------------------------------------------------------------------------------------------
# Minimization (Hopcroft) and dead-state removal
# ------------------------------------------------------------------------------------------------


def hopcroft_refine(trans, block_of, n_cls: int) -> list[int]:
    """Refine the partition ``block_of`` (of every state, the sink included) to the coarsest one
    that is stable under the transitions (``trans[s][k]``: the successor of ``s`` on class ``k``;
    complete: no -1): Hopcroft's algorithm, ``O(k n log n)``, in numba
    (:func:`constrain.regex._kernels.hopcroft_partial_kernel`, which reads a complete table as
    a partial one with every transition present); the Python reference of
    :func:`constrain.schema.cpdfa.minimize` partitions with it. Block ids come back dense but in
    no particular order."""
    from constrain.regex._kernels import hopcroft_partial_kernel

    ids: dict[int, int] = {}
    block0 = np.fromiter((ids.setdefault(b, len(ids)) for b in block_of), dtype=np.int64, count=len(block_of))
    table = np.asarray(trans, dtype=np.int32).reshape(len(block_of), n_cls)
    return hopcroft_partial_kernel(table, block0, len(ids)).tolist()


def hopcroft_refine_reference(trans: list[list[int]], block_of: list[int], n_cls: int) -> list[int]:
    """:func:`hopcroft_refine` in plain Python (the reference the kernel is tested against). Every
    block but the largest starts as a splitter, which suffices for any starting partition."""
    inv: list[dict[int, list[int]]] = [dict() for _ in range(n_cls)]
    for s, row in enumerate(trans):
        for k, t in enumerate(row):
            lst = inv[k].get(t)
            if lst is None:
                inv[k][t] = [s]
            else:
                lst.append(s)
    ids: dict[int, int] = {}
    block_of = [ids.setdefault(b, len(ids)) for b in block_of]
    blocks: list[set[int]] = [set() for _ in ids]
    for s, b in enumerate(block_of):
        blocks[b].add(s)
    largest = max(range(len(blocks)), key=lambda b: len(blocks[b]))
    work = set(range(len(blocks))) - {largest}
    while work:
        a = work.pop()
        splitter = list(blocks[a])
        for k in range(n_cls):
            invk = inv[k]
            touched: dict[int, list[int]] = {}
            for t in splitter:
                preds = invk.get(t)
                if preds:
                    for s in preds:
                        b = block_of[s]
                        lst = touched.get(b)
                        if lst is None:
                            touched[b] = [s]
                        else:
                            lst.append(s)
            for b, inside in touched.items():
                blk = blocks[b]
                if len(inside) == len(blk):
                    continue
                if len(inside) <= len(blk) - len(inside):
                    moved = set(inside)
                else:
                    moved = blk.difference(inside)
                blk -= moved
                nb = len(blocks)
                blocks.append(moved)
                for s in moved:
                    block_of[s] = nb
                work.add(nb)
    return block_of


_EMPTY_LABEL = 0  # :func:`_label_ids` of the empty set (and the sink's label id in minimization)


def _minimize(table: list[list[int]], labels: list[tuple[int, ...]], n_cls: int, *, hopcroft: bool = False) -> tuple[np.ndarray, list]:
    """Return the minimal table (start 0, BFS order, no dead states) and the label of each state.

    States with different ``labels`` are never merged; a state whose language is empty is merged
    with an explicit sink and then dropped, so ``-1`` is the only dead outcome. If the start state
    itself is dead, one state with no transitions is returned. The partition is Hopcroft's, in
    numba (``hopcroft=True``: the Python reference, :func:`hopcroft_refine_reference`).
    """
    n = len(table)
    # the sink accepts nothing: label () (no pattern accepted), like every non-accepting state
    lab_ids: dict = {(): _EMPTY_LABEL}
    ids = np.fromiter((lab_ids.setdefault(lab, len(lab_ids)) for lab in labels), dtype=np.int64, count=n)
    arr = np.asarray(table, dtype=np.int32).reshape(n, n_cls)
    if not hopcroft:
        out, rep = _minimize_ids(arr, ids, n_cls)
    else:
        trans = _with_sink(arr, n_cls)
        block_of = hopcroft_refine_reference(trans.tolist(), ids.tolist() + [_EMPTY_LABEL], n_cls)
        out, rep = _renumber(trans, block_of, n, n_cls)
    return out, [labels[r] for r in rep.tolist()]


def _with_sink(table: np.ndarray, n_cls: int) -> np.ndarray:
    """``table`` (``int32[n, n_cls]``) completed with a sink: state ``n``, the target of every
    missing transition (-1) and of its own."""
    n = len(table)
    trans = np.empty((n + 1, n_cls), dtype=np.int32)
    trans[:n] = table
    trans[trans < 0] = n
    trans[n] = n
    return trans


def _minimize_ids(table: np.ndarray, label_ids: np.ndarray, n_cls: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_minimize` of a table (``int32[n, n_cls]``) whose states' labels are given as ids
    (equal ids, equal labels): the minimal table and, per minimal state, one of its states in
    ``table`` (the same labels). No Python per state, and no sink: the partition reads only the
    transitions there are (:func:`~constrain.regex._kernels.hopcroft_partial_kernel`), after
    those into dead states are removed."""
    from constrain.regex._kernels import hopcroft_partial_kernel, quotient_partial_kernel

    table = np.ascontiguousarray(table, dtype=np.int32)
    # live: some labelled (accepting) state is reachable; the per-terminal liveness kernel, one column
    accepting = (np.asarray(label_ids) != _EMPTY_LABEL)
    seeds = np.flatnonzero(accepting).astype(np.int64)
    live = live_terminals_kernel(table, accepting[:, None], seeds, np.zeros(len(seeds), dtype=np.int64))[:, 0]
    if not live[0]:
        return np.full((1, n_cls), -1, dtype=np.int32), np.zeros(1, dtype=np.int64)
    # the partial table's "no transition" must mean "dead": transitions into dead states are
    # dropped (a lexer's subset DFA usually has none: then the table is read as it is)
    partial = table
    if not live.all():
        partial = table.copy()
        partial[(table >= 0) & ~live[np.maximum(table, 0)]] = -1
    uniq, block0 = np.unique(label_ids, return_inverse=True)
    block_of = hopcroft_partial_kernel(partial, block0.astype(np.int64), len(uniq))
    return quotient_partial_kernel(partial, block_of)


def _renumber(trans, block_of, n: int, n_cls: int) -> tuple[np.ndarray, np.ndarray]:
    """The quotient table of ``block_of`` (live blocks in BFS order from the start, dead ones -1)
    and, per quotient state, its first state in ``trans`` (the sink is state ``n``).

    Each block's row is its first state's row mapped to blocks; the blocks are numbered in the
    order a queue BFS over the quotient meets them
    (:func:`~constrain.regex._kernels.quotient_partial_kernel`, the sink's block read as "no
    transition")."""
    from constrain.regex._kernels import quotient_partial_kernel

    blk = np.asarray(block_of, dtype=np.int64)
    if blk[0] == blk[n]:
        return np.full((1, n_cls), -1, dtype=np.int32), np.zeros(1, dtype=np.int64)
    table = np.asarray(trans, dtype=np.int32).reshape(n + 1, n_cls)[:n].copy()
    table[blk[table] == blk[n]] = -1
    return quotient_partial_kernel(table, blk[:n])


def _expand(table_cls: np.ndarray, class_of: np.ndarray) -> np.ndarray:
    """Return the ``int32[n, 256]`` byte table of a class table."""
    # (np.take: a fresh C-contiguous array, several times faster than fancy indexing here)
    return np.take(np.asarray(table_cls, dtype=np.int32), class_of, axis=1)


@dataclass(frozen=True, eq=False)
class ParsedConcat:
    """A pattern parsed as the concatenation of its top-level pieces (:func:`split_top_level`),
    each a cached :class:`Parsed`: the NFA of the whole is the pieces' NFAs joined in order by
    epsilon edges, with exactly as many states as the NFA of the pattern parsed whole."""

    parts: tuple


class ParsedLiteral:
    """A piece of a pattern that is a literal string (plain characters and ``\\`` + punctuation):
    its NFA is a chain of its UTF-8 bytes, built without parsing or walking an AST. Under
    ignore-case, when case folding changes one of its characters, it is used through
    :attr:`parsed` (the escaped text parsed as a regex) instead. Immutable; one object per
    (text, limits) through :func:`_literal`, so fragment caches can key on its identity."""

    __slots__ = ("text", "data", "limits", "_parsed", "_cased")

    def __init__(self, text: str, limits: Limits):
        self.text = text
        self.data = text.encode("utf-8")
        self.limits = limits
        self._parsed = None
        self._cased = None

    @property
    def parsed(self) -> Parsed:
        """The literal parsed as a regex (``re.escape`` of the text), made once on first use."""
        if self._parsed is None:
            self._parsed = parse(re.escape(self.text), self.limits)
        return self._parsed

    def folds(self, flags: ip.REFlags) -> bool:
        """Whether ``flags`` ask for ignore-case and case folding changes one of the characters."""
        if not flags & ip.REFlags.I:
            return False
        if self._cased is None:
            ranges = cs.normalize((ord(c), ord(c)) for c in self.text)
            self._cased = cs.case_closure(ranges) != ranges
        return self._cased


@lru_cache(maxsize=8192)
def _literal(text: str, limits: Limits) -> ParsedLiteral:
    return ParsedLiteral(text, limits)


_LITERAL_ESCAPES = frozenset(" !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_LITERAL_STOP = frozenset("\\.^$*+?{}[]()|")


def literal_prefix(piece: str) -> int:
    """The length of the longest prefix of ``piece`` that matches exactly one string, written
    with plain characters and ``\\`` + ASCII punctuation or space only, and that no quantifier
    follows (a quantifier would bind to its last character, which is then left out). 0 when
    none."""
    n = len(piece)
    i = last = 0
    while i < n:
        c = piece[i]
        if c == "\\":
            if i + 1 >= n or piece[i + 1] not in _LITERAL_ESCAPES:
                break
            nxt = i + 2
        elif c in _LITERAL_STOP or "\ud800" <= c <= "\udfff":
            break
        else:
            nxt = i + 1
        last, i = i, nxt
    if i < n and piece[i] in "*+?{":
        return last
    return i


def literal_text(prefix: str) -> str:
    """The string a :func:`literal_prefix` matches (escapes removed)."""
    return re.sub(r"\\(.)", r"\1", prefix, flags=re.S)


_PIECE_QUANT = re.compile(r"(?:[*+?]|\{\d*(?:,\d*)?\})\??")


def split_top_level(pattern: str) -> list[str] | None:
    """The pattern cut before and after each top-level group (with its quantifier): pieces whose
    concatenation is the pattern and whose languages concatenate to the pattern's. None when
    that is not certain or not useful: a top-level ``|``, an anchor (``^``, ``$``, ``\\A``,
    ``\\Z``, ``\\b``, ``\\B``: their meaning depends on the position), a quantifier after a
    group's quantifier, unbalanced text (the whole parse reports it), or a single piece."""
    pieces = _top_level_pieces(pattern)
    return pieces if pieces is not None and len(pieces) > 1 else None


_PLAIN_HEAD = re.compile(r"[^\\\[\]^$|()]+(?=\()")
"""Text before a pattern's first group holding none of the characters the piece scan looks at."""


def _top_level_pieces(pattern: str) -> list[str] | None:
    """:func:`split_top_level`, but a single piece comes back as ``[pattern]``.

    A plain head before the first group (a member terminal's key) is its own piece, and the scan
    of the rest is cached: a schema's member terminals share a few value patterns behind
    thousands of keys."""
    m = _PLAIN_HEAD.match(pattern)
    if m is None:
        return _scan_pieces(pattern)
    rest = _scan_pieces_cached(pattern[m.end():])
    return None if rest is None else [m.group(), *rest]


@lru_cache(maxsize=4096)
def _scan_pieces_cached(pattern: str) -> tuple[str, ...] | None:
    pieces = _scan_pieces(pattern)
    return None if pieces is None else tuple(pieces)


def _scan_pieces(pattern: str) -> list[str] | None:
    n = len(pattern)
    i = 0
    depth = 0
    start = 0
    pieces: list[str] = []
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 < n and pattern[i + 1] in "AZbB":
                return None
            i += 2
            continue
        if c == "[":
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            if j >= n:
                return None
            i = j + 1
            continue
        if c in "^$" or (c == "|" and depth == 0):
            return None
        if c == "(":
            if depth == 0 and i > start:
                pieces.append(pattern[start:i])
                start = i
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                return None
            if depth == 0:
                m = _PIECE_QUANT.match(pattern, i + 1)
                end = m.end() if m else i + 1
                if end < n and pattern[end] in "*+?{":
                    return None
                pieces.append(pattern[start:end])
                start = i = end
                continue
        i += 1
    if depth:
        return None
    if start < n:
        pieces.append(pattern[start:])
    return pieces


_parse_piece = lru_cache(maxsize=8192)(parse)


@lru_cache(maxsize=4096)
def _parse_cached(pattern: str, limits: Limits):
    """``parse(pattern, limits)``, cached (the AST is only read: the lexer and the per-terminal
    checks of a grammar parse the same patterns). A pattern with top-level groups comes back as
    a :class:`ParsedConcat` of its cached pieces: a schema's member terminals (``"key"``, colon,
    then a value pattern that many keys share) are parsed and built a piece at a time. Any doubt
    (an error in a piece, a global flag) parses the pattern whole, which also locates errors."""
    pieces = _top_level_pieces(pattern)
    if pieces is not None:
        try:
            parts = tuple(_parse_pieces(pieces, limits))
        except (RegexSyntaxError, UnsupportedFeatureError, LimitExceededError):
            parts = None
        if parts and not any(isinstance(p, Parsed) and p.global_flags for p in parts):
            return parts[0] if len(parts) == 1 and isinstance(parts[0], Parsed) else ParsedConcat(parts)
    return parse(pattern, limits)


def _parse_pieces(pieces: list[str], limits: Limits):
    """Each piece's leading literal (see :func:`literal_prefix`) as a :class:`ParsedLiteral`, the
    rest parsed (cached): a member terminal's key then shares the parse and NFA fragment of the
    separator and value that follow it with every other key."""
    for piece in pieces:
        k = literal_prefix(piece)
        if k:
            yield _literal(literal_text(piece[:k]), limits)
        if k < len(piece):
            yield _parse_piece(piece[k:], limits)


def _entries_parsed(entries: list[tuple[str, bool, bool]], limits: Limits, retry: Limits | None = None) -> list:
    """Each entry's cached parse and flags. ``retry``: limits to parse an entry with again when
    ``limits`` refuse its repetition bound (the lazy lexer counts what the eager one expands)."""
    parsed = []
    for pattern, icase, dotall in entries:
        if not isinstance(pattern, str):  # a prebuilt byte DFA (grammar terminals given as automata)
            parsed.append((pattern, ip.REFlags(0)))
            continue
        flags = ip.REFlags(0)
        if icase:
            flags |= ip.REFlags.I
        if dotall:
            flags |= ip.REFlags.S
        if retry is None:
            parsed.append((_parse_cached(pattern, limits), flags))
            continue
        try:
            parsed.append((_parse_cached(pattern, limits), flags))
        except LimitExceededError as exc:
            if exc.field != "max_repeat_count":
                raise
            parsed.append((_parse_cached(pattern, retry), flags))
    return parsed


def repetition_bound(pattern: str, limits: Limits) -> int:
    """The largest repetition bound in ``pattern`` as a lexer parses it (cached parse): what makes
    :func:`_compile_arrays` give up on an eager lexer (``max_repeat``); a bound past
    ``limits.max_repeat_count`` reads as that limit plus one. 0 when the pattern does not parse
    (the lexer reports the error when it compiles it)."""
    try:
        p = _parse_cached(pattern, limits)
    except LimitExceededError as exc:
        return limits.max_repeat_count + 1 if exc.field == "max_repeat_count" else 0
    except (RegexSyntaxError, UnsupportedFeatureError):
        return 0
    return max((_parsed_max_repeat(q) for q in (p.parts if isinstance(p, ParsedConcat) else (p,))
                if isinstance(q, Parsed)), default=0)


def _max_repeat_bound(node) -> int:
    """The largest repetition bound (min, or max when bounded) anywhere in a regex AST."""
    best = 0
    stack = [node]
    while stack:
        x = stack.pop()
        if isinstance(x, ip.Pattern):
            stack.extend(x.options)
        elif isinstance(x, ip._Concatenation):
            stack.extend(x.parts)
        elif isinstance(x, ip._Repeated):
            best = max(best, x.min, x.max or 0)
            stack.append(x.base)
    return best


_MAX_REPEATS = BoundedCache(8192)


def _parsed_max_repeat(p: Parsed) -> int:
    """:func:`_max_repeat_bound` of a parse, kept per parse object (held by the bounded table, so
    its ``id`` is not reused while there; parses themselves are cached)."""
    bound = _MAX_REPEATS.get_for(p)
    if bound is None:
        bound = _MAX_REPEATS.put_for(p, _max_repeat_bound(p.ast))
    return bound


class _ExclusionFold:
    """Lexer entries that are "``base``'s strings except a few" (automata with ``base`` and
    ``excluded``, :class:`~constrain.constraints.sparse_dfa.ExcludingSparseDFA`) folded into one
    shared copy of each ``base`` plus a literal chain per excluded string.

    A JSON schema lexer has such a terminal per object ("any key but the declared ones"); run
    side by side they put a state of every copy into each subset of the subset construction (82
    copies in a Kubernetes schema: subsets of 90 NFA states for a union trie of 6,000 key
    prefixes). Folded, a subset holds ``base``'s state and the chains that agree with the input,
    and terminal ``i`` accepts in a DFA state iff its ``base`` accepts there and none of its
    excluded strings ends there: the DFA state is a function of the input read, so both are
    read on the same input, and the minimal DFA is the same. Built by :meth:`of`; immutable.
    """

    def __init__(self, parsed: list, real_of: np.ndarray, base_of: np.ndarray, string_of: np.ndarray,
                 members: list[tuple[int, int, tuple[int, ...]]]):
        self.parsed = parsed  # the entries the NFA is built from: kept ones, then bases, then chains
        self.real_of = real_of  # per entry: the terminal it is (-1: a base or a chain)
        self.base_of = base_of  # per entry: the index of the base it is (-1: not a base)
        self.string_of = string_of  # per entry: the excluded string it spells (-1: not a chain)
        self.members = members  # per folded terminal: (terminal, base index, its excluded strings)

    @classmethod
    def of(cls, parsed: list, limits: Limits) -> "_ExclusionFold | None":
        """The fold of ``parsed`` (entries as :func:`_entries_parsed` makes them), or None when
        no entry is an excluding automaton."""
        folded = [i for i, (p, _f) in enumerate(parsed) if getattr(p, "base", None) is not None
                  and getattr(p, "excluded", None) is not None]
        if not folded:
            return None
        bases: dict[int, int] = {}
        base_objs = []
        strings: dict[bytes, int] = {}
        members = []
        for i in folded:
            p = parsed[i][0]
            b = bases.get(id(p.base))
            if b is None:
                b = bases[id(p.base)] = len(base_objs)
                base_objs.append(p.base)
            members.append((i, b, tuple(strings.setdefault(x, len(strings)) for x in p.excluded)))
        skip = set(folded)
        kept = [i for i in range(len(parsed)) if i not in skip]
        out = [parsed[i] for i in kept]
        out += [(b, ip.REFlags(0)) for b in base_objs]
        out += [(_literal(x.decode("utf-8"), limits), ip.REFlags(0)) for x in strings]
        n_out = len(out)
        real_of = np.full(n_out, -1, dtype=np.int64)
        real_of[: len(kept)] = kept
        base_of = np.full(n_out, -1, dtype=np.int64)
        base_of[len(kept) : len(kept) + len(base_objs)] = np.arange(len(base_objs))
        string_of = np.full(n_out, -1, dtype=np.int64)
        string_of[len(kept) + len(base_objs) :] = np.arange(len(strings))
        return cls(out, real_of, base_of, string_of, members)

    def accepts(self, acc_ptr: np.ndarray, acc_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The per-state accepted entries of the folded NFA's subset construction (CSR over
        :attr:`parsed`) as accepted terminals (CSR over the original entries, each state's
        sorted). Pure."""
        n = len(acc_ptr) - 1
        state_of = np.repeat(np.arange(n, dtype=np.int64), np.diff(acc_ptr))
        real = self.real_of[acc_idx]
        keep = real >= 0
        states = [state_of[keep]]
        terms = [real[keep]]
        bases = self.base_of[acc_idx]
        at_base = bases >= 0
        if at_base.any():
            # rows: (state, base) pairs where a base accepts; a member accepts on its base's rows
            # unless one of its excluded strings ends in the same state
            row_state = state_of[at_base]
            row_base = bases[at_base]
            n_members = len(self.members)
            ok = np.zeros((len(row_state), n_members), dtype=bool)
            member_base = np.fromiter((b for _t, b, _x in self.members), dtype=np.int64, count=n_members)
            ok[:] = row_base[:, None] == member_base[None, :]
            chains = self.string_of[acc_idx]
            ends = chains >= 0
            if ends.any():
                row_of_state = {}
                for r, d in enumerate(row_state.tolist()):
                    row_of_state.setdefault(d, []).append(r)
                ending: dict[int, list[int]] = {}
                for d, x in zip(state_of[ends].tolist(), chains[ends].tolist()):
                    if d in row_of_state:
                        ending.setdefault(x, []).extend(row_of_state[d])
                for m, (_t, _b, excluded) in enumerate(self.members):
                    for x in excluded:
                        rows = ending.get(x)
                        if rows:
                            ok[rows, m] = False
            r, m = np.nonzero(ok)
            states.append(row_state[r])
            terms.append(np.fromiter((t for t, _b, _x in self.members), dtype=np.int64, count=n_members)[m])
        all_states = np.concatenate(states)
        all_terms = np.concatenate(terms)
        order = np.lexsort((all_terms, all_states))
        new_ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(all_states, minlength=n), out=new_ptr[1:])
        return new_ptr, all_terms[order]


def _compile(entries: list[tuple[str, bool, bool]], limits: Limits, what: str, max_work: int | None = None):
    """Return the minimized byte table and per-state accepted-pattern tuples of ``entries``."""
    table, rep, acc_ptr, acc_idx, _class_of, _table_cls = _compile_arrays(entries, limits, what, max_work)
    ptr, idx = acc_ptr.tolist(), acc_idx.tolist()
    return table, [tuple(idx[ptr[r] : ptr[r + 1]]) for r in rep.tolist()]


def _compile_arrays(entries: list[tuple[str, bool, bool]], limits: Limits, what: str, max_work: int | None = None,
                    max_nfa_states: int | None = None, max_repeat: int | None = None):
    """The minimized byte table of ``entries`` (the NFA assembled from cached fragments, each
    entry parsed once; subset construction and minimization in numba), as ``(table, rep,
    acc_ptr, acc_idx, class_of, table_cls)``: minimal state ``s`` accepts the patterns
    ``acc_idx[acc_ptr[rep[s]]:acc_ptr[rep[s] + 1]]``; bytes with the same ``class_of`` have the
    same column in ``table``, which is column ``class_of[b]`` of ``table_cls``. A caller with a lazy fallback gives up
    early (``LimitExceededError``, field ``max_dfa_states``) on an NFA of more than
    ``max_nfa_states`` states or a repetition bound over ``max_repeat``."""
    parsed = _entries_parsed(entries, limits)
    if max_repeat is not None:
        bound = 0
        for p, _flags in parsed:
            for q in (p.parts if isinstance(p, ParsedConcat) else (p,)):
                if isinstance(q, Parsed):
                    bound = max(bound, _parsed_max_repeat(q))
        if bound > max_repeat:
            raise LimitExceededError("max_dfa_states", limits.max_dfa_states, "long repetition: count it lazily")
    fold = _ExclusionFold.of(parsed, limits)
    *arrays, finals = _lexer_arrays(parsed if fold is None else fold.parsed, limits, what, max_nfa_states)
    table, acc_ptr, acc_idx, class_of, n_cls = _subset_arrays(*arrays, finals, 0, limits, what, max_work)
    if fold is not None:
        acc_ptr, acc_idx = fold.accepts(acc_ptr, acc_idx)
    table_cls, rep = _minimize_ids(table, _label_ids(acc_ptr, acc_idx), n_cls)
    return _expand(table_cls, class_of), rep, acc_ptr, acc_idx, class_of, table_cls


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------


def _advance(transitions: np.ndarray, state: int, data: bytes) -> int:
    """State after ``data`` from ``state`` in a ``[n, 256]`` table (-1 = reject); pure."""
    item = transitions.item
    for b in data:
        if state < 0:
            return -1
        state = item(state, b)
    return state


@dataclass(frozen=True, eq=False)
class ByteDFA:
    """A minimized DFA over bytes that accepts the UTF-8 encodings of the strings a regex matches.

    Attributes
    ----------
    transitions : numpy.ndarray
        ``int32[n_states, 256]``, C-contiguous; ``-1`` means reject.
    accepting : numpy.ndarray
        ``bool[n_states]``.
    start : int
        Always 0.

    Notes
    -----
    Every state is reachable from ``start`` and live (it can reach an accepting state), so ``-1``
    is the only dead outcome; the one exception is the empty language, represented by a single
    non-accepting start state without transitions. Instances are immutable; no method mutates.
    """

    transitions: np.ndarray
    accepting: np.ndarray
    start: int = 0

    @property
    def n_states(self) -> int:
        """Return the number of states."""
        return int(self.transitions.shape[0])

    def advance(self, state: int, data: bytes) -> int:
        """Return the state reached from ``state`` after reading ``data``, or -1 if it rejects."""
        return _advance(self.transitions, state, data)

    def matches(self, data: bytes) -> bool:
        """Return whether ``data`` as a whole is accepted (full match)."""
        s = self.advance(self.start, data)
        return s >= 0 and bool(self.accepting[s])

    def forced_bytes(self, state: int) -> bytes:
        """Return the longest byte string forced from ``state``.

        Bytes are followed while the current state is not accepting and has exactly one byte with
        a transition.
        """
        out = bytearray()
        for _ in range(self.n_states):  # a forced path cannot revisit a state (it would be dead)
            if state < 0 or self.accepting[state]:
                break
            row = self.transitions[state]
            live = np.flatnonzero(row >= 0)
            if len(live) != 1:
                break
            b = int(live[0])
            out.append(b)
            state = int(row[b])
        return bytes(out)


@dataclass(frozen=True, eq=False)
class LexerDFA:
    """A minimized byte DFA for several terminals at once, as used by a lexer.

    Attributes
    ----------
    transitions : numpy.ndarray
        ``int32[n_states, 256]``, C-contiguous; ``-1`` means reject.
    accepting_terminals : numpy.ndarray
        ``bool[n_states, n_terminals]``: terminal ``i`` is fully matched at this state.
    live_terminals : numpy.ndarray
        ``bool[n_states, n_terminals]``: terminal ``i`` can still be completed from this state.
    start : int
        Always 0.
    byte_class : numpy.ndarray or None
        ``int32[256]``: bytes of one class have equal columns in ``transitions`` (None: unknown).

    Notes
    -----
    States with different accepting or live sets are never merged. Every state is reachable and
    can complete some terminal (unless no terminal matches anything). Immutable.
    """

    transitions: np.ndarray
    accepting_terminals: np.ndarray
    live_terminals: np.ndarray
    start: int = 0
    byte_class: np.ndarray | None = None

    @property
    def n_states(self) -> int:
        """Return the number of states."""
        return int(self.transitions.shape[0])

    @property
    def n_terminals(self) -> int:
        """Return the number of terminals."""
        return int(self.accepting_terminals.shape[1])

    def advance(self, state: int, data: bytes) -> int:
        """Return the state reached from ``state`` after reading ``data``, or -1 if it rejects."""
        return _advance(self.transitions, state, data)


def regex_to_dfa(
    pattern: str,
    *,
    limits: Limits = DEFAULT_LIMITS,
    ignore_case: bool = False,
    dotall: bool = False,
) -> ByteDFA:
    """Compile a regex (Python ``re`` syntax, full-match semantics) to a minimized :class:`ByteDFA`.

    Parameters
    ----------
    pattern : str
        The regular expression. ``\\d \\w \\s`` are ASCII (as with ``re.ASCII``); ``^`` at the very
        start and ``$`` / ``\\Z`` at the very end are accepted as no-ops.
    limits : Limits
        ``max_repeat_count``, ``max_nfa_states`` and ``max_dfa_states`` bound the work.
    ignore_case : bool
        Like ``re.IGNORECASE`` (Unicode simple case folding of literals and ranges).
    dotall : bool
        Like ``re.DOTALL``: ``.`` also matches ``\\n``.

    Returns
    -------
    ByteDFA

    Raises
    ------
    RegexSyntaxError
        Malformed pattern, with the character index of the problem.
    UnsupportedFeatureError
        Lookaround, backreferences, inner anchors, word boundaries, conditionals, possessive
        quantifiers, atomic groups, ``\\p{..}``, the ``x`` and ``a`` flags.
    LimitExceededError
        A repetition bound, the NFA or the DFA is over ``limits``.
    """
    what = f"regex {_short(pattern)}"
    table, labels = _compile([(pattern, ignore_case, dotall)], limits, what)
    accepting = np.array([bool(lab) for lab in labels], dtype=bool)
    return ByteDFA(table, accepting, 0)


def _terminal_entries(patterns: list[Union[str, tuple[str, dict]]]) -> list[tuple[str, bool, bool]]:
    """``(pattern, ignore_case, dotall)`` per terminal; options other than those two raise ValueError."""
    entries = []
    for p in patterns:
        if isinstance(p, str):
            entries.append((p, False, False))
        elif hasattr(p, "n_states"):  # a byte DFA
            entries.append((p, False, False))
        else:
            pat, opts = p
            unknown = set(opts) - {"ignore_case", "dotall"}
            if unknown:
                raise ValueError(f"unknown terminal options {sorted(unknown)}")
            entries.append((pat, bool(opts.get("ignore_case")), bool(opts.get("dotall"))))
    return entries


def terminals_to_dfa(
    patterns: list[Union[str, tuple[str, dict]]], *, limits: Limits = DEFAULT_LIMITS, max_work: int | None = None
) -> LexerDFA:
    """Compile several terminal regexes into one minimized :class:`LexerDFA`.

    Parameters
    ----------
    patterns : list of str or (str, dict)
        Each entry is a regex, or ``(regex, {"ignore_case": bool, "dotall": bool})``.
    limits : Limits
        As for :func:`regex_to_dfa`; the state bounds apply to the combined automaton.
    max_work : int, optional
        Give up (``LimitExceededError``, field ``max_dfa_states``) once the subset construction's
        subsets hold this many NFA states in all: a caller with a fallback (the grammar compiler
        builds such lexers lazily) stops early on a lexer that blows up.

    Returns
    -------
    LexerDFA
    """
    entries = _terminal_entries(patterns)
    return _lexer_dfa(entries, limits, max_work)


def _lexer_dfa(entries: list[tuple[str, bool, bool]], limits: Limits, max_work: int | None = None,
               max_nfa_states: int | None = None, max_repeat: int | None = None) -> LexerDFA:
    """:func:`terminals_to_dfa` of entries ``(pattern, ignore_case, dotall)`` (see
    :func:`_compile_arrays` for the early give-ups), the accepting matrix built from the arrays."""
    n_terms = len(entries)
    table, rep, acc_ptr, acc_idx, class_of, table_cls = _compile_arrays(entries, limits, f"lexer of {n_terms} terminals", max_work,
                                                   max_nfa_states, max_repeat)
    n = table.shape[0]
    counts = np.diff(acc_ptr)[rep]
    rows = np.repeat(np.arange(n, dtype=np.int64), counts)
    first = np.repeat(acc_ptr[rep] - np.cumsum(counts) + counts, counts)
    terms = acc_idx[first + np.arange(len(rows), dtype=np.int64)]
    acc = np.zeros((n, n_terms), dtype=bool)
    acc[rows, terms] = True
    # live[s, i]: an accepting state of terminal i is reachable from s (reverse BFS per terminal,
    # over one column per byte class: the same edges as the byte table, a third of the columns)
    live = live_terminals_kernel(np.ascontiguousarray(table_cls, dtype=np.int32), acc, rows, terms)
    return LexerDFA(table, acc, live, 0, class_of)


def class_columns(table: np.ndarray, class_of: np.ndarray) -> np.ndarray:
    """``table`` (``int32[n, 256]``) with one column per byte class of ``class_of`` (the first
    byte's; bytes of a class have equal columns), C-contiguous. Pure."""
    _, first = np.unique(class_of, return_index=True)
    return np.take(table, first, axis=1)


def automaton_summary(dfa) -> str:
    """How a grammar listing names a terminal given as a byte automaton (its ``summary`` when it
    has one, which need not build the automaton; else its size)."""
    summary = getattr(dfa, "summary", None)
    return summary if summary is not None else f"<automaton: {dfa.n_states} states>"


def _short(pattern: str) -> str:
    """Return ``repr(pattern)``, cut to about 60 characters for error messages."""
    return repr(pattern) if len(pattern) <= 60 else repr(pattern[:57]) + "..."


def literal_to_regex(text: str) -> str:
    """Return a regex that matches exactly ``text`` (``re.escape``, which our parser accepts)."""
    return re.escape(text)


# ------------------------------------------------------------------------------------------------
# Lazy lexer DFA (subset construction on demand)
# ------------------------------------------------------------------------------------------------


class _NFAView:
    """An NFA's CSR arrays as per-state lists, as :class:`_NFA` holds them: ``eps[s]`` the epsilon
    successors, ``edges[s]`` the ``(lo, hi, target)`` byte ranges (read-only)."""

    def __init__(self, eps_ptr, eps_idx, edge_ptr, lo, hi, tgt):
        ep, ei = eps_ptr.tolist(), eps_idx.tolist()
        gp = edge_ptr.tolist()
        triples = list(zip(lo.tolist(), hi.tolist(), tgt.tolist()))
        n = len(ep) - 1
        self.eps = [ei[ep[s] : ep[s + 1]] for s in range(n)]
        self.edges = [triples[gp[s] : gp[s + 1]] for s in range(n)]


class LazyLexerDFA:
    """A lexer DFA whose states are built on demand from the NFA (no minimization).

    Used when the eager :func:`terminals_to_dfa` would exceed ``Limits.max_dfa_states`` (e.g. a
    string with a large ``maxLength``: the minimal DFA has a state per position, but a mask only
    ever visits the states within one token's length of the current one). The states built are
    bounded by ``Limits.max_lazy_lexer_states``. Same attributes as
    :class:`LexerDFA`; they grow as states are added (read them again after :meth:`expand`).
    A state is a set of NFA states; its accepting and live terminal sets are known when it is
    created, its transition row only once :meth:`expand` ran (``-2`` in every entry before).
    ``-1`` is still the only dead outcome: NFA states that cannot reach their terminal's final
    state are dropped from every set, and an empty set is ``-1``. Mutated only by :meth:`expand`;
    the language of every state never changes.
    """

    def __init__(self, entries: list[tuple[str, bool, bool]], limits: Limits, what: str):
        # Large repetitions are counted loops here (not expanded), up to max_counted_repeat: an
        # entry is parsed under ``limits`` first (the parse the eager attempt cached), and again
        # with the raised bound only when its repetitions need it.
        bound = max(limits.max_repeat_count, limits.max_counted_repeat)
        try:
            parsed = _entries_parsed(entries, limits, replace(limits, max_repeat_count=bound))
        except LimitExceededError as exc:
            if exc.field != "max_repeat_count":
                raise
            raise LimitExceededError(
                "max_counted_repeat", limits.max_counted_repeat, f"{what}: a repetition bound is too large"
            ) from None
        # the NFA assembled from cached fragments (the pieces member terminals share are built once)
        eps_ptr, eps_idx, edge_ptr, lo, hi, edge_t, finals, loops_a, loop_of_a = _lexer_arrays(
            parsed, limits, what, counted=True)
        self.limits = limits
        self.what = what
        n_terms = len(entries)
        n_nfa = len(eps_ptr) - 1
        # A configuration (NFA state s, loop count c) is the int key c * n_nfa + s (c = 0 outside
        # counted loops, so there the key is the state itself); DFA states are sets of keys.
        self._n_nfa = n_nfa
        self._eps_ptr, self._eps_idx, self._edge_ptr, self._edge_t = eps_ptr, eps_idx, edge_ptr, edge_t
        self._edge_lo_b, self._edge_hi_b = lo, hi
        self._loops_a, self._loop_of_a = loops_a, loop_of_a
        self._loops = [(int(b), int(k), int(e), int(mn), None if mx < 0 else int(mx))
                       for b, k, e, mn, mx in loops_a.tolist()]
        self._loop_of = dict(zip(np.flatnonzero(loop_of_a >= 0).tolist(), loop_of_a[loop_of_a >= 0].tolist()))
        self._back_loop = {loop[1]: i for i, loop in enumerate(self._loops)}
        # terminal of each NFA state: entries are laid out one after the other, each ending in its final
        finals = [int(f) for f in finals]
        term_of = np.full(n_nfa, -1, dtype=np.int64)
        first = 1
        for i, f in enumerate(finals):
            term_of[first : f + 1] = i
            first = f + 1
        # co-reachability: reverse search from the final states over eps and byte edges
        coreach = coreach_kernel(eps_ptr, eps_idx, edge_ptr, edge_t, np.asarray(finals, dtype=np.int64))
        self._coreach = coreach.tolist()
        self._coreach_a = coreach
        # a loop whose body matches "" can count iterations without reading a byte
        self._loop_nullable = []
        for body, back, _exit, _lo, _hi in self._loops:
            seen_e, stack_e = {body}, [body]
            while stack_e:
                x = stack_e.pop()
                for y in eps_idx[eps_ptr[x] : eps_ptr[x + 1]].tolist():
                    if y not in seen_e:
                        seen_e.add(y)
                        stack_e.append(y)
            self._loop_nullable.append(back in seen_e)
        self._final_index = {f: i for i, f in enumerate(finals)}
        self._finals = finals
        self.class_of, self.n_classes = _range_classes(lo, hi)
        self._class_of_l = self.class_of.tolist()
        self._closures: dict[int, frozenset[int]] = {}
        self._moves: dict[int, list] = {}
        self.n_terms = n_terms
        self._kernel_tables(coreach, term_of, finals)
        # the states: configuration sets (CSR, sorted), interned through an open-addressing table
        self._cap = 64
        self._set_ptr = np.zeros(self._cap + 1, dtype=np.int64)
        self._set_keys = np.empty(16 * self._cap, dtype=np.int64)
        self._hashes = np.zeros(self._cap, dtype=np.int64)
        self._htab = np.full(4 * self._cap, -1, dtype=np.int64)
        self._n_states = np.zeros(1, dtype=np.int64)
        self._trans = np.full((self._cap, 256), -2, dtype=np.int32)
        self._acc = np.zeros((self._cap, n_terms), dtype=bool)
        self._live = np.zeros((self._cap, n_terms), dtype=bool)
        self._expanded = np.zeros(self._cap, dtype=bool)
        self._scratch(1024)
        start_keys = self._closure_keys(0)
        if not len(start_keys):
            raise InternalError(f"{what}: no terminal matches any string")
        self._intern(start_keys)
        self.start = 0

    # -- NFA helpers (over configurations, see __init__)
    def _closure_keys(self, key: int) -> np.ndarray:
        """The kept configurations of the epsilon closure of ``key``, sorted (the kernel's
        :func:`~constrain.regex._lazy_kernels.lazy_closure`, scratch grown as needed)."""
        while True:
            m = lazy_closure(key, self._n_nfa, self._eps_ptr, self._eps_idx, self._loop_of_a, self._back_loop_a,
                             self._loops_a, self._keep, self._buf, 0, self._tab, self._used, self._stack)
            if m >= 0:
                return np.sort(self._buf[:m])
            self._scratch(2 * self._buf.shape[0])

    def _eps_targets(self, key: int) -> list[int]:
        """Configurations one epsilon edge away from ``key``: counts are kept inside a loop's body,
        incremented on entering its back state (saturating at ``min`` when unbounded), reset to 0
        elsewhere; a back state continues the body while count < max and exits once count >= min."""
        n = self._n_nfa
        x, cnt = key % n, key // n
        loops, loop_of = self._loops, self._loop_of
        out = []
        bl = self._back_loop.get(x)
        if bl is not None:
            body, _back, exit_, lo, hi = loops[bl]
            for y in self._nfa.eps[x]:
                if y == exit_:
                    if cnt >= lo:
                        out.append(y)
                elif hi is None or cnt < hi:
                    out.append(cnt * n + y)
            return out
        lx = loop_of.get(x, -1)
        for y in self._nfa.eps[x]:
            ly = loop_of.get(y, -1)
            if ly < 0:
                out.append(y)
            elif y == loops[ly][1]:  # a body end entering its back state: one more iteration
                c2 = cnt + 1
                if loops[ly][4] is None:
                    c2 = min(c2, loops[ly][3])
                out.append(c2 * n + y)
            elif ly == lx:
                out.append(cnt * n + y)
            else:  # entering a loop's body from its entry state
                out.append(y)
        return out

    def _closure(self, key: int) -> frozenset[int]:
        c = self._closures.get(key)
        if c is not None:
            return c
        edges, coreach, fin, n = self._nfa.edges, self._coreach, self._final_index, self._n_nfa
        seen = {key}
        stack = [key]
        out = []
        while stack:
            k = stack.pop()
            x = k % n
            if (edges[x] or x in fin) and coreach[x]:
                out.append(k)
            for y in self._eps_targets(k):
                if y not in seen:
                    seen.add(y)
                    stack.append(y)
        c = self._closures[key] = frozenset(out)
        return c

    def _move_list(self, key: int) -> list:
        m = self._moves.get(key)
        if m is None:
            m = []
            col = self._class_of_l
            n = self._n_nfa
            x, cnt = key % n, key // n
            lx = self._loop_of.get(x, -1)
            for lo, hi, t in self._nfa.edges[x]:
                t_key = cnt * n + t if lx >= 0 and self._loop_of.get(t, -1) == lx else t
                tc = self._closure(t_key)
                if tc:
                    m.append((col[lo], col[hi], tc))
            self._moves[key] = m
        return m

    # -- flat tables for the numba kernels (constrain.regex._lazy_kernels)
    def _kernel_tables(self, coreach: np.ndarray, term_of: np.ndarray, finals: list[int]) -> None:
        """The per-state tables the kernels read beside the NFA's CSR arrays (built once); byte
        edges as class ranges."""
        n = self._n_nfa
        col = self.class_of.astype(np.int64)
        self._edge_lo, self._edge_hi = col[self._edge_lo_b], col[self._edge_hi_b]
        self._back_loop_a = np.full(n, -1, dtype=np.int64)
        for back, li in self._back_loop.items():
            self._back_loop_a[back] = li
        has_edge = np.diff(self._edge_ptr) > 0
        is_final = np.zeros(n, dtype=bool)
        is_final[finals] = True
        self._keep = (has_edge | is_final) & coreach
        self._term_of_a = term_of.astype(np.int64)
        self._final_term = np.full(n, -1, dtype=np.int64)
        for i, f in enumerate(finals):
            self._final_term[f] = i

    @cached_property
    def _nfa(self) -> _NFAView:
        """The NFA as per-state Python lists (``eps[s]``, ``edges[s]`` of ``(lo, hi, target)``
        byte ranges), built on first use: only the Python reference construction reads it."""
        return _NFAView(self._eps_ptr, self._eps_idx, self._edge_ptr, self._edge_lo_b, self._edge_hi_b, self._edge_t)

    def _scratch(self, size: int) -> None:
        """(Re)allocate the kernels' scratch: closure/union buffer and hash set of ``size`` slots."""
        size = 1 << max(10, int(size - 1).bit_length())
        self._buf = np.empty(size, dtype=np.int64)
        self._tab = np.full(size, -1, dtype=np.int64)
        self._used = np.empty(size, dtype=np.int64)
        self._stack = np.empty(size, dtype=np.int64)

    _GROWTH = 4
    """Factor by which :meth:`_grow` enlarges the state arrays. Only the rows of existing states
    are copied; the new rows are neither filled nor touched (``np.empty`` for the transition
    table, whose row :func:`~constrain.regex._lazy_kernels.lazy_intern` writes when it creates a
    state; ``np.zeros`` for the rest, pages the OS zeroes on first touch), so a larger factor
    costs address space, not memory, and halves the copying of a doubling (on MaskBench's lazy
    lexers growth was a sixth of the time of a string position's first safe-text search). Capped
    at ``limits.max_lazy_lexer_states`` (plus the room a full store needs)."""

    def _grow(self) -> None:
        """Enlarge every state array ``_GROWTH``-fold (the interning table rehashed) and the
        configuration store (mutates; rows of existing states are kept)."""
        d = int(self._n_states[0])
        # no more room than the state bound can use (lazy_intern refuses a state past it before it
        # asks for room; at the bound only the configuration store below still grows)
        cap = max(self._cap, min(self._cap * self._GROWTH, self.limits.max_lazy_lexer_states + 2))

        def grown(a: np.ndarray, empty: bool = False) -> np.ndarray:
            out = (np.empty if empty else np.zeros)((cap,) + a.shape[1:], dtype=a.dtype)
            out[:d] = a[:d]
            return out

        self._trans = grown(self._trans, empty=True)  # lazy_intern writes a new state's row (-2)
        self._acc = grown(self._acc)
        self._live = grown(self._live)
        self._expanded = grown(self._expanded)
        self._hashes = grown(self._hashes)
        ptr = np.zeros(cap + 1, dtype=np.int64)
        ptr[: d + 1] = self._set_ptr[: d + 1]
        self._set_ptr = ptr
        used = int(self._set_ptr[d])
        keys = np.empty(max(2 * self._set_keys.shape[0], 16 * cap, used + 2 * self._buf.shape[0]), dtype=np.int64)
        keys[:used] = self._set_keys[:used]
        self._set_keys = keys
        self._htab = lazy_rehash(self._hashes[:d], 1 << (4 * cap - 1).bit_length())  # a power of two
        self._cap = cap

    def _keys(self, q: int) -> np.ndarray:
        """The configurations of state ``q`` (sorted; a view)."""
        return self._set_keys[self._set_ptr[q] : self._set_ptr[q + 1]]

    def _intern(self, keys: np.ndarray) -> int:
        """The id of the state of configurations ``keys`` (sorted, distinct), created if new."""
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        while True:
            d = lazy_intern(
                keys, 0, keys.shape[0], self._n_nfa, self._term_of_a, self._final_term, self._set_ptr,
                self._set_keys, self._hashes, self._htab, self._n_states, self._trans, self._acc, self._live,
                self._expanded, self.limits.max_lazy_lexer_states,
            )
            if d >= 0:
                return int(d)
            if d == NEED_ROOM and keys.shape[0] > self._buf.shape[0]:
                self._scratch(2 * keys.shape[0])  # room for the keys store to take them
            self._on_kernel_status(int(d))

    def _on_kernel_status(self, status: int) -> None:
        """Act on a kernel's failure: raise for too many states, else grow what is full."""
        if status == TOO_MANY_STATES:
            bound = self.limits.max_lazy_lexer_states
            raise LimitExceededError(
                "max_lazy_lexer_states", bound, f"{self.what} (built lazily) reached more than {bound} DFA states"
            )
        if status != NEED_ROOM:
            raise InternalError(f"{self.what}: lazy lexer kernel returned {status}")
        d = int(self._n_states[0])
        full = d + 1 >= self._cap or 2 * (d + 1) > self._htab.shape[0]
        if full or self._set_ptr[d] + self._buf.shape[0] > self._set_keys.shape[0]:
            self._grow()
        else:  # a closure or union outgrew the scratch
            self._scratch(2 * self._buf.shape[0])

    def _state_of(self, key: frozenset[int]) -> int:
        """The id of the state of configuration set ``key`` (created if new)."""
        return self._intern(np.fromiter(sorted(key), dtype=np.int64, count=len(key)))

    @property
    def _sets(self) -> _LazySets:
        """``_sets[q]``: the configurations of state ``q`` as a frozenset."""
        return _LazySets(self)

    @property
    def _index(self) -> _LazyIndex:
        """``_index[configurations]``: the id of an existing state with those configurations."""
        return _LazyIndex(self)

    # -- public
    @property
    def transitions(self) -> np.ndarray:
        """``int32[n_states, 256]`` (a view; ``-2`` rows: not expanded yet)."""
        return self._trans[: self.n_states]

    @property
    def accepting_terminals(self) -> np.ndarray:
        return self._acc[: self.n_states]

    @property
    def live_terminals(self) -> np.ndarray:
        return self._live[: self.n_states]

    @property
    def expanded(self) -> np.ndarray:
        """``bool[n_states]``: whether a state's row is built (a view)."""
        return self._expanded[: self.n_states]

    @property
    def n_states(self) -> int:
        return int(self._n_states[0])

    @property
    def n_terminals(self) -> int:
        return self.n_terms

    def expand(self, q: int) -> None:
        """Compute the transition row of state ``q`` (creating its successor states; mutates)."""
        if self._expanded[q]:
            return
        while True:
            status = lazy_expand_kernel(q, *self._expand_args())
            if status == 0:
                return
            self._on_kernel_status(int(status))

    def _expand_args(self) -> tuple:
        """What :func:`~constrain.regex._lazy_kernels.lazy_expand_kernel` reads after the state:
        the NFA tables, the state store and the scratch (fetched anew: growing replaces arrays)."""
        return (
            self._n_nfa, self.class_of, self.n_classes, self._eps_ptr, self._eps_idx, self._edge_ptr,
            self._edge_lo, self._edge_hi, self._edge_t, self._loop_of_a, self._back_loop_a, self._loops_a,
            self._keep, self._term_of_a, self._final_term, self._set_ptr, self._set_keys, self._hashes,
            self._htab, self._n_states, self._trans, self._acc, self._live, self._expanded,
            self.limits.max_lazy_lexer_states, self._buf, self._tab, self._used, self._stack,
        )

    def expand_along(self, start: int, roots: np.ndarray, trie, sub_bytes: np.ndarray, live_cols: np.ndarray,
                     limit: int = 4096) -> np.ndarray:
        """Build the row of every state a walk of ``trie``'s subtrees below ``roots`` reaches from
        ``start`` and reads a byte in, while a terminal of ``live_cols`` stays live (mutates; see
        :func:`~constrain.regex._lazy_kernels.lazy_expand_walk_kernel`); at most ``limit`` rows.
        Returns the ids of the states expanded."""
        out = np.empty(limit, dtype=np.int64)
        n_out = np.zeros(1, dtype=np.int64)
        while True:
            status = lazy_expand_walk_kernel(
                start, roots, trie.node_byte, trie.node_depth, trie.subtree_end, sub_bytes, trie.max_depth,
                live_cols, out, n_out, *self._expand_args(),
            )
            if status == 0:
                return out[: n_out[0]]
            self._on_kernel_status(int(status))

    def expand_ahead(self, qs: np.ndarray, depth: int, reps: np.ndarray, depth_ok: np.ndarray,
                     max_new: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Build the row of every state less than ``depth`` bytes from a state of ``qs`` (one byte
        per class: ``reps``; mutates). ``depth_ok``: per state, how far ahead rows are known built
        (int64, read and raised; grown here to the state capacity, so pass the returned one next
        time). ``max_new``: stop once the rows built have created that many states (at least one
        row is built if one is missing; the rest is left for a later call: the record stays
        sound). Returns ``(ids of the states expanded, depth_ok)``."""
        qs = np.ascontiguousarray(qs, dtype=np.int64)
        built: list[np.ndarray] = []
        out = np.empty(1024, dtype=np.int64)
        n_out = np.zeros(1, dtype=np.int64)
        n0 = self.n_states
        while True:
            if depth_ok.shape[0] < self._cap:
                depth_ok = np.concatenate([depth_ok, np.zeros(self._cap - depth_ok.shape[0], np.int64)])
            left = 0 if max_new is None else max(1, max_new - (self.n_states - n0))
            status = lazy_expand_ahead_kernel(qs, depth, reps, depth_ok, out, n_out, left, *self._expand_args())
            if n_out[0]:
                built.append(out[: n_out[0]].copy())
                n_out[0] = 0
            if status == 0:
                break
            if status == OUT_FULL:
                if max_new is not None and self.n_states - n0 >= max_new:
                    break
                continue
            self._on_kernel_status(int(status))
        ids = built[0] if len(built) == 1 else np.concatenate(built) if built else out[:0].copy()
        return ids, depth_ok

    def reference_successors(self, q: int) -> list[frozenset[int]]:
        """Per byte, the configuration set after state ``q`` as the Python construction gives it
        (empty: dead): the slow reference :meth:`expand`'s kernel is tested against."""
        by_class: dict[int, set] = {}
        for s in self._sets[q]:
            for k0, k1, tc in self._move_list(s):
                for c in range(k0, k1 + 1):
                    by_class.setdefault(c, set()).update(tc)
        return [frozenset(by_class.get(int(self.class_of[b]), ())) for b in range(256)]

    def advance(self, state: int, data: bytes) -> int:
        """Return the state after ``data`` from ``state`` (expanding as needed), or -1."""
        for b in data:
            if state < 0:
                return -1
            self.expand(state)
            state = int(self._trans[state, b])
        return state

    def horizon_representative(self, q: int, horizon: int) -> int:
        """A state that reads the next ``horizon`` bytes exactly as ``q`` does (may create it).

        A counted loop's count only matters through ``count >= min`` (may exit) and ``count < max``
        (may continue). A loop iteration reads at least one byte (loops with a nullable body are left
        alone), so within ``horizon`` bytes a configuration with count ``c`` meets these tests for
        ``c .. c + horizon + 1`` only: every count with the same outcomes there (far below ``min``,
        or past ``min`` and far below ``max``) is replaced by the smallest one. Two such states accept
        the same byte strings of up to ``horizon`` bytes, reach the same accepting/live sets on the
        way, and reach *identical* states wherever no configuration is inside a counted loop (see
        :meth:`in_counted_loop`). Returns ``q`` itself when nothing changes."""
        n = self._n_nfa
        m = horizon + 2
        out = []
        changed = False
        for k in self._keys(q).tolist():
            x, c = k % n, k // n
            li = self._loop_of.get(x, -1) if c else -1
            if li >= 0 and not self._loop_nullable[li]:
                _body, _back, _exit, lo, hi = self._loops[li]
                if hi is not None:
                    below, room = min(max(lo - c, 0), m), min(hi - c, m)
                    c2 = 0 if below == m else (lo if below == 0 and room == m else c)
                    if c2 != c:
                        changed = True
                        k = c2 * n + x
            out.append(k)
        return self._intern(np.unique(np.asarray(out, dtype=np.int64))) if changed else q

    def restricted(self, q: int, terminals: np.ndarray) -> int:
        """The state of ``q``'s configurations of the terminals in ``terminals`` (bool per
        terminal) only, created if new; ``q`` itself when it has no other, -1 when it has none of
        these. Terminals run side by side without touching each other, so the restricted state
        reads every byte string exactly as ``q`` does for those terminals (same live and
        accepting ones among them, at every step) and knows nothing of the rest."""
        keys = self._keys(q)
        sel = keys[terminals[self._term_of_a[keys % self._n_nfa]]]
        if sel.shape[0] == keys.shape[0]:
            return q
        if not sel.shape[0]:
            return -1
        return self._intern(sel)

    def in_counted_loop(self, q: int) -> bool:
        """Whether some configuration of state ``q`` is inside a counted loop."""
        loop_of, n = self._loop_of, self._n_nfa
        return any((k % n) in loop_of for k in self._keys(q).tolist())


class _LazySets:
    """``lexer._sets[q]``: a lazy lexer state's configurations as a frozenset (read-only)."""

    def __init__(self, lexer: LazyLexerDFA):
        self._lexer = lexer

    def __getitem__(self, q: int) -> frozenset[int]:
        return frozenset(self._lexer._keys(q).tolist())

    def __len__(self) -> int:
        return self._lexer.n_states


class _LazyIndex:
    """``lexer._index[configurations]``: the id of an existing state (``KeyError`` if none)."""

    def __init__(self, lexer: LazyLexerDFA):
        self._lexer = lexer

    def get(self, key: frozenset[int], default=None):
        lx = self._lexer
        keys = np.fromiter(sorted(key), dtype=np.int64, count=len(key))
        d = lazy_find(keys, lx._set_ptr, lx._set_keys, lx._hashes, lx._htab)
        return default if d < 0 else int(d)

    def __getitem__(self, key: frozenset[int]) -> int:
        d = self.get(key)
        if d is None:
            raise KeyError(key)
        return d

    def __contains__(self, key: frozenset[int]) -> bool:
        return self.get(key) is not None


def terminals_to_lazy_dfa(
    patterns: list[Union[str, tuple[str, dict]]], *, limits: Limits = DEFAULT_LIMITS
) -> LazyLexerDFA:
    """Like :func:`terminals_to_dfa`, but states are built on demand (:class:`LazyLexerDFA`)."""
    entries = _terminal_entries(patterns)
    return LazyLexerDFA(entries, limits, f"lexer of {len(entries)} terminals")


def lazy_terminal_info(lexer: LazyLexerDFA) -> tuple[list[bool], list[bool], list[bool]]:
    """Per terminal of a lazy lexer: (matches no string, matches the empty string, uses a byte
    outside space/tab/newline/CR/FF/VT), read off the NFA (reachable and co-reachable edges)."""
    eps_ptr, eps_idx = lexer._eps_ptr, lexer._eps_idx
    starts = eps_idx[eps_ptr[0] : eps_ptr[1]]  # one per entry, in order
    coreach = lexer._coreach_a
    non_ws_byte = np.ones(256, dtype=np.bool_)
    non_ws_byte[list(b" \t\n\r\f\v")] = False
    non_ws = reads_byte_kernel(starts, eps_ptr, eps_idx, lexer._edge_ptr, lexer._edge_lo_b, lexer._edge_hi_b,
                               lexer._edge_t, coreach, non_ws_byte)
    no_string, empty = [], []
    for i, a in enumerate(starts.tolist()):
        no_string.append(not coreach[a])
        empty.append(bool(coreach[a] and (lexer._closure_keys(a) == lexer._finals[i]).any()))
    return no_string, empty, non_ws.tolist()
