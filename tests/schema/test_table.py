"""Per-keyword tables: (schema, valid instances, invalid instances), lark vs jsonschema."""

from __future__ import annotations

import json

import pytest

from constrain.errors import SchemaError, UnsupportedFeatureError
from constrain.schema import compile_json_schema

from ._util import check_table, grammar, lark_accepts, run_tokens, segment_tokens
from .test_end_to_end import toy_vocab

CASES = {
    "type_single": ({"type": "string"}, ["", "a", 'q"\\\n\x01é😀'], [1, None, True, [], {}]),
    "type_list": ({"type": ["integer", "null"]}, [0, -5, 12, None, 3.0], [1.5, "1", True, []]),
    "type_number": ({"type": "number"}, [0, -1.5, 1e-07, 2.5e300, 12], ["1", None]),
    "type_boolean": ({"type": "boolean"}, [True, False], [0, "true", None]),
    "type_null": ({"type": "null"}, [None], [0, False, ""]),
    "type_object": ({"type": "object"}, [{}, {"a": [1, {"b": None}]}], [[], "x"]),
    "type_array": ({"type": "array"}, [[], [1, "a", [None], {}]], [{}, 1]),
    "no_type": ({}, [1, "a", None, [], {"x": {}}], []),
    "true_schema": (True, [1, "a", None, [1], {"x": {}}], []),
    "enum_mixed": ({"enum": ["a", 1, None, [1, 2], {"k": "v"}, True]}, ["a", 1, 1.0, None, [1, 2], {"k": "v"}, True],
                   ["b", 2, False, [2, 1], {"k": "w"}, [1]]),
    "enum_numbers_prefix": ({"enum": [1, 10, 100, 2.5]}, [1, 10, 100, 2.5], [2, 1000, 0, 25]),
    "enum_with_type_filter": ({"type": "string", "enum": ["a", 1, "b"]}, ["a", "b"], [1, "c"]),
    "enum_with_pattern_filter": ({"enum": ["ab", "cd", 3], "pattern": "^a"}, ["ab", 3], ["cd"]),
    "const_string_escapes": ({"const": 'a"b\\c\n\u0001é'}, ['a"b\\c\n\u0001é'], ["ab", 'a"b\\c\n\u0002é']),
    "const_object": ({"const": {"a": [1, None], "b": {"c": "d"}}}, [{"a": [1, None], "b": {"c": "d"}}],
                     [{"a": [1, None]}, {"a": [1], "b": {"c": "d"}}]),
    "const_float_integral": ({"const": 2}, [2, 2.0], [3, 2.5, "2"]),
    "properties_required": (
        {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}, "c": {"type": "boolean"}},
         "required": ["b"]},
        [{"b": "x"}, {"a": 1, "b": "x"}, {"a": 1, "b": "x", "c": True}, {"b": "x", "zz": [1]}],
        [{}, {"a": 1}, {"a": "1", "b": "x"}, {"b": 1}, {"a": 1, "b": "x", "c": 1}]),
    "additional_false": (
        {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False},
        [{}, {"a": 1}], [{"b": 1}, {"a": 1, "b": 2}, {"a": "x"}]),
    "additional_schema": (
        {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": {"type": "string"}},
        [{}, {"a": 1}, {"a": 1, "b": "x", "c": "y"}, {"ab": "x"}, {"": "x"}],
        [{"b": 1}, {"a": 1, "b": 2}, {"a": "x"}]),
    "additional_only": ({"additionalProperties": {"type": "number"}}, [{}, {"x": 1, "y": 2.5}, "s", 3], [{"x": "1"}]),
    "property_false": ({"properties": {"a": False}}, [{}, {"b": 1}], [{"a": 1}]),
    "items": ({"type": "array", "items": {"type": "integer"}}, [[], [1], [1, 2, 3]], [[1.5], ["a"], [1, None]]),
    "items_false": ({"type": "array", "items": False}, [[]], [[1]]),
    "prefix_items": (
        {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
        [[], ["a"], ["a", 1]], [[1], ["a", "b"], ["a", 1, 2]]),
    "prefix_items_rest": (
        {"type": "array", "prefixItems": [{"const": "x"}], "items": {"type": "null"}, "minItems": 2},
        [["x", None], ["x", None, None]], [[], ["x"], ["y", None], ["x", 1]]),
    "min_max_items": ({"type": "array", "minItems": 2, "maxItems": 4}, [[1, 2], [1, 2, 3, 4]], [[], [1], [1, 2, 3, 4, 5]]),
    "min_max_length": ({"type": "string", "minLength": 2, "maxLength": 3}, ["ab", "abc", "\n\t", "😀😀", '""'],
                       ["a", "abcd", "", "😀"]),
    "pattern_unanchored": ({"type": "string", "pattern": "a[0-9]"}, ["a1", "xxa9yy", "a0"], ["a", "b1", "A1"]),
    "pattern_anchored": ({"type": "string", "pattern": "^[A-Z]{2}-\\d+$"}, ["AB-1", "ZZ-1234"], ["AB-", "ab-1", "AB-1x", "xAB-1"]),
    "pattern_escaped_chars": ({"type": "string", "pattern": '^["\\\\\\n]+$'}, ['"', "\\", "\n", '"\\\n'], ["a", "", "\t"]),
    "pattern_with_length": ({"type": "string", "pattern": "^[a-z]+$", "maxLength": 3}, ["a", "abc"], ["abcd", "", "A"]),
    "pattern_length_prefix": ({"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "minLength": 2, "maxLength": 4},
                              ["ab", "a_1", "abcd"], ["a", "abcde", "1a"]),
    "pattern_dotstar_length": ({"type": "string", "pattern": "^a.*b$", "maxLength": 4}, ["ab", "axxb", "a\"b"],
                               ["axxxb", "a\nb", "ba"]),
    "format_date": ({"type": "string", "format": "date"}, ["2024-02-29", "2023-12-31", "2000-02-29"],
                    ["2023-02-29", "1900-02-29", "2023-13-01", "2023-1-01", "x2023-01-01"]),
    "format_email": ({"format": "email"}, ["a@b.c", "first.last+tag@sub.example.org", 5, '"q t"@x', "a@[1.2.3.4]"], ["a"]),
    "format_ipv4": ({"format": "ipv4"}, ["0.0.0.0", "255.255.255.255", "192.168.1.1"], ["256.1.1.1", "1.2.3", "01.2.3.4"]),
    "format_ipv6": ({"format": "ipv6"}, ["::", "::1", "1:2:3:4:5:6:7:8", "fe80::1", "::ffff:1.2.3.4", "1::"],
                    ["1:2:3:4:5:6:7:8:9", ":::", "1::2::3", "12345::"]),
    "format_uuid": ({"format": "uuid"}, ["123e4567-e89b-12d3-a456-426614174000"], ["123e4567e89b12d3a456426614174000", "x"]),
    "format_date_time": ({"format": "date-time"}, ["2024-01-01T12:00:00Z", "2024-01-01t12:00:00.5+05:30"], []),
    "int_exponent_spelling": ({"type": "integer", "maximum": -5}, [-1e16, -5, -1e300], [1e16, -4, -1e-7]),
    "number_exponent_spelling": ({"type": "number", "minimum": -1, "maximum": 1}, [1e-7, -2.5e-10, 0.5], [1e16, -1e16]),
    "int_range": ({"type": "integer", "minimum": -15, "maximum": 130}, [-15, 0, 9, 10, 99, 130, 100.0],
                  [-16, 131, 1000, 5.5, -100]),
    "int_exclusive": ({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10}, [1, 9], [0, 10, -1]),
    "int_huge": ({"type": "integer", "minimum": -10**20, "maximum": 10**25}, [-10**20, 10**25, 0], [-10**20 - 1, 10**25 + 1]),
    "int_fractional_bound": ({"type": "integer", "minimum": 1.5, "maximum": 3.5}, [2, 3], [1, 4]),
    "number_range": ({"type": "number", "minimum": -1.5, "exclusiveMaximum": 2.25}, [-1.5, 0, 2.2, 2.249, 1, -0.5],
                     [-1.51, 2.25, 3, -2]),
    "number_multiple_decimal": ({"type": "number", "multipleOf": 0.01, "minimum": 0}, [0, 1, 0.5, 12.34], [1.234, -1]),
    "int_multiple": ({"type": "integer", "multipleOf": 5}, [0, 5, -10, 1005], [1, 7, -3]),
    "int_multiple_lower": ({"type": "integer", "multipleOf": 25, "minimum": 130}, [150, 175, 1000, 12525], [125, 130, 140, 1010]),
    "int_multiple_upper": ({"type": "integer", "multipleOf": 4, "exclusiveMaximum": -7}, [-8, -12, -100, -1004], [-7, -4, 0, 8, -10]),
    "int_multiple_range": ({"type": "integer", "multipleOf": 7, "minimum": 10, "maximum": 50}, [14, 21, 49], [7, 56, 15]),
    "any_of": ({"anyOf": [{"type": "string", "maxLength": 1}, {"type": "integer", "minimum": 5}]}, ["", "a", 5, 100],
               ["ab", 4, None]),
    "one_of_types": ({"oneOf": [{"type": "string"}, {"type": "number"}]}, ["a", 1.5], [None, []]),
    "one_of_discriminator": (
        {"oneOf": [
            {"type": "object", "properties": {"kind": {"const": "a"}, "x": {"type": "integer"}}, "required": ["kind"]},
            {"type": "object", "properties": {"kind": {"const": "b"}, "y": {"type": "string"}}, "required": ["kind"]},
        ]},
        [{"kind": "a", "x": 1}, {"kind": "b", "y": "s"}], [{"kind": "c"}, {"kind": "a", "x": "s"}, {}]),
    # the branches pin "name" but only the parent requires it (schemas/function_call.json's shape)
    "one_of_discriminator_required_by_parent": (
        {"type": "object", "properties": {"name": {"enum": ["a", "b"]}, "args": {"type": "object"}},
         "required": ["name", "args"], "additionalProperties": False,
         "oneOf": [{"properties": {"name": {"const": "a"}, "args": {"properties": {"x": {"type": "integer"}},
                                                                   "required": ["x"]}}},
                   {"properties": {"name": {"const": "b"}, "args": {"properties": {"y": {"type": "string"}},
                                                                   "required": ["y"]}}}]},
        [{"name": "a", "args": {"x": 1}}, {"name": "b", "args": {"y": "s"}}, {"name": "a", "args": {"x": 1, "y": "s"}}],
        [{"name": "a", "args": {"y": "s"}}, {"name": "b", "args": {"x": 1}}, {"name": "c", "args": {}}, {"args": {"x": 1}}]),
    "all_of_merge": (
        {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                   {"properties": {"a": {"minimum": 3}, "b": {"type": "string"}}, "required": ["b"]}]},
        [{"a": 3, "b": ""}, {"a": 10, "b": "x"}], [{"a": 2, "b": ""}, {"a": 3}, {"b": "x"}, {"a": 3, "b": 1}]),
    "all_of_additional": (
        {"allOf": [{"properties": {"a": {}}, "additionalProperties": False}, {"properties": {"b": {}}}]},
        [{}, {"a": 1}], [{"b": 1}, {"c": 1}]),
    "all_of_any_of": ({"type": "integer", "allOf": [{"anyOf": [{"minimum": 10}, {"maximum": -10}]}, {"maximum": 20}]},
                      [10, 20, -10, -50], [0, 21, 9]),
    "ref_defs": ({"$defs": {"pos": {"type": "integer", "minimum": 1}}, "type": "array", "items": {"$ref": "#/$defs/pos"}},
                 [[], [1, 2]], [[0], ["a"]]),
    "ref_recursive": (
        {"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"},
                                                             "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                            "required": ["v"], "additionalProperties": False}},
         "$ref": "#/$defs/node"},
        [{"v": 1}, {"v": 1, "kids": [{"v": 2, "kids": []}, {"v": 3}]}], [{"v": 1, "kids": [{}]}, {"kids": []}]),
    "ref_anchor": ({"$defs": {"x": {"$anchor": "small", "maximum": 3}}, "items": {"$ref": "#small"}}, [[1, 3]], [[4]]),
    "ref_with_siblings": ({"$defs": {"s": {"type": "string"}}, "$ref": "#/$defs/s", "maxLength": 2}, ["ab"], ["abc", 1]),
    "ref_definitions": ({"definitions": {"b": {"type": "boolean"}}, "properties": {"f": {"$ref": "#/definitions/b"}}},
                        [{"f": True}], [{"f": 1}]),
    "min_max_properties": ({"type": "object", "properties": {"a": {}, "b": {}}, "minProperties": 1, "maxProperties": 2,
                            "additionalProperties": {"type": "integer"}},
                           [{"a": 1}, {"b": 1}, {"a": 1, "b": 2}, {"x": 1}, {"a": 1, "x": 2}],
                           [{}, {"a": 1, "b": 2, "c": 3}, {"x": 1, "y": 2, "z": 3}]),
    "not_type": ({"not": {"type": "string"}}, [1, None, [], {}], ["a"]),
    "min_properties_closed": ({"type": "object", "properties": {"a": {}, "b": {}, "c": {}}, "minProperties": 2,
                               "additionalProperties": False},
                              [{"a": 1, "b": 2}, {"a": 1, "c": 3}, {"a": 1, "b": 2, "c": 3}], [{}, {"a": 1}, {"c": 1}]),
    "contains": ({"type": "array", "contains": {"type": "string"}}, [["a"], [1, "a"], ["a", 2, "b"]], [[], [1, 2], [None]]),
    "contains_min_max": ({"type": "array", "items": {"type": "integer"}, "contains": {"minimum": 10},
                          "minContains": 2, "maxContains": 3},
                         [[10, 11], [1, 10, 2, 12, 13], [10, 10, 10, 0]], [[10], [10, 11, 12, 13], [1, 2], [10, 11, "x"]]),
    "contains_zero": ({"type": "array", "contains": {"const": 1}, "minContains": 0, "maxContains": 1},
                      [[], [2, 3], [1, 2]], [[1, 1]]),
    "not_enum_strings": ({"type": "string", "not": {"enum": ["a", "b"]}}, ["", "ab", "c", "ba"], ["a", "b", 1]),
    "not_const_int": ({"type": "integer", "minimum": 0, "maximum": 20, "not": {"const": 10}}, [0, 9, 11, 20], [10, 21]),
    "not_enum_mixed": ({"not": {"enum": [None, True, "x"]}}, [False, 4, 3.5, "y", [], {}], [None, True, "x"]),
    "not_enum_number": ({"type": "number", "maximum": 10, "not": {"enum": [0, 3]}}, [1, -1, 0.5, 3.5, 10, -1e-7, 2.0, 30e-1 + 0.1],
                        [0, 3, 3.0, 0.0, 11, 1e16]),
    "not_enum_integer": ({"type": ["integer", "null"], "not": {"enum": [None, 3]}}, [4, 2, -3, 30], [None, 3, 3.0]),
    "not_required": ({"type": "object", "not": {"required": ["a"]}}, [{}, {"b": 1}], [{"a": 1}]),
    "not_properties": ({"type": "object", "not": {"properties": {"k": {"const": "x"}}, "required": ["k"]}},
                       [{}, {"k": "y"}, {"k": 1}], [{"k": "x"}]),
    "not_minimum": ({"not": {"minimum": 3}}, [2, 2.99, -5], [3, 4.5, "a", None]),
    "not_max_length": ({"not": {"maxLength": 2}}, ["abc"], ["", "ab", 5]),
    "not_any_of": ({"not": {"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0}]}}, [-1, 0.5, None, []],
                   ["s", 0, 7]),
    "not_not": ({"not": {"not": {"type": "boolean"}}}, [True, False], [1, "x"]),
    "if_free_not_integer_hole": ({"type": "integer", "not": {"enum": [-3, 0, 7]}}, [-4, -2, 1, 6, 8, 70, -30],
                                 [-3, 0, 7]),
    "if_then_else": ({"type": "object", "properties": {"kind": {"enum": ["a", "b"]}, "n": {"type": "integer"}},
                      "if": {"properties": {"kind": {"const": "a"}}, "required": ["kind"]},
                      "then": {"required": ["n"]}, "else": {"properties": {"n": {"maximum": 0}}}},
                     [{"kind": "a", "n": 5}, {"kind": "b"}, {"kind": "b", "n": -1}, {}, {"n": 0}],
                     [{"kind": "a"}, {"kind": "b", "n": 1}, {"n": 3}]),
    "if_type": ({"if": {"type": "string"}, "then": {"minLength": 2}, "else": {"type": "integer"}}, ["ab", 3], ["a", 1.5, None]),
    "if_then_only": ({"if": {"minimum": 10}, "then": {"multipleOf": 5}}, [10, 15, 3, 7, "x"], [11, 12]),
    "dependent_schemas": ({"type": "object", "properties": {"card": {"type": "string"}, "addr": {"type": "string"}},
                           "dependentSchemas": {"card": {"required": ["addr"]}}},
                          [{}, {"addr": "x"}, {"card": "1", "addr": "x"}], [{"card": "1"}]),
    "draft7_dependencies_schema": ({"$schema": "http://json-schema.org/draft-07/schema#",
                                    "properties": {"a": {}, "b": {"type": "integer"}},
                                    "dependencies": {"a": {"properties": {"b": {"minimum": 3}}, "required": ["b"]}}},
                                   [{}, {"b": 1}, {"a": 0, "b": 3}], [{"a": 0}, {"a": 0, "b": 2}]),
    "dependent_required": ({"type": "object", "properties": {"a": {}, "b": {}, "c": {}}, "dependentRequired": {"a": ["b"]},
                            "additionalProperties": False},
                           [{}, {"b": 1}, {"a": 1, "b": 2}, {"a": 1, "b": 2, "c": 3}, {"c": 1}], [{"a": 1}, {"a": 1, "c": 2}]),
    "property_names": ({"type": "object", "propertyNames": {"maxLength": 2}}, [{}, {"ab": 1}], [{"abc": 1}]),
    "property_names_enum": ({"type": "object", "propertyNames": {"enum": ["x", "y"]}}, [{}, {"x": 1}, {"y": 2}], [{"z": 1}]),
    # MaskBench Github_hard---o12460's shape: the names through a $ref, values from a catch-all pattern
    "property_names_ref": (
        {"$defs": {"name": {"type": "string", "enum": ["p10", "p50"]}, "short": {"maxLength": 3}},
         "type": "object", "propertyNames": {"$ref": "#/$defs/name", "allOf": [{"$ref": "#/$defs/short"}]},
         "patternProperties": {".*": {"type": "number"}}, "additionalProperties": False},
        [{}, {"p10": 1}, {"p50": 2.5, "p10": 0}], [{"p30": 1}, {"p10": "x"}]),
    "pattern_properties": ({"type": "object", "patternProperties": {"^s_": {"type": "string"}}, "additionalProperties": False},
                           [{}, {"s_a": "x"}], [{"s_a": 1}, {"t": "x"}]),
    "draft7_tuple_items": ({"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "string"}],
                            "additionalItems": False}, [[], ["a"]], [["a", 1], [1]]),
    "draft4_exclusive": ({"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer", "minimum": 0,
                          "exclusiveMinimum": True}, [1, 2], [0, -1]),
    # MaskBench JsonSchemaStore---sounds's shape: 'else' after 'if items' is "some item is not a
    # string" (a contains of the negated items) conjoined with else's items; the two conjunctions
    # (the item that matches, the items that need not) once shared a memo key
    "if_items_else_items": ({"$schema": "http://json-schema.org/draft-07/schema#", "type": "array",
                             "if": {"items": {"type": "string"}}, "then": {"items": {"maxLength": 5}},
                             "else": {"items": {"properties": {"name": {"type": "string"}}}}},
                            [["a", {"name": "x"}], [{"name": "x"}, "a"], ["abc"], [1, "a"], ["a", 1], []],
                            [["abcdefg"], [{"name": 1}], ["a", {"name": 2}]]),
    "vendor_and_annotations": ({"type": "string", "x-order": 3, "title": "t", "description": "d", "examples": ["a"],
                                "default": "q", "deprecated": False, "$comment": "c"}, ["a"], [1]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_table(name):
    schema, valid, invalid = CASES[name]
    check_table(schema, valid, invalid)


@pytest.mark.parametrize("name", ["properties_required", "additional_schema", "const_object", "ref_recursive"])
def test_table_compact(name):
    schema, valid, invalid = CASES[name]
    text = check_table(schema, valid, invalid, whitespace="compact")
    if valid and isinstance(valid[-1], dict) and valid[-1]:
        import json
        assert not lark_accepts(text, json.dumps(valid[-1], indent=1))


def test_whitespace_bound():
    text = grammar({"type": "array", "items": {"type": "integer"}}, max_whitespace=2)
    assert lark_accepts(text, "[ 1 ,  2 ]") and lark_accepts(text, "[  ]")
    assert not lark_accepts(text, "[1,   2]") and not lark_accepts(text, "[   ]") and not lark_accepts(text, " [1]")
    custom = grammar({"type": "array"}, whitespace="\\n?")
    assert lark_accepts(custom, "[\n1,\n2]") and not lark_accepts(custom, "[ 1]")


def test_property_order_any():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "required": ["a"],
              "additionalProperties": False}
    text = check_table(schema, [{"a": 1}, {"b": "x", "a": 1}, {"a": 1, "b": "x"}], [{"b": "x"}, {}], property_order="any")
    assert not lark_accepts(text, '{"a": 1, "a": 2}')
    assert not lark_accepts(grammar(schema), '{"b": "x", "a": 1}')  # default: schema order


_BASE = {"properties": {"b": {"type": "string"}}, "required": ["b"]}


def _order_check(schema, first: dict, second: dict):
    """``first`` is accepted and ``second`` (the same members, the other order) refused in schema
    order, by the grammar and by the token engine; any order accepts both."""
    text = check_table(schema, [first], [])
    assert not lark_accepts(text, json.dumps(second))
    assert lark_accepts(grammar(schema, property_order="any"), json.dumps(second))
    vocab = toy_vocab()
    c = compile_json_schema(schema, vocab)
    assert run_tokens(c, segment_tokens(vocab, json.dumps(first).encode())) == "accept"
    assert run_tokens(c, segment_tokens(vocab, json.dumps(second).encode())) == "reject"


@pytest.mark.parametrize("form", ["allOf", "anyOf", "allOf_ref", "anyOf_ref"])
def test_composed_base_members_come_before_the_schemas_own(form):
    # MaskBench Github_hard---o60038 ({"anyOf": [{"$ref": Base}], "properties": {"Protanopia": ...}}),
    # Github_medium---o69744, JsonSchemaStore---coffeelint / webjob-publish-settings (allOf [$ref]):
    # instances write the base type's members first, as with a plain $ref; the schema's own used
    # to be placed first, which refused them in schema order.
    own = {"type": "object", "properties": {"own": {"type": "integer"}}}
    applied = {
        "allOf": {"allOf": [_BASE]},
        "anyOf": {"anyOf": [_BASE, {"required": ["zz"]}]},
        "allOf_ref": {"$defs": {"base": _BASE}, "allOf": [{"$ref": "#/$defs/base"}]},
        "anyOf_ref": {"$defs": {"base": _BASE}, "anyOf": [{"$ref": "#/$defs/base"}]},
    }[form]
    _order_check({**own, **applied}, {"b": "x", "own": 1}, {"own": 1, "b": "x"})


@pytest.mark.parametrize("form", ["oneOf", "if_then"])
def test_variant_members_come_after_the_schemas_own(form):
    # MaskBench Github_medium---o227 (own members, then a oneOf of {"siteType", "url"} variants) and
    # JsonSchemaStore---ui5.yaml (if specVersion ... then more members): the variant's members last
    own = {"type": "object", "properties": {"own": {"type": "integer"}}}
    applied = {
        "oneOf": {"oneOf": [_BASE, {"properties": {"c": {"type": "null"}}, "required": ["c"]}]},
        "if_then": {"if": {"required": ["own"]}, "then": _BASE, "else": _BASE},
    }[form]
    _order_check({**own, **applied}, {"own": 1, "b": "x"}, {"b": "x", "own": 1})


def test_composed_members_that_refine_the_schemas_own_keep_its_order():
    # an allOf member that constrains members the schema names itself does not reorder them
    schema = {"type": "object", "properties": {"p": {"type": "integer"}, "q": {"type": "integer"}},
              "allOf": [{"properties": {"q": {"minimum": 0}, "r": {"type": "null"}}}]}
    _order_check(schema, {"p": 1, "q": 2, "r": None}, {"q": 2, "p": 1, "r": None})


def test_allof_members_keep_their_order_before_the_schemas_own():
    schema = {"type": "object", "properties": {"p": {"type": "null"}},
              "allOf": [{"properties": {"a": {"type": "null"}}}, {"properties": {"b": {"type": "null"}}}]}
    text = check_table(schema, [{"a": None, "b": None, "p": None}, {"a": None, "p": None}], [])
    for order in (("p", "a", "b"), ("b", "a", "p"), ("a", "p", "b")):
        assert not lark_accepts(text, json.dumps({k: None for k in order}, separators=(",", ":")))


def test_unsatisfiable_conjunction_next_to_properties_is_a_schema_error():
    # no alternative left after the products: an error naming the schema, not a crash
    with pytest.raises(SchemaError, match="schema at /: no value can satisfy"):
        grammar({"type": "object", "properties": {"a": {}}, "allOf": [False]})
    with pytest.raises(SchemaError, match="schema at /: no value can satisfy"):
        compile_json_schema({"type": "object", "properties": {"a": {}}, "anyOf": [{"type": "string"}]}, toy_vocab())


def test_grammar_is_readable():
    text = grammar({"type": "object", "properties": {"age": {"type": "integer", "minimum": 0}}})
    assert "properties_age" in text and "start:" in text


# jsonschema's checkers for these formats are looser than the RFCs (email: "@" in s) or absent
# (date-time, time, hostname, uri, duration, json-pointer need optional packages), so these tables
# are checked against the RFC grammars by hand.
RFC_CASES = {
    "email": (["a@b", "a.b@c-d.e", "x@[IPv6:::1]"], ["@b.c", "a@", "a..b@c", ".a@b", "a@-b", "a b@c"]),
    "date-time": (["2024-01-01T12:00:00Z", "2024-02-29T23:59:59.123-08:00", "1999-12-31t00:00:00z"],
                  ["2024-01-01 12:00:00Z", "2024-01-01T24:00:00Z", "2024-01-01T12:00:00", "2023-02-29T00:00:00Z",
                   "2024-01-01T12:00:60Z", "2024-01-01T12:00:00+24:00"]),
    "time": (["12:00:00Z", "23:59:59.9+01:00"], ["12:00:00", "12:00Z", "25:00:00Z"]),
    "duration": (["P1D", "PT1H", "P1Y2M3DT4H5M6S", "P4W", "PT36H"], ["P", "PT", "P1H", "1D", "P1DT", "P1W2D"]),
    "hostname": (["example.com", "a", "a-b.c1", "x" * 63], ["-a.com", "a-.com", "a..b", "", "x" * 64, "a_b"]),
    "uri": (["http://a.b/c?d#e", "urn:isbn:0451450523", "mailto:a@b", "http://[::1]:80/", "a:"],
            ["//a.b/c", "/path", "http://a b", "1http://x", "http://%zz"]),
    "uri-reference": (["http://a.b/c", "/path", "../a?b#c", "", "//host"], ["a b", "%zz", "http://[::1"]),
    "json-pointer": (["", "/a", "/a~0b/c~1d", "/"], ["a", "/~2", "/~"]),
    "relative-json-pointer": (["0", "1/a", "2#"], ["", "/a", "01", "-1"]),
}


@pytest.mark.parametrize("fmt", sorted(RFC_CASES))
def test_format_against_rfc_tables(fmt):
    good, bad = RFC_CASES[fmt]
    check_table({"type": "string", "format": fmt}, good, bad, oracle=False)


def test_contradicting_distribution_branch_is_dropped_not_an_error():
    schema = {"type": "integer", "allOf": [{"anyOf": [{"minimum": 10}, {"maximum": -10}]}, {"maximum": 5}]}
    check_table(schema, [-10, -11], [0, 10, 5])


def test_one_of_closed_objects_are_disjoint_by_required_keys():
    schema = {"oneOf": [
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": False},
        {"type": "object", "properties": {"b": {"type": "string"}}, "required": ["b"], "additionalProperties": False},
    ]}
    check_table(schema, [{"a": "x"}, {"b": "y"}], [{"a": "x", "b": "y"}, {}, {"c": 1}])


def test_integer_multiple_of_decimal_power():
    check_table({"type": "integer", "multipleOf": 0.01}, [1, -3, 0], [1.5])


def test_enum_filter_follows_refs_and_unsupported_siblings():
    # the finite candidate set is filtered by jsonschema itself, so $ref and 'not' siblings are exact
    schema = {"$id": "https://example.com/s.json", "$defs": {"short": {"maxLength": 2}},
              "enum": ["a", "abc", "zz", 5], "$ref": "#/$defs/short", "not": {"const": "zz"}}
    check_table(schema, ["a", 5], ["abc", "zz"])


def test_not_of_recursive_schema_terminates():
    schema = {"$defs": {"a": {"type": "object", "properties": {"x": {"$ref": "#/$defs/a"}}, "required": ["x"]}},
              "type": "object", "not": {"$ref": "#/$defs/a"}}
    # not a = object without x, or with x that is not an a (x not an object, or x without its own x ...)
    check_table(schema, [{}, {"x": 1}, {"x": {}}, {"x": {"x": 2}}], [])
    # instances of 'a' are infinite, so nothing is invalid here; the negated pointer is also positively referable
    ref = {"$defs": {"a": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}},
           "properties": {"p": {"not": {"$ref": "#/$defs/a"}}, "q": {"$ref": "#/$defs/a"}}}
    check_table(ref, [{"p": {}, "q": {"x": 1}}, {"p": {"x": "s"}}], [{"p": {"x": 1}}, {"q": {}}])


def test_one_of_closed_by_pattern_properties_is_disjoint():
    # "ios" is required by branch 0; branch 1 allows only keys matching its pattern, and "ios" does not
    schema = {"oneOf": [
        {"type": "object", "properties": {"ios": {"type": "string"}}, "required": ["ios"], "additionalProperties": False},
        {"type": "object", "patternProperties": {"^[0-9]+x$": {"type": "string"}}, "additionalProperties": False,
         "minProperties": 1},
    ]}
    check_table(schema, [{"ios": "a"}, {"2x": "b"}, {"2x": "b", "3x": "c"}], [{"ios": "a", "2x": "b"}, {}, {"x": "c"}])


def test_one_of_with_a_pattern_branch_that_admits_a_key_still_raises():
    # "ref" matches the pattern of the second branch: {"ref": "x"} matches both branches, not provably disjoint
    schema = {"oneOf": [
        {"type": "object", "properties": {"ref": {"type": "string"}}, "required": ["ref"], "additionalProperties": False},
        {"type": "object", "patternProperties": {"^[a-z]{3}$": {"type": "string"}}, "additionalProperties": False},
    ]}
    with pytest.raises(UnsupportedFeatureError, match="oneOf"):
        grammar(schema)


@pytest.mark.parametrize(("schema", "valid", "invalid"), [
    # enum values that also match the string branch match two branches: neither branch may produce them
    ({"oneOf": [{"enum": ["red", "blue", "#fff", 3]}, {"type": "string", "pattern": "^#"}]},
     ["red", "blue", 3, "#000", "#ffff"], ["#fff", "green", 4]),
    # every enum value matches the other branch: oneOf = strings other than those values
    ({"oneOf": [{"enum": ["home", "temp"], "type": "string"}, {"type": "string"}]},
     ["x", "", "homes", "Home"], ["home", "temp", 1]),
    # a finite value shared by two finite branches is valid in neither
    ({"oneOf": [{"enum": [1, 2, 3]}, {"enum": [3, 4]}, {"type": "boolean"}]},
     [1, 2, 4, True, False], [3, 5, None]),
    # three branches: every enum value also matches one of the two others
    ({"oneOf": [{"enum": ["a", "b", 5]}, {"type": "string", "maxLength": 1}, {"type": "integer", "minimum": 5}]},
     ["c", "z", "", 6], ["a", "b", 5, "zz", 4]),
])
def test_one_of_with_a_finite_branch_is_exact(schema, valid, invalid):
    check_table(schema, valid, invalid)


@pytest.mark.parametrize(("schema", "valid", "invalid"), [
    # MaskBench Synthesized---draft2019_09_valid_oneOf_id21: 'not' of an overlapping oneOf beside an enum
    ({"allOf": [{"enum": [{"bar": 2, "baz": 3, "foo": 1}, {"foo": 1, "bar": 2}]},
                {"not": {"oneOf": [{"required": ["foo", "bar"]}, {"required": ["foo", "baz"]}], "type": "object"}}]},
     [{"bar": 2, "baz": 3, "foo": 1}], [{"foo": 1, "bar": 2}, {"bar": 2, "baz": 3, "foo": 1, "qux": 4}]),
    # 'not' of a multipleOf (not negatable as a grammar) beside a const, through a $ref
    ({"$defs": {"c": {"const": 10}}, "allOf": [{"$ref": "#/$defs/c"}], "not": {"multipleOf": 4}}, [10], [8, 12]),
    ({"$defs": {"c": {"enum": [8, 10]}}, "allOf": [{"$ref": "#/$defs/c"}], "not": {"multipleOf": 4}}, [10], [8, 12]),
])
def test_finite_allof_member_makes_the_whole_schema_a_filtered_enum(schema, valid, invalid):
    check_table(schema, valid, invalid)


@pytest.mark.parametrize(("schema", "valid", "invalid"), [
    # overlapping branches: exactly one holds = branch i and not the other (negation)
    ({"type": "object", "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
     [{"a": 1}, {"b": 1}, {"a": 1, "c": 2}], [{"a": 1, "b": 2}, {}, {"c": 1}]),
    # MaskBench o80681's shape: an object that has both keys matches both branches unless a value fails one
    ({"type": "object", "oneOf": [{"properties": {"a": {"type": "integer"}}, "required": ["a"]},
                                  {"properties": {"b": {"type": "integer"}}, "required": ["b"]}]},
     [{"a": 1}, {"b": 2}, {"a": 1, "b": "x"}, {"a": "x", "b": 2}], [{"a": 1, "b": 2}, {"a": "x"}, {}]),
    # string xor (at most 3 code points): long strings, or anything that is not a string
    ({"oneOf": [{"type": "string"}, {"maxLength": 3}]}, ["abcd", 1, None, [1], {}], ["abc", ""]),
    # not (exactly one): none of the branches, or both
    ({"type": "integer", "not": {"oneOf": [{"minimum": 5}, {"maximum": 10}]}}, [5, 7, 10], [4, 11, -3, 100]),
    # not items: an array with an element the items schema refuses
    ({"type": "array", "not": {"items": {"type": "integer"}}}, [["a"], [1, "a"], [None, 2]], [[], [1, 2]]),
    # both at once (MaskBench o71454's shape): a folder has 'item', an item has 'request'
    ({"$defs": {"item": {"type": "object", "properties": {"request": {"type": "string"}}, "required": ["request"]},
                "group": {"type": "object", "properties": {"item": {"type": "array", "items": {"$ref": "#/$defs/item"}}},
                          "required": ["item"]}},
      "type": "array", "items": {"oneOf": [{"$ref": "#/$defs/item"}, {"$ref": "#/$defs/group"}]}},
     [[{"request": "r"}], [{"item": []}, {"request": "s"}], [{"request": "r", "item": [1]}]],
     [[{"request": "r", "item": []}], [{}], [{"item": [{}]}]]),
])
def test_one_of_with_overlapping_branches_is_exact_by_negation(schema, valid, invalid):
    check_table(schema, valid, invalid)


def test_one_of_overlap_with_a_branch_that_cannot_be_negated_names_both():
    schema = {"oneOf": [{"type": "object", "propertyNames": {"maxLength": 1}},
                        {"type": "object", "propertyNames": {"maxLength": 2}}]}
    with pytest.raises(UnsupportedFeatureError) as info:
        grammar(schema)
    assert info.value.pointer == "/oneOf" and "may both match" in str(info.value)
    assert "propertyNames" in str(info.value)


def test_one_of_overlapping_patterns_is_exact():
    schema = {"oneOf": [{"type": "string", "pattern": "^a"}, {"type": "string", "pattern": "b$"}]}
    check_table(schema, ["a", "axx", "b", "xb"], ["ab", "axb", "x", 1])


CLOSED_ONE_OF = {"oneOf": [
    {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False},
    {"type": "object", "properties": {"b": {"type": "integer"}}, "additionalProperties": False},
]}


@pytest.mark.parametrize(("schema", "valid", "invalid"), [
    # not (an object with no key but "a"): an object with some other key
    ({"type": "object", "not": {"properties": {"a": {}}, "additionalProperties": False}},
     [{"b": 1}, {"a": 1, "b": 2}, {"b": 1, "a": 2}, {"x": None, "y": None}], [{}, {"a": 1}]),
    # oneOf of closed objects, which {} matches twice: exactly one branch
    (CLOSED_ONE_OF, [{"a": 1}, {"b": 2}], [{}, {"a": 1, "b": 1}, {"a": "x"}, {"c": 1}]),
    # closed objects with required keys and a minProperties one ({"ref": ..} is only branch 1's)
    ({"oneOf": [
        {"type": "object", "properties": {"ios": {"type": "string"}, "android": {"type": "string"}},
         "required": ["ios", "android"], "additionalProperties": False},
        {"type": "object", "properties": {"ref": {"type": "string"}}, "required": ["ref"], "additionalProperties": False},
        {"type": "object", "properties": {"en": {"type": "string"}, "ref": {"type": "string"}},
         "additionalProperties": False, "minProperties": 1, "not": {"required": ["ref"]}}]},
     [{"ios": "a", "android": "b"}, {"en": "x"}, {"ref": "y"}],
     [{}, {"ios": "a"}, {"en": 1}, {"ios": "a", "android": "b", "en": "c"}, {"x": "y"}, {"ref": "y", "en": "x"}]),
])
def test_not_of_an_object_without_additional_properties(schema, valid, invalid):
    check_table(schema, valid, invalid)


@pytest.mark.parametrize(("schema", "valid", "invalid"), [
    # MaskBench o65418: a name that is not only punctuation and spaces
    ({"type": "string", "minLength": 1, "not": {"pattern": "^[\\.\\,\\*\\\\\\-\\s\\{\\}\\(\\)]+$"}},
     ["Ada", "a.", " x ", "(b)"], ["", ".", " , ", "{}", "-*-"]),
    # unanchored: no "ab" anywhere; together with a positive pattern
    ({"type": "string", "pattern": "^x", "not": {"pattern": "ab"}}, ["x", "xba", "xa b"], ["xab", "ab", "y"]),
    # not a date; an unknown format is an annotation, so its negation rules nothing out... and nothing in
    ({"type": "string", "not": {"format": "date"}}, ["2024-13-01", "x", ""], ["2024-01-31"]),
    ({"not": {"type": "string", "format": "no-such-format"}}, [1, None, [], {}], ["a", ""]),
    # inside a property: a value that is not a date
    ({"type": "object", "not": {"properties": {"a": {"format": "date"}}}},
     [{"a": "x"}, {"a": "2024-02-30"}], [{}, {"a": "2024-02-28"}, {"b": "x"}]),
])
def test_not_of_a_pattern_or_format_is_the_complement(schema, valid, invalid):
    check_table(schema, valid, invalid)


@pytest.mark.parametrize(("schema", "valid", "invalid"), [
    # if a pattern then a length, else anything: exact now that a pattern can be negated
    ({"type": "string", "if": {"pattern": "^a"}, "then": {"minLength": 3}}, ["abc", "b", ""], ["a", "ab"]),
    # an array with at least one element matching a pattern (the others: its complement)
    ({"type": "array", "items": {"type": "string"}, "contains": {"pattern": "x"}}, [["x"], ["a", "bx"]], [[], ["a"]]),
])
def test_conditions_on_patterns(schema, valid, invalid):
    check_table(schema, valid, invalid)
