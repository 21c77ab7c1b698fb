"""Lexers with "any string of a base automaton but these" terminals, folded and not.

An eager lexer runs one copy of each base automaton and reads each excluding terminal's
acceptance off the excluded strings' chains (``constrain.regex.dfa._ExclusionFold``). Its minimal
DFA must be the one of the same terminals given as the built automata: same transitions (up to
numbering), same accepting and live terminals per state.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from constrain.constraints.sparse_dfa import ExcludingSparseDFA
from constrain.limits import DEFAULT_LIMITS
from constrain.regex.dfa import _lexer_dfa
from constrain.schema import cpdfa
from constrain.schema import json_string as js


def _canonical(lexer):
    """Transitions, accepting and live matrices renumbered by a BFS over bytes 0..255."""
    table = lexer.transitions
    order = {0: 0}
    queue = [0]
    for s in queue:
        for t in table[s].tolist():
            if t >= 0 and t not in order:
                order[t] = len(order)
                queue.append(t)
    inv = np.asarray(queue)
    renum = np.full(len(table) + 1, -1, dtype=np.int64)
    renum[inv] = np.arange(len(inv))
    mapped = np.where(table[inv] >= 0, renum[table[inv]], -1)
    return mapped, lexer.accepting_terminals[inv], lexer.live_terminals[inv]


def _short_strings_except(names, n: int):
    """An ExcludingSparseDFA over a second base: quoted strings of at most ``n`` code points."""
    base_cp = cpdfa.length(0, n, DEFAULT_LIMITS)
    base = cpdfa.to_byte_dfa(base_cp)

    def build():
        if not names:
            return base
        return cpdfa.to_byte_dfa(cpdfa.minimize(cpdfa.product(
            [base_cp, cpdfa.names(names)], lambda b: b[0] is True and b[1] is not True, DEFAULT_LIMITS), bool))

    spelled = tuple(sorted({('"' + js.spell_string(x) + '"').encode("utf-8") for x in names}))
    return ExcludingSparseDFA(base, spelled, build)


NAME = st.lists(st.sampled_from(list('ab"\\é€😀')), max_size=4).map("".join)


@settings(max_examples=80, deadline=None)
@given(
    name_sets=st.lists(st.lists(NAME, max_size=5), min_size=1, max_size=4),
    short_sets=st.lists(st.lists(NAME, max_size=3), max_size=2),
    keys=st.lists(NAME, max_size=4),
)
def test_folded_lexer_equals_the_lexer_of_the_built_automata(name_sets, short_sets, keys):
    """Excluding terminals over two bases, beside literal key terminals (which end where some
    excluded strings end) and a plain regex terminal that overlaps them all."""
    excluding = [cpdfa.except_names_byte_dfa(ns) for ns in name_sets] + [_short_strings_except(ns, 3) for ns in short_sets]
    literals = [('"' + js.literal_body_regex(k) + '"', False, False) for k in dict.fromkeys(keys)]
    other = [('"a[a-z]*"', False, False)]
    folded = _lexer_dfa([(e, False, False) for e in excluding] + literals + other, DEFAULT_LIMITS)
    assert all(e._dfa is None for e in excluding), "the eager lexer did not build the automata"
    built = _lexer_dfa([(e.dfa, False, False) for e in excluding] + literals + other, DEFAULT_LIMITS)
    got, want = _canonical(folded), _canonical(built)
    assert folded.n_states == built.n_states
    for a, b in zip(got, want):
        assert np.array_equal(a, b)


def test_excluded_names_are_refused_and_others_accepted():
    """A direct check of the folded acceptance: terminal 0 refuses its names, terminal 1 (other
    names) accepts them; a name outside the base (a raw control byte) excludes nothing."""
    a = cpdfa.except_names_byte_dfa(["ab", "b", "\x01"])
    b = cpdfa.except_names_byte_dfa(["a"])
    lexer = _lexer_dfa([(a, False, False), (b, False, False)], DEFAULT_LIMITS)

    def accepted(text: bytes):
        s = lexer.advance(0, text)
        return [] if s < 0 else np.flatnonzero(lexer.accepting_terminals[s]).tolist()

    assert accepted(b'"ab"') == [1]
    assert accepted(b'"b"') == [1]
    assert accepted(b'"a"') == [0]
    assert accepted(b'"abc"') == [0, 1]
    assert accepted(b'""') == [0, 1]
    assert accepted(b'"\\u0001"') == [1]  # the name "\x01", spelled as JSON spells it
    assert a._dfa is None and b._dfa is None
