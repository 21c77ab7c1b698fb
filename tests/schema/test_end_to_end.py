"""Schemas end to end through compile_json_schema: a toy vocabulary and the SmolLM2 vocabulary."""

from __future__ import annotations

import functools
import json
import random

import numpy as np
import pytest

from constrain.kernels.bitmask import allocate_bitmask
from constrain.schema import compile_json_schema
from constrain.vocab.vocabulary import Vocabulary

from ._util import grammar, lark_accepts, run_tokens, segment_tokens

EOS = 0
MULTI = ['{"', '":', '",', '": ', '"}', ', "', '["', '"]', "null", "true", "false", "name", "age", "12", "0.", "-1",
         '":"', "email", "@", ".com", "  ", "\n"]


@functools.lru_cache(maxsize=None)
def toy_vocab() -> Vocabulary:
    return Vocabulary.from_tokens([None] + [bytes([b]) for b in range(256)] + [t.encode() for t in MULTI], eos_token_ids=[EOS])


def _segment(vocab, data: bytes, rnd=None) -> list[int]:
    return segment_tokens(vocab, data, rnd)


def _run(constraint, tokens) -> str:
    return run_tokens(constraint, tokens, EOS)


CASES = [
    ({"type": "object", "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 20},
                                       "age": {"type": "integer", "minimum": 0, "maximum": 150},
                                       "email": {"type": "string", "format": "email"}},
      "required": ["name", "age"], "additionalProperties": False},
     [{"name": "Ada", "age": 36}, {"name": "Zoë", "age": 0, "email": "z@x.com"}, {"name": "B", "age": 150}],
     [{"name": "", "age": 3}, {"name": "A", "age": 151}, {"age": 3}, {"name": "A", "age": 1, "x": 1}, {"name": "A", "age": -1}]),
    ({"$defs": {"n": {"type": "object", "properties": {"v": {"type": "integer"},
                                                       "kids": {"type": "array", "items": {"$ref": "#/$defs/n"}}},
                      "required": ["v"], "additionalProperties": False}}, "$ref": "#/$defs/n"},
     [{"v": 1}, {"v": 1, "kids": [{"v": 2}, {"v": 3, "kids": []}]}], [{"v": 1, "kids": [{}]}, {"v": "1"}]),
    ({"type": "array", "items": {"enum": ["red", "green", 12, None]}, "maxItems": 3},
     [[], ["red"], [12, None, "green"]], [["blue"], [1, 2, 3, 4], ["red", "red", "red", "red"]]),
    ({"anyOf": [{"type": "number", "minimum": -1.5, "maximum": 2}, {"type": "string", "pattern": "^a+$"}]},
     [-1.5, 0.25, 2, "aaa"], [2.5, "b", ""]),
    # additional keys = every key but the declared names (compiled as the names' complement automaton)
    ({"type": "object", "properties": {"name": {"type": "string"}, "na": {"type": "integer"}},
      "additionalProperties": {"type": "integer"}},
     [{}, {"name": "x", "n": 1}, {"nam": 2, "names": 3, "": 4, "na": 5}, {"é\"": 1, "nb": 2}],
     [{"name": 1}, {"na": "x"}, {"nam": "x"}, {"": None}]),
    # required names and no properties keyword at all (a first cut of the automaton raised IndexError)
    ({"type": "object", "required": ["age"]},
     [{"age": "x"}, {"age": 1, "ag": [2]}, {"ages": None, "age": {}}],
     [{}, {"ag": "2"}, []]),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_toy_vocabulary(case):
    schema, valid, invalid = CASES[case]
    vocab = toy_vocab()
    c = compile_json_schema(schema, vocab)
    text = grammar(schema)
    rnd = random.Random(case)
    for inst in valid:
        for sep in (None, (",", ":")):
            data = json.dumps(inst, ensure_ascii=False, separators=sep).encode()
            assert lark_accepts(text, data.decode())
            assert _run(c, _segment(vocab, data)) == "accept", data
            assert _run(c, _segment(vocab, data, rnd)) == "accept", data
    for inst in invalid:
        data = json.dumps(inst, ensure_ascii=False).encode()
        assert not lark_accepts(text, data.decode())
        assert _run(c, _segment(vocab, data)) != "accept", data


def test_whitespace_bound_end_to_end():
    vocab = toy_vocab()
    c = compile_json_schema({"type": "array", "items": {"type": "integer"}}, vocab, max_whitespace=1)
    assert _run(c, _segment(vocab, b"[1, 2]")) == "accept"
    assert _run(c, _segment(vocab, b"[1,  2]")) == "reject"
    compact = compile_json_schema({"type": "array", "items": {"type": "integer"}}, vocab, whitespace="compact")
    assert _run(compact, _segment(vocab, b"[1,2]")) == "accept"
    assert _run(compact, _segment(vocab, b"[1, 2]")) == "reject"


