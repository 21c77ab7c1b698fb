"""Moore's vectorized refinement gives the same minimal DFA as the Hopcroft reference.

``_minimize`` uses :func:`_moore_blocks` (numpy); ``_minimize(..., hopcroft=True)`` is the Python
Hopcroft loop. Both renumber the blocks in BFS order from the start, so on the same input the two
tables and label lists must be identical, on random DFAs (dead states, unreachable states, several
labels) and on real lexers.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from constrain.limits import DEFAULT_LIMITS
from constrain.regex.dfa import _build_nfa, _determinize, _entries_parsed, _minimize


@st.composite
def dfas(draw):
    n = draw(st.integers(1, 40))
    n_cls = draw(st.integers(1, 4))
    table = [[draw(st.integers(-1, n - 1)) for _ in range(n_cls)] for _ in range(n)]
    labels = [draw(st.sampled_from([(), (), (0,), (1,), (0, 1)])) for _ in range(n)]
    return table, labels, n_cls


@settings(max_examples=300, deadline=None)
@given(dfas())
def test_moore_equals_hopcroft_on_random_dfas(dfa):
    table, labels, n_cls = dfa
    t1, l1 = _minimize(table, labels, n_cls)
    t2, l2 = _minimize(table, labels, n_cls, hopcroft=True)
    assert np.array_equal(t1, t2)
    assert l1 == l2


def test_moore_equals_hopcroft_on_lexers():
    lexers = [
        [r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4}){0,12}"', r"-?(?:0|[1-9][0-9]*)", r"[ \t\n]+", r"true|false"],
        [r"(?:ab|ba)*a[ab]{4}", r"a+b?", r"é|ü+"],
    ]
    for pats in lexers:
        parsed = _entries_parsed([(p, False, False) for p in pats], DEFAULT_LIMITS)
        nfa, start, finals = _build_nfa(parsed, DEFAULT_LIMITS, "test")
        table, accepts, _, n_cls = _determinize(nfa, start, finals, DEFAULT_LIMITS, "test")
        t1, l1 = _minimize(table, accepts, n_cls)
        t2, l2 = _minimize(table, accepts, n_cls, hopcroft=True)
        assert np.array_equal(t1, t2) and l1 == l2
