"""Code-point DFA minimization and state elimination against slow references.

``cpdfa.minimize`` uses Hopcroft's algorithm over the code-point classes the edges delimit (Moore
refinement took one round per distinguishable length: minutes for ``maxLength: 1024``);
``cpdfa.to_regex`` eliminates the cheapest state first from a heap. The references here are the
textbook ones: the language on every string up to a length, and the number of Myhill-Nerode
classes by Moore refinement on a dense table.
"""

from __future__ import annotations

import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from constrain.limits import DEFAULT_LIMITS
from constrain.schema import cpdfa
from constrain.schema import json_string as js

# code points that fall in different edge intervals below: "a", "b", "c", and one past them
ALPHABET = [0x61, 0x62, 0x63, 0x7A]
INTERVALS = [(0x61, 0x61), (0x62, 0x62), (0x63, 0x79), (0x7A, 0x7A), (0x61, 0x62), (0x62, 0x7A)]


@st.composite
def dfas(draw):
    n = draw(st.integers(1, 14))
    trans = []
    for _ in range(n):
        row, used = [], set()
        for lo, hi in draw(st.lists(st.sampled_from(INTERVALS), max_size=3)):
            if any(lo <= x <= hi for x in used):
                continue  # keep intervals disjoint
            used.update(range(lo, hi + 1))
            row.append((lo, hi, draw(st.integers(0, n - 1))))
        trans.append(sorted(row))
    labels = [draw(st.booleans()) for _ in range(n)]
    return cpdfa.DFA(trans, labels)


def _accepts(dfa, word) -> bool:
    return dfa is not None and bool(dfa.run("".join(map(chr, word))))


def _words(max_len: int):
    for k in range(max_len + 1):
        yield from itertools.product(ALPHABET, repeat=k)


def _moore_classes(dfa) -> int:
    """Myhill-Nerode classes of the live states (those that reach acceptance), on a dense table."""
    n = dfa.n_states
    step = [[dfa.step(s, a) for a in ALPHABET] for s in range(n)]
    live = {s for s in range(n) if dfa.labels[s]}
    changed = True
    while changed:
        changed = False
        for s in range(n):
            if s not in live and any(t in live for t in step[s] if t >= 0):
                live.add(s)
                changed = True
    block = {s: int(bool(dfa.labels[s])) for s in live}
    while True:
        sig = {s: (block[s], tuple(block.get(t, -1) for t in step[s])) for s in live}
        ids: dict = {}
        new = {s: ids.setdefault(sig[s], len(ids)) for s in live}
        if len(ids) == len(set(block.values())):
            return len(ids)
        block = new


def _reachable(dfa) -> set:
    seen, stack = {0}, [0]
    while stack:
        for _lo, _hi, t in dfa.trans[stack.pop()]:
            if t not in seen:
                seen.add(t)
                stack.append(t)
    return seen


@settings(max_examples=300, deadline=None)
@given(dfas())
def test_minimize_keeps_the_language_and_is_minimal(dfa):
    m = cpdfa.minimize(dfa, bool)
    for w in _words(5):
        assert _accepts(m, w) == _accepts(dfa, w), w
    if m is not None:
        # restricted to what the start reaches, the classes of the input are the minimal states
        sub = _restrict(dfa, _reachable(dfa))
        assert m.n_states == _moore_classes(sub)


def _restrict(dfa, keep: set):
    order = sorted(keep)
    idx = {s: i for i, s in enumerate(order)}
    return cpdfa.DFA([[(lo, hi, idx[t]) for lo, hi, t in dfa.trans[s]] for s in order],
                     [dfa.labels[s] for s in order])


@settings(max_examples=200, deadline=None)
@given(dfas())
def test_to_regex_spells_the_same_language(dfa):
    m = cpdfa.minimize(dfa, bool)
    if m is None:
        return
    rx = re.compile(cpdfa.to_regex(m, DEFAULT_LIMITS))
    for w in _words(5):
        assert bool(rx.fullmatch("".join(map(chr, w)))) == _accepts(m, w), w


def test_long_length_bound_minimizes_fast():
    """MaskBench Github_easy---o63934's shape: a pattern under maxLength 1024 (was 46 s of Moore
    rounds; Hopcroft needs one pass). The minimal DFA counts the length in each pattern phase."""
    pat = r"^[\w /-]+\.[0-9a-zA-Z]+$"
    pdfa = cpdfa.from_branches(js.search_branches(js.parse_pattern(pat), "", pat), DEFAULT_LIMITS)
    prod = cpdfa.product([pdfa, cpdfa.length(1, 1024, DEFAULT_LIMITS)], lambda bits: all(b is True for b in bits),
                         DEFAULT_LIMITS, "test")
    m = cpdfa.minimize(prod, bool)
    assert m.run("a.b") and m.run("a" * 1020 + ".b1") and not m.run("a" * 1023 + ".b") and not m.run("a.")
    assert m.n_states < prod.n_states


