"""The split mask path (cached lexeme walks + walks past lexeme ends) equals the reference.

``GrammarConstraint.compute_token_bits`` computes a mask per thread as the cached walk of the
current lexeme (keyed by expected-terminal set and lexer state, shared by every parser state: a
JSON string body is walked once) OR walks of the subtrees past each point where a lexeme ends
inside a token. These tests check it against ``reference_token_bits`` (one kernel walk per thread,
Python at every boundary) and against the one-walk kernel, on grammars compiled from JSON schemas
and on the bundled Lark grammars, along random masked walks.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from constrain.grammar import compile_grammar
from constrain.schema import schema_to_lark
from constrain.vocab.vocabulary import Vocabulary

GRAMMARS = Path(__file__).parents[2] / "grammars"

SCHEMAS = {
    "object": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}},
            "n": {"type": "integer"},
            "x": {"type": "number"},
            "ok": {"type": "boolean"},
        },
        "required": ["name"],
    },
    "enum_or_string": {"anyOf": [{"enum": ["red", "green", "a\"b"]}, {"type": "integer"}]},
    "nested": {
        "type": "array",
        "items": {"type": "object", "properties": {"k": {"type": "string", "minLength": 2}, "v": {"type": ["null", "number"]}}},
    },
    "any": {},
}

# EOS, every byte, and multi-byte tokens that cross JSON lexeme ends (quote then more bytes)
_MULTI = [
    '":', '",', '"}', '"]', '"},', '", "', '": "', '":"', 'a"', 'ab"', 'ab",', '\\"', '\\n', '\\u00', "{\"",
    '[{"', '": ', ', "', "true", "false", "null", " ", "  ", "\n", "\n  ", "1,", "12", "0.", "e+", "-1", "],",
    "}]", "},", 'name', 'name":', 'tags":["', '":[', '":{', "red", 'red"', 'a\\"b"', "é", '"é', 'é"}',
]


@functools.lru_cache(maxsize=None)
def vocab() -> Vocabulary:
    tokens: list = [None] + [bytes([b]) for b in range(256)] + [t.encode() for t in _MULTI]
    return Vocabulary.from_tokens(tokens, eos_token_ids=[0])


@functools.lru_cache(maxsize=None)
def constraint(name: str):
    if name in SCHEMAS:
        text = schema_to_lark(SCHEMAS[name])
    else:
        text = (GRAMMARS / f"{name}.lark").read_text(encoding="utf-8")
    return compile_grammar(text, vocab())


def _ids(words: np.ndarray) -> list[int]:
    return [t for t in range(1, vocab().size) if words[t >> 5] >> np.uint32(t & 31) & 1]


@settings(max_examples=80, deadline=None)
@given(name=st.sampled_from(sorted(SCHEMAS) + ["json", "sql_select", "python_subset"]), rnd=st.randoms(use_true_random=False))
def test_split_walk_equals_reference_and_single_walk(name, rnd):
    c = constraint(name)
    state = c.initial_state()
    for _ in range(rnd.randint(1, 40)):
        split = c._split_walk_bits(state)
        single = c._single_walk_bits(state)
        ref = c.reference_token_bits(state)
        assert split is not None
        assert np.array_equal(split, ref), f"{name}: split mask differs from the reference in {state}"
        if single is not None:
            assert np.array_equal(single, ref)
        assert np.array_equal(c.compute_token_bits(state), ref)
        ids = _ids(ref)
        if not ids:
            break
        state = c.advance_bytes(state, c.vocab.token_bytes(rnd.choice(ids)))
        assert state is not None


def test_string_bodies_share_one_lexeme_walk():
    """Two different JSON string values (different parser states) reuse the cached lexeme walk."""
    c = compile_grammar(schema_to_lark(SCHEMAS["object"]), vocab())
    s1 = c.advance_bytes(c.initial_state(), b'{"name": "ab')
    s2 = c.advance_bytes(c.initial_state(), b'{"name": "x", "tags": ["a')
    assert s1 is not None and s2 is not None and s1 != s2
    c.compute_token_bits(s1)
    walks = c.walk_stats["lexeme_walks"]
    words = c.compute_token_bits(s2)
    assert np.array_equal(words, c.reference_token_bits(s2))
    # s2 is inside a string with maxLength 3: a different lexer state, at most one new walk
    assert c.walk_stats["lexeme_walks"] <= walks + 1
    s3 = c.advance_bytes(c.initial_state(), b'{"name": "cd')
    before = c.walk_stats["lexeme_walks"]
    c.compute_token_bits(s3)
    assert c.walk_stats["lexeme_walks"] == before


def test_split_walk_capacity_falls_back():
    c = compile_grammar(schema_to_lark(SCHEMAS["nested"]), vocab())
    c.max_walk_threads = 1
    state = c.advance_bytes(c.initial_state(), b'[{"k": "ab')
    words = c.compute_token_bits(state)
    assert np.array_equal(words, c.reference_token_bits(state))
    assert c.walk_stats["fallbacks"] > 0
