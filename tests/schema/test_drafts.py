"""Draft-dependent semantics: what ``$schema`` changes, checked against ``jsonschema``'s validator
for that draft (the oracle picks its class from ``$schema`` as the compiler does).

Drafts 3 and 4 type "integer" by the JSON text: ``5.0`` and ``1e+16`` are numbers there, not
integers (MaskBench Github_easy---o24544 has a draft-04 negative instance ``{"id": 12345.0}``
that an "integer by value" grammar accepted). From draft 6 on, ``5.0`` is an integer.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constrain.schema import compile_json_schema

from ._util import grammar, lark_accepts, oracle_valid, run_tokens, segment_tokens
from .test_end_to_end import EOS, toy_vocab

D4 = "http://json-schema.org/draft-04/schema#"
D7 = "http://json-schema.org/draft-07/schema#"
D2020 = "https://json-schema.org/draft/2020-12/schema"

# Spellings of numbers that parse to ints or to floats (the forms the grammar writes: plain
# decimals and json.dumps' exponents, as the compiler's docstring says).
NUMBER_TEXTS = ["0", "5", "-3", "10", "5.0", "5.00", "-3.0", "10.0", "2.5", "1e+16", "0.0", "2", "2.0", "1", "1.0"]

SCHEMAS = [
    {"type": "integer"},
    {"type": "integer", "minimum": 1, "maximum": 9},
    {"type": "integer", "minimum": 0, "exclusiveMaximum": 10},
    {"type": "integer", "multipleOf": 5},
    {"type": "integer", "multipleOf": 5, "minimum": 0, "maximum": 20},
    {"type": "integer", "not": {"enum": [3]}},
    {"type": "number", "multipleOf": 5},
    {"type": ["integer", "string"]},
    {"type": "integer", "enum": [1, 2.0, 2.5]},
    {"enum": [1, 2.0]},
    {"type": "integer", "const": 10.0},
    {"anyOf": [{"type": "integer"}, {"type": "string"}]},
]


def _with(draft, schema):
    return {"$schema": draft, **schema} if draft else dict(schema)


def _agrees(schema, texts):
    """The grammar accepts exactly the texts the draft's validator accepts."""
    g = grammar(schema)
    for text in texts:
        assert lark_accepts(g, text) == oracle_valid(schema, json.loads(text)), (text, schema)


@pytest.mark.parametrize("draft", [D4, D7, D2020, None])
@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: json.dumps(s, sort_keys=True))
def test_number_spellings_follow_the_draft(draft, schema):
    if draft == D4 and "exclusiveMaximum" in schema:
        schema = {**schema, "maximum": schema["exclusiveMaximum"], "exclusiveMaximum": True}
    schema = _with(draft, schema)
    g = grammar(schema)
    # integer multiples are spelled in plain decimals only (no 1e+16 forms: see the compiler docstring)
    for text in [t for t in NUMBER_TEXTS if "multipleOf" not in schema or "e" not in t]:
        assert lark_accepts(g, text) == oracle_valid(schema, json.loads(text)), (text, schema)


@pytest.mark.parametrize("draft", [D4, D2020])
def test_integer_items_and_enum_of_arrays(draft):
    cases = [
        ({"type": "array", "items": {"type": "integer"}}, ["[1,2]", "[1.0,2]", "[1e+16]", "[]"]),
        ({"type": "array", "items": {"type": "integer"}, "enum": [[1, 2]]}, ["[1,2]", "[1.0,2]", "[1,2.0]"]),
        ({"type": "array", "items": {"type": "integer", "enum": [1, 2]}, "uniqueItems": True},
         ["[1,2]", "[1.0,2]", "[2]", "[2,2]", "[2.0]"]),
        ({"type": "object", "properties": {"id": {"type": "integer"}}},
         ['{"id": 12345}', '{"id": 12345.0}', '{"id": 12345.0, "x": 1}']),
    ]
    for schema, texts in cases:
        _agrees(_with(draft, schema), texts)


def test_numeric_exclusive_bound_under_draft4_is_a_schema_error():
    """Draft 4's exclusiveMaximum is a boolean; ``jsonschema.validate`` rejects the schema too."""
    import jsonschema

    from constrain import SchemaError

    schema = {"$schema": D4, "type": "integer", "minimum": 0, "exclusiveMaximum": 10}
    with pytest.raises(SchemaError, match="exclusiveMaximum"):
        grammar(schema)
    with pytest.raises(jsonschema.SchemaError):
        jsonschema.validate(3, schema)


