"""ForcedDrafter across optional whitespace: drafts the output's own whitespace style, stays valid."""

from __future__ import annotations

import numpy as np

from constrain import compile_json_schema
from constrain.speculative.drafters import DraftBuilder, ForcedDrafter, _style_whitespace
from tests.constraints._util import toy_vocab

VOCAB = toy_vocab(['\n  "', '": ', ",\n"])
SCHEMA = {"type": "object", "properties": {"alpha": {"type": "integer"}, "beta": {"type": "integer"},
                                           "gamma": {"type": "boolean"}},
          "required": ["alpha", "beta", "gamma"], "additionalProperties": False}


def _builder(constraint, text: bytes, max_draft: int = 64) -> DraftBuilder:
    m = constraint.matcher()
    ids = [VOCAB.trie.longest_token_prefix(bytes((b,)))[0] for b in text]  # one token per byte
    assert m.accept_tokens(ids) == len(ids)
    return DraftBuilder(ids, 0, m, VOCAB, max_draft, 1.0, 0.0, np.random.default_rng(0), {})


def _drafted(builder) -> bytes:
    return b"".join(VOCAB.token_bytes(t) for t in builder.tokens)


def test_style_whitespace():
    assert _style_whitespace(b'{\n  "a": 1,\n  "b": 2,') == b"\n  "
    assert _style_whitespace(b'{"a":1,"b":2,') == b""
    assert _style_whitespace(b'{"a": 1,') is None  # no earlier ','
    assert _style_whitespace(b"abc ") is None  # ends in whitespace


def test_forced_across_the_outputs_whitespace():
    c = compile_json_schema(SCHEMA, VOCAB, max_whitespace=4)
    pretty = b'{\n  "alpha": 1,\n  "beta": 2,'
    b = _builder(c, pretty)
    assert c.forced_bytes(b.matcher.state) == b""  # whitespace may come: nothing forced
    ForcedDrafter().extend(b)
    assert _drafted(b) == b'\n  "gamma": '  # the output's style after ',' and after ':' ...
    plain = ForcedDrafter(learn_whitespace=False)
    b2 = _builder(c, pretty)
    plain.extend(b2)
    assert b2.tokens == []  # ... which the constraint alone does not force
    compact = _builder(c, b'{"alpha":1,"beta":2,')
    ForcedDrafter().extend(compact)
    assert _drafted(compact) == b'"gamma":'
    # every drafted token was accepted by the draft's matcher copy: the draft is valid
    assert c.advance_bytes(c.initial_state(), pretty + _drafted(b)) is not None


def test_lookup_drafts_from_the_constraints_literals():
    """With nothing to copy from the context, prompt lookup completes a property name or enum value
    from the schema's literals; the draft stays valid."""
    from constrain.speculative.drafters import PromptLookupDrafter

    schema = {"type": "object", "properties": {"status": {"enum": ["pending", "shipped"]}}, "required": ["status"]}
    c = compile_json_schema(schema, VOCAB, property_order="any")
    assert b'"status"' in c.literals() and b'"shipped"' in c.literals()
    b = _builder(c, b'{"sta')
    PromptLookupDrafter().extend(b)
    assert _drafted(b).startswith(b"tus")  # (the proposal's last token is held back)
    b2 = _builder(c, b'{"status": "sh')
    PromptLookupDrafter().extend(b2)
    assert _drafted(b2).startswith(b"ipped")
    b3 = _builder(c, b'{"sta')
    PromptLookupDrafter(literals=False).extend(b3)
    assert b3.tokens == []  # the context alone has nothing to copy
    # a grammar's literal terminals are literals too
    from constrain import compile_grammar

    g = compile_grammar('start: "SELECT " NAME " FROM " NAME\nNAME: /[a-z]+/\n', VOCAB)
    assert set(g.literals()) == {b"SELECT ", b" FROM "}
