"""Enum values are admitted by checking them against their source schemas with ``jsonschema``;
the verdicts are memoized per (source, value as spelled). These tests pin both halves: the memo
does not conflate spellings the draft tells apart, and it removes the cubic blow-up of a property
that is an ``anyOf`` of one-value enums intersected with as many object branches (Azure
Pipelines' service-schema on MaskBench: 13M jsonschema descents, 260 s of compile before).
"""

from __future__ import annotations

import json

import jsonschema
import pytest

from ._util import grammar, lark_accepts, oracle_valid

D4 = "http://json-schema.org/draft-04/schema#"


def _tasks_schema(n: int) -> dict:
    """A 'task' property that is any of n names, and n object branches each pinning one name."""
    return {
        "type": "object",
        "properties": {"task": {"anyOf": [{"enum": [f"T{i}"]} for i in range(n)]}},
        "required": ["task"],
        "anyOf": [
            {"properties": {"task": {"pattern": f"^T{i}$"}, "inputs": {"type": "integer", "minimum": i}}}
            for i in range(n)
        ],
    }


def test_anyof_of_enums_across_branches_is_exact_and_quadratic(monkeypatch):
    n = 24
    schema = _tasks_schema(n)
    calls = {"n": 0}
    cls = jsonschema.Draft202012Validator
    original_descend = cls.descend

    def counting_descend(self, *args, **kwargs):
        calls["n"] += 1
        return original_descend(self, *args, **kwargs)

    monkeypatch.setattr(cls, "descend", counting_descend)
    g = grammar(schema)
    monkeypatch.setattr(cls, "descend", original_descend)
    # one verdict per (value, source): the anyOf source once per name (up to n descents each),
    # each branch's pattern once per name; without the memo every one of the n branches re-asks
    # the anyOf about every name: ~n**3 / 2 descents
    assert calls["n"] <= 2 * n * n, calls["n"]
    texts = [
        '{"task":"T3"}', '{"task":"T3","inputs":3}', '{"task":"T3","inputs":2}', '{"task":"T23","inputs":30}',
        '{"task":"T24"}', '{"task":"T3x"}', '{"inputs":5}', '{"task":"T0","inputs":0}',
    ]
    for text in texts:
        assert lark_accepts(g, text) == oracle_valid(schema, json.loads(text)), text


@pytest.mark.parametrize("values", [[2, 2.0], [2.0, 2], [1, 1.0, 2.5], [[1], [1.0]], [{"a": 1.0}, {"a": 1}]])
def test_memo_keeps_spellings_apart_under_draft4(values):
    # draft 4 types "integer" by spelling: 2 is an integer, 2.0 is not, though they are equal
    scalar = not isinstance(values[0], (list, dict))
    schemas = [
        {"$schema": D4, "type": "integer", "enum": values} if scalar else
        {"$schema": D4, "enum": values, "items": {"type": "integer"}, "additionalProperties": {"type": "integer"}},
        {"$schema": D4, "anyOf": [{"enum": values}, {"type": "string"}], "not": {"type": "number", "minimum": 2.5}},
    ]
    for schema in schemas:
        g = grammar(schema)
        for text in ["2", "2.0", "1", "1.0", "2.5", "[1]", "[1.0]", '{"a":1}', '{"a":1.0}', '"s"']:
            assert lark_accepts(g, text) == oracle_valid(schema, json.loads(text)), (text, schema)
