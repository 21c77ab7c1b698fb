"""The lexer's numba kernels against slow references: subset construction, NFA assembly from
cached fragments, terminal liveness and byte use.

``_determinize`` runs :func:`constrain.regex._kernels.subset_kernel` over the NFA's CSR arrays;
``_determinize_reference`` is the original dict-of-frozensets construction. They number DFA
states in different orders, so the comparison is on the minimized results (minimization renumbers
in BFS order from the start: equal languages give identical tables and labels), plus the number of
subset states (the same subsets are built, whatever their names). The state bound is checked the
same way by both.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numpy as np

from constrain.errors import LimitExceededError
from constrain.limits import DEFAULT_LIMITS
from constrain.regex.dfa import _build_nfa, _determinize, _determinize_reference, _entries_parsed, _minimize
from tests.regex.test_properties import regexes


def _both(patterns, limits=DEFAULT_LIMITS, flags=None):
    flags = flags or [(False, False)] * len(patterns)
    entries = [(p, ic, da) for p, (ic, da) in zip(patterns, flags)]
    parsed = _entries_parsed(entries, limits)
    nfa, start, finals = _build_nfa(parsed, limits, "test")
    fast = _determinize(nfa, start, finals, limits, "test")
    slow = _determinize_reference(nfa, start, finals, limits, "test")
    return fast, slow


def _assert_same(fast, slow):
    t1, a1, c1, k1 = fast
    t2, a2, c2, k2 = slow
    assert np.array_equal(c1, c2) and k1 == k2
    assert len(t1) == len(t2), "the same subsets, so the same number of states"
    assert sorted(a1) == sorted(a2)
    m1, l1 = _minimize(t1, a1, k1)
    m2, l2 = _minimize(t2, a2, k2)
    assert np.array_equal(m1, m2) and l1 == l2


@settings(max_examples=150, deadline=None)
@given(patterns=st.lists(regexes(), min_size=1, max_size=4), flags=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=4, max_size=4))
def test_kernel_equals_reference_on_random_lexers(patterns, flags):
    try:
        fast, slow = _both(patterns, flags=flags[: len(patterns)])
    except LimitExceededError:
        return
    _assert_same(fast, slow)


JSON_LEXER = [
    r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"',
    r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?",
    r"[ \t\n\r]+", r"true", r"false", r"null", r"\{", r"\}", r"\[", r"\]", r",", r":",
    r'"name"', r'"age"', r'"email"', r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4}){0,40}"',
]


@pytest.mark.parametrize(
    "patterns",
    [JSON_LEXER, [r"(?:ab|ba)*a[ab]{4}", r"a+b?", r"é|ü+", r"[^\x00-\x7f]{2,3}"], [r"x"], [r"[\s\S]*"]],
)
def test_kernel_equals_reference_on_lexers(patterns):
    fast, slow = _both(patterns)
    _assert_same(fast, slow)
    assert isinstance(fast[0], np.ndarray) and fast[0].dtype == np.int32


def test_state_bound_is_the_same():
    """``(?:a|b)*a(?:a|b){9}`` needs 2**10 subset states: allowed at 1024, refused at 1023."""
    from dataclasses import replace

    pat = [r"(?:a|b)*a(?:a|b){9}"]
    fast, slow = _both(pat, replace(DEFAULT_LIMITS, max_dfa_states=1024))
    assert len(fast[0]) == len(slow[0]) == 1024
    for fn in (_determinize, _determinize_reference):
        limits = replace(DEFAULT_LIMITS, max_dfa_states=1023)
        parsed = _entries_parsed([(pat[0], False, False)], limits)
        nfa, start, finals = _build_nfa(parsed, limits, "test")
        with pytest.raises(LimitExceededError) as exc:
            fn(nfa, start, finals, limits, "test")
        assert exc.value.field == "max_dfa_states"


def _sparse(dfa):
    """The same automaton as a SparseDFA (CSR edges, bytes ascending)."""
    from constrain.constraints.sparse_dfa import SparseDFA

    t = dfa.transitions
    rows, cols = np.nonzero(t >= 0)
    offsets = np.zeros(t.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=t.shape[0]), out=offsets[1:])
    return SparseDFA(offsets=offsets, edge_byte=cols.astype(np.uint8), edge_target=t[rows, cols].astype(np.int32), accepting=dfa.accepting.copy())


@settings(max_examples=120, deadline=None)
@given(
    patterns=st.lists(regexes(), min_size=1, max_size=3),
    embedded=st.lists(st.tuples(regexes(), st.booleans()), max_size=2),
    again=st.booleans(),
)
def test_fragment_assembly_equals_the_nfa_builder(patterns, embedded, again):
    """``_compile``'s NFA (cached per-entry fragments, embedded byte DFAs as runs of equal
    targets) has the language of ``_build_nfa``'s, entry by entry; assembling twice (fragments
    from the cache) changes nothing."""
    from constrain.regex import regex_to_dfa
    from constrain.regex.dfa import _lexer_arrays, _subset_construction

    try:
        entries = [(p, False, False) for p in patterns]
        for p, sparse in embedded:
            d = regex_to_dfa(p)
            entries.append((_sparse(d) if sparse else d, False, False))
        parsed = _entries_parsed(entries, DEFAULT_LIMITS)
        nfa, start, finals = _build_nfa(parsed, DEFAULT_LIMITS, "test")
        slow = _determinize_reference(nfa, start, finals, DEFAULT_LIMITS, "test")
    except LimitExceededError:
        return
    for _ in range(2 if again else 1):
        *arrays, fin = _lexer_arrays(parsed, DEFAULT_LIMITS, "test")
        fast = _subset_construction(*arrays, fin, 0, DEFAULT_LIMITS, "test")
        _assert_same(fast, slow)


@st.composite
def labelled_tables(draw):
    n = draw(st.integers(1, 30))
    n_terms = draw(st.integers(1, 4))
    width = draw(st.integers(1, 6))
    table = np.array([[draw(st.integers(-1, n - 1)) for _ in range(width)] for _ in range(n)], dtype=np.int32)
    acc = np.array([[draw(st.booleans()) and draw(st.booleans()) for _ in range(n_terms)] for _ in range(n)], dtype=bool)
    which = np.array([draw(st.booleans()) for _ in range(width)], dtype=bool)
    return table, acc, which


@settings(max_examples=300, deadline=None)
@given(case=labelled_tables())
def test_liveness_and_byte_use_kernels(case):
    """``live[s, i]`` is reachability of an accepting state of ``i`` (a fixpoint in Python here);
    ``uses[i]`` is whether some edge on a selected byte joins two states live for ``i``."""
    from constrain.regex._kernels import live_terminals_kernel, uses_bytes_kernel

    table, acc, which = case
    n, width = table.shape
    want = acc.copy()
    changed = True
    while changed:
        changed = False
        for s in range(n):
            for b in range(width):
                t = table[s, b]
                if t >= 0:
                    new = want[s] | want[t]
                    if (new != want[s]).any():
                        want[s] = new
                        changed = True
    rows, terms = np.nonzero(acc)
    live = live_terminals_kernel(table, acc, rows.astype(np.int64), terms.astype(np.int64))
    assert np.array_equal(live, want)
    uses = uses_bytes_kernel(table, live, which)
    for i in range(acc.shape[1]):
        expect = any(
            which[b] and table[s, b] >= 0 and want[s, i] and want[table[s, b], i] for s in range(n) for b in range(width)
        )
        assert uses[i] == expect


@pytest.mark.parametrize(
    "pattern, pieces",
    [
        ('"key"[ ]{0,2}:(?:"[a-z]*")', ['"key"[ ]{0,2}:', '(?:"[a-z]*")']),
        ("(a)*?b(c){2,3}?", ["(a)*?", "b", "(c){2,3}?"]),
        (r"x\((a)[)(]", [r"x\(", "(a)", "[)(]"]),
        ("(a)[]()]b", ["(a)", "[]()]b"]),
        ("(?:a|b)c", ["(?:a|b)", "c"]),
        ("a|(b)", None),  # top-level alternation
        ("(a)^b", None),  # anchors mean something else once cut
        (r"\A(a)b", None),
        ("(a)b$", None),
        ("(a)*+", None),  # a second quantifier: let the whole parse judge
        ("(a", None),
        ("abc", None),  # one piece
        ("(a)", None),
    ],
)
def test_split_top_level(pattern, pieces):
    from constrain.regex.dfa import split_top_level

    assert split_top_level(pattern) == pieces


@settings(max_examples=300, deadline=None)
@given(head=st.text(alphabet='ab"k: {}*+?.\\[]^$|()', max_size=8),
       rest=st.text(alphabet='ab"(?:)[]{}*+?|^$\\0,2', max_size=16))
def test_piece_scan_with_a_cached_tail_is_the_plain_scan(head, rest):
    """A plain head before the first group is split off and the rest's scan is cached: the pieces
    are the one-pass scan's, for any text (groups, classes, escapes, anchors, unbalanced)."""
    from constrain.regex.dfa import _scan_pieces, _top_level_pieces

    pattern = head + rest
    assert _top_level_pieces(pattern) == _scan_pieces(pattern)
    assert _top_level_pieces(pattern) == _scan_pieces(pattern)  # again, from the cache


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.tuples(regexes(), st.sampled_from(["", "*", "?", "{2}", "{0,2}?", "+"]), st.booleans()), min_size=1, max_size=4), icase=st.booleans())
def test_pieces_build_the_same_nfa_as_the_whole(parts, icase):
    """A pattern parsed piece by piece (``ParsedConcat``, leading literals as byte chains) has the
    language of the pattern parsed whole, eagerly and in the NFA builder the lazy lexer uses, and
    an NFA no larger, whose size the sizing pass predicts exactly."""
    from constrain.regex._parse import parse
    from constrain.regex.dfa import ParsedConcat, _fragment_size, _lexer_arrays, _parse_cached, _subset_construction
    import interegular.patterns as ip

    pattern = "".join(f"(?:{p}){q}" if grouped else p for p, q, grouped in parts)
    try:
        whole = parse(pattern, DEFAULT_LIMITS)
    except Exception:
        return
    split = _parse_cached(pattern, DEFAULT_LIMITS)
    flags = ip.REFlags.I if icase else ip.REFlags(0)
    assert _fragment_size(split, flags, {}) <= _fragment_size(whole, flags, {})
    try:
        nfa, start, finals = _build_nfa([(whole, flags)], DEFAULT_LIMITS, "test")
        slow = _determinize_reference(nfa, start, finals, DEFAULT_LIMITS, "test")
    except LimitExceededError:
        return
    nfa2, start2, finals2 = _build_nfa([(split, flags)], DEFAULT_LIMITS, "test")
    assert len(nfa.eps) == 2 + _fragment_size(whole, flags, {})
    assert len(nfa2.eps) == 2 + _fragment_size(split, flags, {})
    _assert_same(_determinize(nfa2, start2, finals2, DEFAULT_LIMITS, "test"), slow)
    *arrays, fin = _lexer_arrays([(split, flags)], DEFAULT_LIMITS, "test")
    _assert_same(_subset_construction(*arrays, fin, 0, DEFAULT_LIMITS, "test"), slow)
    if any(grouped for _p, _q, grouped in parts) and len(parts) > 1:
        assert isinstance(split, ParsedConcat)


