"""The one-walk mask kernel equals the per-boundary reference walk, exactly, and falls back.

``GrammarConstraint.compute_token_bits`` walks the token trie once with every lexing thread of the
state at once (parser transitions read from tables filled on demand); ``reference_token_bits`` is
the previous engine (one kernel call per thread, Python at every boundary point). States are
reached by random masked walks, so they cover lexeme ends inside tokens, ignored lexemes,
whitespace counts and thread merges.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constrain.grammar import compile_grammar
from tests.grammar._util import toy_vocab

GRAMMARS = Path(__file__).parents[2] / "grammars"
NAMES = ("json", "arithmetic", "lisp", "csv", "sql_select", "python_subset", "lark_ebnf")

_constraints: dict = {}


def constraint(name: str, cap: int | None = None):
    key = (name, cap)
    if key not in _constraints:
        c = compile_grammar((GRAMMARS / f"{name}.lark").read_text(encoding="utf-8"), toy_vocab())
        if cap is not None:
            c.max_walk_threads = cap
        _constraints[key] = c
    return _constraints[key]


def _ids(words: np.ndarray) -> list[int]:
    return [t for t in range(1, toy_vocab().size) if words[t >> 5] >> np.uint32(t & 31) & 1]


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(NAMES), rnd=st.randoms(use_true_random=False))
def test_single_walk_equals_reference(name, rnd):
    c = constraint(name)
    state = c.initial_state()
    for _ in range(rnd.randint(1, 30)):
        fast = c.compute_token_bits(state)
        ref = c.reference_token_bits(state)
        assert np.array_equal(fast, ref), f"{name}: masks differ in state {state}"
        ids = _ids(ref)
        if not ids:
            break
        state = c.advance_bytes(state, c.vocab.token_bytes(rnd.choice(ids)))
        assert state is not None


@pytest.mark.parametrize("name", ["lisp", "sql_select"])
def test_tiny_capacity_falls_back_to_reference(name):
    import random

    c = constraint(name, cap=1)
    rnd = random.Random(7)
    state = c.initial_state()
    for _ in range(25):
        words = c.compute_token_bits(state)
        assert np.array_equal(words, c.reference_token_bits(state))
        ids = _ids(words)
        if not ids:
            break
        state = c.advance_bytes(state, c.vocab.token_bytes(rnd.choice(ids)))
    assert c.walk_stats["fallbacks"] > 0
    assert c.walk_stats["walks"] > 0  # the kernel ran (and overflowed) before some fallbacks


def test_tables_persist_across_masks():
    c = constraint("lisp", cap=None)
    state = c.advance_bytes(c.initial_state(), b"(list 1 ")
    c.compute_token_bits(state)
    rounds = c.walk_stats["rounds"]
    c.compute_token_bits(state)
    assert c.walk_stats["rounds"] == rounds + 1  # second walk: no table miss, one kernel call
