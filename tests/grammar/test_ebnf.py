"""rules_to_ir (the schema compiler's rules straight to BNF) against Lark's reading of the same text."""

from __future__ import annotations

import json
from itertools import product
from pathlib import Path


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constrain.errors import LimitExceededError, SchemaError, UnsupportedFeatureError
from constrain.grammar.compile import external_terminals
from constrain.grammar.ebnf import EBNFSubsetError, rules_to_ir
from constrain.grammar.lark_frontend import lark_to_ir
from constrain.regex import regex_to_dfa
from constrain.schema.compile import _schema_grammar

from ..schema.test_table import CASES as TABLE_CASES

SCHEMAS = sorted((Path(__file__).resolve().parents[2] / "schemas").glob("*.json"))
SCHEMAS = [p for p in SCHEMAS if not p.name.endswith(".examples.json")]


def _canonical(ir):
    """Rules by name with helper rules (``__*``) replaced by their expansions (``SELF`` for the
    recursion), and terminals by name: equal for two IRs of the same grammar however the helpers
    are named or ordered."""
    rules: dict[str, list] = {}
    for lhs, rhs in ir.rules:
        rules.setdefault(ir.nonterminals[lhs], []).append(tuple(ir.symbol_name(s) for s in rhs))

    def key(sym, stack=()):
        if not sym.startswith("__") or sym not in rules:
            return sym
        if sym in stack:
            return "SELF"
        exps = {tuple(key(x, stack + (sym,)) for x in e) for e in rules[sym]}
        # Lark's helper for (e?)* also derives "" and itself; rules_to_ir leaves both out (the
        # helper is used next to the alternative without it, so the language is the same)
        return ("H", frozenset(exps - {(), ("SELF",)}))

    # rules reachable from start (Lark keeps an unreachable rule that a helper of its own uses)
    reach, todo = {"start"}, ["start"]  # (helpers included)
    while todo:
        for e in rules.get(todo.pop(), []):
            for x in e:
                if x in rules and x not in reach:
                    reach.add(x)
                    todo.append(x)
    named = {n: frozenset(tuple(key(x) for x in e) for e in exps) for n, exps in rules.items()
             if not n.startswith("__") and n in reach}
    used = {x for n in reach for e in rules[n] for x in e}
    terms = {t.name: t for t in ir.terminals if t.name in used}
    return named, terms


def _same_terminal(a, b) -> bool:
    if a.dfa is not None or b.dfa is not None:
        return a.dfa is b.dfa
    if a.regex == b.regex:
        return True
    # Lark unescapes \xNN, \uNNNN and \" in the text it reads: the same language, other spelling
    da, db = regex_to_dfa(a.regex), regex_to_dfa(b.regex)
    return np.array_equal(da.transitions, db.transitions) and np.array_equal(da.accepting, db.accepting)


def _both(schema, **opts):
    text, external, c = _schema_grammar(schema, catalogs=True, **opts)
    ext = external_terminals(external)
    via_lark = lark_to_ir(text, external=ext)
    rules = {n: c.rules[n] for n in c.rule_order if c.rules[n]}
    direct = rules_to_ir(c.start_expr, rules, c.term_defs, ext)
    return via_lark, direct


def _assert_same(via_lark, direct):
    (rl, tl), (rd, td) = _canonical(via_lark), _canonical(direct)
    assert rl == rd
    assert set(tl) == set(td)
    for name in tl:
        assert _same_terminal(tl[name], td[name]), name
    assert via_lark.nonterminals[via_lark.start] == direct.nonterminals[direct.start] == "start"


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.stem)
@pytest.mark.parametrize("order", ["schema", "any"])
def test_example_schemas_read_like_lark(path, order):
    try:
        pair = _both(json.loads(path.read_text()), property_order=order)
    except UnsupportedFeatureError as exc:  # refused by the compiler (function_call: uniqueItems under oneOf)
        pytest.skip(str(exc)[:80])
    _assert_same(*pair)


