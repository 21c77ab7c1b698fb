"""``uniqueItems: true`` over arrays of strings, enforced at run time (constrain.schema.unique).

Checked against ``jsonschema``: documents with distinct items are accepted under random
tokenizations, documents with a repeated item (also spelled differently: ``"\\u0041"`` is ``"A"``)
are rejected at the token that closes the repeat, the mask agrees with ``accept_token`` at every
step, and masked random walks biased toward repeating items end in valid documents without ever
getting stuck. What cannot be exact still raises, naming the keyword.
"""

from __future__ import annotations

import functools
import json
import random

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import constrain
from constrain.errors import UnsupportedFeatureError
from constrain.kernels.bitmask import allocate_bitmask, allowed_token_ids
from constrain.schema import compile_json_schema, schema_to_lark
from constrain.schema.unique import UniqueItemsConstraint
from constrain.vocab.vocabulary import Vocabulary

from ._util import run_tokens, segment_tokens

EOS = 0
MULTI = ['{"', '":', '",', '": ', '"}', ', "', '["', '"]', '", "', '"a"', '"a",', '["a","a"]', '["b", "b"]', "ab",
         "tags", "kids", "labels", "\\u0041", "null", "  "]

TAGS = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string", "minLength": 1},
                                                  "uniqueItems": True, "maxItems": 6}},
        "required": ["tags"], "additionalProperties": False}
TREE = {"$defs": {"node": {"type": "object",
                           "properties": {"labels": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                                          "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 3}},
                           "required": ["labels"], "additionalProperties": False}},
        "$ref": "#/$defs/node"}
ALLOF = {"type": "object", "allOf": [{"properties": {"ids": {"type": "array", "items": {"type": "string", "pattern": "^x"},
                                                            "uniqueItems": True}}}],
         "properties": {"ids": {"type": "array", "maxItems": 5}}, "required": ["ids"], "additionalProperties": False}
TOP = {"type": "array", "items": {"type": "string", "format": "email"}, "uniqueItems": True, "minItems": 1}
# Finitely many strings: 'A', 'B', 'AB' (and maxItems allows more items than there are values)
FEW = {"type": "array", "items": {"type": "string", "pattern": "^(A|B|AB)$"}, "uniqueItems": True, "maxItems": 5}
SHORT = {"type": "object", "properties": {"t": {"type": "array", "uniqueItems": True,
                                                "items": {"type": "string", "maxLength": 1, "minLength": 1}}}}
# the array is the only oneOf branch that admits arrays (MaskBench github-funding's shape)
ONE_OF = {"type": "object", "properties": {"g": {"oneOf": [
    {"type": "string", "maxLength": 3},
    {"type": "array", "items": {"type": "string"}, "uniqueItems": True, "minItems": 1}]}}, "additionalProperties": False}
# a catch-all pattern, then the only oneOf branch admitting objects (MaskBench ci's variables)
PATTERN = {"type": "object", "additionalProperties": False, "patternProperties": {".*": {"oneOf": [
    {"type": ["string", "number"]},
    {"type": "object", "properties": {"options": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}},
     "additionalProperties": False}]}}}

