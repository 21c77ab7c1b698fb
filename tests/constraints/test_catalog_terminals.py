"""Catalogs (choice automata) inside grammars and JSON schemas: %declare'd terminals, large string enums."""

from __future__ import annotations

import json
import random
import string

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from constrain import compile_grammar, compile_json_schema, schema_to_lark
from constrain.constraints.choice import compile_choice
from constrain.errors import InputError, LimitExceededError, UnsupportedFeatureError
from constrain.schema.compile import CATALOG_MIN_VALUES
from constrain.limits import Limits
from tests.constraints._util import accepts_ids, assert_same_masks, random_walk, toy_vocab
from tests.strategies import random_segmentation

VOCAB = toy_vocab(["Acme", " Widget", "Wid", "get", "日本"])
CATALOG = ["Acme Widget 1", "Acme Widget 12", "Acme Gadget", "dog", "do", "日本語", "a\"b", "x\\y"]
GRAMMAR = 'start: "Buy " ITEM ("," " "? ITEM)* "."\n%declare ITEM\n'


def _regex_alternation(phrases: list[str]) -> str:
    return "ITEM: " + " | ".join(json.dumps(p) for p in phrases) + "\n"


@given(st.lists(st.sampled_from(CATALOG), min_size=1, max_size=6, unique=True), st.randoms(use_true_random=False))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_declared_catalog_equals_the_literal_alternation(phrases, rng):
    """A %declare'd terminal given as strings has exactly the masks of the same terminal written as literals."""
    declared = compile_grammar(GRAMMAR, VOCAB, terminals={"ITEM": phrases})
    literal = compile_grammar(GRAMMAR.replace("%declare ITEM\n", _regex_alternation(phrases)), VOCAB)
    _, ids, _ = random_walk(literal, rng, max_steps=40, eos_bias=0.3)
    assert_same_masks(declared, literal, ids)


@pytest.mark.parametrize("value", [
    CATALOG,
    compile_choice(CATALOG, VOCAB),  # a DFA-based constraint
    compile_choice(CATALOG, VOCAB).dfa,  # its automaton
    "|".join(["Acme Widget 1", "Acme Widget 12", "Acme Gadget", "dog", "do", "日本語", 'a"b', r"x\\y"]),  # a regex
])
def test_terminal_value_forms(value):
    g = compile_grammar(GRAMMAR, VOCAB, terminals={"ITEM": value})
    rng = random.Random(0)
    good = 'Buy Acme Widget 12, dog,日本語, x\\y.'.encode()
    for _ in range(4):
        assert accepts_ids(g, random_segmentation(good, VOCAB, rng))
    for bad in (b"Buy Acme Widget 2.", b"Buy d.", b"Buy dogs.", b"Buy x\\\\y."):
        assert g.advance_bytes(g.initial_state(), bad) is None or not g.is_accepting(g.advance_bytes(g.initial_state(), bad))
    for _ in range(10):
        text, _, ended = random_walk(g, rng, max_steps=60, eos_bias=0.5)
        if ended:
            items = text.decode()[4:-1].replace(", ", ",").split(",")
            assert all(i in CATALOG for i in items), text


def test_declare_errors():
    with pytest.raises(UnsupportedFeatureError, match="terminals="):
        compile_grammar(GRAMMAR, VOCAB)
    with pytest.raises(InputError):
        compile_grammar(GRAMMAR, VOCAB, terminals={"ITEM": ["dog", ""]})
    with pytest.raises(InputError):
        compile_grammar(GRAMMAR, VOCAB, terminals={"ITEM": []})
    with pytest.raises(TypeError):
        compile_grammar(GRAMMAR, VOCAB, terminals={"ITEM": 42})


def _names(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        out.add("".join(rng.choice(string.ascii_letters + " éü\"\\/\t") for _ in range(rng.randint(1, 9))))
    return sorted(out)


NAMES = _names(300)  # > CATALOG_MIN_VALUES: compile_json_schema builds a catalog automaton
SCHEMA = {"type": "object", "properties": {"product": {"enum": NAMES}, "qty": {"type": "integer", "minimum": 1}},
          "required": ["product", "qty"], "additionalProperties": False}
_CACHE: dict = {}


def _catalog_schema():
    if "c" not in _CACHE:
        _CACHE["c"] = compile_json_schema(SCHEMA, VOCAB)
        assert any(t.dfa is not None for t in _CACHE["c"].ir.terminals)  # the catalog path was taken
    return _CACHE["c"]


def test_catalog_equals_the_regex_enum(rng=random.Random(7)):
    """Same masks as the enum compiled through Lark text (one regex alternation of the spellings)."""
    assert len(NAMES) > CATALOG_MIN_VALUES
    cat = _catalog_schema()
    text = compile_grammar(schema_to_lark(SCHEMA), VOCAB)
    assert all(t.dfa is None for t in text.ir.terminals)
    for _ in range(6):
        _, ids, _ = random_walk(text, rng, max_steps=40, eos_bias=0.3)
        assert_same_masks(cat, text, ids)


def test_enum_limits():
    small = Limits(max_schema_enum_values=100)
    with pytest.raises(LimitExceededError, match="catalog"):
        schema_to_lark(SCHEMA, limits=small)  # Lark text cannot hold the automaton: the limit applies
    assert compile_json_schema(SCHEMA, VOCAB, limits=small) is not None  # strings: a catalog, any size
    mixed = {"enum": NAMES[:150] + [1, 2]}
    with pytest.raises(LimitExceededError):
        compile_json_schema(mixed, VOCAB, limits=small)


@given(st.sampled_from(NAMES), st.integers(1, 10**6), st.randoms(use_true_random=False))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_catalog_accepts_members_only(name, qty, rng):
    c = _catalog_schema()
    doc = json.dumps({"product": name, "qty": qty}, ensure_ascii=False).encode()
    assert accepts_ids(c, random_segmentation(doc, VOCAB, rng))
    other = name + "x" if name + "x" not in NAMES else name + "yy"
    bad = json.dumps({"product": other, "qty": qty}, ensure_ascii=False).encode()
    assert not accepts_ids(c, random_segmentation(bad, VOCAB, rng))


def test_catalog_walks_validate():
    c = _catalog_schema()
    rng = random.Random(2)
    ended = 0
    for _ in range(40):
        text, _, done = random_walk(c, rng, max_steps=80, eos_bias=0.5)
        if done:
            ended += 1
            jsonschema.validate(json.loads(text), SCHEMA)
    assert ended >= 20
