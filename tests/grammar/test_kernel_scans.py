"""The fork kernel scans the parser itself where a token passes a lexeme end whose parser scan is
not known yet (``constrain.grammar._kernels._scan_pid``): the Earley closure, the interning of the
new chart state, its parser id and its expected set's table rows, all in numba, without Python
objects. These tests hold what it leaves behind to what the Python parser computes: the same
scan-table entries, each chart state once, the same table rows and masks; and the fallback to
Python when a table is full or the parser-id limit is reached."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

import constrain.grammar.compile as grammar_compile
from constrain.errors import LimitExceededError
from constrain.grammar import compile_grammar
from constrain.limits import DEFAULT_LIMITS
from constrain.schema import schema_to_lark
from tests.grammar.test_split_walk import vocab
from tests.grammar.test_state_arrays import _assert_walk_tables_match_the_matrices

# many properties in schema order: every key position is a new parser state (and expected set),
# so the walks create well over the tables' first 64 parser ids
PROPS = {f"k{i}": ({"type": "string", "maxLength": 5} if i % 3 else {"type": "integer"}) for i in range(36)}
SCHEMA = {"type": "object", "properties": PROPS, "required": sorted(PROPS)}
DOC = json.dumps({k: ("ab" if i % 3 else i) for i, k in enumerate(PROPS)}).encode()


def _compile(lazy: bool, limits=DEFAULT_LIMITS):
    saved = grammar_compile._EAGER_LEXER_STATES
    if lazy:
        grammar_compile._EAGER_LEXER_STATES = 1
    try:
        c = compile_grammar(schema_to_lark(SCHEMA), vocab(), limits=limits)
    finally:
        grammar_compile._EAGER_LEXER_STATES = saved
    assert c._lazy == lazy
    return c


def _walk_document(c, rnd, check_masks: bool) -> int:
    """Step through ``DOC`` in random chunks of 1-4 bytes, a mask before each; the mask count."""
    state = c.initial_state()
    pos = n = 0
    while pos < len(DOC):
        words = c.compute_token_bits(state)
        n += 1
        if check_masks:
            assert np.array_equal(words, c.reference_token_bits(state)), (pos, DOC[:pos])
        cut = min(len(DOC), pos + rnd.randint(1, 4))
        state = c.advance_bytes(state, DOC[pos:cut])
        assert state is not None, DOC[:cut]
        pos = cut
    assert c.is_accepting(state)
    return n


@pytest.mark.parametrize("lazy", [False, True])
def test_kernel_scans_equal_the_parsers(lazy):
    c = _compile(lazy)
    rnd = random.Random(3)
    _walk_document(c, rnd, check_masks=False)
    parser = c.parser
    # states only the kernel interned have no Python object until someone asks for one
    n_sid = parser._chart.n_states
    unmade = sum(1 for sid in range(1, n_sid) if sid >= len(parser._states) or parser._states[sid] is None)
    assert unmade > 0, "the kernel scanned nothing"
    _walk_document(c, rnd, check_masks=True)  # masks (fresh walks, new chunks) = the reference walk's
    n_sid = parser._chart.n_states
    assert c._pcounts[0] > 64, "the parser-id tables never grew"
    # each chart state once (the kernel's and the parser's interning are one table)
    chart = parser._chart
    keys = {(chart.items[chart.ptr[s]:chart.ptr[s + 1]].tobytes(), int(chart.fin[s])) for s in range(1, n_sid)}
    assert len(keys) == n_sid - 1
    # every scan-table entry is the Python parser's scan of that state and those terminals
    checked = 0
    for pid in range(int(c._pcounts[0])):
        ps = c._pstate(pid)
        assert int(c._sid_pid[ps.sid]) == pid
        for q in np.flatnonzero(c._acc_col[: c.lexer.n_states] >= 0).tolist():
            r = int(c._scan_tab[pid, c._acc_col[q]])
            if r == -2:
                continue
            want = parser.scan(ps, c._acc_bits[q] & ps.expected)
            assert r == (-1 if want is None else c._parser_id(want)), (pid, q)
            checked += 1
    assert checked > 100, checked
    _assert_walk_tables_match_the_matrices(c, rnd)


@pytest.mark.parametrize("lazy", [False, True])
def test_masks_do_not_depend_on_who_scanned(lazy):
    """The same masks whether the fork kernel scans (and grows the tables through Python when
    full) or every scan is left to Python (the chart's tables too small for any new state)."""
    a, b = _compile(lazy), _compile(lazy)

    def no_room(context=b._scan_context):
        ek, ch, pk = context()
        return ek, ch, pk[:4] + (0,) + pk[5:]  # scan-table rows: 0, so no room for a new parser id

    b._scan_context = no_room
    served = {a: 0, b: 0}
    for c in (a, b):
        def counting(nreq, c=c, serve=c._serve_kernel_requests):
            served[c] += nreq
            return serve(nreq)

        c._serve_kernel_requests = counting
    rnd_a, rnd_b = random.Random(9), random.Random(9)
    state_a, state_b = a.initial_state(), b.initial_state()
    pos = 0
    while pos < len(DOC):
        assert np.array_equal(a.compute_token_bits(state_a), b.compute_token_bits(state_b)), DOC[:pos]
        cut = min(len(DOC), pos + rnd_a.randint(1, 4))
        rnd_b.randint(1, 4)
        state_a, state_b = a.advance_bytes(state_a, DOC[pos:cut]), b.advance_bytes(state_b, DOC[pos:cut])
        pos = cut
    assert a.is_accepting(state_a) and b.is_accepting(state_b)
    assert served[b] > 2 * served[a], served  # b's kernel left its new scans to Python


def test_parser_id_limit_is_an_error_from_the_kernel_too():
    """Past ``max_parser_states`` the masks raise ``LimitExceededError`` (the kernel leaves the
    scan to Python, which raises), never a wrong mask."""
    from dataclasses import replace

    c = _compile(False, limits=replace(DEFAULT_LIMITS, max_parser_states=12))
    with pytest.raises(LimitExceededError, match="max_parser_states"):
        _walk_document(c, random.Random(1), check_masks=False)
