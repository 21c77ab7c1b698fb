"""The numba Hopcroft kernel gives the same minimal DFA as the Python reference.

``_minimize`` partitions with :func:`constrain.regex._kernels.hopcroft_partial_kernel`;
``_minimize(..., hopcroft=True)`` with :func:`hopcroft_refine_reference` (plain Python). Both
renumber the blocks in BFS order from the start, so on the same input the two tables and label
lists must be identical, on random DFAs (dead states, unreachable states, several labels) and on
real lexers. ``hopcroft_refine`` (the kernel behind cpdfa's minimization) must give the same
partition as the reference, up to block names.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from constrain.limits import DEFAULT_LIMITS
from constrain.regex import dfa as dfa_module
from constrain.regex.dfa import _build_nfa, _determinize, _entries_parsed, _minimize


@st.composite
def dfas(draw):
    n = draw(st.integers(1, 40))
    n_cls = draw(st.integers(1, 4))
    table = [[draw(st.integers(-1, n - 1)) for _ in range(n_cls)] for _ in range(n)]
    labels = [draw(st.sampled_from([(), (), (0,), (1,), (0, 1)])) for _ in range(n)]
    return table, labels, n_cls


@settings(max_examples=300, deadline=None)
@given(dfa=dfas())
def test_kernel_equals_reference_on_random_dfas(dfa):
    table, labels, n_cls = dfa
    t1, l1 = _minimize(table, labels, n_cls)
    t2, l2 = _minimize(table, labels, n_cls, hopcroft=True)
    assert np.array_equal(t1, t2)
    assert l1 == l2


@settings(max_examples=200, deadline=None)
@given(dfa=dfas(), seed=st.integers(0, 2**16))
def test_hopcroft_refine_is_the_reference_partition(dfa, seed):
    """From any starting partition (not only label classes): the same blocks, up to names."""
    import random

    table, _labels, n_cls = dfa
    n = len(table)
    rnd = random.Random(seed)
    trans = [[t if t >= 0 else n for t in row] for row in table] + [[n] * n_cls]
    start = [rnd.randint(0, 3) * 7 for _ in range(n + 1)]  # sparse, unordered ids
    got = dfa_module.hopcroft_refine(trans, start, n_cls)
    want = dfa_module.hopcroft_refine_reference(trans, list(start), n_cls)
    pairs = set(zip(got, want))
    assert len(pairs) == len(set(got)) == len(set(want))  # a bijection between the block names


def test_kernel_equals_reference_on_lexers():
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


def test_long_chain():
    """A counter of 300 (states i: "i more a's to accept", two copies that must merge): one
    refinement per length for Moore; Hopcroft gives the same 301-state minimal DFA."""
    n = 300
    # states 0..n: copy A; n+1..2n+1: copy B (same language); 0 jumps to B's second state on class 1
    table = [[i + 1 if i < n else -1, n + 2 if i == 0 else -1] for i in range(n + 1)]
    table += [[n + 1 + i + 1 if i < n else -1, -1] for i in range(n + 1)]
    labels = [(0,) if i == n else () for i in range(n + 1)] * 2
    t1, l1 = _minimize(table, labels, 2)
    t2, l2 = _minimize(table, labels, 2, hopcroft=True)
    assert np.array_equal(t1, t2) and l1 == l2
    assert len(l1) == n + 1


def _renumber_reference(trans, all_labels, labels, block_of, n, n_cls):
    """The queue BFS that _renumber vectorizes: blocks numbered in the order a queue meets them."""
    from collections import deque

    dead, start = block_of[n], block_of[0]
    if start == dead:
        return np.full((1, n_cls), -1, dtype=np.int32), [labels[0]]
    rep = {}
    for s in range(n):
        rep.setdefault(block_of[s], s)
    order, queue, rows, out_labels = {start: 0}, deque([start]), [], []
    while queue:
        b = queue.popleft()
        out_labels.append(all_labels[rep[b]])
        row = []
        for t in trans[rep[b]]:
            tb = block_of[t]
            if tb == dead:
                row.append(-1)
                continue
            if tb not in order:
                order[tb] = len(order)
                queue.append(tb)
            row.append(order[tb])
        rows.append(row)
    return np.array(rows, dtype=np.int32).reshape(len(rows), n_cls), out_labels


@settings(max_examples=300, deadline=None)
@given(dfa=dfas(), seed=st.integers(0, 2**16))
def test_renumber_is_the_queue_bfs(dfa, seed):
    """Any block assignment (not only minimal ones): the vectorized level-by-level numbering
    equals a queue's."""
    import random

    table, labels, n_cls = dfa
    n = len(table)
    rnd = random.Random(seed)
    trans = [[t if t >= 0 else n for t in row] for row in table] + [[n] * n_cls]
    all_labels = list(labels) + [()]
    block_of = [rnd.randint(0, max(1, n // 2)) for _ in range(n + 1)]
    got, reps = dfa_module._renumber(trans, block_of, n, n_cls)
    want = _renumber_reference(trans, all_labels, labels, block_of, n, n_cls)
    assert np.array_equal(got, want[0])
    assert [all_labels[r] for r in reps.tolist()] == want[1]


@settings(max_examples=300, deadline=None)
@given(dfa=dfas())
def test_minimize_ids_equals_minimize(dfa):
    """The lexer's array path (labels as ids, a representative state per minimal state) builds
    the table ``_minimize`` builds, with the same labels through the representatives."""
    table, labels, n_cls = dfa
    want, want_labels = dfa_module._minimize(table, labels, n_cls)
    ids = {}
    label_ids = np.array([ids.setdefault(lab, len(ids) + 1) if lab else 0 for lab in labels], dtype=np.int64)
    got, reps = dfa_module._minimize_ids(np.asarray(table, dtype=np.int32).reshape(len(table), n_cls), label_ids, n_cls)
    assert np.array_equal(got, want)
    assert [labels[r] for r in reps.tolist()] == want_labels