@pytest.mark.parametrize("name", sorted(TABLE_CASES))
def test_keyword_table_schemas_read_like_lark(name):
    schema = TABLE_CASES[name][0]
    try:
        pair = _both(schema)
    except (UnsupportedFeatureError, SchemaError, LimitExceededError) as exc:  # refused: nothing to compare
        pytest.skip(f"{type(exc).__name__}")
    _assert_same(*pair)


_NAMES = ["a", "b", "c"]
_TERMS = [("A", "a"), ("B", "b"), ("C", "c")]


@st.composite
def _expr(draw, depth=0):
    n = draw(st.integers(1, 3 if depth == 0 else 2))
    parts = []
    for _ in range(n):
        if depth < 2 and draw(st.booleans()):
            alts = draw(st.lists(_expr(depth + 1), min_size=1, max_size=2))
            part = "(" + " | ".join(alts) + ")"
        else:
            part = draw(st.sampled_from(["A", "B", "C"] + _NAMES[: 1 + depth]))
        part += draw(st.sampled_from(["", "", "?", "*", "+"]))
        parts.append(part)
    return " ".join(parts)


def _recognizes(ir, symbols: tuple[int, ...]) -> bool:
    """Earley recognition of a terminal-id sequence by ``ir`` (a slow reference, nullable-aware)."""
    by_lhs: dict[int, list[tuple[int, ...]]] = {}
    for lhs, rhs in ir.rules:
        by_lhs.setdefault(lhs, []).append(rhs)
    nullable: set[int] = set()
    changed = True
    while changed:
        changed = False
        for lhs, rhs in ir.rules:
            if lhs not in nullable and all(x < 0 and (-x - 1) in nullable for x in rhs):
                nullable.add(lhs)
                changed = True
    chart = [set() for _ in range(len(symbols) + 1)]
    chart[0] = {(ir.start, rhs, 0, 0) for rhs in by_lhs.get(ir.start, [])}
    for i in range(len(symbols) + 1):
        todo = list(chart[i])
        while todo:
            lhs, rhs, dot, origin = todo.pop()
            new = []
            if dot == len(rhs):  # complete
                new = [(l2, r2, d2 + 1, o2) for (l2, r2, d2, o2) in list(chart[origin])
                       if d2 < len(r2) and r2[d2] == -(lhs + 1)]
            elif rhs[dot] < 0:  # predict (and step over a nullable nonterminal)
                nt = -rhs[dot] - 1
                new = [(nt, r, 0, i) for r in by_lhs.get(nt, [])]
                if nt in nullable:
                    new.append((lhs, rhs, dot + 1, origin))
            elif i < len(symbols) and rhs[dot] == symbols[i]:  # scan
                chart[i + 1].add((lhs, rhs, dot + 1, origin))
            for item in new:
                if item not in chart[i]:
                    chart[i].add(item)
                    todo.append(item)
    return any(lhs == ir.start and dot == len(rhs) and origin == 0 for lhs, rhs, dot, origin in chart[-1])


@settings(max_examples=80, deadline=None)
@given(st.lists(_expr(), min_size=1, max_size=3), st.lists(_expr(), min_size=1, max_size=2),
       st.lists(_expr(), min_size=1, max_size=2), st.booleans())
def test_random_ebnf_has_lark_language(a_alts, b_alts, c_alts, empty_c):
    """Every string over {a, b, c} of up to 4 letters: the same Earley recognizer over Lark's BNF
    (its EBNF expansion of the text) and over rules_to_ir's agrees. (Lark's own parser is left
    out: on the ambiguous, nullable-cyclic grammars drawn here it takes seconds per string.)"""
    rules = {"a": a_alts, "b": b_alts, "c": c_alts + ([""] if empty_c else [])}
    lines = ["start: a"]
    for name, alts in rules.items():
        nonempty = [x for x in alts if x != ""]
        lines.append(f"{name}: ({' | '.join(nonempty)})?" if len(nonempty) < len(alts) else f"{name}: " + " | ".join(nonempty))
    lines += [f"{n}: /{rx}/" for n, rx in _TERMS]
    text = "\n".join(lines) + "\n"
    try:
        lark_to_ir(text)
    except Exception:  # e.g. Lark's "start derives no finite string": the direct reader must refuse too
        with pytest.raises(EBNFSubsetError):
            rules_to_ir("a", rules, _TERMS)
        return
    via_lark = lark_to_ir(text)
    direct = rules_to_ir("a", rules, _TERMS)
    ids_l = {t.name: i for i, t in enumerate(via_lark.terminals)}
    ids_d = {t.name: i for i, t in enumerate(direct.terminals)}
    for n in range(5):
        for word in product("ABC", repeat=n):
            by_lark = _recognizes(via_lark, tuple(ids_l.get(ch, -999) for ch in word))
            assert _recognizes(direct, tuple(ids_d.get(ch, -999) for ch in word)) == by_lark, "".join(word)


