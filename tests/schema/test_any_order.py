"""``property_order="any"`` on objects with additional keys, against ``jsonschema``: every order of
every small set of keys, in the Lark text (subset form) and through ``compile_json_schema``
(counted form with run-time distinct keys, or the subset form where the additional keys are
finitely many).

Bugs this covers: additional pairs were allowed only after the declared ones in the subset form
(``{"x-1": 1, "a": 2}`` refused), and with ``dependentRequired`` the any-order request fell back
to schema order (MaskBench Github_hard---o83841: a docker-compose service whose keys came in
another order than declared, refused at ``"depends_on"``).
"""

from __future__ import annotations

import itertools
import json
import random

import pytest

from constrain.schema import compile_json_schema

from ._util import grammar, lark_accepts, masked_walk, oracle_valid, run_tokens, segment_tokens
from .test_end_to_end import EOS, toy_vocab

BASE = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {}, "c": {}}, "additionalProperties": False}
SCHEMAS = {
    "pattern_keys": {**BASE, "patternProperties": {"^x-": {"type": "integer"}}},
    "pattern_keys_required": {**BASE, "patternProperties": {"^x-": {}}, "required": ["b"]},
    "dependencies": {**BASE, "patternProperties": {"^x-": {}}, "dependentRequired": {"a": ["c"]}},
    "draft7_dependencies": {**BASE, "$schema": "http://json-schema.org/draft-07/schema#",
                            "patternProperties": {"^x-": {}}, "dependencies": {"a": ["c"]}},
    "finite_pattern_keys": {**BASE, "patternProperties": {"^n:(en|nl)$": {}}},
    "min_properties": {**BASE, "patternProperties": {"^x-": {}}, "minProperties": 2},
    "max_properties": {**BASE, "patternProperties": {"^x-": {}}, "maxProperties": 2},
    "additional_schema": {"type": "object", "properties": {"a": {}, "b": {}}, "additionalProperties": {"type": "integer"}},
}
KEYS = ["a", "b", "c", "x-1", "x-2", "n:en", "n:nl", "z"]


def _documents():
    for k in range(0, 4):
        for keys in itertools.combinations(KEYS, k):
            for order in itertools.permutations(keys):
                yield {key: i for i, key in enumerate(order)}


DOCS = list(_documents())


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_lark_text_any_order(name):
    schema = SCHEMAS[name]
    if name == "min_properties":  # a grammar alone cannot count distinct keys: explicit
        from constrain import UnsupportedFeatureError

        with pytest.raises(UnsupportedFeatureError, match="/minProperties"):
            grammar(schema, property_order="any")
        return
    g = grammar(schema, property_order="any")
    for doc in DOCS:
        assert lark_accepts(g, json.dumps(doc)) == oracle_valid(schema, doc), (name, doc)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_compiled_any_order(name):
    schema = SCHEMAS[name]
    vocab = toy_vocab()
    c = compile_json_schema(schema, vocab, property_order="any")
    for doc in DOCS[::3]:  # a third of them: each runs the token engine
        want = "accept" if oracle_valid(schema, doc) else "reject"
        got = run_tokens(c, segment_tokens(vocab, json.dumps(doc).encode()), EOS)
        assert got == want or (want == "reject" and got == "prefix"), (name, doc, got)


@pytest.mark.parametrize("order", ["schema", "any"])
def test_min_properties_with_additional_keys_counts_distinct_keys(order):
    """MaskBench Github_easy---o69635's shape: minProperties 2 next to additional properties.
    A grammar alone would count {"x": 1, "x": 2} as two members (one after parsing); with the
    run-time distinct-keys check the count is exact, in schema order too."""
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "minProperties": 2}
    vocab = toy_vocab()
    c = compile_json_schema(schema, vocab, property_order=order)
    for doc, text in [({"a": 1, "x": 2}, None), ({"a": 1}, None), ({"x": 1, "y": 2}, None), ({}, None),
                      ({"x": 2}, '{"x": 1, "x": 2}'), ({"a": 1, "x": 2, "y": 3}, None)]:
        text = text or json.dumps(doc)
        want = "accept" if oracle_valid(schema, json.loads(text)) else "reject"
        got = run_tokens(c, segment_tokens(vocab, text.encode()), EOS)
        assert got == want or (want == "reject" and got == "prefix"), (text, got)
    # finitely many additional keys: a comma could be stranded, so it stays explicit
    from constrain import UnsupportedFeatureError

    finite = {**schema, "additionalProperties": False, "patternProperties": {"^(x|y)$": {}}}
    with pytest.raises(UnsupportedFeatureError, match="/minProperties"):
        compile_json_schema(finite, vocab, property_order="schema")


def test_finitely_many_additional_keys_leave_no_stranded_comma():
    """Anchored pattern keys are finitely many: once every key is written, a comma would lead
    nowhere, and is refused (the counted form with the run-time comma check; MaskBench
    Github_hard---o12335's shape, 30 declared properties, which the subset form refused)."""
    schema = {"type": "object", "properties": {f"p{i}": {} for i in range(12)},
              "patternProperties": {"^n:(en|nl)$": {"type": "string"}}, "additionalProperties": False}
    vocab = toy_vocab()
    c = compile_json_schema(schema, vocab, property_order="any")
    assert c.check_commas
    full = {**{f"p{i}": i for i in range(12)}, "n:en": "a", "n:nl": "b"}
    text = json.dumps(full)
    assert run_tokens(c, segment_tokens(vocab, text.encode()), EOS) == "accept"
    assert run_tokens(c, segment_tokens(vocab, text[:-1].encode() + b", "), EOS) == "reject"
    partial = json.dumps({"n:nl": "b", "p3": 1, "n:en": "a"})
    assert run_tokens(c, segment_tokens(vocab, partial[:-1].encode() + b", "), EOS) == "prefix"
    # masked random walks never stall and end valid
    favoured = {b",", b", ", b'"', b"n", b":", b"e", b"l"}
    for seed in range(4):
        walk = masked_walk(c, random.Random(seed), favoured, EOS, p_favoured=0.7, p_stop=0.1)
        if walk is not None and walk[1].is_accepting():
            assert oracle_valid(schema, json.loads(walk[0])), walk[0]
