"""Property test: the order of declared properties in a schema composed of its own ``properties``
and ``$ref`` / ``allOf`` / ``anyOf`` / ``oneOf`` members (see ``_composed_first`` in
:mod:`constrain.schema.compile`) is exactly the one ``tests/schema/_reorder.py`` spells out: the
reordered instance is accepted and every other order of its keys refused."""

from __future__ import annotations

import itertools
import json

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ._reorder import declared_here, reorder
from ._util import grammar, lark_accepts, oracle_valid

_NAMES = ("a", "b", "c", "d")
_props = st.lists(st.sampled_from(_NAMES), min_size=1, max_size=3, unique=True).map(
    lambda ns: {"properties": {n: {"type": "null"} for n in ns}})


@st.composite
def _composed(draw):
    schema: dict = {"type": "object"}
    if draw(st.booleans()):
        schema.update(draw(_props))
    kind = draw(st.sampled_from(["$ref", "allOf", "anyOf", "oneOf", "allOf+oneOf", "if", "allOf[if]", "allOf[oneOf]"]))
    if kind == "$ref":
        schema["$defs"] = {"base": draw(_props)}
        schema["$ref"] = "#/$defs/base"
    if kind.startswith("allOf"):
        members = draw(st.lists(_props, min_size=1, max_size=2))
        if draw(st.booleans()):  # a member through a $ref, the draft-7 way of extending a base
            schema["$defs"] = {"base": members[0]}
            members[0] = {"$ref": "#/$defs/base"}
        schema["allOf"] = members
    if kind in ("anyOf", "oneOf", "allOf+oneOf"):
        # one branch: the instance matches it, so the order is the one branch's (no ambiguity)
        schema[kind.rsplit("+", 1)[-1]] = [draw(_props)]
    if kind == "if":
        schema.update(_conditional(draw))
    if kind in ("allOf[if]", "allOf[oneOf]"):
        # a variant inside an allOf member stays a variant: after the schema's own members
        schema["allOf"] = [_conditional(draw) if kind == "allOf[if]" else {"oneOf": [draw(_props)]}]
    return schema


def _conditional(draw) -> dict:
    """if (a key is present) then some members else others."""
    return {"if": {"required": [draw(st.sampled_from(_NAMES))]}, "then": draw(_props), "else": draw(_props)}


def _declared(schema) -> list[str]:
    out = []
    nodes = [schema, *schema.get("$defs", {}).values()]
    for node in schema.get("allOf", []) + schema.get("anyOf", []) + schema.get("oneOf", []) + [schema]:
        nodes += [node.get("then", {}), node.get("else", {}), *node.get("oneOf", []), node]
    for node in nodes:
        out += [k for k in node.get("properties", {}) if k not in out]
    return out


@settings(max_examples=120, deadline=None)
@given(_composed(), st.data())
def test_merged_schema_order_is_the_documented_one(schema, data):
    names = _declared(schema)
    keys = data.draw(st.lists(st.sampled_from(names), min_size=2, max_size=4, unique=True)) if len(names) >= 2 else names
    inst = {k: None for k in keys}
    assume(oracle_valid(schema, inst))
    # only members the applicable subschemas declare (another key is additional: it may come anywhere)
    assume(set(keys) <= declared_here(inst, schema))
    expected = list(reorder(inst, schema))
    text = grammar(schema)
    for order in itertools.permutations(keys):
        doc = json.dumps({k: None for k in order})
        assert lark_accepts(text, doc) == (list(order) == expected), (doc, expected, schema)