# a pattern that matches some keys, a declared name the pattern also matches (both apply), and the
# arrays of every other key (additionalProperties); drupal-breakpoints / chisel-slices shapes
SOME_KEYS = {"type": "object",
             "properties": {"ab": {"type": "array", "maxItems": 4}, "z": {"type": "string"}},
             "patternProperties": {"^a": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}},
             "additionalProperties": {"type": "object", "properties": {
                 "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}}}

CASES = [
    (TAGS, ['{"tags": []}', '{"tags": ["a", "b", "ab"]}', '{"tags": ["A", "a"]}', '{"tags": ["a\\"", "a"]}'],
     ['{"tags": ["a", "a"]}', '{"tags": ["A", "\\u0041"]}', '{"tags": ["ab", "b", "ab"]}', '{"tags": ["a","a"]}',
      '{"tags": ["\\n", "\\u000a"]}']),
    (TREE, ['{"labels": ["a"], "kids": [{"labels": ["a"]}, {"labels": ["b", "a"]}]}', '{"labels": []}'],
     ['{"labels": ["a"], "kids": [{"labels": ["b", "b"]}]}', '{"labels": ["a", "a"], "kids": []}']),
    (ALLOF, ['{"ids": ["x1", "x2", "x"]}'], ['{"ids": ["x1", "x1"]}']),
    (TOP, ['["a@b.co", "b@b.co"]'], ['["a@b.co", "a@b.co"]', '["a@b.co","a@b.co"]']),
    # a prefix with no fresh completion is refused before the item closes; so is a comma with none
    (FEW, ['["A", "AB", "B"]', '["AB", "A"]', '[]'],
     ['["A", "B", "AB", "', '["A", "AB", "A', '["AB", "A", "B",', '["B", "\\u0042', '["A", "\\u0041']),
    (SHORT, ['{"t": ["a", "b", "\u00e9", "\\n", "\u00e8"]}'], ['{"t": ["a", "b", "a"]}', '{"t": ["\u00e9", "\u00e9"]}',
                                                                  '{"t": ["\\n", "\\n"]}']),
    (ONE_OF, ['{"g": "ab"}', '{"g": ["a", "b"]}', '{}'], ['{"g": ["a", "a"]}', '{"g": ["b", "a", "b"]}', '{"g": []}']),
    (PATTERN, ['{"x": "s", "y": {"options": ["a", "b"]}}', '{"ab": 1, "": {"options": []}}', '{}'],
     ['{"x": {"options": ["a", "a"]}}', '{"x": 1, "y": {"options": ["b", "\\u0062"]}}']),
    (SOME_KEYS, ['{"a": ["a", "b"], "ab": ["b", "a"], "kb": {"tags": ["a", "b"]}, "z": "s"}',
                 '{"ba": {"tags": ["a"]}, "ax": ["x", "y"], "x": {"tags": []}}', '{}'],
     ['{"a": ["a", "a"]}', '{"ab": ["b", "a", "b"]}', '{"ax": ["y", "y"]}', '{"ba": {"tags": ["a", "a"]}}',
      '{"b": {"tags": ["x", "\\u0078"]}}']),
]


@functools.lru_cache(maxsize=None)
def toy_vocab() -> Vocabulary:
    return Vocabulary.from_tokens([None] + [bytes([b]) for b in range(256)] + [t.encode() for t in MULTI],
                                  eos_token_ids=[EOS])


def _segment(vocab: Vocabulary, data: bytes, rnd: random.Random) -> list[int]:
    return segment_tokens(vocab, data, rnd, max_len=10)


def _run(constraint, tokens) -> str:
    return run_tokens(constraint, tokens, EOS)


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("seed", range(4))
def test_documents_accepted_and_duplicates_rejected(case, seed):
    schema, valid, invalid = CASES[case]
    vocab = toy_vocab()
    c = compile_json_schema(schema, vocab)
    assert isinstance(c, UniqueItemsConstraint)
    rnd = random.Random(seed)
    for text in valid:
        assert jsonschema.Draft202012Validator(schema).is_valid(json.loads(text)), text
        assert _run(c, _segment(vocab, text.encode(), rnd)) == "accept", text
    for text in invalid:
        try:
            assert not jsonschema.Draft202012Validator(schema).is_valid(json.loads(text)), text
        except json.JSONDecodeError:  # a prefix: no valid document starts with it
            pass
        assert _run(c, _segment(vocab, text.encode(), rnd)) == "reject", text


@settings(max_examples=60, deadline=None)
@given(case=st.integers(0, len(CASES) - 1), seed=st.integers(0, 2**32 - 1))
def test_masked_walks_end_valid_and_never_stall(case, seed):
    """Walks that favour the tokens which repeat items ('"a"', 'a', '","', ...) still end in
    documents jsonschema accepts, and the mask is never empty before the end."""
    schema = CASES[case][0]
    vocab = toy_vocab()
    c = compile_json_schema(schema, vocab)
    rnd = random.Random(seed)
    favoured = {vocab.token_bytes(i) for i in range(1, vocab.size)} & {
        b'"a"', b'"a",', b"a", b"b", b'"', b",", b", ", b'", "', b'"]', b"]", b"}", b'["a","a"]', b'["b", "b"]', b"[",
        b"\\u0041", b"A", b"B", b"x", b"@", b".co", b"c", b"o"}
    m = c.matcher()
    bm = allocate_bitmask(1, vocab.size)
    out = b""
    for _ in range(300):
        m.fill_bitmask(bm, 0)
        allowed = allowed_token_ids(bm[0], vocab.size).tolist()
        assert allowed, f"stalled after {out!r}"
        if EOS in allowed and (len(allowed) == 1 or rnd.random() < 0.5 or len(out) > 150):
            break
        nice = [t for t in allowed if t != EOS and vocab.token_bytes(t) in favoured]
        pool = nice if nice and rnd.random() < 0.9 else [t for t in allowed if t != EOS]
        if len(out) > 150:  # head for the end: prefer closing tokens
            closing = [t for t in allowed if t != EOS and vocab.token_bytes(t)[:1] in (b'"', b"]", b"}")]
            pool = closing or pool
        t = rnd.choice(pool)
        assert m.accept_token(t)
        out += vocab.token_bytes(t)
    else:
        return  # a long walk: it never stalled, which is what was checked at every step
    if m.is_accepting():
        jsonschema.validate(json.loads(out), schema)


def test_arrays_under_conditions_or_bounded_strings_still_raise():
    vocab = toy_vocab()
    # two anyOf branches admit arrays: which one an array matches is not known while it is written
    under_anyof = {"anyOf": [{"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                             {"type": "array", "maxItems": 1}]}
    with pytest.raises(UnsupportedFeatureError) as info:
        compile_json_schema(under_anyof, vocab)
    assert info.value.pointer == "/anyOf/0/uniqueItems"
    # additionalProperties next to a pattern the scanner cannot decide (a lookahead): which keys
    # the array applies to is unknown while a document is written
    undecidable = {"type": "object", "patternProperties": {"^(?=a)": {"type": "string"}},
                   "additionalProperties": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}
    with pytest.raises(UnsupportedFeatureError):
        compile_json_schema(undecidable, vocab)
    # under dependentSchemas: applies only when another key is present
    dependent = {"type": "object", "dependentSchemas": {"k": {"properties": {
        "t": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}}}}
    with pytest.raises(UnsupportedFeatureError):
        compile_json_schema(dependent, vocab)
    # the branch admitting objects leads to the array; a branch with no 'type' admits objects too
    untyped = {"oneOf": [{"required": ["x"]}, {"type": "object", "properties": {
        "t": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}}]}
    with pytest.raises(UnsupportedFeatureError):
        compile_json_schema(untyped, vocab)
    # fewer distinct strings than minItems: not handed over
    too_few = {"type": "array", "items": {"type": "string", "pattern": "^[ab]$"}, "uniqueItems": True, "minItems": 3}
    with pytest.raises(UnsupportedFeatureError) as info:
        compile_json_schema(too_few, vocab)
    assert info.value.pointer == "/uniqueItems"
    # the same array reached once unconditionally and once under an undetermined anyOf: the keyword
    # applies only conditionally on one path, so it is not handed over
    shared = {"$defs": {"t": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}},
              "type": "object", "properties": {"a": {"$ref": "#/$defs/t"},
                                               "b": {"anyOf": [{"$ref": "#/$defs/t"}, {"type": "array"}]}}}
    with pytest.raises(UnsupportedFeatureError):
        compile_json_schema(shared, vocab)
    # Lark text cannot say it: schema_to_lark keeps refusing
    with pytest.raises(UnsupportedFeatureError):
        schema_to_lark(TAGS)
    # finite domains keep their compile-time (grammar) form
    assert not isinstance(compile_json_schema({"type": "array", "items": {"enum": ["a", "b"]}, "uniqueItems": True},
                                              vocab), UniqueItemsConstraint)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), budget=st.integers(12, 40))
def test_length_bounds_compose_with_the_runtime_check(seed, budget):
    """max_length over a run-time-checked schema bounds the grammar and keeps the check on top:
    walks that favour repeated items end, inside the budget, in documents with distinct items
    (TAGS' shortest completions never need a repeat, so the bound's plan holds)."""
    vocab = toy_vocab()
    c = constrain.max_length(compile_json_schema(TAGS, vocab), max_tokens=budget)
    assert isinstance(c, UniqueItemsConstraint)
    rnd = random.Random(seed)
    m = c.matcher()
    bm = allocate_bitmask(1, vocab.size)
    out, n = b"", 0
    favoured = {b'"a"', b'"a",', b"a", b'", "', b'["a","a"]', b'"'}
    while True:
        m.fill_bitmask(bm, 0)
        allowed = allowed_token_ids(bm[0], vocab.size).tolist()
        assert allowed, f"stalled after {out!r}"
        if EOS in allowed and (len(allowed) == 1 or rnd.random() < 0.2):
            break
        nice = [t for t in allowed if t != EOS and vocab.token_bytes(t) in favoured]
        t = rnd.choice(nice if nice and rnd.random() < 0.8 else [t for t in allowed if t != EOS])
        assert m.accept_token(t)
        out += vocab.token_bytes(t)
        n += 1
        assert n <= budget, f"over the budget: {out!r}"
    doc = json.loads(out)
    jsonschema.validate(doc, TAGS)


def test_state_is_a_value_rollback_and_copy_work():
    vocab = toy_vocab()
    c = compile_json_schema(TAGS, vocab)
    m = c.matcher()
    for t in _segment(vocab, b'{"tags": ["a", "b"', random.Random(0)):
        assert m.accept_token(t)
    copy = m.copy()
    dup = _segment(vocab, b', "a"', random.Random(1))
    assert all(m.accept_token(t) for t in dup[:-1]) and not m.accept_token(dup[-1])
    m.rollback(len(dup) - 1)
    fresh = _segment(vocab, b', "c"]}', random.Random(2))
    assert all(m.accept_token(t) for t in fresh) and m.is_accepting()
    assert all(copy.accept_token(t) for t in fresh) and copy.is_accepting()


def test_smollm2_vocabulary_masks(smollm2_vocab):
    """With the real vocabulary, tokens such as '",' and '"]' that would close a repeat are masked."""
    c = compile_json_schema(TAGS, smollm2_vocab)
    state = c.advance_bytes(c.initial_state(), b'{"tags": ["red", "blue", "red')
    words = c.token_bits(state)
    inner = c.inner.token_bits(state[0])
    removed = {smollm2_vocab.token_bytes(t) for t in range(smollm2_vocab.size)
               if (inner[t >> 5] >> (t & 31)) & 1 and not (words[t >> 5] >> (t & 31)) & 1}
    assert {b'"', b'",', b'"]'} <= removed
    assert all(b'"' in b for b in removed)
    assert c.advance_bytes(state, b'dish"]}') is not None


# items from a small finite language, and tokens that spell pieces of items ("ab", "ba", ...)
TINY = {"type": "array", "items": {"type": "string", "pattern": "^[ab]{1,3}$"}, "uniqueItems": True, "maxItems": 20}


@pytest.mark.parametrize("schema", [FEW, SHORT, TINY, TAGS], ids=["few", "short", "tiny", "tags"])
@pytest.mark.parametrize("seed", range(6))
def test_candidate_tokens_give_the_full_scan_mask(schema, seed):
    """Near an item's finite region only some tokens are simulated (quotes, commas, escapes,
    partial characters, pieces of earlier items); the mask must equal the one from simulating
    every token the grammar allows, along random walks that favour repeats."""
    vocab = toy_vocab()
    c = compile_json_schema(schema, vocab)
    everything = c._tokens.all
    rnd = random.Random(seed)
    state = c.initial_state()
    pieces = [b"a", b"b", b"ab", b'"a"', b'"a",', b'", "', b",", b'"', b"A", b"B", b"\\u0041", b"]"]
    for _ in range(60):
        words = c.token_bits(state)
        reference = c._filtered(state, c.inner.token_bits(state[0]), everything)
        assert (words == reference).all()
        allowed = [t for t in range(1, vocab.size) if (words[t >> 5] >> (t & 31)) & 1]
        if not allowed:
            break
        nice = [t for t in allowed if vocab.token_bytes(t) in pieces]
        t = rnd.choice(nice if nice and rnd.random() < 0.85 else allowed)
        state = c.advance_token(state, t)
        assert state is not None