@pytest.mark.parametrize("draft", [D7, D2020, None])
def test_boolean_exclusive_bound_after_draft4_is_a_schema_error(draft):
    """From draft 6 on a validator reads ``exclusiveMaximum: true`` as the number 1 (``5`` fails
    ``5 < True``): never what the author meant, so it is refused, naming the keyword."""
    from constrain import SchemaError

    schema = _with(draft, {"type": "integer", "maximum": 10, "exclusiveMaximum": True})
    with pytest.raises(SchemaError, match="/exclusiveMaximum"):
        grammar(schema)
    assert not oracle_valid(schema, 5)


def test_not_integer_under_draft4():
    """Draft 4's non-integers are the numbers spelled with a fraction or exponent (``2.0``
    included), also between bounds; next to multipleOf that is not compiled, and says so."""
    from constrain import UnsupportedFeatureError

    schema = {"$schema": D4, "type": "number", "not": {"type": "integer"}}
    g = grammar(schema)
    for text in NUMBER_TEXTS + ["1e5", "-0.5", "3E-2"]:
        assert lark_accepts(g, text) == oracle_valid(schema, json.loads(text)), text
    # MaskBench Github_hard---o71454's shape: oneOf branches told apart by 'not integer'
    schema = {"$schema": D4, "oneOf": [{"type": "integer"}, {"type": "number"}, {"type": "string"}]}
    g = grammar(schema)
    for text in NUMBER_TEXTS + ['"a"']:
        assert lark_accepts(g, text) == oracle_valid(schema, json.loads(text)), text
    _agrees({"$schema": D4, "type": "number", "minimum": 0, "not": {"type": "integer"}},
            NUMBER_TEXTS + ["-0.5", "0.5"])
    with pytest.raises(UnsupportedFeatureError, match="draft 4"):
        grammar({"$schema": D4, "type": "number", "multipleOf": 0.5, "not": {"type": "integer"}})
    # the same keyword from draft 6 on is compiled (non-integral numbers)
    g = grammar({"$schema": D7, "type": "number", "not": {"type": "integer"}})
    assert lark_accepts(g, "2.5") and not lark_accepts(g, "2.0") and not lark_accepts(g, "2")


@settings(max_examples=60, deadline=None)
@given(value=st.one_of(st.integers(-10**6, 10**6), st.integers(-999, 999).map(float)),
       form=st.sampled_from(["plain", "dot0", "dot00", "exp"]),
       lo=st.one_of(st.none(), st.integers(-1000, 1000)),
       draft=st.sampled_from([D4, D2020]))
def test_integer_ranges_any_spelling(value, form, lo, draft):
    iv = int(value)
    text = {"plain": str(iv), "dot0": f"{iv}.0", "dot00": f"{iv}.00", "exp": json.dumps(float(iv) * 1e16)}[form]
    schema = _with(draft, {"type": "integer"} if lo is None else {"type": "integer", "minimum": lo})
    assert lark_accepts(grammar(schema), text) == oracle_valid(schema, json.loads(text)), (text, schema)