def test_work_bound_stops_the_subset_construction():
    """``max_work`` bounds the NFA states held by all subsets: a blow-up stops early with the
    state-bound error (the grammar compiler's cue to build the lexer lazily)."""
    from constrain.regex import terminals_to_dfa

    pats = [r"(?:a|b)*a(?:a|b){9}", r"b+"]
    with pytest.raises(LimitExceededError) as exc:
        terminals_to_dfa(pats, max_work=1000)
    assert exc.value.field == "max_dfa_states" and "1000 NFA states" in str(exc.value)
    full = terminals_to_dfa(pats)
    assert full.n_states >= 1024
    assert np.array_equal(terminals_to_dfa(pats, max_work=10**7).transitions, full.transitions)


@pytest.mark.parametrize(
    "piece, k",
    [
        (r'"billing\_address"[\x20]{0,2}', len(r'"billing\_address"')),
        ("abc", 3),
        ("abc*", 2),  # the quantifier binds to c
        (r"ab\.?", 2),
        ("ab{2}", 1),
        (r"\d+", 0),  # a class escape is not literal
        ("a.b", 1),
        ("[ab]c", 0),
        ("(?:a)b", 0),
        ("é\\:ü", 4),
        ("x\\", 1),  # a trailing backslash is left to the parser's error
    ],
)
def test_literal_prefix(piece, k):
    from constrain.regex.dfa import literal_prefix

    assert literal_prefix(piece) == k


