"""Table tests: grammars with strings that are accepted, valid prefixes only, or rejected.

Every row is checked three ways: fed as single-byte tokens, fed greedily as multi-byte tokens of the
toy vocabulary (so bridge tokens such as ``'",'`` cross lexeme boundaries), and against lark's
``dynamic_complete`` Earley parser (accepted rows parse, the others do not). Each accepted token must
also be set in the mask computed just before it.
"""

from __future__ import annotations

import pytest

from tests.grammar._util import (
    EOS,
    allowed,
    classify,
    compiled,
    lark_accepts,
    tokenize_bytes,
    tokenize_greedy,
)

LEFT_REC = """
start: expr
expr: expr "+" term | term
term: NUMBER | "(" expr ")"
NUMBER: /[0-9]+/
"""

EMPTY_RULES = """
start: a b a
a: | "x"
b: "y" | c
c:
"""

AMBIG = """
start: s
s: s s | "a"
"""

OVERLAP = """
start: stmt+
stmt: "if" NAME | NAME "=" NAME | NAME
NAME: /[a-z]+/
%ignore " "
"""

JSONISH = """
start: obj
obj: "{" [pair ("," pair)*] "}"
pair: STRING ":" value
value: STRING | "true" | "false" | obj | NUMBER
STRING: /"[^"]*"/
NUMBER: /-?[0-9]+/
%import common.WS
%ignore WS
"""

ICASE = """
start: "select"i NAME ("," NAME)* "from"i NAME
NAME: /[a-z_]+/
%ignore /[ \\t]+/
"""

REGEX_FLAGS = """
start: A B
A: /a.b/s
B: /x+/i
"""

TEMPLATES = """
start: pair{"a", "b"} ("c"~2..3)?
pair{x, y}: x y
"""

ROWS = [
    (LEFT_REC, ["1", "1+2", "1+2+33", "(1+2)+3", "((4))"], ["", "1+", "(1", "(1+2"], ["+", "1++2", "1)", "a"]),
    (EMPTY_RULES, ["", "x", "y", "xy", "yx", "xyx", "xx"], [], ["yy", "xxx", "z"]),
    (AMBIG, ["a", "aa", "aaaaaaa"], [""], ["b", "ab"]),
    (OVERLAP, ["if", "ifx", "if x", "a=b", "a = b if c", "x y z", "ifif"], ["a =", "a ="], ["=", "a==b", "1"]),
    (
        JSONISH,
        ['{}', '{"a":1}', '{"a": true, "b": {"c": "d"}}', ' { "a" : -12 } ', '{"x":"",  "y":false}'],
        ["{", '{"a', '{"a":', '{"a":1,', ' '],
        ['{"a":1,}', '{"a"}', "}", '{"a":tru}', '{"a" 1}'],
    ),
    (ICASE, ["select a from b", "SELECT a,b FROM c", "SeLeCt  x , y\tFrOm z"], ["sel", "select a from", "selecta from"], ["select from b", "select a b", "from a"]),
    (REGEX_FLAGS, ["a\nbx", "a.bXx"], ["a", "a b", "a\nb"], ["abx", "a\nbc", "b", "aabxb"]),
    (TEMPLATES, ["ab", "abcc", "abccc"], ["a", "abc"], ["abcccc", "ba"]),
]

CASES = [
    pytest.param(g, text, kind, id=f"g{gi}-{kind}-{text!r}")
    for gi, (g, acc, pre, rej) in enumerate(ROWS)
    for kind, texts in (("accept", acc), ("prefix", pre), ("reject", rej))
    for text in texts
]


@pytest.mark.parametrize("grammar,text,kind", CASES)
def test_row(grammar, text, kind):
    c = compiled(grammar)
    data = text.encode()
    assert classify(c, data, tokenize_bytes(data)) == kind, "single-byte tokens"
    assert classify(c, data, tokenize_greedy(data)) == kind, "multi-byte tokens"
    assert lark_accepts(grammar, text) == (kind == "accept"), "lark disagrees with the table row"


@pytest.mark.parametrize("grammar,text,kind", [p for p in CASES if p.values[2] != "reject"])
def test_row_tokens_are_in_mask(grammar, text, kind):
    c = compiled(grammar)
    m = c.matcher()
    for t in tokenize_greedy(text.encode()):
        assert t in set(allowed(m).tolist())
        assert m.accept_token(t)
    assert (EOS in set(allowed(m).tolist())) == (kind == "accept")


def test_reject_rows_masked_out_at_first_bad_token():
    """The first rejected token of a rejected row is absent from the mask (mask == advance)."""
    for grammar, _, _, rejects in ROWS:
        c = compiled(grammar)
        for text in rejects:
            m = c.matcher()
            for t in tokenize_greedy(text.encode()):
                ok_mask = t in set(allowed(m).tolist())
                ok = m.accept_token(t)
                assert ok == ok_mask
                if not ok:
                    break


def test_bridge_token_crosses_terminals():
    c = compiled(JSONISH)
    vocab = c.vocab
    bridge = [i for i in range(vocab.size) if vocab.token_bytes(i) == b'",'][0]
    m = c.matcher()
    for t in tokenize_bytes(b'{"a":"b'):
        assert m.accept_token(t)
    assert bridge in set(allowed(m).tolist())
    assert m.accept_token(bridge)
    for t in tokenize_bytes(b'"c":1}'):
        assert m.accept_token(t)
    assert m.is_accepting()


def test_rollback_and_copy():
    c = compiled(LEFT_REC)
    m = c.matcher()
    for t in tokenize_bytes(b"1+2"):
        assert m.accept_token(t)
    assert m.is_accepting()
    m2 = m.copy()
    m.rollback(1)
    assert not m.is_accepting()
    assert m2.is_accepting()
    assert m.accept_token(tokenize_bytes(b"3")[0])
    assert m.is_accepting()


def test_states_are_hashable_values():
    c = compiled(AMBIG)
    s1 = c.advance_bytes(c.initial_state(), b"aaa")
    s2 = c.advance_bytes(c.initial_state(), b"aaa")
    assert s1 == s2 and hash(s1) == hash(s2)
    assert isinstance(s1, frozenset)
