"""The Earley recognizer's closure (a numba kernel over the chart arrays) against a textbook one in
Python (every item through the work list, predictions rule by rule, completed items dropped at
the end): same item sets, expected terminals and finish flag, on the shipped grammars, schema
grammars, a grammar of nullable cycles and random grammars, along random terminal sequences,
with scratch arrays small enough to be regrown on the way."""

from __future__ import annotations

import functools
import operator
import random
from pathlib import Path

import pytest

from constrain.grammar.earley import EarleyParser
from constrain.grammar.lark_frontend import lark_to_ir
from constrain.schema import schema_to_lark

GRAMMARS = Path(__file__).resolve().parents[2] / "grammars"

NULLABLE_HEAVY = """
start: a b c "x" | b start | c
a: b | "a" | 
b: c c | "b" |
c: a | "c" | 
"""


def _textbook_items(parser: EarleyParser, seed) -> tuple[frozenset, bool]:
    """Item set (dot before a symbol) and finish flag of the closure of ``seed``, the slow way:
    every item goes through the work list, predictions one rule at a time."""
    rhs_of, lhs_of, rules_of, nullable = parser.rule_rhs, parser.rule_lhs, parser.rules_of, parser.nullable
    items: set = set()
    todo = list(seed)
    while todo:
        item = todo.pop()
        if item in items:
            continue
        items.add(item)
        r, dot, origin = item
        rhs = rhs_of[r]
        if dot < len(rhs):
            sym = rhs[dot]
            if sym < 0:
                todo.extend((r2, 0, None) for r2 in rules_of.get(sym, ()))
                if sym in nullable:
                    todo.append((r, dot + 1, origin))
        elif origin is not None:
            sym = -(lhs_of[r] + 1)
            for pr, pdot, porigin in map(parser.item_parts, origin.waiting.get(sym, ())):
                todo.append((pr, pdot + 1, origin if porigin is None else porigin))
    finished = any(r == 0 and dot == 1 for r, dot, _ in items)
    return frozenset(it for it in items if it[1] < len(rhs_of[it[0]])), finished


def _spelled(parser: EarleyParser, items) -> frozenset:
    """A state's item ints as ``(rule, dot, origin state or None)`` (the textbook's form)."""
    return frozenset(map(parser.item_parts, items))


def _check_waiting(parser: EarleyParser, state) -> None:
    """The state's ``waiting`` table is its items grouped by the symbol after the dot, each item
    once (a closure merges its predictions' cached groupings instead of grouping every item)."""
    want: dict = {}
    for it in state.items:
        r, dot, _ = parser.item_parts(it)
        want.setdefault(parser.rule_rhs[r][dot], set()).add(it)
    assert {sym: set(its) for sym, its in state.waiting.items()} == want
    assert all(len(set(its)) == len(its) for its in state.waiting.values())


def _check_walks(text: str, start: str = "start", walks: int = 30, seed: int = 0) -> int:
    ir = lark_to_ir(text, start=start)
    parser = EarleyParser(ir)
    rnd = random.Random(seed)
    checked = 0
    items, finished = _textbook_items(parser, [(0, 0, None)])
    assert (_spelled(parser, parser.initial.items), parser.initial.can_finish) == (items, finished)
    _check_waiting(parser, parser.initial)
    for _ in range(walks):
        state = parser.initial
        for _ in range(rnd.randint(1, 25)):
            terms = [t for t in range(len(ir.terminals)) if state.expected >> t & 1]
            if not terms:
                break
            t = rnd.choice(terms)
            seed_items = [(r, dot + 1, state if origin is None else origin)
                          for r, dot, origin in map(parser.item_parts, state.waiting[t])]
            nxt = parser.scan(state, 1 << t)
            items, finished = _textbook_items(parser, seed_items)
            assert _spelled(parser, nxt.items) == items and nxt.can_finish == finished
            expected = 0
            for r, dot, _ in items:
                sym = parser.rule_rhs[r][dot]
                if sym >= 0:
                    expected |= 1 << sym
            assert nxt.expected == expected
            _check_waiting(parser, nxt)
            state = nxt
            checked += 1
    return checked


@pytest.mark.parametrize("name", sorted(p.stem for p in GRAMMARS.glob("*.lark")))
def test_closure_matches_textbook_on_shipped_grammars(name):
    assert _check_walks((GRAMMARS / f"{name}.lark").read_text(encoding="utf-8")) > 0


def test_closure_matches_textbook_with_nullable_cycles():
    assert _check_walks(NULLABLE_HEAVY, walks=60) > 0


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"$ref": "#"}}]},
                                      "b": {"type": "integer"}}},
    {"type": "array", "items": {"anyOf": [{"type": "number"}, {"type": "object", "additionalProperties": {"$ref": "#"}}]}},
])
def test_closure_matches_textbook_on_schema_grammars(schema):
    assert _check_walks(schema_to_lark(schema), walks=40) > 0