LITERAL_CHARS = st.sampled_from(list("aBz09 _-:,\"'é€ßKk") + ["\\.", "\\:", "\\_", "\\\"", "\\{", "\\\\", "\\-", "\\ "])


@settings(max_examples=200, deadline=None)
@given(
    lit=st.lists(LITERAL_CHARS, min_size=1, max_size=6).map("".join),
    rest=st.sampled_from(["", "*", "?", "+", "{2}", "{0,2}", r"[\x20\t]{0,2}\:", "(?:x|y)*", r"\d", ".", "|q"]),
    icase=st.booleans(),
)
def test_literal_pieces_match_the_whole_parse(lit, rest, icase):
    """A leading literal built as a byte chain (or, where case folding changes it, through its
    parse) gives the language of the pattern parsed whole, with and without ignore-case."""
    import interegular.patterns as ip

    from constrain.regex._parse import parse
    from constrain.regex.dfa import ParsedConcat, ParsedLiteral, _expand, _lexer_arrays, _parse_cached, _subset_construction

    pattern = lit + rest
    whole = parse(pattern, DEFAULT_LIMITS)
    split = _parse_cached(pattern, DEFAULT_LIMITS)
    flags = ip.REFlags.I if icase else ip.REFlags(0)
    nfa, start, finals = _build_nfa([(whole, flags)], DEFAULT_LIMITS, "test")
    slow = _determinize_reference(nfa, start, finals, DEFAULT_LIMITS, "test")
    *arrays, fin = _lexer_arrays([(split, flags)], DEFAULT_LIMITS, "test")
    fast = _subset_construction(*arrays, fin, 0, DEFAULT_LIMITS, "test")
    m1, l1 = _minimize(*fast[:2], fast[3])
    m2, l2 = _minimize(*slow[:2], slow[3])
    assert np.array_equal(_expand(m1, fast[2]), _expand(m2, slow[2])) and l1 == l2
    nfa2, start2, finals2 = _build_nfa([(split, flags)], DEFAULT_LIMITS, "test")  # the lazy lexer's builder
    lazy = _determinize_reference(nfa2, start2, finals2, DEFAULT_LIMITS, "test")
    m3, l3 = _minimize(*lazy[:2], lazy[3])
    assert np.array_equal(_expand(m3, lazy[2]), _expand(m2, slow[2])) and l3 == l2
    if rest[:1] not in ("*", "?", "+", "{", "|"):  # then the whole literal is one byte chain
        assert isinstance(split, ParsedConcat) and isinstance(split.parts[0], ParsedLiteral)


