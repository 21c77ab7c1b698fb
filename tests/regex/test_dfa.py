"""Table tests for regex -> ByteDFA / LexerDFA: accept/reject rows, errors, limits, minimality."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from constrain.errors import LimitExceededError, RegexSyntaxError, UnsupportedFeatureError
from constrain.limits import Limits
from constrain.regex import ByteDFA, LexerDFA, literal_to_regex, regex_to_dfa, terminals_to_dfa

# (pattern, strings that fully match, strings that do not); checked against re.fullmatch too.
ROWS = [
    ("abc", ["abc"], ["", "ab", "abcd", "ABC"]),
    ("a|b|", ["a", "b", ""], ["ab", "c"]),
    ("(a|b)*abb", ["abb", "aabb", "babb", "ababb"], ["", "ab", "abba"]),
    ("a{3}", ["aaa"], ["aa", "aaaa"]),
    ("a{2,}", ["aa", "aaaaa"], ["a"]),
    ("a{,2}", ["", "a", "aa"], ["aaa"]),
    ("a{1,3}?b*?c+?", ["ac", "aaabbcc"], ["aaaac", "b"]),
    (r"\d{3}-\d{4}", ["555-1234"], ["5551234", "55-12345", "٥٥٥-١٢٣٤"]),
    (r"[a-z]{1,64}", ["a", "z" * 64], ["", "z" * 65, "A", "é"]),
    (r"\w+", ["abc_123"], ["é", "a-b", ""]),
    (r"\s", [" ", "\t", "\n", "\r", "\f", "\v"], ["\u00a0", "\u2003", "a"]),
    (r"\S\D\W", ["aa-", "日x日"], [" a-", "a1-", "aaa"]),
    (".", ["a", "é", "日", "😀", "\r"], ["\n", "", "ab"]),
    ("é", ["é"], ["e", "É", "e\u0301"]),
    ("日本", ["日本"], ["日", "本日"]),
    ("😀+", ["😀", "😀😀"], ["", "😁"]),
    ("[^a]", ["b", "é", "日", "😀", "\n"], ["a", "", "bb"]),
    ("[^é日]", ["e", "本", "😀"], ["é", "日"]),
    ("[^\x00-\x7f]", ["é", "日", "😀", "\u0080", "\U0010ffff"], ["a", "\x7f"]),
    ("[à-ÿ]+", ["àÿé"], ["a", "Ā"]),
    ("[\u4e00-\u9fff]+", ["日本語"], ["😀", "a"]),
    ("[😀-😏]", ["😀", "😏", "😅"], ["😐", "😀😀"]),
    (r"\u00e9\x41\N{SNOWMAN}\0", ["éA☃\0"], ["éA☃"]),
    ("[]a]+", ["]a]"], ["b"]),
    ("[^]a]", ["b"], ["]", "a"]),
    ("[a-]+[-z]", ["a--z", "a-"], ["b"]),
    ("[\\d.]+", ["1.5"], ["a"]),
    ("[^\\W\\d]+", ["abc_"], ["a1", "-"]),
    ("[\\b]", ["\b"], ["b"]),
    ("a{x}|{}|{", ["a{x}", "{}", "{"], ["a"]),
    ("(?P<year>\\d{4})-(?:\\d\\d)", ["2024-01"], ["2024-1"]),
    ("^abc$", ["abc"], ["abc\n"]),
    ("\\Aab\\Z", ["ab"], ["ab\n"]),
    ("a(?#comment)b", ["ab"], ["a(?#comment)b"]),
    ("(?i)straße", ["STRAßE", "straße", "StRaßE"], ["STRASSE"]),
    ("(?i:k)k", ["kk", "Kk", "\u212ak"], ["kK"]),
    ("(?s).", ["\n", "a"], [""]),
    ("(?s:.)(?-s:.)", ["\na", "ab"], ["a\n"]),
    ("(?m)a", ["a"], ["b"]),
    ("((a*)*)*", ["", "aaaa"], ["b"]),
    ("(x+x+)+y", ["xxy", "xxxxxy"], ["xy", "xx"]),
    ("\\(?\\d{3}\\)?[ -]?\\d{3}-\\d{4}", ["(555) 123-4567", "555-123-4567"], ["555 12-34567"]),
    (
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
        ["2024-01-31T12:00:00Z", "2024-01-31T12:00:00.123+05:30"],
        ["2024-01-31 12:00:00Z", "2024-01-31T12:00:00"],
    ),
    (
        r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}",
        ["a.b@example.com"],
        ["a@b", "@example.com"],
    ),
]


@pytest.mark.parametrize("pattern,accept,reject", ROWS)
def test_table(pattern, accept, reject):
    dfa = regex_to_dfa(pattern)
    for s in accept:
        assert re.fullmatch(pattern, s, re.ASCII if "(?i" not in pattern else 0), (pattern, s)
        assert dfa.matches(s.encode()), (pattern, s)
    for s in reject:
        assert not re.fullmatch(pattern, s, re.ASCII if "(?i" not in pattern else 0), (pattern, s)
        assert not dfa.matches(s.encode()), (pattern, s)


def test_flag_arguments():
    assert regex_to_dfa("abc", ignore_case=True).matches(b"aBC")
    assert not regex_to_dfa("abc").matches(b"aBC")
    assert regex_to_dfa("a.b", dotall=True).matches(b"a\nb")
    assert not regex_to_dfa("a.b").matches(b"a\nb")
    assert regex_to_dfa("[^a]", ignore_case=True).matches(b"b")
    assert not regex_to_dfa("[^a]", ignore_case=True).matches(b"A")
    assert regex_to_dfa("(?-i:a)b", ignore_case=True).matches(b"aB")
    assert not regex_to_dfa("(?-i:a)b", ignore_case=True).matches(b"AB")
    assert regex_to_dfa("é", ignore_case=True).matches("É".encode())
    # categories do not fold: \W stays "not ASCII word" even under ignore-case
    kelvin = "\u212a".encode()
    assert regex_to_dfa("[k]", ignore_case=True).matches(kelvin)
    assert not regex_to_dfa(r"\w", ignore_case=True).matches(kelvin)
    assert regex_to_dfa(r"\W", ignore_case=True).matches(kelvin)


def test_invalid_utf8_and_surrogates_rejected():
    dot = regex_to_dfa("(?s).*")
    assert dot.matches("a\n日😀".encode())
    for bad in [b"\xff", b"\xc0\x80", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xc3"]:
        assert not dot.matches(bad), bad
    assert regex_to_dfa("\ud800|a").matches(b"a")
    assert not regex_to_dfa("\ud800|a").matches("\ud800".encode("utf-8", "surrogatepass"))


def test_advance_and_forced_bytes():
    dfa = regex_to_dfa("abc(d|e)")
    assert dfa.forced_bytes(0) == b"abc"
    s = dfa.advance(0, b"abc")
    assert s >= 0 and dfa.forced_bytes(s) == b""
    assert dfa.advance(0, b"x") == -1
    assert dfa.advance(0, b"xabc") == -1
    # 本 = e6 9c ac and 曜 = e6 9b 9c share their lead byte, so it is forced too
    assert regex_to_dfa("日本|日曜").forced_bytes(0) == "日".encode() + b"\xe6"
    assert regex_to_dfa("日本|日x").forced_bytes(0) == "日".encode()
    assert regex_to_dfa("a+").forced_bytes(0) == b"a"
    acc = regex_to_dfa("a?b")
    assert acc.forced_bytes(acc.advance(0, b"a")) == b"b"
    assert regex_to_dfa("a*b").forced_bytes(0) == b""


def check_invariants(dfa: ByteDFA) -> None:
    t = dfa.transitions
    assert dfa.start == 0
    assert t.dtype == np.int32 and t.flags.c_contiguous and t.shape == (dfa.n_states, 256)
    assert dfa.accepting.dtype == np.bool_ and dfa.accepting.shape == (dfa.n_states,)
    assert t.min() >= -1 and t.max() < dfa.n_states
    reach = {0}
    stack = [0]
    while stack:
        s = stack.pop()
        for nxt in set(t[s].tolist()) - {-1}:
            if nxt not in reach:
                reach.add(nxt)
                stack.append(nxt)
    assert reach == set(range(dfa.n_states))
    live = set(np.flatnonzero(dfa.accepting).tolist())
    changed = True
    while changed:
        changed = False
        for s in range(dfa.n_states):
            if s not in live and any(int(x) in live for x in t[s] if x >= 0):
                live.add(s)
                changed = True
    assert live == set(range(dfa.n_states))


@pytest.mark.parametrize("pattern", [row[0] for row in ROWS] + [".*", "[^a]*", "(a|b)*a(a|b){5}"])
def test_invariants(pattern):
    check_invariants(regex_to_dfa(pattern))


def test_empty_language():
    dfa = regex_to_dfa("[^\x00-\U0010ffff]")
    assert dfa.n_states == 1 and not dfa.accepting[0] and (dfa.transitions == -1).all()
    assert not dfa.matches(b"") and not dfa.matches(b"a")


def test_minimality():
    assert regex_to_dfa("(a|b)*abb").n_states == 4  # the textbook minimal DFA (Dragon book 3.36)
    assert regex_to_dfa("a*a*").n_states == regex_to_dfa("a*").n_states == 1
    assert regex_to_dfa("(a|ab)(c|bcd)(d*)").n_states == regex_to_dfa("(a|ab)(c|bcd)d*").n_states
    assert regex_to_dfa("[a-z]{1,64}").n_states == 65
    assert regex_to_dfa("abc").n_states == 4
    assert regex_to_dfa("(a|b)*a(a|b){3}").n_states == 16


def test_lexer():
    lex = terminals_to_dfa(["if", "[a-z]+", r"\d+"])
    assert isinstance(lex, LexerDFA) and lex.start == 0
    assert lex.transitions.dtype == np.int32 and lex.transitions.flags.c_contiguous
    assert lex.accepting_terminals.shape == (lex.n_states, 3)

    def at(text):
        s = lex.advance(0, text.encode())
        assert s >= 0, text
        return lex.accepting_terminals[s].tolist(), lex.live_terminals[s].tolist()

    assert at("i") == ([False, True, False], [True, True, False])
    assert at("if") == ([True, True, False], [True, True, False])
    assert at("ifx") == ([False, True, False], [False, True, False])
    assert at("12") == ([False, False, True], [False, False, True])
    assert lex.live_terminals[0].tolist() == [True, True, True]
    assert not lex.accepting_terminals[0].any()
    assert lex.advance(0, b"1a") == -1


def test_lexer_keeps_terminals_apart_and_options():
    lex = terminals_to_dfa(["a", "a"])
    s = lex.advance(0, b"a")
    assert lex.accepting_terminals[s].tolist() == [True, True]
    lex = terminals_to_dfa([("select", {"ignore_case": True}), ("x.y", {"dotall": True}), "x.y"])
    s = lex.advance(0, b"SeLeCt")
    assert lex.accepting_terminals[s].tolist() == [True, False, False]
    s = lex.advance(0, b"x\ny")
    assert lex.accepting_terminals[s].tolist() == [False, True, False]
    s = lex.advance(0, b"xzy")
    assert lex.accepting_terminals[s].tolist() == [False, True, True]
    with pytest.raises(ValueError):
        terminals_to_dfa([("a", {"multiline": True})])


def test_literal_to_regex():
    for text in ["a.b*c", "[x]", "{1}", "(?=", "é 日 😀", "\\", "^$", "a-b|c", "\n\t#~&"]:
        dfa = regex_to_dfa(literal_to_regex(text))
        assert dfa.matches(text.encode()), text
        assert not dfa.matches(text.encode() + b"x")


# (pattern, exception type, message substring, position)
ERRORS = [
    ("ab(?<=x)", UnsupportedFeatureError, "lookbehind is not supported", 2),
    ("ab(?<!x)", UnsupportedFeatureError, "negative lookbehind is not supported", 2),
    ("a(?=b)", UnsupportedFeatureError, "lookahead is not supported", 1),
    ("a(?!b)", UnsupportedFeatureError, "negative lookahead is not supported", 1),
    ("(a)\\1", UnsupportedFeatureError, "backreference", 3),
    ("(?P<n>a)(?P=n)", UnsupportedFeatureError, "backreference", 8),
    ("[(]a^b", UnsupportedFeatureError, "anchor '^'", 4),
    ("a$b", UnsupportedFeatureError, "anchor '$'", 1),
    ("(a$)", UnsupportedFeatureError, "anchor '$'", 2),
    ("a\\bc", UnsupportedFeatureError, "word boundary", 1),
    ("a\\Bc", UnsupportedFeatureError, "boundary", 1),
    ("a\\A", UnsupportedFeatureError, "\\A", 1),
    ("\\Za", UnsupportedFeatureError, "\\Z", 0),
    ("(a)(?(1)b|c)", UnsupportedFeatureError, "conditional", 3),
    ("(?>a)", UnsupportedFeatureError, "atomic group", 0),
    ("a*+", UnsupportedFeatureError, "possessive", 2),
    ("\\p{L}", UnsupportedFeatureError, "property", 0),
    ("(?x)a b", UnsupportedFeatureError, "verbose", 0),
    ("\\[(?=x)", UnsupportedFeatureError, "lookahead", 2),
    ("[(?=x)](?=y)", UnsupportedFeatureError, "lookahead", 7),
    ("(ab", RegexSyntaxError, "missing )", 0),
    ("a(b(c)", RegexSyntaxError, "missing )", 1),
    ("ab)", RegexSyntaxError, "unbalanced parenthesis", 2),
    ("[z-a]", RegexSyntaxError, "bad character range", 1),
    ("x[a\\d-z]", RegexSyntaxError, "bad character range", 3),
    ("*a", RegexSyntaxError, "nothing to repeat", 0),
    ("a|*", RegexSyntaxError, "nothing to repeat", 2),
    ("(*)", RegexSyntaxError, "nothing to repeat", 1),
    ("a**", RegexSyntaxError, "multiple repeat", 2),
    ("a{2}{3}", RegexSyntaxError, "multiple repeat", 4),
    ("[abc", RegexSyntaxError, "unterminated character set", 0),
    ("a{3,2}", RegexSyntaxError, "min repeat greater than max repeat", 1),
    ("a\\q", RegexSyntaxError, "bad escape", 1),
    ("a\\", RegexSyntaxError, "bad escape", 1),
    ("\\x4", RegexSyntaxError, "incomplete escape", 0),
    ("\\N{NO SUCH NAME}", RegexSyntaxError, "undefined character name", 0),
    ("(?<n>a)", RegexSyntaxError, "unknown extension", 0),
    ("a(?i)b", RegexSyntaxError, "global flags", 1),
    ("(?P<1>a)", RegexSyntaxError, "group name", 4),
]


@pytest.mark.parametrize("pattern,exc,msg,pos", ERRORS)
def test_errors(pattern, exc, msg, pos):
    with pytest.raises(exc) as info:
        regex_to_dfa(pattern)
    assert msg in str(info.value)
    assert info.value.position == pos
    assert info.value.pattern == pattern
    assert f"regex at {pos}" in str(info.value)
    # every pattern here is also rejected by Python's re or is valid there but unsupported here
    if exc is RegexSyntaxError:
        with pytest.raises(re.error):
            re.compile(pattern)


def test_error_message_format():
    with pytest.raises(UnsupportedFeatureError) as info:
        regex_to_dfa("ab(?<=x)")
    assert str(info.value) == "regex at 2 (in 'ab(?<=x)', here: '(?<=x)'): lookbehind is not supported"


@pytest.mark.parametrize(
    "pattern,field",
    [
        ("(a|b)*a(a|b){40}", "max_dfa_states"),
        ("a{1000000}", "max_repeat_count"),
        ("a{2,1000000}", "max_repeat_count"),
        ("(a{10000}){10000}", "max_nfa_states"),
        ("((.{100}){100}){100}", "max_nfa_states"),
        ("(.{100}){100}", "max_dfa_states"),
    ],
)
def test_hostile_patterns_raise(pattern, field):
    with pytest.raises(LimitExceededError) as info:
        regex_to_dfa(pattern)
    assert info.value.field == field
    assert f"Limits.{field}" in str(info.value)


def test_limits_are_configurable():
    with pytest.raises(LimitExceededError):
        regex_to_dfa("[a-z]{20}", limits=Limits(max_dfa_states=10))
    with pytest.raises(LimitExceededError):
        regex_to_dfa("a{20}", limits=Limits(max_nfa_states=30))
    with pytest.raises(LimitExceededError):
        regex_to_dfa("a{20}", limits=Limits(max_repeat_count=19))
    assert regex_to_dfa("a{20}", limits=Limits(max_repeat_count=20)).n_states == 21
    with pytest.raises(LimitExceededError):
        terminals_to_dfa(["[a-z]{20}", "x"], limits=Limits(max_dfa_states=10))


def test_typical_patterns_are_fast():
    patterns = [
        r"\(?\d{3}\)?[ -]?\d{3}-\d{4}",
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
        r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}",
        r"[a-z]{1,64}",
        r"\d{3}-\d{4}",
    ]
    regex_to_dfa("warm-up")
    t0 = time.perf_counter()
    for p in patterns:
        regex_to_dfa(p)
    # generous bound for slow CI machines; typically ~1 ms each
    assert time.perf_counter() - t0 < 2.0


def test_ten_thousand_states():
    dfa = regex_to_dfa("(a|b)*a(a|b){12}")
    assert dfa.n_states == 2**13
    assert dfa.matches(b"a" * 13) and not dfa.matches(b"b" * 13)
