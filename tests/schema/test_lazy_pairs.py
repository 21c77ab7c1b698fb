"""Keys and values stay apart where the lexer counts a repetition (it is built lazily).

A property whose value is one terminal is fused with its key into one terminal (``PAIR_...``):
the eager lexer is a product over all terminals, and value terminals that all start with ``"``
would multiply there. A lazily built lexer (some repetition past what an eager one expands, e.g.
``maxLength: 300``) builds states as masks need them, and there every fused terminal had its own
copy of its value's automaton to build; apart, one value terminal serves every key. These tests
hold the choice to what the lexer will be, and the unfused grammar to the fused one's language.
"""

from __future__ import annotations

import functools
import json
import random

import jsonschema
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import constrain.schema.compile as schema_compile
from constrain import compile_json_schema
from tests.grammar.test_split_walk import _ids, vocab

LONG = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 300},
        "note": {"type": ["string", "null"], "maxLength": 300},
        "code": {"type": "string", "maxLength": 200},
        "kind": {"enum": ["a", "bc"]},
        "n": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 300}, "maxItems": 3},
        "sub": {"type": "object", "properties": {"x": {"type": "string", "maxLength": 300}}, "required": ["x"]},
    },
    "required": ["name", "kind"],
    "additionalProperties": False,
}


def _grammar(g):
    """The grammar constraint under run-time wrappers (distinct keys, unique items)."""
    while not hasattr(g, "ir"):
        g = g.inner
    return g


def _names(g) -> list[str]:
    return [t.name for t in _grammar(g).ir.terminals]


def _short(schema):
    """``schema`` with every maxLength cut to 100 (an eager lexer expands that)."""
    text = json.dumps(schema).replace('"maxLength": 300', '"maxLength": 100').replace('"maxLength": 200', '"maxLength": 90')
    return json.loads(text)


def _compile_fused(schema, monkeypatch):
    """``schema`` compiled with keys and values fused whatever the lexer (the old grammar)."""
    with monkeypatch.context() as m:
        m.setattr(schema_compile, "_long_repetitions", lambda root: False)
        m.setattr(schema_compile, "_lexer_counts", lambda c, limits: False)
        return compile_json_schema(schema, vocab())


@functools.lru_cache(maxsize=None)
def _apart():
    return compile_json_schema(LONG, vocab())


def test_a_counting_lexer_keeps_keys_and_values_apart():
    g = _apart()
    assert g._lazy
    names = _names(g)
    assert not [n for n in names if n.startswith("PAIR_")], names
    # one terminal for every string value of maxLength 300 (name, tags' items, sub's x), keyed apart
    rx = {t.name: t.pattern for t in g.ir.terminals if isinstance(t.pattern, str)}
    counted = [n for n, p in rx.items() if ",300}" in p]
    assert 1 <= len(counted) <= 2, counted  # the string, and the string-or-null alternation
    # an eager lexer keeps the fusion
    short = compile_json_schema(_short(LONG), vocab())
    assert not short._lazy
    assert [n for n in _names(short) if n.startswith("PAIR_")]


def test_the_guess_from_the_text_is_checked_both_ways(monkeypatch):
    """The schema's text is only a guess: a bound in a description or an unused definition still
    gets fused pairs (the lexer does not count), and a counting lexer the text did not announce
    gets them apart after a second translation."""
    decoy = dict(_short(LONG), description="at most {500} of them",
                 **{"$defs": {"unused": {"type": "string", "maxLength": 999}}})
    assert schema_compile._long_repetitions(decoy)
    g = compile_json_schema(decoy, vocab())
    assert not g._lazy and [n for n in _names(g) if n.startswith("PAIR_")]
    monkeypatch.setattr(schema_compile, "_long_repetitions", lambda root: False)
    g = compile_json_schema(LONG, vocab())
    assert g._lazy and not [n for n in _names(g) if n.startswith("PAIR_")]


def test_unfused_masks_equal_the_fused_grammars(monkeypatch):
    """Along random masked walks the grammar with keys and values apart gives the masks, forced
    bytes and acceptance of the fused one (same language), and its walks that end are documents
    ``jsonschema`` accepts."""
    apart, fused = _apart(), _compile_fused(LONG, monkeypatch)
    assert [n for n in _names(fused) if n.startswith("PAIR_")] and fused._lazy
    voc = vocab()
    rnd = random.Random(3)
    ended = 0
    for _walk in range(12):
        sa, sf = apart.initial_state(), fused.initial_state()
        text = b""
        for _ in range(60):
            wa = apart.compute_token_bits(sa)
            assert np.array_equal(wa, fused.compute_token_bits(sf)), text
            assert np.array_equal(wa, apart.reference_token_bits(sa)), text
            assert apart.is_accepting(sa) == fused.is_accepting(sf)
            assert apart.forced_bytes(sa) == fused.forced_bytes(sf)
            if apart.is_accepting(sa) and rnd.random() < 0.3:
                jsonschema.validate(json.loads(text), LONG)
                ended += 1
                break
            ids = _ids(wa)
            if not ids:  # only the end of text is left
                assert apart.is_accepting(sa), text
                jsonschema.validate(json.loads(text), LONG)
                ended += 1
                break
            data = voc.token_bytes(rnd.choice(ids))
            text += data
            sa, sf = apart.advance_bytes(sa, data), fused.advance_bytes(sf, data)
            assert sa is not None and sf is not None
    assert ended, "no walk ended"


_DOCS = st.fixed_dictionaries(
    {"name": st.text(max_size=300), "kind": st.sampled_from(["a", "bc"])},
    optional={
        "note": st.one_of(st.none(), st.text(max_size=300)),
        "code": st.text(max_size=200),
        "n": st.integers(0, 10**6),
        "tags": st.lists(st.text(max_size=300), max_size=3),
        "sub": st.fixed_dictionaries({"x": st.text(max_size=300)}),
    },
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_DOCS, cuts=st.lists(st.integers(1, 400), max_size=12), long_string=st.integers(290, 310))
def test_documents_are_accepted_under_random_splits_and_lengths_hold(doc, cuts, long_string):
    """Valid documents, cut into random byte pieces, are accepted and end accepting; a value one
    character past its ``maxLength`` is not."""
    g = _apart()
    order = [k for k in LONG["properties"] if k in doc]  # schema order
    ordered = {k: doc[k] for k in order}
    data = json.dumps(ordered, ensure_ascii=False).encode()
    state = g.initial_state()
    pos = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        if cut <= pos or cut > len(data):
            continue
        state = g.advance_bytes(state, data[pos:cut])
        assert state is not None, data[:cut]
        pos = cut
    assert g.is_accepting(state)
    over = dict(ordered, name="y" * long_string)
    valid = long_string <= 300
    assert valid == jsonschema.Draft202012Validator(LONG).is_valid(over)
    s = g.advance_bytes(g.initial_state(), json.dumps(over, ensure_ascii=False).encode())  # the one spelling
    assert (s is not None and g.is_accepting(s)) == valid


@pytest.mark.parametrize("order", ["schema", "any"])
def test_both_property_orders_keep_them_apart(order):
    g = compile_json_schema(LONG, vocab(), property_order=order)
    assert _grammar(g)._lazy and not [n for n in _names(g) if n.startswith("PAIR_")]
    doc = {"sub": {"x": "q" * 250}, "kind": "bc", "name": "z" * 300}
    data = json.dumps(doc if order == "any" else {k: doc[k] for k in LONG["properties"] if k in doc}, ensure_ascii=False).encode()
    s = g.advance_bytes(g.initial_state(), data)
    assert s is not None and g.is_accepting(s)
