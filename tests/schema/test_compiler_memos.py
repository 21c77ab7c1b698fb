"""The schema compiler's per-compile memos answer what the computation gives: ``$ref``
resolution (a failure raised anew, with each caller's pointer) and ``finite_candidates`` (a fresh
list each time, so a caller may change it)."""

from __future__ import annotations

import pytest

from constrain.errors import SchemaError
from constrain.limits import DEFAULT_LIMITS
from constrain.schema import schema_to_lark
from constrain.schema.compile import _Compiler


def _compiler(root):
    return _Compiler(root, "flexible", 2, "schema", DEFAULT_LIMITS)


def test_resolve_is_memoized_and_failures_name_each_pointer():
    root = {"$defs": {"a": {"type": "integer"}}}
    c = _compiler(root)
    first = c.resolve("#/$defs/a", "/x")
    assert first == (root["$defs"]["a"], "/$defs/a")
    assert c.resolve("#/$defs/a", "/y") is first
    for ptr in ("/p", "/q"):
        with pytest.raises(SchemaError) as info:
            c.resolve("#/$defs/missing", ptr)
        assert info.value.pointer == ptr
    with pytest.raises(SchemaError, match="points to nothing") as info:
        schema_to_lark({"properties": {"a": {"$ref": "#/$defs/nope"}, "b": {"$ref": "#/$defs/nope"}}})
    assert info.value.pointer == "/properties/a/$ref"


def test_finite_candidates_are_fresh_lists():
    root = {"$defs": {"e": {"enum": [1, 2, 3]}}, "allOf": [{"$ref": "#/$defs/e"}, {"enum": [2, 3]}]}
    c = _compiler(root)
    got = c.finite_candidates(root, "", 0)
    assert sorted(got) == [2, 3]
    got.append(99)
    assert sorted(c.finite_candidates(root, "", 0)) == [2, 3]
    assert c.finite_candidates({"type": "string"}, "/s", 0) is None
