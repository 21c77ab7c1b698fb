"""The lazily built lexer DFA has the same languages as the eager minimized one.

For every byte string, the accepting and live terminal sets reached in the lazy DFA equal those of
:func:`terminals_to_dfa` (states differ: the lazy one is not minimized), and rejection happens at
the same byte. The lazy DFA also builds lexers that are too large to build eagerly.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constrain.errors import LimitExceededError
from constrain.limits import Limits
from constrain.regex import terminals_to_dfa, terminals_to_lazy_dfa

LEXERS = [
    [r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrtu])*"', r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?", r"[ \t\n]+", r"true|false|null", r"\{|\}|,|:"],
    [r"a+b?", r"ab*", r"(?:ab|ba){2,4}", r"é|ü+"],
    [r'"[^"]{0,7}"', r"[0-9]{2,3}", r"x(?:[yz]{1,3}|q)", r"[a\u0100-\u0800]+"],
]

ALPHABET = b'"\\/abtufnrxyzq0129.- \t\n{}:,e' + "éü\u0101ࠀ".encode()


def _walk(dfa, data: bytes, lazy: bool):
    q = dfa.start
    out = []
    for b in data:
        if lazy:
            dfa.expand(q)
        q = int(dfa.transitions[q, b])
        if q < 0:
            out.append(None)
            break
        out.append((tuple(np.flatnonzero(dfa.accepting_terminals[q])), tuple(np.flatnonzero(dfa.live_terminals[q]))))
    return out


@settings(max_examples=200, deadline=None)
@given(k=st.integers(0, len(LEXERS) - 1), data=st.lists(st.sampled_from(list(ALPHABET)), max_size=14).map(bytes))
def test_lazy_lexer_equals_eager(k, data):
    eager = terminals_to_dfa(LEXERS[k])
    lazy = terminals_to_lazy_dfa(LEXERS[k])
    assert _walk(lazy, data, True) == _walk(eager, data, False)
    assert lazy.live_terminals[lazy.start].tolist() == eager.live_terminals[eager.start].tolist()


def test_lazy_lexer_builds_only_visited_states():
    pats = [r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4}){0,3000}"', r"[0-9]+"]
    with pytest.raises(LimitExceededError):
        terminals_to_dfa(pats, limits=Limits(max_dfa_states=5000))
    lazy = terminals_to_lazy_dfa(pats, limits=Limits(max_dfa_states=5000))
    q = lazy.advance(lazy.start, b'"' + b"ab\\u00e9" * 30)
    assert q >= 0 and lazy.live_terminals[q, 0] and not lazy.accepting_terminals[q, 0]
    q2 = lazy.advance(q, b'"')
    assert lazy.accepting_terminals[q2, 0]
    assert lazy.n_states < 5000
    big = terminals_to_lazy_dfa(pats)
    assert big.advance(big.start, b'"' + b"a" * 3001 + b'"') == -1
    assert big.accepting_terminals[big.advance(big.start, b'"' + b"a" * 3000 + b'"'), 0]
    # the run-time bound holds for states actually built (max_dfa_states bounds eager lexers only)
    small = terminals_to_lazy_dfa(pats, limits=Limits(max_dfa_states=50, max_lazy_lexer_states=50))
    with pytest.raises(LimitExceededError) as ei:
        small.advance(small.start, b'"' + b"a" * 100)
    assert ei.value.field == "max_lazy_lexer_states"


# Repetitions above COUNTED_REPEAT_MIN (32) are counters in the lazy lexer, copies in the eager one.
COUNTED_LEXERS = [
    [r'"[^"]{0,40}"', r"(?:ab|a){33,36}", r"x{34,}", r"(?:[0-9]{1,2}-){0,35}z"],
    [r"a{0,33}b", r"a{35}", r"(?:a|aa){34,40}c?", r'"(?:[^"\\]|\\["\\n]){33,34}"'],
    [r"(?:x{40}|y){0,3}", r"(?:(?:ab){0,34}c){1,2}", r"[a-c]{0,50}"],
]
CHUNKS = [b"a", b"ab", b"aa", b"b", b"c", b"x", b"y", b'"', b"\\n", b'\\"', b"1-", b"12-", b"z", b"q", b"\xc3\xa9"]


@settings(max_examples=300, deadline=None)
@given(
    k=st.integers(0, len(COUNTED_LEXERS) - 1),
    parts=st.lists(st.tuples(st.sampled_from(CHUNKS), st.integers(1, 45)), max_size=4),
)
def test_counted_repetitions_equal_expanded_ones(k, parts):
    """Counters (lazy) and copies (eager) give the same accepting/live terminals at every byte,
    on inputs made of runs that cross the repetition bounds."""
    data = b"".join(chunk * n for chunk, n in parts)
    eager = terminals_to_dfa(COUNTED_LEXERS[k])
    lazy = terminals_to_lazy_dfa(COUNTED_LEXERS[k])
    assert lazy._loops, "the lazy lexer should count, not expand"
    assert _walk(lazy, data, True) == _walk(eager, data, False)


def test_counted_lexer_is_small_where_copies_are_not():
    pats = [r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4}){0,65535}"', r"[0-9]+"]
    with pytest.raises(LimitExceededError, match="max_repeat_count"):
        terminals_to_dfa(pats)
    lazy = terminals_to_lazy_dfa(pats)
    assert len(lazy._nfa.eps) < 100
    q = lazy.advance(lazy.start, b'"' + b"x\\u00e9" * 2000)
    assert q >= 0 and not lazy.accepting_terminals[q, 0] and lazy.accepting_terminals[lazy.advance(q, b'"'), 0]
    # Each count is a state of its own: max_dfa_states bounds how long a string can get (documented).
    end = terminals_to_lazy_dfa([r'"[a-z]{0,5000}"'])
    q = end.advance(end.start, b'"' + b"x" * 5000)
    assert q >= 0 and end.advance(q, b"x") == -1 and end.accepting_terminals[end.advance(q, b'"'), 0]
    with pytest.raises(LimitExceededError, match="max_counted_repeat"):
        terminals_to_lazy_dfa([r"a{0,2000000}"])


@settings(max_examples=60, deadline=None)
@given(k=st.integers(0, len(LEXERS) + len(COUNTED_LEXERS) - 1), data=st.lists(st.sampled_from(CHUNKS + [b"0", b"\\u"]), max_size=20))
def test_expand_kernel_equals_the_python_construction(k, data):
    """Every row the numba kernel builds leads, byte by byte, to exactly the configuration set
    the Python construction (``reference_successors``) computes; states are interned once. The
    arrays start small, so the walk also exercises their growth (states, keys, scratch)."""
    pats = (LEXERS + COUNTED_LEXERS)[k]
    lazy = terminals_to_lazy_dfa(pats)
    q = lazy.start
    seen = {q}
    for chunk in data:
        for b in chunk:
            lazy.expand(q)
            ref = lazy.reference_successors(q)
            row = lazy.transitions[q]
            for byte in range(256):
                got = int(row[byte])
                assert (got < 0) == (not ref[byte]), (pats, q, byte)
                if got >= 0:
                    assert lazy._sets[got] == ref[byte]
                    assert lazy._index[ref[byte]] == got
            q = int(row[b])
            if q < 0:
                break
            seen.add(q)
        if q < 0:
            break
    sets = [lazy._sets[s] for s in range(lazy.n_states)]
    assert len(set(sets)) == len(sets), "a configuration set was interned twice"


def test_lazy_lexer_grows_past_its_initial_arrays():
    """Thousands of states (a counted string) through many doublings of every array."""
    lazy = terminals_to_lazy_dfa([r'"(?:[^"\\]|\\["\\n]){0,3000}"', r"[0-9]+"])
    q = lazy.advance(lazy.start, b'"' + "aé\\n".encode() * 700)
    assert q >= 0 and lazy.n_states > 2000
    assert lazy.accepting_terminals[lazy.advance(q, b'"'), 0]
    assert lazy.advance(q, b"\\x") == -1


def test_growth_stops_at_the_state_bound():
    """Growing 4x at a time never reserves more states than ``max_lazy_lexer_states`` can use, and
    the bound still raises cleanly once reached (a capacity that is not a power of two once sized
    the interning table off one, and the probe loop never ended)."""
    limits = Limits(max_lazy_lexer_states=300)
    grower = terminals_to_lazy_dfa([r'"[a-z]{0,5000}"'], limits=limits)
    for _ in range(4):  # 64 -> 256 -> 302, then stays (checked before any state is interned there)
        grower._grow()
        size = grower._htab.shape[0]
        assert size & (size - 1) == 0, "the interning table probes with a mask: its size must be a power of two"
        assert grower._cap <= 302
    lazy = terminals_to_lazy_dfa([r'"[a-z]{0,5000}"'], limits=limits)
    with pytest.raises(LimitExceededError, match="max_lazy_lexer_states"):
        lazy.advance(lazy.start, b'"' + b"a" * 1000)
    assert lazy.n_states == 300 and lazy._cap <= 302


def test_grown_arrays_hold_only_what_interning_wrote():
    """Growing copies the rows of existing states and leaves the new capacity unwritten (the
    transition table is not even filled): every state interned later must still read as fresh.
    After many grows, a state's row is all ``-2`` exactly when it is not expanded, and its accepting
    and live terminals are exactly those of its configurations (no bit left over from memory)."""
    lazy = terminals_to_lazy_dfa([r'"(?:[^"\\]|\\["\\n]){0,3000}"', r"[0-9]{1,400}", r"[a-f]+x"])
    first = lazy._cap
    q = lazy.advance(lazy.start, b'"' + "aé\\n".encode() * 400)
    assert q >= 0
    lazy.advance(lazy.start, b"1" * 390)
    lazy.advance(lazy.start, b"abcdef" * 50)
    assert lazy._cap >= first * lazy._GROWTH**2, "the arrays should have grown at least twice"
    trans, acc, live = lazy.transitions, lazy.accepting_terminals, lazy.live_terminals
    n = lazy._n_nfa
    for s in range(lazy.n_states):
        unbuilt = trans[s] == -2
        assert unbuilt.all() == (not lazy.expanded[s]) and (unbuilt.any() == unbuilt.all()), s
        keys = lazy._sets[s]
        want_live = {int(lazy._term_of_a[k % n]) for k in keys}
        want_acc = {int(lazy._final_term[k % n]) for k in keys if lazy._final_term[k % n] >= 0}
        assert set(np.flatnonzero(live[s]).tolist()) == want_live, s
        assert set(np.flatnonzero(acc[s]).tolist()) == want_acc, s


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([
    "a+", "[ \\t]+", "(?:x|y)?", "\\n", "[^a]", "\\d{2}", "z*", "[ ]{0,3}", "q(?:r|)", "[\\x00-\\x1f]+", "\\f\\v",
    "[a-c]{0,1}", "(?:\\r\\n)+", "é",
]), min_size=1, max_size=6))
def test_lazy_terminal_info_agrees_with_the_eager_lexer(patterns):
    """Per terminal, the lazy lexer's (no string, empty string, non-whitespace byte) read off its
    NFA equal what the grammar compiler reads off the eager lexer DFA of the same terminals."""
    from constrain.grammar.compile import _NON_WS
    from constrain.regex._kernels import uses_bytes_kernel
    from constrain.regex.dfa import lazy_terminal_info

    eager = terminals_to_dfa(patterns)
    lazy = terminals_to_lazy_dfa(patterns)
    no_string, empty, non_ws = lazy_terminal_info(lazy)
    acc = eager.accepting_terminals
    assert no_string == (~acc.any(axis=0)).tolist()
    assert empty == acc[eager.start].tolist()
    assert non_ws == uses_bytes_kernel(eager.transitions, eager.live_terminals, _NON_WS).tolist()


def _rows_a_walk_reads(lazy, start, trie, roots, cols):
    """Reference for ``expand_along``: the states whose row a walk of ``trie`` below ``roots`` from
    ``start`` reads (a node with children reached in a state where a terminal of ``cols`` is live),
    building rows one at a time in Python."""
    need = set()
    for r in roots.tolist():
        stack = [(r, start)]
        while stack:
            node, q = stack.pop()
            children = []
            i = node + 1
            while i < trie.subtree_end[node]:
                children.append(i)
                i = int(trie.subtree_end[i])
            if not children:
                continue
            need.add(q)
            lazy.expand(q)
            for c in children:
                q2 = int(lazy.transitions[q, trie.node_byte[c]])
                if q2 >= 0 and lazy.live_terminals[q2, cols].any():
                    stack.append((c, q2))
    return need


@settings(max_examples=60, deadline=None)
@given(k=st.integers(0, len(LEXERS) - 1),
       tokens=st.lists(st.lists(st.sampled_from(list(ALPHABET)), min_size=1, max_size=9).map(bytes),
                       min_size=1, max_size=40, unique=True),
       prefix=st.lists(st.sampled_from(list(ALPHABET)), max_size=4).map(bytes),
       col_bits=st.integers(1, 15))
def test_expand_along_builds_every_row_a_trie_walk_reads(k, tokens, prefix, col_bits):
    """``expand_along`` builds the row of every state a walk of the token trie from a state reads
    (the grammar's lexeme walk then meets no missing row), whatever the terminals kept live, and
    no row of a state the walk does not reach."""
    from constrain.vocab.trie import TokenTrie, subtree_byte_sets

    lazy = terminals_to_lazy_dfa(LEXERS[k])
    start = lazy.advance(lazy.start, prefix)
    if start < 0:
        return
    n_t = lazy.n_terminals
    cols = np.array([t for t in range(n_t) if (col_bits >> t) & 1] or [0], dtype=np.int64)
    trie = TokenTrie.build(tokens)
    roots = np.zeros(1, dtype=np.int32)
    built = lazy.expand_along(start, roots, trie, subtree_byte_sets(trie), cols)
    assert len(set(built.tolist())) == len(built)
    expanded = lazy.expanded.copy()
    # the reference (which builds rows itself) finds nothing the kernel left unbuilt ...
    need = _rows_a_walk_reads(lazy, start, trie, roots, cols)
    # (a subtree skipped by the shortcut stays in a state already built)
    assert all(expanded[q] for q in need), "a state the walk reads was not built"
    # ... and the kernel built rows only of states the walk reaches
    assert set(built.tolist()) <= need


def _unbuilt_ahead(lexer, qs, depth, reps) -> set[int]:
    """The states less than ``depth`` bytes (one per class) from ``qs`` whose row is not built,
    by a Python search over the rows (it stops at an unbuilt one): empty after ``expand_ahead``."""
    seen: dict[int, int] = {}
    missing = set()
    stack = [(int(q), depth) for q in qs]
    while stack:
        s, d = stack.pop()
        if seen.get(s, 0) >= d:
            continue
        seen[s] = d
        if not lexer.expanded[s]:
            missing.add(s)
            continue
        if d > 1:
            for b in reps.tolist():
                t = int(lexer.transitions[s, b])
                if t >= 0:
                    stack.append((t, d - 1))
    return missing


@settings(max_examples=60, deadline=None)
@given(k=st.integers(0, len(LEXERS) - 1), prefixes=st.lists(st.lists(st.sampled_from(list(ALPHABET)), max_size=6).map(bytes),
       min_size=1, max_size=4), depth=st.integers(1, 4))
def test_expand_ahead_builds_every_row_within_depth(k, prefixes, depth):
    """``expand_ahead`` builds the row of every state within ``depth - 1`` bytes of the given
    states, reports each state it expanded once, and keeps its depth record sound across calls
    (a later call from the same states builds nothing new)."""
    lexer = terminals_to_lazy_dfa(LEXERS[k])
    reps = np.unique(lexer.class_of, return_index=True)[1].astype(np.int64)
    qs = sorted({q for q in (lexer.advance(lexer.start, p) for p in prefixes) if q >= 0})
    if not qs:
        return
    before = set(np.flatnonzero(lexer.expanded).tolist())
    built, depth_ok = lexer.expand_ahead(np.array(qs), depth, reps, np.zeros(0, np.int64))
    assert len(set(built.tolist())) == len(built) and not (set(built.tolist()) & before)
    assert set(built.tolist()) == set(np.flatnonzero(lexer.expanded).tolist()) - before
    assert not _unbuilt_ahead(lexer, qs, depth, reps)
    again, _ = lexer.expand_ahead(np.array(qs), depth, reps, depth_ok)
    assert again.shape[0] == 0


@pytest.mark.parametrize("max_new", [1, 5, 40])
def test_expand_ahead_stops_after_max_new_states_and_resumes(max_new):
    """With ``max_new`` a call stops once its rows created that many states (one row more at
    most: it checks before each row), builds at least one row while one is missing, keeps its
    depth record sound (rows left unbuilt are not claimed), and calling again until nothing is
    built leaves every row within the depth built, across the arrays' growth."""
    lexer = terminals_to_lazy_dfa([r"(?:a|b)*a(?:a|b){9}", r"[0-9]{1,3}"])
    reps = np.unique(lexer.class_of, return_index=True)[1].astype(np.int64)
    most_per_row = len(reps)  # a row creates at most one state per byte class
    depth_ok = np.zeros(0, np.int64)
    calls = 0
    while True:
        n0 = lexer.n_states
        built, depth_ok = lexer.expand_ahead(np.array([lexer.start]), 8, reps, depth_ok, max_new)
        calls += 1
        assert lexer.n_states - n0 < max_new + most_per_row
        if not len(built):
            break
    assert calls > 2
    assert lexer.n_states > 64  # the arrays grew on the way
    assert not _unbuilt_ahead(lexer, [lexer.start], 8, reps)


def test_expand_ahead_survives_growing_the_lexer():
    """Far more states than the lexer's first capacity (64) in one call: the kernel stops to let
    the arrays grow (its depth record reset for what it raised) and goes on; every state within
    reach ends expanded."""
    lexer = terminals_to_lazy_dfa([r"(?:a|b)*a(?:a|b){9}", r"[0-9]{1,3}"])
    reps = np.unique(lexer.class_of, return_index=True)[1].astype(np.int64)
    built, _ = lexer.expand_ahead(np.array([lexer.start]), 8, reps, np.zeros(0, np.int64))
    assert lexer.n_states > 64 and len(built) > 64
    assert not _unbuilt_ahead(lexer, [lexer.start], 8, reps)


@settings(max_examples=150, deadline=None)
@given(k=st.integers(0, len(LEXERS) - 1), data=st.lists(st.sampled_from(list(ALPHABET)), max_size=14).map(bytes),
       keep=st.lists(st.booleans(), min_size=5, max_size=5), prefix=st.integers(0, 4))
def test_restricted_state_reads_like_the_full_one_for_its_terminals(k, data, keep, prefix):
    """A state restricted to some terminals (the grammar's lexeme walks go from one per expected
    set) reaches, along every byte string, exactly the live and accepting terminals among those
    that the full state reaches, and none of the others."""
    lazy = terminals_to_lazy_dfa(LEXERS[k])
    mask = np.array(keep[: lazy.n_terminals], dtype=bool)
    q = lazy.advance(lazy.start, data[:prefix]) if prefix else lazy.start
    if q < 0:
        return
    r = lazy.restricted(q, mask)
    if not (lazy.live_terminals[q] & mask).any() and not (lazy.accepting_terminals[q] & mask).any():
        assert r == -1
        return
    assert lazy.restricted(q, np.ones(lazy.n_terminals, dtype=bool)) == q
    for b in data[prefix:]:
        assert (lazy.live_terminals[r] == (lazy.live_terminals[q] & mask)).all()
        assert (lazy.accepting_terminals[r] == (lazy.accepting_terminals[q] & mask)).all()
        lazy.expand(q)
        lazy.expand(r)
        q, r = int(lazy.transitions[q, b]), int(lazy.transitions[r, b])
        if q < 0 or not (lazy.live_terminals[q] & mask).any():
            assert r < 0 or not lazy.live_terminals[r].any()
            return
        assert r >= 0
