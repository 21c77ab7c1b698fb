"""patternProperties key regions, length bounds with patterns, uniqueItems over finite domains,
unknown formats: tables (valid / prefix-only / invalid), DFA checks, and random patterns."""

from __future__ import annotations

import json
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constrain.errors import LimitExceededError, UnsupportedFeatureError
from constrain.limits import Limits
from constrain.schema import compile_json_schema, cpdfa
from constrain.schema import json_string as js
from constrain.schema import schema_to_lark

from ._util import check_table
from .test_end_to_end import _run, _segment, toy_vocab

# (schema, valid, prefix-only texts, invalid)
CASES = {
    "pattern_props_open": (
        {"type": "object", "patternProperties": {"^[a-z]+$": {"type": "integer"}}},
        [{}, {"ab": 1}, {"ab": 1, "Q": "x", "9": None}, {"A": [1]}],
        ['{"ab": 1', '{"ab"'],
        [{"ab": "1"}, {"z": 1.5}, {"a": 1, "b": None}]),
    "pattern_props_additional_schema": (
        {"type": "object", "patternProperties": {"^x": {"type": "string"}}, "additionalProperties": {"type": "number"}},
        [{"xa": "s", "b": 2}, {"y": 1.5}, {"x": ""}],
        ['{"xa": "s"'],
        [{"xa": 1}, {"b": "s"}, {"b": None}]),
    "pattern_props_overlapping": (
        {"type": "object", "patternProperties": {"^a": {"minimum": 0}, "b$": {"type": "integer"}},
         "additionalProperties": False},
        [{"a": 1.5}, {"b": -3}, {"ab": 2}, {"a": 0, "xb": 7}],
        ['{"ab": 2'],
        [{"ab": -1}, {"ab": 1.5}, {"c": 1}, {"a": -1}, {"xb": 0.5}]),
    "pattern_matches_declared": (
        {"type": "object", "properties": {"ab": {"type": "integer"}}, "patternProperties": {"^a": {"minimum": 10}},
         "required": ["ab"], "additionalProperties": False},
        [{"ab": 10}, {"ab": 11, "ax": 10.5}],
        ['{"ab": 1'],
        [{"ab": 5}, {"ab": 10.5}, {"ab": 10, "ax": 3}, {"ab": 10, "b": 10}, {}]),
    "pattern_props_merged_allof": (
        {"allOf": [{"type": "object", "patternProperties": {"^a": {"type": "integer"}}},
                   {"patternProperties": {"z$": {"maximum": 5}}, "additionalProperties": False}]},
        [{"z": 5}, {"az": 3}, {}],
        [],
        [{"az": 6}, {"az": "x"}, {"q": 1}, {"a": 1}]),
    "length_with_alternation": (
        {"type": "string", "pattern": "^([a-z]|[a-z][a-z/]*[a-z])$", "maxLength": 4},
        ["a", "ab", "a/b", "ab/c"],
        ['"ab/'],
        ["", "a/", "abcde", "a//bc"]),
    "length_one_side_anchored": (
        {"type": "string", "pattern": "^([^,]|$)", "minLength": 1, "maxLength": 3},
        ["a", "a,,", "xyz"],
        ['"a'],
        ["", ",", "abcd", ",ab"]),
    "length_several_variable_parts": (
        {"type": "string", "pattern": "^[a-z]+:[0-9]+$", "minLength": 4, "maxLength": 6},
        ["ab:1", "a:12", "abc:12", "a:1234"],
        ['"a:1'],
        ["a:1", "abcd:12", "a:", ":12", "ab-1"]),
    "length_unanchored": (
        {"type": "string", "pattern": "x", "maxLength": 3},
        ["x", "ax", "axb", "aax"],
        ['"a'],
        ["", "ab", "axbc", "abc"]),
    "two_patterns": (
        {"type": "string", "allOf": [{"pattern": "^[a-z]+$"}, {"pattern": "q"}]},
        ["q", "aqb"],
        ['"aq'],
        ["ab", "Q", "aqB", ""]),
    "not_const_with_pattern": (
        {"type": "string", "pattern": "^a", "not": {"const": "abc"}, "maxLength": 4},
        ["a", "ab", "abcd", "abd"],
        ['"abc'],
        ["abc", "b", "abcde"]),
    "unique_enum": (
        {"type": "array", "items": {"enum": ["a", "b", 1]}, "uniqueItems": True, "minItems": 1},
        [["a"], ["b", "a"], [1, "a", "b"], [1.0]],
        ['["a", '],
        [[], ["a", "a"], [1, 1.0], ["a", "b", 1, "a"], ["c"]]),
    "unique_booleans": (
        {"type": "array", "items": {"type": "boolean"}, "uniqueItems": True},
        [[], [True], [False, True]],
        ['[true'],
        [[True, True], [False, True, False], [None]]),
    "unique_max_one": (
        {"type": "array", "uniqueItems": True, "maxItems": 1},
        [[], [{"a": 1}], ["x"]],
        ['["x"'],
        [["x", "y"]]),
    "unknown_format": (
        {"type": "string", "format": "not-a-format", "maxLength": 2},
        ["", "ab"],
        ['"a'],
        ["abc", 1]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_table(name):
    schema, valid, _prefix, invalid = CASES[name]
    check_table(schema, valid, invalid)


@pytest.mark.parametrize("name", sorted(CASES))
def test_table_through_matcher(name):
    """The compiled constraint agrees: valid accepted, prefix rows live but not final, invalid rejected."""
    schema, valid, prefix, invalid = CASES[name]
    vocab = toy_vocab()
    c = compile_json_schema(schema, vocab)
    for inst in valid:
        assert _run(c, _segment(vocab, json.dumps(inst).encode())) == "accept", inst
    for text in prefix:
        assert _run(c, _segment(vocab, text.encode())) == "prefix", text
    for inst in invalid:
        assert _run(c, _segment(vocab, json.dumps(inst).encode())) != "accept", inst


def test_unknown_format_can_raise():
    with pytest.raises(UnsupportedFeatureError) as info:
        schema_to_lark({"properties": {"p": {"format": "bar"}}}, unknown_formats="error")
    assert info.value.pointer == "/properties/p/format"
    with pytest.raises(UnsupportedFeatureError):  # defined by a draft, not implemented: never ignored
        schema_to_lark({"format": "uri-template"})
    with pytest.raises(ValueError):
        schema_to_lark({}, unknown_formats="warn")


def test_unique_items_unsupported_domain_names_pointer():
    with pytest.raises(UnsupportedFeatureError) as info:
        schema_to_lark({"properties": {"t": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}})
    assert info.value.pointer == "/properties/t/uniqueItems"
    assert "finite domain" in str(info.value)


def test_unique_items_limit():
    schema = {"type": "array", "items": {"enum": list(range(5))}, "uniqueItems": True}
    with pytest.raises(LimitExceededError) as info:
        schema_to_lark(schema, limits=Limits(max_schema_unique_items_values=4))
    assert info.value.field == "max_schema_unique_items_values"


def test_key_region_limit():
    schema = {"type": "object", "patternProperties": {"a": {}, "b": {}, "c": {}}}
    with pytest.raises(LimitExceededError) as info:
        schema_to_lark(schema, limits=Limits(max_schema_key_regions=4))
    assert info.value.field == "max_schema_key_regions"


def test_length_product_limit():
    schema = {"type": "string", "pattern": "^[a-z]+:[0-9]+$", "maxLength": 500}
    with pytest.raises(LimitExceededError) as info:
        schema_to_lark(schema, limits=Limits(max_dfa_states=100))
    assert info.value.field == "max_dfa_states"


# ----------------------------------------------------------------------- DFA boolean operations
_ALPHABET = "ab:_9Z-\n\"\\é"
_PATTERNS = ["^[a-z_]+$", "a", "^a|b$", "^(ab)*$", "^.*:$", "[0-9]{2}", "^(a|b)?\\w$", "^[^a]*$"]


def _oracle(pattern):
    # the translated search regex over spellings is the module's own reference (tested elsewhere)
    rx = re.compile(js.pattern_search_regex(pattern))
    return lambda s: bool(rx.fullmatch(js.spell_string(s)))


@pytest.mark.parametrize("seed", range(6))
def test_boolean_regions_against_pattern_oracle(seed):
    rnd = random.Random(seed)
    pa, pb = rnd.sample(_PATTERNS, 2)
    lim = Limits()
    da = cpdfa.from_branches(js.search_branches(js.parse_pattern(pa), "", pa), lim)
    db = cpdfa.from_branches(js.search_branches(js.parse_pattern(pb), "", pb), lim)
    declared = ["ab", "", "Z"]
    prod = cpdfa.product([cpdfa.names(declared), da, db],
                         lambda t: None if t[0] is True else (t[1] is True, t[2] is True), lim)
    oa, ob = _oracle(pa), _oracle(pb)
    for region in [(False, False), (False, True), (True, False), (True, True)]:
        dfa = cpdfa.minimize(prod, lambda lab, r=region: lab == r)
        rx = None if dfa is None else re.compile(cpdfa.to_regex(dfa, lim))
        for _ in range(400):
            s = "".join(rnd.choice(_ALPHABET) for _ in range(rnd.randint(0, 5)))
            want = s not in declared and (oa(s), ob(s)) == region
            got = rx is not None and bool(rx.fullmatch(js.spell_string(s)))
            assert want == got, (pa, pb, region, s)


@pytest.mark.parametrize("seed", range(4))
def test_length_restriction_against_oracle(seed):
    rnd = random.Random(100 + seed)
    p = rnd.choice(_PATTERNS)
    lo, hi = rnd.randint(0, 2), rnd.choice([None, 2, 3, 4])
    if hi is not None and hi < lo:
        lo = hi
    text = schema_to_lark({"type": "string", "pattern": p, "minLength": lo, **({} if hi is None else {"maxLength": hi})})
    body = re.search(r'^ROOT_STR: /"(.*)"/$', text, re.M)
    assert body is not None, text
    rx = re.compile(body.group(1).replace("\\/", "/"))
    o = _oracle(p)
    for _ in range(500):
        s = "".join(rnd.choice(_ALPHABET) for _ in range(rnd.randint(0, 6)))
        want = o(s) and lo <= len(s) and (hi is None or len(s) <= hi)
        assert bool(rx.fullmatch(js.spell_string(s))) == want, (p, lo, hi, s)


def _pattern_length_dfa(p: str, lo: int, hi: int | None, lim: Limits):
    """The minimized code-point DFA of the strings pattern ``p`` finds, of lo..hi code points."""
    comps = [cpdfa.from_branches(js.search_branches(js.parse_pattern(p), "", p), lim), cpdfa.length(lo, hi, lim)]
    return cpdfa.minimize(cpdfa.product(comps, lambda bits: all(b is True for b in bits), lim), bool)


@settings(max_examples=60, deadline=None)
@given(p=st.sampled_from(_PATTERNS), lo=st.integers(0, 3), span=st.sampled_from([None, 0, 1, 5, 40]),
       seed=st.integers(0, 2**16))
def test_dfa_to_regex_with_counted_chains_against_oracle(p, lo, span, seed):
    """to_regex writes chains of one atom as counted repetitions (C{1,255}, not 255 nested
    groups); the regex must still match exactly the DFA's strings, long ones included."""
    rnd = random.Random(seed)
    hi = None if span is None else lo + span
    lim = Limits()
    dfa = _pattern_length_dfa(p, lo, hi, lim)
    if dfa is None:
        return
    try:
        rx = re.compile(cpdfa.to_regex(dfa, lim))
    except LimitExceededError:  # some pattern x length products do not fit max_schema_regex_chars
        return
    oracle = _oracle(p)
    for _ in range(150):
        n = rnd.choice([rnd.randint(0, 6), rnd.randint(35, 50)])
        s = "".join(rnd.choice(_ALPHABET) for _ in range(n))
        want = oracle(s) and len(s) >= lo and (hi is None or len(s) <= hi)
        assert bool(rx.fullmatch(js.spell_string(s))) == want, (p, lo, hi, s)


_WIDE_ALPHABET = _ALPHABET + "\x00\x1f\t/~\u07ff\u0800\uffff\U00010000\U0010ffff\ud7ff\ue000"


@settings(max_examples=80, deadline=None)
@given(p=st.sampled_from([*_PATTERNS, "^[\\x00-\\x7f]*$", "[\\u0800-\\uffff]", "^[^\\x00-\\x1f\"]*$"]),
       lo=st.integers(0, 3), span=st.sampled_from([None, 0, 2, 30]), seed=st.integers(0, 2**16))
def test_byte_dfa_of_a_code_point_dfa_against_oracle(p, lo, span, seed):
    """to_byte_dfa spells each code point as json_string.spell does (UTF-8, short escapes,
    \\u00XX) between quotes: it accepts exactly the spellings of the strings the DFA accepts,
    and nothing else (other escapes, a missing quote, a truncated UTF-8 sequence)."""
    rnd = random.Random(seed)
    hi = None if span is None else lo + span
    lim = Limits()
    dfa = _pattern_length_dfa(p, lo, hi, lim)
    if dfa is None:
        return
    bd = cpdfa.to_byte_dfa(dfa)
    oracle = _oracle(p)
    for _ in range(120):
        n = rnd.choice([rnd.randint(0, 5), rnd.randint(25, 40)])
        s = "".join(rnd.choice(_WIDE_ALPHABET) for _ in range(n))
        want = oracle(s) and len(s) >= lo and (hi is None or len(s) <= hi)
        data = ('"' + js.spell_string(s) + '"').encode("utf-8")
        assert bd.matches(data) == want, (p, lo, hi, s)
        if want:  # other spellings of the same value, and broken texts, are refused
            assert not bd.matches(data[:-1]) and not bd.matches(data[1:])
            assert not bd.matches(data[:-1] + b"\\u0041\"")  # "A" has one spelling: A
            if any(ord(c) > 0x7F for c in s):
                cut = data.rindex(next(c for c in reversed(s) if ord(c) > 0x7F).encode("utf-8")) + 1
                assert not bd.matches(data[:cut] + b'"')


def test_chains_become_counted_repetitions():
    lim = Limits()
    p = "^[a-z_]{1,255}$"
    dfa = cpdfa.minimize(cpdfa.from_branches(js.search_branches(js.parse_pattern(p), "", p), lim), bool)
    assert cpdfa.to_regex(dfa, lim) == "[\\_a-z]{1,255}"


def test_additional_properties_may_come_between_declared_ones():
    """Declared properties keep schema order; undeclared (additional) ones may come anywhere
    between them ('{"$schema": ..., "colors": ...}' was refused: MaskBench's lefthook schema)."""
    schema = {"type": "object", "properties": {"a": {"type": "boolean"}, "b": {"type": "integer"}},
              "required": ["b"], "additionalProperties": {"type": "string"}}
    text = check_table(
        schema,
        valid=[{"x": "1", "b": 2}, {"x": "1", "a": True, "y": "2", "b": 3, "z": "4"}, {"b": 1}, {"a": False, "b": 1, "q": ""}],
        invalid=[{"x": 1, "b": 2}, {"x": "1"}, {"x": "1", "a": 1, "b": 2}, {"a": True, "x": "1", "b": "2"}],
    )
    # unambiguous: lark's Earley parser finds one derivation for an interleaved object
    import lark

    tree = lark.Lark(text, parser="earley", lexer="dynamic_complete", ambiguity="explicit").parse(
        '{"x": "1", "a": true, "y": "2", "b": 3, "z": "4"}')
    assert not list(tree.find_data("_ambig"))
    # with min/maxProperties, additional properties still come after the declared ones
    counted = dict(schema, maxProperties=3)
    check_table(counted, valid=[{"a": True, "b": 1, "x": "1"}], invalid=[{"a": True, "b": 1, "x": "1", "y": "2"}])


def test_pattern_under_a_length_bound_too_long_for_a_regex_is_an_automaton_terminal():
    """MaskBench github-funding's username: a pattern with an optional separator under maxLength
    39 has a small DFA but a regex over max_schema_regex_chars. compile_json_schema gives the
    lexer the automaton itself; schema_to_lark (text only) still raises the limit."""
    schema = {"type": "object", "properties": {"u": {"type": "string", "maxLength": 39,
                                                     "pattern": "^[a-zA-Z0-9](-?[a-zA-Z0-9])*$"}},
              "required": ["u"], "additionalProperties": False}
    lim = Limits(max_schema_regex_chars=2000)
    with pytest.raises(LimitExceededError) as info:
        schema_to_lark(schema, limits=lim)
    assert info.value.field == "max_schema_regex_chars"
    vocab = toy_vocab()
    c = compile_json_schema(schema, vocab, limits=lim)
    rnd = random.Random(7)
    for u in ["a", "a-b", "A" * 39, "a-" * 19 + "b", "x9-Y8-z7"]:
        assert _run(c, _segment(vocab, json.dumps({"u": u}).encode(), rnd)) == "accept", u
    for u in ["", "-a", "a-", "a--b", "A" * 40, "a-" * 19 + "bc", "é"]:
        assert _run(c, _segment(vocab, json.dumps({"u": u}, ensure_ascii=False).encode(), rnd)) != "accept", u


def test_complement_of_a_long_counted_key_pattern_is_an_automaton_terminal():
    """MaskBench o9962: the keys *not* matching ^[a-z]{1,200}$ (any other character somewhere, or
    too long) written as a regex nest one group per position, deeper than the lexer's parser
    takes; compile_json_schema hands the key region to the lexer as an automaton."""
    schema = {"type": "object", "patternProperties": {"^[a-z]{1,200}$": {"type": "integer"}},
              "additionalProperties": {"type": "string"}}
    vocab = toy_vocab()
    c = compile_json_schema(schema, vocab)
    rnd = random.Random(5)
    good = [{"ab": 1}, {"a" * 200: 2}, {"A": "x"}, {"a" * 201: "y"}, {"a-b": "z", "q": 3}, {"": "e"}]
    bad = [{"ab": "x"}, {"A": 1}, {"a" * 201: 1}, {"a" * 200: "s"}]
    for doc in good:
        assert _run(c, _segment(vocab, json.dumps(doc).encode(), rnd)) == "accept", doc
    for doc in bad:
        assert _run(c, _segment(vocab, json.dumps(doc).encode(), rnd)) != "accept", doc


def test_regex_depth():
    from constrain.schema.compile import _regex_depth

    assert _regex_depth("abc") == 0
    assert _regex_depth("(a(b)c)(d)") == 2
    assert _regex_depth("\\(\\(a\\)") == 0
    assert _regex_depth("[(]([)]x)") == 1
    assert _regex_depth("(?:[]()])") == 1


def test_too_deep_agrees_with_the_depth():
    from constrain.schema.compile import _MAX_REGEX_DEPTH, _regex_depth, _too_deep

    nested = "(" * (_MAX_REGEX_DEPTH + 1) + "a" + ")" * (_MAX_REGEX_DEPTH + 1)
    flat = "(a)" * (_MAX_REGEX_DEPTH + 5)  # many groups, depth 1
    escaped = "\\(" * (_MAX_REGEX_DEPTH + 5)
    for rx in (nested, flat, escaped, "(a(b)c)", nested[1:-1]):
        assert _too_deep(rx) == (_regex_depth(rx) > _MAX_REGEX_DEPTH)
    assert _too_deep(nested) and not _too_deep(flat) and not _too_deep(nested[1:-1])
