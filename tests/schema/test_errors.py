"""Unsupported keywords name their JSON Pointer; invalid schemas raise SchemaError with a pointer."""

from __future__ import annotations

import pytest

from constrain.errors import LimitExceededError, SchemaError, UnsupportedFeatureError
from constrain.limits import Limits
from constrain.schema import schema_to_lark

UNSUPPORTED = [
    ({"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True}}}, "/properties/tags/uniqueItems"),
    ({"contains": {"propertyNames": {"maxLength": 1}}}, "/contains/propertyNames"),
    ({"contains": {"type": "string"}, "maxItems": 3}, "/contains"),
    ({"if": {"propertyNames": {"maxLength": 1}}, "then": {"minProperties": 1}}, "/if/propertyNames"),
    ({"properties": {"a": {"dependentSchemas": {"x": {"uniqueItems": True}}}}}, "/properties/a/dependentSchemas/x/uniqueItems"),
    ({"unevaluatedProperties": False}, "/unevaluatedProperties"),
    ({"$ref": "https://example.com/other.json"}, "/$ref"),
    ({"$dynamicRef": "#x"}, "/$dynamicRef"),
    ({"type": "string", "format": "uri-template"}, "/format"),
    ({"type": "string", "format": "not-a-format"}, "/format"),
    ({"items": {"pattern": "(?=x)"}}, "/items/pattern"),
    ({"$defs": {"a": {"pattern": "\\bx"}}, "properties": {"p": {"$ref": "#/$defs/a"}}}, "/$defs/a/pattern"),
    ({"oneOf": [{"type": "object", "propertyNames": {"maxLength": 1}}, {"propertyNames": {"maxLength": 2}}]}, "/oneOf"),
    ({"not": {"propertyNames": {"maxLength": 2}}}, "/not/propertyNames"),
    ({"not": {"properties": {"a": {"propertyNames": {"maxLength": 1}}}}}, "/not/properties/a/propertyNames"),
    ({"type": "number", "not": {"const": 1.5}}, "/not/const"),
    ({"type": "number", "multipleOf": 0.1, "not": {"const": 1}}, "/not/const"),
    ({"not": {"const": [1]}}, "/not/const"),
    ({"type": "number", "multipleOf": 0.3}, "/multipleOf"),
    ({"nullable": True}, "/nullable"),
    ({"properties": {"a/b": {"foo": 1}}}, "/properties/a~1b/foo"),
    ({"type": "integer", "multipleOf": 3, "minimum": 0}, "/multipleOf"),
    ({"type": "integer", "multipleOf": 7}, "/multipleOf"),
    ({"type": "object", "minProperties": 2}, "/minProperties"),
]


@pytest.mark.parametrize("schema,pointer", UNSUPPORTED)
def test_unsupported_names_pointer(schema, pointer):
    # unknown_keywords/unknown_formats="error" so rows with unknown keywords (nullable, foo) and
    # unknown formats raise too
    with pytest.raises(UnsupportedFeatureError) as info:
        schema_to_lark(schema, unknown_keywords="error", unknown_formats="error")
    assert info.value.pointer == pointer
    assert str(info.value).startswith(f"schema at {pointer}: ") and str(info.value).endswith("is not supported")


def test_message_shape():
    with pytest.raises(UnsupportedFeatureError, match=r"^schema at /properties/tags/\$dynamicRef: '\$dynamicRef' is not supported$"):
        schema_to_lark({"properties": {"tags": {"$dynamicRef": "#x"}}})


INVALID = [
    ({"type": "strin"}, "/type"),
    ({"type": 3}, "/type"),
    ({"enum": "a"}, "/enum"),
    ({"type": "string", "minLength": -1}, "/minLength"),
    ({"type": "string", "maxLength": "3"}, "/maxLength"),
    ({"type": "string", "pattern": "(a"}, "/pattern"),
    ({"type": "integer", "minimum": "0"}, "/minimum"),
    ({"required": "a"}, "/required"),
    ({"properties": []}, "/properties"),
    ({"items": 3}, "/items"),
    ({"$ref": "#/$defs/missing"}, "/$ref"),
    ({"$ref": "#nowhere"}, "/$ref"),
    ({"allOf": []}, "/allOf"),
    ({"type": "integer", "minimum": 5, "maximum": 3}, "/minimum"),
    ({"type": "number", "exclusiveMinimum": 1, "exclusiveMaximum": 1}, "/exclusiveMinimum"),
    ({"type": "string", "minLength": 4, "maxLength": 3}, "/minLength"),
    ({"type": "array", "minItems": 4, "maxItems": 3}, "/minItems"),
    ({"type": "number", "multipleOf": 0}, "/multipleOf"),
    ({"uniqueItems": "yes"}, "/uniqueItems"),
    (False, ""),
    ({"properties": {"x": {"type": "integer", "minimum": 10, "maximum": 1}}}, "/properties/x/minimum"),
]


@pytest.mark.parametrize("schema,pointer", INVALID)
def test_invalid_schema_names_pointer(schema, pointer):
    with pytest.raises(SchemaError) as info:
        schema_to_lark(schema)
    assert info.value.pointer == pointer, str(info.value)


def test_contradiction_is_not_an_error_when_other_types_remain():
    text = schema_to_lark({"type": ["integer", "string"], "minimum": 5, "maximum": 3})
    assert "INT" not in text


def test_limits():
    from constrain import Limits

    # A length bound is a lexer counter (not copies), bounded by max_counted_repeat.
    assert "100000" in schema_to_lark({"type": "string", "maxLength": 100_000})
    with pytest.raises(LimitExceededError, match="max_counted_repeat"):
        schema_to_lark({"type": "string", "maxLength": 2_000_000})

    with pytest.raises(LimitExceededError, match="max_schema_enum_values"):
        schema_to_lark({"enum": [1, 2, 3, 4]}, limits=Limits(max_schema_enum_values=3))
    with pytest.raises(LimitExceededError, match="max_schema_rules"):
        schema_to_lark({"type": "array", "maxItems": 50}, limits=Limits(max_schema_rules=10))
    small_depth = Limits(max_schema_ref_depth=5)
    chain = {"$defs": {f"d{i}": {"$ref": f"#/$defs/d{i + 1}", "minimum": i} for i in range(10)}, "$ref": "#/$defs/d0",
             "maximum": 100}
    chain["$defs"]["d10"] = {"type": "integer"}
    with pytest.raises(LimitExceededError, match="max_schema_ref_depth"):
        schema_to_lark(chain, limits=small_depth)
    schema_to_lark(chain)  # 10 levels are fine under the default (64)


def _nested_items(depth: int) -> dict:
    s: dict = {"type": "integer"}
    for _ in range(depth):
        s = {"type": "array", "items": s}
    return s


def test_schema_nesting_is_bounded_with_a_pointer():
    """A hostile document nested thousands deep is a LimitExceededError naming the first node too
    deep (it was a RecursionError, raised by the copy before any check); the default bound sits
    below the depth at which the compiler's recursion would fail, so what it admits compiles."""
    with pytest.raises(LimitExceededError, match="max_schema_depth") as info:
        schema_to_lark(_nested_items(5000))
    assert "schema at /items/items/" in str(info.value) and "nested 129 deep" in str(info.value)
    with pytest.raises(LimitExceededError, match=r"schema at /items/items/items: objects and arrays nested 4 deep"):
        schema_to_lark(_nested_items(5), limits=Limits(max_schema_depth=3))
    # the key of a pointer is escaped as JSON Pointer says
    with pytest.raises(LimitExceededError, match="schema at /properties/a~1b/items"):
        schema_to_lark({"properties": {"a/b": {"items": {"items": {}}}}}, limits=Limits(max_schema_depth=3))
    assert "start" in schema_to_lark(_nested_items(Limits().max_schema_depth - 1))


def test_recursion_past_pythons_limit_is_a_limit_error():
    """Within max_schema_depth, a compile that still runs out of Python's stack (here: a low
    recursion limit) is reported as the depth limit, not a RecursionError."""
    import sys

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(len(__import__("inspect").stack()) + 120)
    try:
        with pytest.raises(LimitExceededError, match="max_schema_depth.*|recursion limit"):
            schema_to_lark(_nested_items(100))
    finally:
        sys.setrecursionlimit(old)


def test_self_referencing_allof_cycle_is_bounded():
    with pytest.raises(LimitExceededError):
        schema_to_lark({"$defs": {"a": {"allOf": [{"$ref": "#/$defs/a"}], "type": "string"}}, "$ref": "#/$defs/a", "minLength": 1})


def test_options_are_checked():
    with pytest.raises(ValueError):
        schema_to_lark({}, property_order="sorted")
    with pytest.raises(ValueError):
        schema_to_lark({}, whitespace="(")
    with pytest.raises(TypeError):
        schema_to_lark(3.5)


def test_one_of_overlap_found_through_enum_branches():
    # {} matches both branches; the enum branch must not be judged by a filter that includes the oneOf
    with pytest.raises(UnsupportedFeatureError, match="oneOf"):
        schema_to_lark({"oneOf": [{}, {"enum": [{}], "type": "object"}]})


def test_unknown_keywords_are_annotations_unless_asked_to_raise():
    import json

    import lark

    schema = {"type": "object", "properties": {"a": {"type": "integer", "javaType": "Long", "_format": "x"}},
              "required": ["a"], "self": {"href": "/x"}}
    text = schema_to_lark(schema)
    parser = lark.Lark(text, parser="earley", lexer="dynamic_complete")
    parser.parse(json.dumps({"a": 3}))
    with pytest.raises(lark.exceptions.LarkError):
        parser.parse(json.dumps({"a": "3"}))
    with pytest.raises(UnsupportedFeatureError, match=r"schema at /self: unknown keyword .self."):
        schema_to_lark(schema, unknown_keywords="error")
    with pytest.raises(UnsupportedFeatureError, match=r"schema at /divisibleBy: draft-03 keyword"):
        schema_to_lark({"type": "integer", "divisibleBy": 3})


def test_ref_properties_come_before_sibling_properties():
    # MaskBench JsonSchemaStore---yamllint.json: {"$ref": allRules, "properties": {"present": ...}}
    # with instances written {"level": ..., "present": ...}; siblings used to be placed first.
    import json

    import lark

    schema = {
        "definitions": {"base": {"properties": {"level": {"type": "string"}}}},
        "type": "object", "$ref": "#/definitions/base", "properties": {"present": {"type": "boolean"}},
    }
    parser = lark.Lark(schema_to_lark(schema), parser="earley", lexer="dynamic_complete")
    parser.parse(json.dumps({"level": "warning", "present": True}))
    parser.parse(json.dumps({"present": True}))
    with pytest.raises(lark.exceptions.LarkError):
        parser.parse(json.dumps({"level": 3}))
