"""``GrammarConstraint._state_arrays`` (per expected-terminal set: which lexer states keep an
expected terminal live, end one, or only whitespace) reads only the expected terminals' columns;
it must equal the whole-matrix formula on every random expected set, eager and lazy lexers."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constrain.grammar._kernels import row_classes_kernel
from constrain.grammar.compile import GrammarConstraint
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


def test_lexer_over_the_work_bound_is_built_lazily(monkeypatch):
    """A lexer whose eager subset construction passes ``_EAGER_LEXER_WORK`` is built lazily, with
    the masks of the eager one along random walks."""
    import constrain.grammar.compile as grammar_compile
    from constrain.grammar import compile_grammar
    from tests.grammar.test_split_walk import vocab

    text = TEXTS["closed_object"]
    eager = compile_grammar(text, vocab())
    monkeypatch.setattr(grammar_compile, "_EAGER_LEXER_WORK", 10)
    lazy = compile_grammar(text, vocab())
    assert not eager._lazy and lazy._lazy
    rnd = random.Random(7)
    for _ in range(20):
        s1, s2 = eager.initial_state(), lazy.initial_state()
        for _step in range(12):
            b1, b2 = eager.token_bits(s1), lazy.token_bits(s2)
            assert np.array_equal(b1, b2)
            allowed = [t for t in range(eager.vocab.size) if (b1[t >> 5] >> (t & 31)) & 1]
            if not allowed:
                break
            t = rnd.choice(allowed)
            s1, s2 = eager.advance_token(s1, t), lazy.advance_token(s2, t)


def _random_masked_walks(c, rnd, walks: int = 6, steps: int = 10) -> None:
    for _ in range(walks):
        state = c.initial_state()
        for _step in range(steps):
            bits = c.token_bits(state)
            allowed = [t for t in range(c.vocab.size) if (bits[t >> 5] >> (t & 31)) & 1]
            if not allowed:
                break
            state = c.advance_token(state, rnd.choice(allowed))
            if state is None:
                break


def _assert_walk_tables_match_the_matrices(c, rnd) -> None:
    lexer = c.lexer
    n = lexer.n_states
    n_terms = len(c.ir.terminals)
    w = np.array([(c._ws_bits >> i) & 1 for i in range(n_terms)], dtype=bool)
    live, acc = lexer.live_terminals[:n], lexer.accepting_terminals[:n]
    assert np.array_equal(c._ws_live[:n], (live & w).any(axis=1))
    assert np.array_equal(c._acc_col[:n] >= 0, acc.any(axis=1))
    cols = c._acc_col[:n][acc.any(axis=1)]
    assert len(set(cols.tolist())) == len(cols), "a scan-table column per accepting state"
    assert len(c._eset_ids) > 0
    for expected, e_id in c._eset_ids.items():
        e = np.array([(expected >> i) & 1 for i in range(n_terms)], dtype=bool)
        assert sorted(c._eset_cols[c._eset_ptr[e_id] : c._eset_ptr[e_id + 1]].tolist()) == np.flatnonzero(e).tolist()
        el = live & e
        assert np.array_equal(c._live_tab[e_id, :n], el.any(axis=1))
        assert np.array_equal(c._acc_tab[e_id, :n], (acc & e).any(axis=1))
        assert np.array_equal(c._wsonly_tab[e_id, :n], el.any(axis=1) & ~(el & ~w).any(axis=1))
        assert _words_of(c._eset_words[e_id, 0]) == np.flatnonzero(e).tolist()
        assert _words_of(c._eset_words[e_id, 1]) == np.flatnonzero(e & ~w).tolist()
    for q in range(n) if c._term_words.shape[0] else ():
        assert _words_of(c._term_words[q, 0]) == np.flatnonzero(live[q]).tolist()
        assert _words_of(c._term_words[q, 1]) == np.flatnonzero(acc[q]).tolist()
    for q in rnd.sample(range(n), min(n, 40)):
        assert c._acc_bits[q] == sum(1 << int(i) for i in np.flatnonzero(acc[q]))
        assert c._live_bits[q] == sum(1 << int(i) for i in np.flatnonzero(live[q]))


def _words_of(words: np.ndarray) -> list[int]:
    """The bit indices set in uint64 words (bit i of word k: terminal 64 k + i)."""
    return [64 * k + i for k, x in enumerate(words.tolist()) for i in range(64) if (x >> i) & 1]


@pytest.mark.parametrize("name", sorted(TEXTS))
@pytest.mark.parametrize("lazy", [False, True])
def test_walk_tables_equal_the_whole_matrix_formula(name, lazy):
    """After random masked walks (over a lazy lexer: states built and synced a few at a time),
    the walk kernels' per-state tables hold, for every expected set seen (written by
    ``assign_pid_kernel`` when the set is first seen, by ``lazy_state_rows_kernel`` for
    states built later) and every built state, what the whole matrices say; and the Python bit
    rows (read on demand) are the matrix rows."""
    c = _compile(TEXTS[name], lazy)
    rnd = random.Random(name)
    _random_masked_walks(c, rnd)
    _assert_walk_tables_match_the_matrices(c, rnd)


# 90 keywords (two words of terminal bits) where any may come, and short sets between them: the
# expected sets of more than 3 words' worth of terminals go through the bit-word kernels
_MANY_KEYWORDS = (
    "start: item (\",\" item)* \";\"?\n"
    "item: " + " | ".join(f'"kw{i}" value' for i in range(90)) + "\n"
    'value: ":" (NUMBER | "[" NUMBER "]")\n'
    "NUMBER: /[0-9]+/\n"
    "%ignore /[ ]+/\n"
)


@pytest.mark.parametrize("lazy", [False, True])
def test_walk_tables_of_large_expected_sets_by_bit_words(lazy, monkeypatch):
    """With the states' terminal rows packed into words (``_term_words``, kept in step as a lazy
    lexer grows) and an eager lexer's states grouped by their rows, every expected set's table
    rows, wide or narrow, come from the word kernels: they still equal the whole-matrix formula,
    and the masks are the reference walk's."""
    # this lexer is smaller than the grouping threshold: group it anyway
    monkeypatch.setattr(GrammarConstraint, "_PACK_MIN_STATES", 0)
    c = _compile(_MANY_KEYWORDS, lazy)
    assert len(c.ir.terminals) > 64
    rnd = random.Random(5)
    _random_masked_walks(c, rnd, walks=10, steps=12)
    assert c._term_words.shape[0] > 0, "the rows were not packed"
    # an eager lexer computes the sets' rows per class of states with equal terminal rows
    assert (c._class_words.shape[0] > 0) == (not lazy)
    widths = {int(c._eset_ptr[e + 1] - c._eset_ptr[e]) for e in c._eset_ids.values()}
    assert min(widths) <= 3 < max(widths), "both narrow and wide sets should be met"
    _assert_walk_tables_match_the_matrices(c, rnd)
    state = c.initial_state()
    for _ in range(8):
        bits = c.token_bits(state)
        assert np.array_equal(bits, c.reference_token_bits(state))
        allowed = [t for t in range(c.vocab.size) if (bits[t >> 5] >> (t & 31)) & 1]
        if not allowed:
            break
        state = c.advance_token(state, rnd.choice(allowed))