@settings(max_examples=150, deadline=None)
@given(patterns=st.lists(regexes(), min_size=1, max_size=5), flags=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=5, max_size=5))
def test_lexer_dfa_equals_the_label_tuple_path(patterns, flags):
    """The grammar lexer's array path (label ids, accepting matrix from CSR) gives the table and
    the accepted terminals per state of the per-state tuple path (``_subset_construction`` and
    ``_minimize``), including states that accept several terminals."""
    from constrain.regex.dfa import _expand, _lexer_arrays, _lexer_dfa, _subset_construction

    entries = [(p, ic, da) for p, (ic, da) in zip(patterns, flags)]
    try:
        lexer = _lexer_dfa(entries, DEFAULT_LIMITS)
    except LimitExceededError:
        return
    *arrays, finals = _lexer_arrays(_entries_parsed(entries, DEFAULT_LIMITS), DEFAULT_LIMITS, "test")
    t, accepts, class_of, n_cls = _subset_construction(*arrays, finals, 0, DEFAULT_LIMITS, "test")
    table_cls, labels = _minimize(t, accepts, n_cls)
    table = _expand(table_cls, class_of)
    assert np.array_equal(lexer.transitions, table)
    acc = np.zeros((len(labels), len(entries)), dtype=bool)
    for s, lab in enumerate(labels):
        acc[s, list(lab)] = True
    assert np.array_equal(lexer.accepting_terminals, acc)