def test_outside_the_subset_raises_for_the_lark_fallback():
    with pytest.raises(EBNFSubsetError):
        rules_to_ir("a", {"a": ["A ~ 2"]}, [("A", "a")])
    with pytest.raises(EBNFSubsetError):
        rules_to_ir("a", {"a": ["A missing"]}, [("A", "a")])
    with pytest.raises(EBNFSubsetError):
        rules_to_ir("a", {"a": ["(A"]}, [("A", "a")])
    with pytest.raises(EBNFSubsetError):
        rules_to_ir("a", {"a": ["A )"]}, [("A", "a")])


def test_expansion_limit():
    terms = [(f"T{i}", chr(97 + i)) for i in range(12)]
    rules = {"a": [" ".join(f"T{i}?" for i in range(12))]}
    assert len(rules_to_ir("a", rules, terms, max_expansions=4096).rules) == 1 + 4096
    with pytest.raises(LimitExceededError):
        rules_to_ir("a", rules, terms, max_expansions=4095)


@pytest.mark.parametrize("lo,hi", [(9, 9), (13, 20), (15, None), (37, 40)])
def test_long_required_repetition_stays_in_the_subset(lo, hi):
    """minItems over 8 was written as Lark's ``item ~ n``, outside rules_to_ir's subset: the whole
    schema went through Lark's grammar loader (~95 ms of a MaskBench schema's compile). Now the
    rules are plain BNF, read like Lark reads them, and the array lengths are exactly lo..hi."""
    schema = {"type": "array", "items": {"type": "integer"}, "minItems": lo}
    if hi is not None:
        schema["maxItems"] = hi
    _assert_same(*_both(schema))  # rules_to_ir raises EBNFSubsetError on anything outside the subset
    from constrain.schema import compile_json_schema
    from constrain.vocab.vocabulary import Vocabulary

    vocab = Vocabulary.from_tokens([bytes([b]) for b in range(256)] + [None], 256)
    c = compile_json_schema(schema, vocab)
    for n in range(max(0, lo - 2), (hi or lo + 3) + 3):
        text = json.dumps(list(range(n))).encode()
        m = c.matcher()
        ok = all(m.accept_token(b) for b in text) and m.is_accepting()
        assert ok == (lo <= n and (hi is None or n <= hi)), n


def test_grammar_from_ir_makes_the_text_only_to_locate_an_error():
    """compile_json_schema hands grammar_from_ir a function for the Lark text (writing it is ~2% of
    a large schema's compile): a clean grammar never calls it, an error is still located by it."""
    from constrain.grammar.compile import grammar_from_ir
    from constrain.vocab.vocabulary import Vocabulary

    vocab = Vocabulary.from_tokens([bytes([b]) for b in range(256)] + [None], 256)
    calls = []

    def text_of(text):
        def make():
            calls.append(1)
            return text
        return make

    good = rules_to_ir("a", {"a": ["A B"]}, [("A", "a"), ("B", "b+")])
    grammar_from_ir(good, text_of("start: a\na: A B\nA: /a/\nB: /b+/\n"), vocab)
    assert calls == []
    bad = rules_to_ir("a", {"a": ["A B"]}, [("A", "a"), ("B", "b*")])
    with pytest.raises(UnsupportedFeatureError) as info:
        grammar_from_ir(bad, text_of("start: a\na: A B\nA: /a/\nB: /b*/\n"), vocab)
    assert calls == [1]
    assert str(info.value).startswith("grammar:4:1: terminal B")  # where B is defined
