"""``GrammarConstraint.candidate_bytes`` is a superset of the bytes that continue a state (every
byte ``advance_bytes`` accepts is in it), filtered by the terminals the parser expects: along
random walks of the shipped grammars, schema grammars and grammars with ignored terminals, with
the eager and the lazily built lexer."""

from __future__ import annotations

import random
import zlib
from pathlib import Path

import pytest

import constrain.grammar.compile as grammar_compile
from constrain.grammar import compile_grammar
from constrain.schema import schema_to_lark
from tests.grammar.test_lazy_lexer import IGNORE_GRAMMARS
from tests.grammar.test_split_walk import vocab

GRAMMARS = Path(__file__).resolve().parents[2] / "grammars"
CLOSED = {"type": "object", "properties": {"a": {"type": "integer"}, "ab": {"type": "string"}},
          "additionalProperties": False}
TEXTS = {
    **{p.stem: p.read_text(encoding="utf-8") for p in GRAMMARS.glob("*.lark")},
    **{f"ignore_{k}": v for k, v in IGNORE_GRAMMARS.items()},
    "closed_object": schema_to_lark(CLOSED),
    "nested": schema_to_lark({"type": "array", "items": {"anyOf": [CLOSED, {"type": "string", "maxLength": 3}]}}),
}


def _compile(text: str, lazy: bool):
    if not lazy:
        return compile_grammar(text, vocab())
    saved = grammar_compile._EAGER_LEXER_STATES
    grammar_compile._EAGER_LEXER_STATES = 1
    try:
        return compile_grammar(text, vocab())
    finally:
        grammar_compile._EAGER_LEXER_STATES = saved


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("name", sorted(TEXTS))
def test_candidate_bytes_cover_every_next_byte(name, lazy, seed):
    c = _compile(TEXTS[name], lazy)
    rnd = random.Random(zlib.crc32(name.encode()) + seed)
    for _ in range(6):
        state = c.initial_state()
        for _ in range(rnd.randint(5, 60)):
            cands = set(c.candidate_bytes(state))
            nxt = [b for b in range(256) if c.advance_bytes(state, bytes((b,))) is not None]
            assert set(nxt) <= cands, (name, sorted(set(nxt) - cands))
            if not nxt:
                break
            state = c.advance_bytes(state, bytes((rnd.choice(nxt),)))


def test_inside_a_closed_key_only_key_bytes_are_candidates():
    c = compile_grammar(schema_to_lark(CLOSED), vocab())
    state = c.advance_bytes(c.initial_state(), b'{"a":1,"')
    # the remaining keys start with "a" (a string value could start with anything: not expected)
    assert set(c.candidate_bytes(state)) <= set(b'a"')