def test_string_languages_are_memoized_by_value():
    """Two properties with the same pattern x length share one terminal; a complemented language
    (``not: {pattern}``) is keyed by its pattern, not by the object holding it (whose address a
    later object may reuse), so different complements never share."""
    from constrain.schema.compile import _schema_grammar

    same = {"type": "object", "properties": {
        "a": {"type": "string", "pattern": "^[ab]+$", "maxLength": 3000},
        "b": {"type": "string", "pattern": "^[ab]+$", "maxLength": 3000}}}
    _text, external, _c = _schema_grammar(same, catalogs=True)
    assert len(external) == 1
    letters = "abcdefgh"
    nots = {"type": "object", "additionalProperties": False, "properties": {
        f"p{i}": {"type": "string", "maxLength": 5, "not": {"pattern": f"^{ch}"}} for i, ch in enumerate(letters)}}
    from ._util import grammar, lark_accepts

    g = grammar(nots)  # one compiler: its memo holds all eight complemented languages
    for i, ch in enumerate(letters):
        other = letters[(i + 1) % 8]
        assert not lark_accepts(g, f'{{"p{i}": "{ch}x"}}') and lark_accepts(g, f'{{"p{i}": "{other}x"}}')


@st.composite
def code_point_dfas(draw):
    """DFAs over code points: per state sorted disjoint ranges (ASCII-heavy, some astral) to
    random targets, random boolean labels."""
    n = draw(st.integers(1, 6))
    trans = []
    for _ in range(n):
        cuts = sorted(set(draw(st.lists(st.one_of(st.integers(0, 200), st.integers(0, 0x10FFFF)), max_size=8))))
        row = [(a, b, draw(st.integers(0, n - 1))) for a, b in zip(cuts[::2], cuts[1::2])]
        trans.append(row)
    return cpdfa.DFA(trans, [draw(st.booleans()) for _ in range(n)])


def _canonical(sdfa):
    """The minimal dense table (BFS order) and labels of a sparse byte DFA: equal iff same language."""
    from constrain.regex.dfa import _minimize

    dense = sdfa.to_byte_dfa()
    labels = [(0,) if a else () for a in dense.accepting.tolist()]
    return _minimize(dense.transitions, labels, 256)


@settings(max_examples=300, deadline=None)
@given(dfa=code_point_dfas())
def test_byte_dfa_equals_the_per_byte_reference(dfa):
    """``_to_byte_dfa`` (spelling automata copied by numpy, then the lexer's subset construction
    and minimization) accepts exactly what the per-byte original accepts, and is already minimal;
    the cached ``to_byte_dfa`` returns it read-only, and the same object for equal content."""
    import numpy as np

    fast, slow = cpdfa._to_byte_dfa(dfa), cpdfa._to_byte_dfa_reference(dfa)
    t1, l1 = _canonical(fast)
    t2, l2 = _canonical(slow)
    assert np.array_equal(t1, t2) and l1 == l2
    assert t1.shape[0] == fast.n_states, "minimal already"
    cached = cpdfa.to_byte_dfa(dfa)
    for field in ("offsets", "edge_byte", "edge_target", "accepting"):
        assert np.array_equal(getattr(cached, field), getattr(fast, field)), field
        assert not getattr(cached, field).flags.writeable
    assert cpdfa.to_byte_dfa(cpdfa.DFA([list(r) for r in dfa.trans], list(dfa.labels))) is cached


@settings(max_examples=300, deadline=None)
@given(edges=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 12), st.integers(0, 5)), max_size=12))
def test_segments_equal_the_quadratic_definition(edges):
    """``_segments`` (each edge spread over the pieces it spans) against its definition: every
    piece between consecutive boundaries, with the edges covering it in edge order."""
    edges = [(lo, lo + span, x) for lo, span, x in edges]
    points = sorted({p for lo, hi, _x in edges for p in (lo, hi + 1)})
    want = []
    for a, b in zip(points, points[1:]):
        cover = [x for lo, hi, x in edges if lo <= a and b - 1 <= hi]
        if cover:
            want.append((a, b - 1, cover))
    assert cpdfa._segments(edges) == want


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(code_point_dfas(), min_size=1, max_size=3), surrogate=st.booleans())
def test_product_kernel_equals_the_reference(parts, surrogate):
    """The numba product explores, numbers and splits exactly like the Python original (also
    with an edge on a surrogate, outside the alphabet), and labels each state the same way."""
    if surrogate:
        parts = parts + [cpdfa.DFA([[(0xD800, 0xD800, 0)]], [True])]
    label = lambda bits: tuple(bits)  # noqa: E731
    fast = cpdfa.product(parts, label, DEFAULT_LIMITS)
    slow = cpdfa._product_reference(parts, label, DEFAULT_LIMITS)
    assert fast.trans == slow.trans and fast.labels == slow.labels