@pytest.mark.parametrize("name", ["json", "NULLABLE_HEAVY"])
def test_merged_states_wait_on_the_union_of_their_items(name):
    """A merge's items are the union of its states' (its waiting table that union grouped, each
    item once), its expected set the union's, and merges of merges too. Scanning from a merge
    equals the textbook closure; merging the same states again gives the same state."""
    text = NULLABLE_HEAVY if name == "NULLABLE_HEAVY" else (GRAMMARS / f"{name}.lark").read_text(encoding="utf-8")
    ir = lark_to_ir(text, start="start")
    parser = EarleyParser(ir)
    parser._scratch(4)  # outputs smaller than most unions: the merge regrows them
    rnd = random.Random(3)
    pool = [parser.initial]
    for _ in range(200):
        state = rnd.choice(pool)
        terms = [t for t in range(len(ir.terminals)) if state.expected >> t & 1]
        if terms:
            nxt = parser.scan(state, 1 << rnd.choice(terms))
            if nxt is not None:
                pool.append(nxt)
    for _ in range(60):
        group = rnd.sample(pool, min(len(pool), rnd.randint(2, 4)))
        m = parser.merge(group)
        assert m.items == frozenset().union(*(g.items for g in group))
        assert m.expected == functools.reduce(operator.or_, (g.expected for g in group))
        assert m.can_finish == any(g.can_finish for g in group)
        assert parser.merge(list(reversed(group))) is m
        _check_waiting(parser, m)
        for t in [t for t in range(len(ir.terminals)) if m.expected >> t & 1][:3]:
            seed_items = [(r, dot + 1, m if origin is None else origin)
                          for r, dot, origin in map(parser.item_parts, m.waiting[t])]
            nxt = parser.scan(m, 1 << t)
            assert (_spelled(parser, nxt.items), nxt.can_finish) == _textbook_items(parser, seed_items)
        pool.append(m)


def _random_grammar(rnd: random.Random) -> str:
    """Nonterminals that derive each other, empty alternatives and a few terminals."""
    names = [f"n{i}" for i in range(rnd.randint(2, 9))]
    lines = []
    for name in names:
        alts = []
        for _ in range(rnd.randint(1, 3)):
            syms = [rnd.choice(names + ['"a"', '"b"', '"c"']) for _ in range(rnd.randint(0, 3))]
            alts.append(" ".join(syms))
        lines.append(f"{name}: " + " | ".join(alts))
    return "start: n0\n" + "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", range(30))
def test_closure_matches_textbook_on_random_grammars(seed):
    text = _random_grammar(random.Random(seed))
    try:
        lark_to_ir(text)
    except Exception:
        pytest.skip("not a grammar the frontend accepts (e.g. nothing productive)")
    _check_walks(text, walks=20, seed=seed)


def test_scratch_regrows_from_tiny_tables():
    """Columns larger than the kernel's hash set and outputs: it asks for more and the parser
    retries; the states are the textbook's all the same."""
    text = (GRAMMARS / "json.lark").read_text(encoding="utf-8")
    orig = EarleyParser._scratch
    caps = []

    def tiny_first(self, cap):
        caps.append(cap)
        orig(self, 2 if len(caps) == 1 else cap)

    EarleyParser._scratch = tiny_first
    try:
        assert _check_walks(text, walks=10) > 0
    finally:
        EarleyParser._scratch = orig
    assert len(caps) > 2, "no closure outgrew the tiny scratch"


def _naive_nullable(parser: EarleyParser) -> frozenset:
    """Nullable nonterminals by rescanning every rule until nothing changes."""
    nullable: set[int] = set()
    changed = True
    while changed:
        changed = False
        for r, rhs in enumerate(parser.rule_rhs):
            sym = -(parser.rule_lhs[r] + 1)
            if sym not in nullable and all(s < 0 and s in nullable for s in rhs):
                nullable.add(sym)
                changed = True
    return frozenset(nullable)


@pytest.mark.parametrize("seed", range(40))
def test_nullable_worklist_equals_the_fixpoint(seed):
    """Random grammars of nonterminals that derive each other, empty alternatives and terminals."""
    text = _random_grammar(random.Random(seed))
    try:
        ir = lark_to_ir(text)
    except Exception:
        pytest.skip("not a grammar the frontend accepts (e.g. nothing productive)")
    parser = EarleyParser(ir)
    assert parser.nullable == _naive_nullable(parser)


def test_nullable_on_shipped_and_heavy_grammars():
    for text in [NULLABLE_HEAVY] + [p.read_text(encoding="utf-8") for p in sorted(GRAMMARS.glob("*.lark"))]:
        parser = EarleyParser(lark_to_ir(text))
        assert parser.nullable == _naive_nullable(parser)


def test_items_hold_nothing_the_cyclic_collector_tracks():
    """Items are ints, not ``(rule, dot, state)`` tuples: a new state's closure used to allocate
    thousands of tracked tuples (half of a mask fill's tracked allocations), and the young
    collections they triggered inside fills are a large part of the mask-time tail."""
    import gc

    ir = lark_to_ir((GRAMMARS / "json.lark").read_text(encoding="utf-8"))
    parser = EarleyParser(ir)
    rnd = random.Random(3)
    state = parser.initial
    with_origin = 0
    for _ in range(40):
        terms = [t for t in range(len(ir.terminals)) if state.expected >> t & 1]
        if not terms:  # a complete value: start another
            state = parser.initial
            continue
        state = parser.scan(state, 1 << rnd.choice(terms))
        assert state is not None
        assert not any(gc.is_tracked(it) for it in state.items)
        assert not any(gc.is_tracked(it) for v in state.waiting.values() for it in v)
        with_origin += sum(o is not None for _, _, o in map(parser.item_parts, state.items))
    assert with_origin  # the items do name earlier states
