"""The compiler works on a copy of the caller's schema (``_json_copy``, a hand-written deep copy
for JSON documents): equal to ``copy.deepcopy``, sharing no container, the caller's document left
as it was."""

from __future__ import annotations

import copy
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from constrain.schema import schema_to_lark
from constrain.schema.compile import _json_copy

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=20,
)


def _containers(x, out):
    if isinstance(x, (dict, list)):
        out.append(id(x))
        for v in (x.values() if isinstance(x, dict) else x):
            _containers(v, out)
    return out


@settings(max_examples=200, deadline=None)
@given(doc=JSON)
def test_json_copy_is_a_deep_copy(doc):
    got = _json_copy(doc)
    assert got == copy.deepcopy(doc)
    assert not set(_containers(got, [])) & set(_containers(doc, []))


def test_json_copy_hands_other_values_to_deepcopy():
    """A tuple (not JSON, but Python callers build schemas by hand) is copied, not shared."""
    inner = [1]
    doc = {"enum": (inner, 2)}
    got = _json_copy(doc)
    assert got == doc and got["enum"][0] is not inner


def test_compiling_leaves_the_callers_schema_unchanged():
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/x"}, "b": {"allOf": [{"minimum": 1}]}},
              "$defs": {"x": {"type": "string", "format": "date"}}, "required": ["a"]}
    before = json.dumps(schema, sort_keys=True)
    schema_to_lark(schema)
    assert json.dumps(schema, sort_keys=True) == before