def test_grouping_depends_on_the_lexer():
    """Every lexer packs its rows into words when the constraint is built (the fork kernel reads a
    state's accepting terminals there); an eager one groups its states by their rows only from
    ``_PACK_MIN_STATES`` states (below, the pass per state costs less than grouping), a lazy one
    never (it grows): the tables equal the whole-matrix formula either way."""
    for lazy in (False, True):
        c = _compile(_MANY_KEYWORDS, lazy)
        small = not lazy and c.lexer.n_states < GrammarConstraint._PACK_MIN_STATES
        assert c._term_words.shape[0] >= c.lexer.n_states
        assert (c._class_words.shape[0] == 0) == (lazy or small)
        rnd = random.Random(7)
        _random_masked_walks(c, rnd, walks=10, steps=12)
        _assert_walk_tables_match_the_matrices(c, rnd)
    assert _compile(_MANY_KEYWORDS, False).lexer.n_states < GrammarConstraint._PACK_MIN_STATES, "not a small lexer"


@pytest.mark.parametrize("lazy", [False, True])
def test_a_constraint_is_freed_without_the_cycle_collector(lazy):
    """Nothing the constraint holds refers back to it (a closure over ``self`` did, so every
    compiled grammar waited for a full collection, which in a long-lived process took seconds
    inside some unlucky mask): with the collector off, dropping the last reference frees it."""
    import gc
    import weakref

    c = _compile(TEXTS["closed_object"], lazy)
    state = c.initial_state()
    bits = c.token_bits(state)
    t = int(np.flatnonzero(np.unpackbits(bits.view(np.uint8), bitorder="little"))[0])
    c.advance_token(state, t)
    ref = weakref.ref(c)
    was = gc.isenabled()
    gc.disable()
    try:
        del c, state
        assert ref() is None
    finally:
        if was:
            gc.enable()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 150), st.integers(0, 2**32 - 1))
def test_row_classes_group_exactly_the_equal_rows(n, n_terms, seed):
    """States share a class iff their live and accepting terminal rows are equal; each class's
    representative is one of its states, classes numbered in order of first appearance."""
    rng = np.random.default_rng(seed)
    pool = rng.random((max(1, n // 3), 2, n_terms)) < 0.2  # few distinct rows, many repeats
    rows = pool[rng.integers(0, pool.shape[0], n)]
    n_words = (n_terms + 63) // 64
    words = np.zeros((n + 3, 2, n_words), np.uint64)  # rows past n are not read
    for q in range(n):
        for k in range(2):
            for t in np.flatnonzero(rows[q, k]):
                words[q, k, t >> 6] |= np.uint64(1) << np.uint64(t & 63)
    row_class, reps = row_classes_kernel(words, n)
    assert row_class.shape == (n,) and reps.shape[0] == len({rows[q].tobytes() for q in range(n)})
    for q in range(n):
        assert np.array_equal(rows[reps[row_class[q]]], rows[q])
    first = [row_class[q] for q in range(n) if q == reps[row_class[q]]]
    assert first == list(range(len(reps)))
    for a in range(len(reps)):
        for b in range(a + 1, len(reps)):
            assert not np.array_equal(rows[reps[a]], rows[reps[b]])