def test_pydantic_model_end_to_end():
    pydantic = pytest.importorskip("pydantic")

    class Point(pydantic.BaseModel):
        x: int
        y: float
        label: str | None = None

    vocab = toy_vocab()
    c = compile_json_schema(Point, vocab)
    for inst in ({"x": 1, "y": 2.5}, {"x": -3, "y": 0, "label": None}, {"x": 0, "y": 1e-07, "label": "p"}):
        assert _run(c, _segment(vocab, json.dumps(inst).encode())) == "accept"
        Point.model_validate_json(json.dumps(inst))
    assert _run(c, _segment(vocab, b'{"x": 1.5, "y": 2}')) != "accept"


def test_schema_inputs(tmp_path):
    schema = {"type": "integer", "minimum": 3}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(schema))
    texts = {grammar(schema), grammar(json.dumps(schema)), grammar(str(path)), grammar(path)}
    assert len(texts) == 1


def test_smollm2_vocabulary(smollm2_tokenizer, smollm2_vocab):
    schema = json.loads(open(__file__.rsplit("/tests/", 1)[0] + "/schemas/person.json").read())
    c = compile_json_schema(schema, smollm2_vocab)
    for inst, expected in (({"name": "Ada Lovelace", "age": 36, "email": "ada@example.com"}, "accept"),
                           ({"name": "Ada", "age": 151}, "not accept")):
        ids = smollm2_tokenizer.encode(json.dumps(inst, ensure_ascii=False), add_special_tokens=False)
        m = c.matcher()
        bm = allocate_bitmask(1, m.vocab_size)
        ok = True
        for t in ids:
            m.fill_bitmask(bm, 0)
            assert bool(bm[0][t >> 5] >> np.int32(t & 31) & 1) == m.is_token_allowed(t)
            if not m.accept_token(t):
                ok = False
                break
        result = "accept" if ok and m.is_accepting() else "not accept"
        assert result == expected, inst


def test_smollm2_masks_equal_the_reference_walk(smollm2_tokenizer, smollm2_vocab):
    """Along real tokenizations (string bodies over ASCII and non-ASCII text, undeclared keys, a
    counted maxLength string, enums), the cached split walk -- with the kernel's shortcut over
    subtrees that loop on a string-body state -- equals the per-thread reference walk, which
    visits every trie node."""
    schema = {"type": "object", "properties": {
        "title": {"type": "string", "maxLength": 300},
        "note": {"type": "string"},
        "kind": {"enum": ["alpha", "beta", "gamma delta"]},
        "n": {"type": "integer"}},
        "additionalProperties": {"type": "string"}}
    docs = [{"title": "Héllo wörld, \"quoted\" and \\ backslash", "note": "plain ascii text here", "kind": "beta", "n": 12},
            {"note": "日本語のテキスト", "extra_key": "value with spaces", "tit": "x"},
            {"title": "x" * 40 + " end", "kind": "gamma delta", "zz": "", "n": -3}]
    c = compile_json_schema(schema, smollm2_vocab)
    for doc in docs:
        state = c.initial_state()
        for t in smollm2_tokenizer.encode(json.dumps(doc, ensure_ascii=False), add_special_tokens=False):
            fast = c.compute_token_bits(state)
            assert np.array_equal(fast, c.reference_token_bits(state)), (doc, smollm2_tokenizer.decode([t]))
            assert fast[t >> 5] >> np.uint32(t & 31) & 1
            state = c.advance_bytes(state, smollm2_vocab.token_bytes(t))
        assert c.is_accepting(state)


def test_large_product_language_is_an_automaton_terminal_and_exact():
    """A pattern of several variable parts under ``maxLength`` is a product DFA; over 64 states
    (here ~140: Snowplow sp_340's version string) it becomes a byte-automaton terminal instead of a
    regex (whose text ran to 139k characters), with the same strings accepted and refused."""
    import jsonschema

    from constrain.schema.compile import _schema_grammar

    schema = {"type": "object", "properties": {"version": {"type": "string", "maxLength": 32,
                                                          "pattern": "^(\\d+\\.\\d+\\.\\d+.*)$"}},
              "required": ["version"], "additionalProperties": False}
    text, external, _c = _schema_grammar(schema, catalogs=True)
    assert len(external) == 1 and len(text) < 2000
    c = compile_json_schema(schema, toy_vocab())
    rnd = random.Random(3)
    values = ["1.2.3", "10.20.30-beta", "1.2.3" + "x" * 27, "1.2.3" + "x" * 28, "1.2", "a.b.c", "1.2.3\u00e9\u65e5",
              "123.456.789.123.456.789.123.456", "1.2.3" + "é" * 27, "1.2.3" + "é" * 28]
    for v in values:
        doc = json.dumps({"version": v}, ensure_ascii=False)
        want = "accept" if jsonschema.Draft202012Validator(schema).is_valid(json.loads(doc)) else "reject"
        for seg in (None, rnd):
            got = _run(c, _segment(c.vocab, doc.encode(), seg))
            assert (got == "accept") == (want == "accept"), (v, got)
