"""GrammarConstraint.forced_bytes: exactly the bytes every continuation starts with."""

from __future__ import annotations

import random

import pytest

from tests.grammar._util import compiled, lark_accepts, toy_vocab

GRAMMAR = r"""
start: "{" KEY ":" VALUE "}"
KEY: "\"name\"" | "\"nick\""
VALUE: /[0-9]+/ | "true"
"""


def _state_after(grammar: str, text: str):
    c = compiled(grammar)
    state = c.advance_bytes(c.initial_state(), text.encode())
    assert state is not None
    return c, state


@pytest.mark.parametrize(
    ("prefix", "forced"),
    [
        ("", b'{"n'),  # '{' then '"' then 'n' is common to both keys
        ('{"na', b'me":'),
        ('{"name":t', b"rue}"),
        ('{"name":1', b""),  # more digits or '}'
        ('{"name":true}', b""),  # accepting: nothing is forced
    ],
)
def test_forced_bytes_table(prefix, forced):
    c, state = _state_after(GRAMMAR, prefix)
    assert c.forced_bytes(state) == forced


def _brute_force_forced(c, state) -> bytes:
    out = b""
    while not c.is_accepting(state):
        alive = [b for b in range(256) if c.advance_bytes(state, bytes((b,))) is not None]
        if len(alive) != 1:
            break
        out += bytes(alive)
        state = c.advance_bytes(state, bytes(alive))
        if len(out) >= 64:
            break
    return out


@pytest.mark.parametrize("seed", range(8))
def test_forced_bytes_equal_brute_force_on_random_walks(seed):
    grammar = 'start: "(" "define" NAME ITEM* ")"\nITEM: "#t" | "#f" | /[0-9]+/\nNAME: /[a-z]+/\n%ignore " "'
    c = compiled(grammar)
    rnd = random.Random(seed)
    m = c.matcher()
    for _ in range(12):
        assert c.forced_bytes(m.state) == _brute_force_forced(c, m.state)
        allowed = [int(t) for t in m.allowed_token_ids() if t != 0]
        if not allowed:
            break
        m.accept_token(rnd.choice(allowed))
    text = toy_vocab().decode(m.consumed_tokens).decode("latin-1")
    assert m.is_accepting() == lark_accepts(grammar, text)


def test_matcher_forced_tokens_use_them():
    c, _ = _state_after(GRAMMAR, "")
    m = c.matcher()
    forced = m.forced_tokens()
    assert toy_vocab().decode(forced) and b'{"n'.startswith(toy_vocab().decode(forced))
