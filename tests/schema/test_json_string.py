"""The pattern -> serialized-string regex transformation against Python ``re.search`` on decoded text."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constrain.errors import SchemaError, UnsupportedFeatureError
from constrain.schema import json_string as js

# (ECMA-262 piece, equivalent Python piece). ECMA \s and . differ from Python's; we spell the
# ECMA sets out for the oracle.
ECMA_SPACE = "[\\t\\n\\x0b\\x0c\\r \\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]"
ATOMS = [
    ("a", "a"), ("b", "b"), ('"', '"'), ("\\\\", "\\\\"), ("\\n", "\\n"), ("\\t", "\\t"),
    ("\\d", "[0-9]"), ("\\w", "[A-Za-z0-9_]"), ("\\W", "[^A-Za-z0-9_]"), ("\\s", ECMA_SPACE),
    ("\\S", "[^" + ECMA_SPACE[1:]), (".", "[^\\n\\r\\u2028\\u2029]"), ("[^a\"]", "[^a\"]"),
    ("[\\x00-\\x1f]", "[\\x00-\\x1f]"), ("é", "é"), ("😀", "😀"), ("[a-c\\\\]", "[a-c\\\\]"),
    ("\\u00e9", "\\u00e9"), ("\\x7f", "\\x7f"), ("[\\b]", "[\\x08]"), ("\\/", "/"), ("\\.", "\\."),
    ("\\ud83d\\ude00", "😀"), ("[^]", "[\\s\\S]"), ("\\cJ", "\\n"), ("\\0", "\\x00"),
]
ALPHABET = 'ab"\\\n\t\r\x00\x08\x1f\x7fé😀 0_-./\u2028\xa0'


@st.composite
def patterns(draw, depth=0):
    kind = draw(st.sampled_from(["atom", "atom", "seq", "alt", "rep"] if depth < 3 else ["atom"]))
    if kind == "atom":
        return draw(st.sampled_from(ATOMS))
    if kind == "seq":
        parts = draw(st.lists(patterns(depth=depth + 1), min_size=1, max_size=3))
        return "".join(p[0] for p in parts), "".join(p[1] for p in parts)
    if kind == "alt":
        parts = draw(st.lists(patterns(depth=depth + 1), min_size=2, max_size=3))
        return "(" + "|".join(p[0] for p in parts) + ")", "(?:" + "|".join(p[1] for p in parts) + ")"
    inner = draw(patterns(depth=depth + 1))
    q = draw(st.sampled_from(["*", "+", "?", "{2}", "{1,3}", "{0,}", "*?"]))
    return "(?:" + inner[0] + ")" + q, "(?:" + inner[1] + ")" + q


@st.composite
def anchored(draw):
    e, p = draw(patterns())
    if draw(st.booleans()):
        e, p = "^" + e, "^" + p
    if draw(st.booleans()):
        e, p = e + "$", p + "\\Z"
    return e, p


def _serialized(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)[1:-1]


@given(st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=20))
def test_spelling_is_json_dumps(s):
    assert js.spell_string(s) == _serialized(s)
    assert re.fullmatch(js.ANY_CHAR + "*", _serialized(s))


@settings(max_examples=300)
@given(anchored(), st.lists(st.text(alphabet=ALPHABET, max_size=8), min_size=1, max_size=8))
def test_pattern_matches_re_search_on_decoded(pat, texts):
    ecma, py = pat
    rx = js.pattern_search_regex(ecma)
    compiled = re.compile(rx) if rx is not None else None
    oracle = re.compile(py, re.DOTALL)
    for s in texts:
        expected = oracle.search(s) is not None
        got = compiled is not None and compiled.fullmatch(_serialized(s)) is not None
        assert got == expected, (ecma, s, rx)


@given(st.lists(st.text(alphabet=ALPHABET, max_size=4), max_size=5), st.lists(st.text(alphabet=ALPHABET, max_size=5), max_size=10))
def test_except_strings(excluded, texts):
    rx = re.compile(js.except_strings_regex(excluded))
    for s in texts + excluded + [e + "a" for e in excluded] + [e[:-1] for e in excluded]:
        assert (rx.fullmatch(_serialized(s)) is not None) == (s not in excluded), (excluded, s)


@pytest.mark.parametrize("pattern,what", [
    ("(?=a)", "lookahead"), ("(?<!a)b", "lookbehind"), ("(a)\\1", "backreference"), ("\\bword", "word boundary"),
    ("\\p{L}", "unicode property"), ("a^b", "anchor"), ("(a$)b", "anchor"),
])
def test_unsupported_pattern_syntax(pattern, what):
    with pytest.raises(UnsupportedFeatureError, match=what) as info:
        js.pattern_search_regex(pattern, "/pattern")
    assert info.value.pointer == "/pattern"


@pytest.mark.parametrize("pattern", ["(a", "a)", "[a", "*a", "a{2,1}", "[z-a]", "\\"])
def test_invalid_pattern(pattern):
    with pytest.raises(SchemaError) as info:
        js.pattern_search_regex(pattern, "/properties/x/pattern")
    assert info.value.pointer == "/properties/x/pattern"


def test_annex_b_literal_braces_and_anchor_distribution():
    rx = re.compile(js.pattern_search_regex("^(ab|^cd$)$|x{"))
    assert rx.fullmatch("ab") and rx.fullmatch("cd") and rx.fullmatch("zzx{zz")
    assert not rx.fullmatch("zab") and not rx.fullmatch("abz")


@pytest.mark.parametrize("branches_pat,min_len,max_len,good,bad", [
    ("^[a-z]+$", 2, 4, ["ab", "abcd"], ["a", "abcde", ""]),
    ("^x[a-z]*y$", 3, 5, ["xay", "xaaay"], ["xy", "xaaaay"]),
    ("^[a-z]{2,8}$", 0, 3, ["ab", "abc"], ["abcd", "a"]),
])
def test_restrict_length(branches_pat, min_len, max_len, good, bad):
    br = js.search_branches(js.parse_pattern(branches_pat))
    rx = re.compile(js.branches_regex(js.restrict_length(br, min_len, max_len)))
    for s in good:
        assert rx.fullmatch(s)
    for s in bad:
        assert not rx.fullmatch(s)


def test_restrict_length_refuses_what_it_cannot_write():
    with pytest.raises(ValueError):
        js.restrict_length(js.search_branches(js.parse_pattern("^[a-z]+[0-9]+$")), 0, 4)
    with pytest.raises(ValueError):
        js.restrict_length(js.search_branches(js.parse_pattern("[a-z]")), 0, 4)


@settings(max_examples=60)
@given(st.text(alphabet='a"\\\n\t/\x01é😀', max_size=5), st.text(alphabet='a"\\\n', max_size=3))
def test_literals_survive_lark_escaping(s, other):
    """Lark rewrites escapes in /regex/ terminals before compiling them (``\\\\"`` -> ``"``): every
    literal string, as a value and as a key, must still mean itself."""
    from ._util import grammar, lark_accepts

    text = grammar({"type": "object", "properties": {s: {"enum": [s, other]}}, "required": [s],
                    "additionalProperties": False})
    assert lark_accepts(text, json.dumps({s: s}, ensure_ascii=False))
    assert lark_accepts(text, json.dumps({s: other}, ensure_ascii=False))
    if other + "a" not in (s, other):
        assert not lark_accepts(text, json.dumps({s: other + "a"}, ensure_ascii=False))
    if other + "b" != s:
        assert not lark_accepts(text, json.dumps({other + "b": s}, ensure_ascii=False))


def test_unanchored_alternatives_share_one_loop_per_side():
    """``w1|w2|...`` searched for: one leading and one trailing ANY* around the alternatives, so
    the lexer's subset construction does not record which words have matched (17 words took
    1.5M subset entries and gave up; now the DFA is built eagerly, and is small)."""
    from constrain.regex import terminals_to_dfa

    words = [f"INTERVAL_M{i}" for i in range(1, 18)]
    rx = js.pattern_search_regex("|".join(words))
    assert rx.count(js.ANY_CHAR + "*") == 2
    compiled = re.compile(rx)
    assert compiled.fullmatch("xINTERVAL_M17y") and compiled.fullmatch("INTERVAL_M1")
    assert not compiled.fullmatch("INTERVAL_M") and not compiled.fullmatch("interval_m1")
    lexer = terminals_to_dfa(['"' + rx + '"'], max_work=200_000)
    assert lexer.n_states < 200
    mixed = re.compile(js.pattern_search_regex("^ab|cd$|^ef|gh"))
    for s, ok in [("abz", True), ("zcd", True), ("efz", True), ("zghz", True), ("zab", False), ("cdz", False)]:
        assert (mixed.fullmatch(s) is not None) == ok, s


_RANGE = st.tuples(st.integers(0, 0x10FFFF), st.integers(0, 0x200)).map(lambda t: (t[0], min(0x10FFFF, t[0] + t[1])))


@settings(max_examples=200)
@given(st.lists(_RANGE, max_size=6))
def test_escaped_class_table_gives_what_it_computes(ranges):
    """The process-wide table of escaped classes answers what the computation gives, for a
    first call, a repeat, and the same ranges as another (unnormalized) sequence."""
    want = js._escaped_class.__wrapped__(tuple(ranges))  # computed, not from the memo
    assert js.escaped_class(tuple(ranges)) == want
    assert js.escaped_class(tuple(ranges)) == want
    assert js.escaped_class(list(ranges)) == want
    if want is not None:
        body = re.compile(want)
        for lo, hi in js.intersect(js.normalize(ranges), js.ALL)[:3]:
            assert body.fullmatch(js.spell(lo)) and body.fullmatch(js.spell(hi))


def test_parsed_patterns_are_shared_but_errors_name_each_pointer():
    """A pattern's AST is parsed once and shared; an invalid one fails every time, with the
    pointer of the schema that used it."""
    assert js.parse_pattern("^[a-z]+$", "/a") is js.parse_pattern("^[a-z]+$", "/b")
    for ptr in ("/properties/x/pattern", "/properties/y/pattern"):
        with pytest.raises(SchemaError) as e:
            js.parse_pattern("[z-a]", ptr)
        assert e.value.pointer == ptr