def test_lexer_dfa_with_states_accepting_several_terminals():
    from constrain.regex.dfa import _lexer_dfa

    lexer = _lexer_dfa([("a+", False, False), ("a", False, False), ("[ab]", False, False), ("b", False, False)], DEFAULT_LIMITS)
    s = lexer.transitions[0, ord("a")]
    assert lexer.accepting_terminals[s].tolist() == [True, True, True, False]
    t = lexer.transitions[0, ord("b")]
    assert lexer.accepting_terminals[t].tolist() == [False, False, True, True]
    assert lexer.accepting_terminals[lexer.transitions[s, ord("a")]].tolist() == [True, False, False, False]


_COUNTED_PIECES = ["a{40,90}", "[0-9]{0,200}", "(?:ab|c){33}", "x{5}", "[\\x20\\t]{0,2}\\:", "é{35,}", "(?:[a-f]{40})?"]


@settings(max_examples=80, deadline=None)
@given(
    entries=st.lists(
        st.tuples(st.lists(st.sampled_from(_COUNTED_PIECES), min_size=1, max_size=3), st.sampled_from(["", "key", "\"k\""])),
        min_size=1, max_size=4),
    plain=st.lists(regexes(), max_size=2),
    again=st.booleans(),
)
def test_counted_fragment_assembly_is_the_lazy_builders_nfa(entries, plain, again):
    """The lazy lexer's NFA assembled from cached counted fragments (``_lexer_arrays(...,
    counted=True)``) is, state for state, the NFA ``_build_nfa(..., counted=True)`` builds: the
    same epsilon and byte edges, final states, counted loops and loop membership; from the cache
    the second time too."""
    from constrain.regex.dfa import _lexer_arrays, _nfa_arrays

    limits = DEFAULT_LIMITS
    patterns = [lit + "".join(pieces) for pieces, lit in entries] + list(plain)
    try:
        parsed = _entries_parsed([(p, False, False) for p in patterns], limits)
        nfa, start, finals = _build_nfa(parsed, limits, "test", counted=True)
    except LimitExceededError:
        return
    eps_ptr, eps_idx, edge_ptr, lo, hi, tgt = _nfa_arrays(nfa)

    def per_state(ptr, *cols):
        rows = list(zip(*(c.tolist() for c in cols)))
        p = ptr.tolist()
        return [sorted(rows[p[s] : p[s + 1]]) for s in range(len(p) - 1)]

    for _ in range(2 if again else 1):
        a_eps_ptr, a_eps_idx, a_edge_ptr, a_lo, a_hi, a_tgt, a_finals, loops, loop_of = _lexer_arrays(
            parsed, limits, "test", counted=True)
        assert start == 0 and a_finals.tolist() == finals
        assert per_state(a_eps_ptr, a_eps_idx) == per_state(eps_ptr, eps_idx)
        assert per_state(a_edge_ptr, a_lo, a_hi, a_tgt) == per_state(edge_ptr, lo, hi, tgt)
        want_loops = [(b, k, e, mn, -1 if mx is None else mx) for b, k, e, mn, mx in nfa.loops]
        assert [tuple(r) for r in loops.tolist()] == want_loops
        assert {s: li for s, li in enumerate(loop_of.tolist()) if li >= 0} == nfa.loop_of
    large = {"a{40,90}", "[0-9]{0,200}", "(?:ab|c){33}", "é{35,}", "(?:[a-f]{40})?"}
    if any(large & set(pieces) for pieces, _lit in entries):
        assert len(loops), "a repetition over COUNTED_REPEAT_MIN is a counted loop"
