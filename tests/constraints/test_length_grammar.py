"""max_length / min_length over grammar and JSON-schema constraints: walks end accepting in budget."""

from __future__ import annotations

import functools
import json
import random
import re
from pathlib import Path

import jsonschema
import lark
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import constrain
from constrain import compile_grammar, compile_json_schema, compile_keywords, intersect
from constrain.constraints.length import LengthConstraint, max_length, min_length
from constrain.errors import InputError
from constrain.grammar.completion import GrammarCompletion
from tests.constraints._util import random_walk, toy_vocab

ROOT = Path(__file__).resolve().parents[2]
VOCAB = toy_vocab()
GRAMMARS = ["json", "arithmetic", "lisp", "sql_select"]
SCHEMAS = [
    {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name", "age"]},
    {"type": "array", "items": {"enum": ["red", "green", 7]}, "minItems": 2},
    {"type": "object", "properties": {"ok": {"type": "boolean"}, "tags": {"type": "array", "items": {"type": "string"}}},
     "required": ["ok", "tags"]},
]
_WS = re.compile(rb"[^ \t\n\r\x0b\x0c]+")


@functools.lru_cache(maxsize=None)
def inner(name: str):
    if name.startswith("schema"):
        return compile_json_schema(SCHEMAS[int(name[6:])], VOCAB)
    return compile_grammar(ROOT / "grammars" / f"{name}.lark", VOCAB)


@functools.lru_cache(maxsize=None)
def lark_parser(name: str):
    return lark.Lark((ROOT / "grammars" / f"{name}.lark").read_text(), parser="earley", lexer="dynamic_complete")


def valid(name: str, text: bytes) -> bool:
    if name.startswith("schema"):
        doc = json.loads(text)
        try:
            jsonschema.validate(doc, SCHEMAS[int(name[6:])])
        except jsonschema.ValidationError:
            return False
        return True
    return inner(name).advance_bytes(inner(name).initial_state(), text) is not None and inner(name).is_accepting(
        inner(name).advance_bytes(inner(name).initial_state(), text))


@functools.lru_cache(maxsize=None)
def min_bytes(name: str) -> int:
    g = inner(name)
    return GrammarCompletion(g, "bytes").cost(g.initial_state())


NAMES = GRAMMARS + ["schema0", "schema1", "schema2"]


@given(st.sampled_from(NAMES), st.integers(0, 14), st.randoms(use_true_random=False))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
def test_max_tokens_walks_end_within_budget(name, extra, rng):
    g = inner(name)
    n = min_bytes(name) + extra  # down to the shortest feasible budget (every byte is a token here)
    c = max_length(g, max_tokens=n)
    for _ in range(3):
        text, ids, ended = random_walk(c, rng, eos_bias=0.05)
        assert ended and len(ids) <= n
        state = g.advance_bytes(g.initial_state(), text)
        assert state is not None and g.is_accepting(state)
        if name.startswith("schema"):
            jsonschema.validate(json.loads(text), SCHEMAS[int(name[6:])])


@given(st.sampled_from(NAMES), st.integers(0, 10), st.sampled_from(["max_chars", "max_words", "both"]),
       st.randoms(use_true_random=False))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
def test_max_chars_words(name, extra, kind, rng):
    g = inner(name)
    unit = {"max_chars": "chars", "max_words": "words", "both": "bytes"}[kind]
    least = GrammarCompletion(g, unit).cost(g.initial_state())
    kw = {"both": {"max_chars": least + extra, "max_tokens": least + extra}}.get(kind, {kind: least + extra})
    c = max_length(g, **kw)
    for _ in range(3):
        text, ids, ended = random_walk(c, rng, eos_bias=0.05, max_steps=150)
        if not ended:  # a word may grow forever ("[[[["): words bound no byte count; never stranded
            assert kind == "max_words"
            continue
        assert len([x for x in text if not 0x80 <= x <= 0xBF]) <= kw.get("max_chars", 10**9)
        assert len(_WS.findall(text)) <= kw.get("max_words", 10**9)
        assert len(ids) <= kw.get("max_tokens", 10**9)
        s = g.advance_bytes(g.initial_state(), text)
        assert s is not None and g.is_accepting(s)


def test_mask_is_exact_for_chars():
    """max_chars: a token is allowed iff the grammar allows it and its shortest completion fits."""
    import numpy as np

    g = inner("json")
    comp = GrammarCompletion(g, "chars")
    c = max_length(g, max_chars=9)
    rng = random.Random(5)
    state = c.initial_state()
    used = 0
    for _ in range(6):
        bits = np.unpackbits(c.token_bits(state).view(np.uint8), bitorder="little")[: VOCAB.size]
        for t in range(VOCAB.size):
            if VOCAB.is_eos(t):
                continue
            s2 = g.advance_token(state[0], t)
            b = VOCAB.token_bytes(t)
            want = s2 is not None and used + sum(1 for x in b if not 0x80 <= x <= 0xBF) + comp.cost(s2) <= 9
            assert bool(bits[t]) == want, b
        text_ids = np.flatnonzero(bits).tolist()
        if not text_ids:
            break
        t = rng.choice(text_ids)
        used += sum(1 for x in VOCAB.token_bytes(t) if not 0x80 <= x <= 0xBF)
        state = c.advance_token(state, t)
        assert state is not None


def test_json_budget_forces_closing():
    g = inner("json")
    c = max_length(g, max_tokens=12)
    prefix = [VOCAB.trie.longest_token_prefix(x)[0] for x in (b"[", b"[", b"{", b'"', b"a")]
    m = c.matcher()
    assert m.accept_tokens(prefix) == 5
    # 7 tokens left; the shortest completion '":0}]]' is 6 bytes: one spare token
    allowed = [VOCAB.token_bytes(t) for t in m.allowed_token_ids() if not VOCAB.is_eos(t)]
    assert b'"' in allowed and b"a" in allowed
    assert m.accept_token(VOCAB.trie.longest_token_prefix(b"b")[0])
    allowed = [VOCAB.token_bytes(t) for t in m.allowed_token_ids() if not VOCAB.is_eos(t)]
    # no spare token left: the string must close now ('{"' also closes it, as 'ab{"' then ':0}]]')
    assert sorted(allowed) == sorted([b'"', b'{"', b'":'])
    rest = [VOCAB.trie.longest_token_prefix(x)[0] for x in (b'"', b":", b"0", b"}", b"]", b"]")]
    assert m.accept_tokens(rest) == 6 and m.is_accepting()


def test_errors():
    g = inner("schema0")
    need = min_bytes("schema0")
    with pytest.raises(InputError):
        max_length(g, max_tokens=need - 1)
    assert isinstance(max_length(g, max_tokens=need), LengthConstraint)
    with pytest.raises(InputError):
        max_length(inner("json"), max_words=0)


def test_min_length_over_grammar():
    g = inner("json")
    c = min_length(g, min_chars=6)
    m = c.matcher()
    assert m.accept_bytes(b"12") and not m.is_accepting()
    assert m.accept_bytes(b"3456") and m.is_accepting()
    both = max_length(c, max_chars=12)
    rng = random.Random(2)
    for _ in range(10):
        text, _, ended = random_walk(both, rng, eos_bias=0.4)
        assert ended and 6 <= len(text.decode()) <= 12


def test_intersect_with_keywords_still_works():
    kw = compile_keywords(include=["dog"], vocab=VOCAB)
    sentence = constrain.compile_regex("[a-z ]{0,30}", VOCAB)
    both = max_length(intersect(kw, sentence), max_tokens=8)  # DFA path unchanged
    rng = random.Random(0)
    for _ in range(5):
        text, ids, ended = random_walk(both, rng, eos_bias=0.05)
        assert ended and b"dog" in text and len(ids) <= 8
    # a length-bounded grammar intersected lazily with a regex still masks with both
    lazy = intersect(max_length(inner("json"), max_tokens=10), constrain.compile_regex(r"[0-9\[\], ]*", VOCAB))
    for _ in range(5):
        text, ids, ended = random_walk(lazy, rng, eos_bias=0.3, max_steps=10)
        if ended:
            assert re.fullmatch(rb"[0-9\[\], ]*", text) and len(ids) <= 10


@pytest.mark.slow
def test_generate_schema_within_budget(default_model):
    model, tok = default_model
    from constrain.generate import generate_ids
    from constrain.integrations.transformers import model_vocab_size, vocabulary_for

    vocab = vocabulary_for(tok, model_vocab_size(model, tok))
    schema = json.loads((ROOT / "schemas" / "person.json").read_text())
    g = compile_json_schema(schema, vocab)
    least = GrammarCompletion(g, "bytes").cost(g.initial_state())
    budget = least + 10  # EOS is not counted: max_new_tokens = budget + 1
    c = max_length(g, max_tokens=budget)
    r = generate_ids(model, tok, "Describe Ada Lovelace as a person record.", constraint=c, max_new_tokens=budget + 1)
    ids = [t for t in r.token_ids if not vocab.is_eos(t)]
    assert len(ids) <= budget
    jsonschema.validate(json.loads(r.text), schema)
    with pytest.raises(InputError):
        max_length(g, max_chars=least - 1)


def test_lazy_lexer_schema():
    """A schema whose lexer is built lazily (long maxLength): the analysis expands a private copy."""
    schema = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 300}}, "required": ["a"]}
    g = compile_json_schema(schema, VOCAB)
    n_before = g.lexer.n_states
    c = max_length(g, max_tokens=14)
    assert g.lexer.n_states == n_before  # the grammar's own lexer is left alone
    rng = random.Random(1)
    for _ in range(5):
        text, ids, ended = random_walk(c, rng, eos_bias=0.05)
        assert ended and len(ids) <= 14
        doc = json.loads(text)
        # additional properties are allowed (also before "a"); "a" itself must be there and fit
        assert "a" in doc and len(doc["a"]) <= 300
        jsonschema.validate(doc, schema)


def test_an_analysis_maps_threads_restricted_before_it():
    """A lazily lexed grammar's threads inside a lexeme keep only their expected terminals' states
    (``restrict_steps``), which the analysis' copy, expanded from the lexer start, does not reach:
    an analysis built afterwards still costs the threads made before it (they are in the copy) and
    turns the restriction off for the threads made after."""
    schema = {"type": "object", "properties": {"s": {"type": "string", "maxLength": 300},
                                               "t": {"type": "string", "maxLength": 200}}, "required": ["s"]}
    g = compile_json_schema(schema, VOCAB)
    assert g._lazy and g.restrict_steps
    before = g.advance_bytes(g.initial_state(), b'{"s": "ab')
    comp = GrammarCompletion(g, "bytes")
    assert not g.restrict_steps
    assert comp.cost(before) == 2  # '"}'
    assert comp.witness(before) == b'"}'
    after = g.advance_bytes(before, b'c", "t": "x')
    assert comp.cost(after) == 2