def test_product_state_bound():
    import pytest
    from dataclasses import replace

    from constrain.errors import LimitExceededError

    lens = [cpdfa.length(0, 40, DEFAULT_LIMITS), cpdfa.length(0, 37, DEFAULT_LIMITS)]
    assert cpdfa.product(lens, all, DEFAULT_LIMITS).n_states == cpdfa._product_reference(lens, all, DEFAULT_LIMITS).n_states
    for fn in (cpdfa.product, cpdfa._product_reference):
        with pytest.raises(LimitExceededError):
            fn(lens, all, replace(DEFAULT_LIMITS, max_dfa_states=10))


def _canonical_bytes(sdfa):
    """The minimal byte table (BFS numbering) of a SparseDFA: equal iff the languages are equal."""
    import numpy as np

    from constrain.regex.dfa import _minimize_ids

    n = sdfa.n_states
    table = np.full((n, 256), -1, dtype=np.int32)
    table[np.repeat(np.arange(n), np.diff(sdfa.offsets)), sdfa.edge_byte] = sdfa.edge_target
    return _minimize_ids(table, np.asarray(sdfa.accepting, dtype=np.int64), 256)[0]


NAME_CHARS = st.sampled_from(list('ab"\\\n\x1f\x7fé€😀\u2028') + ["\ud800"])


@settings(max_examples=150, deadline=None)
@given(names=st.lists(st.lists(NAME_CHARS, max_size=4).map("".join), max_size=6))
def test_except_names_byte_dfa_is_the_code_point_product(names):
    """The directly built "any JSON string but these names" automaton has the language of the
    code-point product (all strings x not a name) spelled by ``to_byte_dfa``; every state live."""
    import numpy as np

    anything = cpdfa.length(0, None, DEFAULT_LIMITS)
    if names:
        ref = cpdfa.to_byte_dfa(cpdfa.minimize(cpdfa.product(
            [anything, cpdfa.names(names)], lambda b: b[0] is True and b[1] is not True, DEFAULT_LIMITS), bool))
    else:
        ref = cpdfa.to_byte_dfa(anything)
    got = cpdfa.except_names_byte_dfa(names)
    assert np.array_equal(_canonical_bytes(got), _canonical_bytes(ref))
    edges = [(int(q), int(t)) for q in range(got.n_states)
             for t in got.edge_target[got.offsets[q]:got.offsets[q + 1]]]
    reach, stack = {0}, [0]
    while stack:
        q = stack.pop()
        for a, t in edges:
            if a == q and t not in reach:
                reach.add(t)
                stack.append(t)
    live = set(np.flatnonzero(got.accepting).tolist())
    grew = True
    while grew:
        grew = False
        for a, t in edges:
            if t in live and a not in live:
                live.add(a)
                grew = True
    assert reach == live == set(range(got.n_states)), "every state reachable and live"
    for name in names:
        try:
            spelled = ('"' + js.spell_string(name) + '"').encode("utf-8")
        except UnicodeEncodeError:
            continue
        assert not got.matches(spelled)
        assert got.matches(spelled[:-1] + b'z"')


@settings(max_examples=200, deadline=None)
@given(dfas())
def test_minimize_equals_the_python_reference(dfa):
    """The array minimization and the Python original give the same minimal DFA: the same size
    and, walked side by side from the start over every interval, the same labels and edges."""
    got, want = cpdfa.minimize(dfa, bool), cpdfa._minimize_reference(dfa, bool)
    assert (got is None) == (want is None)
    if got is None:
        return
    assert got.n_states == want.n_states
    pair = {0: 0}
    stack = [0]
    while stack:
        a = stack.pop()
        b = pair[a]
        assert got.labels[a] == want.labels[b]
        ea, eb = got.trans[a], want.trans[b]
        assert [(lo, hi) for lo, hi, _ in ea] == [(lo, hi) for lo, hi, _ in eb]
        for (_, _, ta), (_, _, tb) in zip(ea, eb):
            if ta in pair:
                assert pair[ta] == tb
            else:
                pair[ta] = tb
                stack.append(ta)
    assert len(pair) == got.n_states


def test_minimize_of_a_product_reads_its_arrays():
    """A product carries its transitions as arrays; minimize reads them (same result as from
    the lists)."""
    pat = r"^[a-c]+x?$"
    pdfa = cpdfa.from_branches(js.search_branches(js.parse_pattern(pat), "", pat), DEFAULT_LIMITS)
    prod = cpdfa.product([pdfa, cpdfa.length(2, 40, DEFAULT_LIMITS)], lambda bits: all(b is True for b in bits),
                         DEFAULT_LIMITS, "test")
    assert prod.csr is not None
    a = cpdfa.minimize(prod, bool)
    b = cpdfa.minimize(cpdfa.DFA(prod.trans, prod.labels), bool)
    assert a.trans == b.trans and a.labels == b.labels
    assert a.run("ab") and a.run("a" * 39 + "x") and not a.run("a" * 40 + "x") and not a.run("a")