def test_draft4_integer_through_the_token_engine():
    """The o24544 shape through compile_json_schema: the float spelling is refused token by token."""
    schema = {"$schema": D4, "type": "object",
              "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}
    vocab = toy_vocab()
    c = compile_json_schema(schema, vocab)
    good = '{"id": 12345, "name": "A"}'
    assert run_tokens(c, segment_tokens(vocab, good.encode()), EOS) == "accept"
    bad = '{"id": 12345.0, "name": "A"}'
    assert run_tokens(c, segment_tokens(vocab, bad.encode()), EOS) == "reject"
    c7 = compile_json_schema({**schema, "$schema": D7}, vocab)  # from draft 6 on, 12345.0 is an integer
    assert run_tokens(c7, segment_tokens(vocab, bad.encode()), EOS) == "accept"


# ------------------------------------------------------------------ what each draft's validator reads
REF_SIBLINGS = {  # MaskBench Github_hard---o13693's shape: a 'required' next to a draft-7 $ref
    "definitions": {"wf": {"type": "object", "properties": {"id": {"type": "string"}}}},
    "type": "object",
    "properties": {"workflow": {"type": "object", "required": ["id", "configuration"], "$ref": "#/definitions/wf"}},
}


@pytest.mark.parametrize("draft", [D4, D7, D2020, "https://json-schema.org/draft/2019-09/schema"])
def test_ref_siblings_follow_the_draft(draft):
    """Up to draft 7 a $ref hides its siblings; from 2019-09 on they apply with it."""
    schema = _with(draft, REF_SIBLINGS)
    g = grammar(schema)
    for doc in [{"workflow": {"id": "a"}}, {"workflow": {"id": "a", "configuration": 1}}, {"workflow": {"id": 1}},
                {"workflow": {}}]:
        for text in (json.dumps(doc), json.dumps(doc, separators=(",", ":"))):
            assert lark_accepts(g, text) == oracle_valid(schema, doc), (text, draft)


@pytest.mark.parametrize("draft", [D4, "http://json-schema.org/draft-06/schema#", D7, D2020])
def test_keywords_of_later_drafts_are_what_the_validator_ignores(draft):
    cases = [
        ({"type": "integer", "const": 3}, ["3", "4"]),
        ({"type": "object", "propertyNames": {"maxLength": 1}}, ['{"a": 1}', '{"ab": 1}']),
        ({"type": "array", "contains": {"type": "string"}}, ['["a"]', "[1]"]),
        ({"type": "integer", "if": {"minimum": 5}, "then": {"multipleOf": 2}}, ["6", "7", "3"]),
        ({"type": "object", "dependentRequired": {"a": ["b"]}}, ['{"a": 1}', '{"a": 1, "b": 2}']),
    ]
    for schema, texts in cases:
        _agrees(_with(draft, schema), texts)


def test_dropped_keywords_are_reported_and_refused_on_request():
    from constrain import UnsupportedFeatureError

    schema = _with(D7, REF_SIBLINGS)
    with pytest.raises(UnsupportedFeatureError, match=r"/properties/workflow/type: 'type' next to '\$ref' under draft 7"):
        grammar(schema, unknown_keywords="error")
    with pytest.raises(UnsupportedFeatureError, match=r"/const: 'const' under draft 4, which has no such keyword"):
        grammar({"$schema": D4, "const": 1}, unknown_keywords="error")
    with pytest.raises(UnsupportedFeatureError, match="draft-03"):
        grammar({"$schema": "http://json-schema.org/draft-03/schema#", "type": "string"})
    c = compile_json_schema(schema, toy_vocab())
    assert sorted(c.ignored_keywords) == ["/properties/workflow/required", "/properties/workflow/type"]
    text = '{"workflow": {"id": "a"}}'
    assert run_tokens(c, segment_tokens(toy_vocab(), text.encode()), EOS) == "accept"


def test_negated_bounds_under_draft4_are_not_user_exclusives():
    """'not' of ``minimum: 0`` synthesizes a numeric exclusive maximum internally; under draft 4
    that is not the user's keyword and must not be refused (MaskBench Github_medium---o25763:
    a oneOf branch told apart by its 'minimum')."""
    schema = {"$schema": D4, "oneOf": [{"type": "integer", "minimum": 0}, {"type": "integer", "maximum": -5}]}
    _agrees(schema, ["0", "3", "-5", "-7", "-3", "2.0"])
    schema = {"$schema": D4, "type": "integer", "not": {"minimum": 10}}
    _agrees(schema, ["9", "10", "-1", "11"])


@settings(max_examples=80, deadline=None)
@given(lo=st.one_of(st.none(), st.integers(-20, 20)), hi=st.one_of(st.none(), st.integers(-20, 20)),
       strict=st.booleans(), value=st.integers(-25, 25), form=st.sampled_from(["plain", "dot0", "half", "exp"]))
def test_draft4_not_integer_between_bounds(lo, hi, strict, value, form):
    """MaskBench Github_medium---o25763's shape: under draft 4, numbers that are not "integers"
    (spelled with a fraction or exponent) between bounds, against the draft-4 oracle."""
    schema = {"$schema": D4, "type": "number", "not": {"type": "integer"}}
    if lo is not None:
        schema.update(minimum=lo, exclusiveMinimum=strict)
    if hi is not None:
        schema.update(maximum=hi)
    # (exponents as json.dumps writes them: the forms the grammar spells, see the compiler docstring)
    text = {"plain": str(value), "dot0": f"{value}.0", "half": f"{value}.5", "exp": json.dumps(value * 1e-5)}[form]
    from constrain import SchemaError

    try:
        g = grammar(schema)
    except SchemaError:  # contradictory bounds: nothing to compare
        assert lo is not None and hi is not None and (lo > hi or (strict and lo >= hi) or lo == hi)
        return
    assert lark_accepts(g, text) == oracle_valid(schema, json.loads(text)), (text, schema)
