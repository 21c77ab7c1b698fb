"""Helpers: lark (dynamic_complete) as the grammar reference, jsonschema as the validity oracle."""

from __future__ import annotations

import functools
import json

import jsonschema
import lark
from lark.exceptions import LarkError

from constrain.schema import schema_to_lark


@functools.lru_cache(maxsize=256)
def _parser(text: str) -> lark.Lark:
    return lark.Lark(text, parser="earley", lexer="dynamic_complete")


def grammar(schema, **opts) -> str:
    return schema_to_lark(schema, **opts)


def lark_accepts(grammar_text: str, text: str) -> bool:
    try:
        _parser(grammar_text).parse(text)
        return True
    except LarkError:
        return False


def oracle_valid(schema, instance) -> bool:
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema, format_checker=cls.FORMAT_CHECKER).is_valid(instance)


def spellings(instance, compact_only: bool = False) -> list[str]:
    compact = json.dumps(instance, ensure_ascii=False, separators=(",", ":"))
    return [compact] if compact_only else [json.dumps(instance, ensure_ascii=False), compact]


def check_table(schema, valid, invalid, oracle=True, **opts):
    """Every valid instance is accepted in both spellings, every invalid one rejected."""
    text = grammar(schema, **opts)
    for inst in valid:
        if oracle:
            assert oracle_valid(schema, inst), f"test data: jsonschema rejects {inst!r}"
        for s in spellings(inst, opts.get("whitespace") == "compact"):
            assert lark_accepts(text, s), f"valid instance rejected: {s}\n{text}"
    for inst in invalid:
        if oracle:
            assert not oracle_valid(schema, inst), f"test data: jsonschema accepts {inst!r}"
        for s in spellings(inst, opts.get("whitespace") == "compact"):
            assert not lark_accepts(text, s), f"invalid instance accepted: {s}\n{text}"
    return text
