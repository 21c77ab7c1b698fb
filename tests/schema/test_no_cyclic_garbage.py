"""Compiling a schema leaves no reference cycles behind.

The compiler's recursive local helpers (a function that calls itself holds its own cell) used to
make each compile's whole ``_Compiler`` (rules, memo tables, closures) cyclic garbage: the first
collection after the compile had to trace it (half a million objects over 93 MaskBench schemas,
1.8 ms a schema), and collections are what the mask-time tail is made of. Refcounting frees it
now; these tests fail when a helper is left linked.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest

from constrain.schema import compile_json_schema
from constrain.vocab.vocabulary import Vocabulary

SCHEMAS = sorted(p for p in (Path(__file__).resolve().parents[2] / "schemas").glob("*.json")
                 if not p.name.endswith(".examples.json"))

# schemas that reach each recursive helper: schema-order objects (optional members, an
# additionalProperties schema), positional items, contains with bounds, names excluded from
# additional properties, objects tracked by subsets (dependentRequired), any-order counting
HELPERS = {
    "object_schema_order": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
                            "additionalProperties": {"type": "boolean"}},
    "prefix_items": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "minItems": 1},
    "contains": {"type": "array", "contains": {"const": 3}, "minContains": 2, "maxContains": 3},
    "except_names": {"type": "object", "properties": {"ab": {}, "ac": {}},
                     "additionalProperties": {"type": "integer"}},
    "dependent_required": {"type": "object", "properties": {"a": {}, "b": {}, "c": {}},
                           "dependentRequired": {"a": ["b"]}},
}
ANY_ORDER = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
             "required": ["a"], "minProperties": 1, "maxProperties": 2}


@pytest.fixture(scope="module")
def vocab():
    return Vocabulary.from_tokens([bytes([b]) for b in range(256)] + [None], 256)


def _cyclic_garbage_of(compile_once) -> list:
    """What the cyclic collector finds after one call (the collector held off during it)."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        compile_once()
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        found = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was:
            gc.enable()
    return found


def _our_functions(found) -> list[str]:
    return sorted({f"{o.__module__}.{o.__qualname__}" for o in found
                   if type(o).__name__ == "function" and (o.__module__ or "").startswith("constrain.")})


@pytest.mark.parametrize("name", sorted(HELPERS))
def test_recursive_helpers_leave_no_cycles(name, vocab):
    compile_json_schema(HELPERS[name], vocab)  # warm the process-wide caches first
    found = _cyclic_garbage_of(lambda: compile_json_schema(HELPERS[name], vocab))
    assert _our_functions(found) == []
    assert not any(type(o).__name__ == "_Compiler" for o in found)


def test_regex_parser_leaves_no_cycles(vocab):
    compile_json_schema({"type": "string", "pattern": "^(a(b|c)*){2,3}$"}, vocab)
    # a pattern not parsed before (parses are cached process-wide)
    found = _cyclic_garbage_of(lambda: compile_json_schema({"type": "string", "pattern": "^(q(r|s)+){2,4}z$"}, vocab))
    assert _our_functions(found) == []


def test_any_order_counting_leaves_no_cycles(vocab):
    compile_json_schema(ANY_ORDER, vocab, property_order="any")
    found = _cyclic_garbage_of(lambda: compile_json_schema(ANY_ORDER, vocab, property_order="any"))
    assert _our_functions(found) == []


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.stem)
def test_example_schemas_leave_no_cycles(path, vocab):
    schema = json.loads(path.read_text())
    try:
        compile_json_schema(schema, vocab)
    except Exception as exc:  # refused by the compiler: nothing to check
        pytest.skip(type(exc).__name__)
    found = _cyclic_garbage_of(lambda: compile_json_schema(schema, vocab))
    assert _our_functions(found) == []
    assert not any(type(o).__name__ == "_Compiler" for o in found)
