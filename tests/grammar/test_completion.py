"""Shortest completion of grammar states: equal to a breadth-first search over bytes; witnesses accepted."""

from __future__ import annotations

import json
import functools
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from constrain import compile_json_schema
from constrain.grammar.completion import INF, GrammarCompletion
from tests.grammar._util import compiled, toy_vocab

ROOT = Path(__file__).resolve().parents[2]
GRAMMARS = ["arithmetic", "json", "lisp", "sql_select", "csv", "lark_ebnf", "python_subset"]
SCHEMAS = [
    {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name", "age"]},
    {"type": "array", "items": {"enum": ["red", "green", 7]}, "minItems": 2},
    {"type": "object", "properties": {"ok": {"type": "boolean"}, "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}}}},
]
WS = rb"[ \t\n\r\x0b\x0c]"


@functools.lru_cache(maxsize=None)
def grammar(name: str):
    if name.startswith("schema"):
        return compile_json_schema(SCHEMAS[int(name[6:])], toy_vocab())
    return compiled((ROOT / "grammars" / f"{name}.lark").read_text())


@functools.lru_cache(maxsize=None)
def completions(name: str) -> dict:
    gc = grammar(name)
    return {u: GrammarCompletion(gc, u) for u in ("bytes", "chars", "words")}


@functools.lru_cache(maxsize=None)
def samples(name: str) -> list[bytes]:
    if name.startswith("schema"):
        return [json.dumps(x).encode() for x in (
            [{"name": "Ada", "age": 36}, {"name": "x y", "age": -1}],
            [["red", "green"], ["green", 7, "red"]],
            [{"ok": True, "tags": ["a", "bc"]}, {}],
        )[int(name[6:])]]
    data = json.loads((ROOT / "grammars" / f"{name}.samples.json").read_text())
    return [s.encode() for s in data["valid"]]


def bfs(gc, state, unit: str, max_bytes: int, in_word: int = 0):
    """Least cost to acceptance over all byte strings of at most ``max_bytes`` bytes (exhaustive
    0-1 BFS on (state, in-word flag, length); in words a byte inside a word costs 0)."""
    from collections import deque

    def weight(b: int, f: int) -> tuple[int, int]:
        if unit == "bytes":
            return 1, 0
        if unit == "chars":
            return (0 if 0x80 <= b <= 0xBF else 1), 0
        if b in b" \t\n\r\x0b\x0c":
            return 0, 0
        return 1 - f, 1

    start = (state, in_word if unit == "words" else 0, 0)
    dist = {start: 0}
    dq = deque([start])
    best = None
    while dq:
        node = dq.popleft()
        d = dist[node]
        s, f, n = node
        if best is not None and d >= best:
            continue
        if gc.is_accepting(s):
            best = d
            continue
        if n == max_bytes:
            continue
        for b in range(256):
            s2 = gc.advance_bytes(s, bytes((b,)))
            if s2 is None:
                continue
            w, f2 = weight(b, f)
            n2 = (s2, f2, n + 1)
            if n2 not in dist or dist[n2] > d + w:
                dist[n2] = d + w
                (dq.appendleft if w == 0 else dq.append)(n2)
    return best


NAMES = GRAMMARS + ["schema0", "schema1", "schema2"]


@given(st.sampled_from(NAMES), st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_shortest_completion_equals_bfs(name, data):
    gc = grammar(name)
    text = data.draw(st.sampled_from(samples(name)))
    cut = data.draw(st.integers(0, len(text)))
    state = gc.advance_bytes(gc.initial_state(), text[:cut])
    assert state is not None
    comp = completions(name)
    c = comp["bytes"].cost(state)
    assert c < INF  # a prefix of a valid sample can be completed
    w = comp["bytes"].witness(state)
    assert len(w) == c
    end = gc.advance_bytes(state, w)
    assert end is not None and gc.is_accepting(end)
    if c <= 3:  # exhaustive search is exponential in the depth
        assert bfs(gc, state, "bytes", c) == c and bfs(gc, state, "bytes", c - 1) is None if c else True
    for unit in ("chars", "words"):
        f = int(unit == "words" and cut > 0 and not re.fullmatch(WS, text[cut - 1 : cut]))
        cu = comp[unit].cost(state, f)
        assert cu <= c  # the shortest witness costs at most its byte count in any unit
        if c <= 2:  # among the completions of at most c + 1 bytes, the least cost is cu
            assert bfs(gc, state, unit, c + 1, f) == cu, unit


@pytest.mark.parametrize("name", ["json", "sql_select", "schema0"])
def test_token_costs_match_advance(name):
    """The vectorized per-token costs equal advance_token + cost, along a random walk."""
    import random

    gc = grammar(name)
    vocab = gc.vocab
    comp = completions(name)
    out = np.array([0 if not b or b[-1:] in b" \t\n\r\x0b\x0c" else 1 for b in vocab.tokens])
    rng = random.Random(3)
    state = gc.initial_state()
    for _ in range(12):
        allowed = np.flatnonzero(np.unpackbits(gc.token_bits(state).view(np.uint8), bitorder="little")[: vocab.size])
        if not allowed.size:
            break
        for unit, cu in comp.items():
            got = cu.token_costs(state, allowed, out[allowed])
            for i, t in enumerate(allowed.tolist()):
                s2 = gc.advance_token(state, t)
                assert got[i] == (INF if s2 is None else cu.cost(s2, int(out[t]))), (unit, vocab.token_bytes(t))
        state = gc.advance_token(state, int(rng.choice(allowed.tolist())))


def test_known_values():
    gc = compiled((ROOT / "grammars" / "json.lark").read_text())
    comp = GrammarCompletion(gc, "bytes")
    assert comp.cost(gc.initial_state()) == 1  # a one-digit number
    s = gc.advance_bytes(gc.initial_state(), b'{"ab": [[')
    assert comp.cost(s) == 3 and comp.witness(s) == b"]]}"
    sql = compiled((ROOT / "grammars" / "sql_select.lark").read_text())
    cs = GrammarCompletion(sql, "bytes")
    done = sql.advance_bytes(sql.initial_state(), b"SELECT a FROM b")
    assert cs.cost(done) == 0
    # after a `--` comment only a newline may follow (longest match): one byte more than without it
    sel = sql.advance_bytes(sql.initial_state(), b"SELECT a FROM ")
    com = sql.advance_bytes(sel, b"--x")
    assert cs.cost(com) == cs.cost(sel) + 1 and cs.witness(com).startswith(b"\n")
    words = GrammarCompletion(gc, "words")
    assert words.cost(s, 1) == 0 and words.cost(s, 0) == 1  # "]]}" is one word, or continues one
    with pytest.raises(ValueError):
        words.witness(s)
