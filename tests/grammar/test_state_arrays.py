"""``GrammarConstraint._state_arrays`` (per expected-terminal set: which lexer states keep an
expected terminal live, end one, or only whitespace) reads only the expected terminals' columns;
it must equal the whole-matrix formula on every random expected set, eager and lazy lexers."""

from __future__ import annotations

import random

import numpy as np
import pytest

from tests.grammar.test_candidate_bytes import TEXTS, _compile


@pytest.mark.parametrize("name", sorted(TEXTS))
@pytest.mark.parametrize("lazy", [False, True])
def test_state_arrays_equal_the_whole_matrix_formula(name, lazy):
    c = _compile(TEXTS[name], lazy)
    n_terms = len(c.ir.terminals)
    rnd = random.Random(name)
    sets = [0, (1 << n_terms) - 1] + [rnd.getrandbits(n_terms) for _ in range(30)]
    for expected in sets:
        e = np.array([(expected >> i) & 1 for i in range(n_terms)], dtype=bool)
        w = np.array([(c._ws_bits >> i) & 1 for i in range(n_terms)], dtype=bool)
        live = c.lexer.live_terminals & e
        want_live = live.any(axis=1)
        want_acc = (c.lexer.accepting_terminals & e).any(axis=1)
        want_ws = want_live & ~(live & ~w).any(axis=1)
        c._arrays.pop(expected, None)
        got = c._state_arrays(expected)
        assert np.array_equal(got[0], want_live) and np.array_equal(got[1], want_acc) and np.array_equal(got[2], want_ws)
