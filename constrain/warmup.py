"""Compile the mask kernels before the first real mask (:func:`warm_up`).

The kernels are numba functions compiled on first use and kept in numba's on-disk cache. A process
that meets a kernel (or a kernel's variant for other argument types) first inside a mask pays its
compilation there: tens to hundreds of milliseconds on a fresh install, and still the cache load
(milliseconds) afterwards. Some run only on rare paths: the tables growing past their first size,
a lexer built lazily, the runtime checks of ``uniqueItems`` and distinct keys, a large ``enum``.
:func:`warm_up` walks small documents through schemas that take those paths, with a mask before
every byte, on a small vocabulary of its own (the kernels' argument types do not depend on the
vocabulary), so the first masks of a real schema cost what later ones do.
"""

from __future__ import annotations

import json
import time

from constrain.vocab.vocabulary import Vocabulary

_MANY = {f"p{i}": ({"type": "string", "maxLength": 4} if i % 3 else {"type": "integer"}) for i in range(70)}
"""70 properties in schema order: every key position a new parser state and expected set, past
the first size of the parser-id, expected-set and chart tables (their growth and rehashing)."""

WARMUP_CASES: tuple[tuple[dict, object], ...] = (
    # the tables' growth; numbers, strings, nested arrays and objects; schema order
    ({"type": "object", "properties": _MANY, "required": sorted(_MANY)},
     {k: ("ab" if i % 3 else -i) for i, k in enumerate(_MANY)}),
    # a lazy (counting) lexer: a bound past the eager lexer's repetition limit; a pattern, formats
    ({"type": "object", "properties": {
        "text": {"type": "string", "maxLength": 300},
        "id": {"type": "string", "pattern": "^[a-f0-9]{24}$"},
        "when": {"type": "string", "format": "date-time"},
        "ratio": {"type": "number", "minimum": 0, "maximum": 1},
     }},
     {"text": "hello, world " * 3, "id": "0123456789abcdef01234567", "when": "2024-05-06T07:08:09Z",
      "ratio": 0.25}),
    # runtime checks: uniqueItems, distinct keys of a map; anyOf, enum, const, any order
    ({"type": "object", "properties": {
        "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "map": {"type": "object", "additionalProperties": {"type": "integer"}},
        "kind": {"anyOf": [{"enum": ["a", "b", "c"]}, {"const": 7}, {"type": "null"}]},
        "nested": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "boolean"}}}},
     }},
     {"tags": ["x", "y"], "map": {"k": 1, "l": 2}, "kind": "b", "nested": [{"x": True}, {}]}),
    # a large string enum (one catalog automaton)
    ({"type": "object", "properties": {"c": {"enum": [f"value-{i:04d}" for i in range(300)]}}},
     {"c": "value-0123"}),
)
"""(schema, a valid instance) pairs :func:`warm_up` walks."""

AMBIGUOUS_GRAMMAR = 'start: A "x" | B C "y" | A "y"\nA: "ab"\nB: "a"\nC: "b"\n'
"""A grammar whose lexings meet: ``ab`` is ``A`` or ``B C``, two parser states at one lexer state,
merged (the parser's union of states)."""

_MULTI = ['":', '",', '"}', '": "', ', "', '{"', '"]', "true", "null", "12", "0.", "ab", "value-", "-0", " ", "\n  "]


def warmup_vocab() -> Vocabulary:
    """EOS, every byte, and a few multi-byte tokens that cross JSON lexeme ends."""
    tokens: list = [None] + [bytes([b]) for b in range(256)] + [t.encode() for t in _MULTI]
    return Vocabulary.from_tokens(tokens, eos_token_ids=[0])


def warm_up(vocab: Vocabulary | None = None, *, any_order: bool = True) -> float:
    """Compile (or load from numba's cache) the kernels the masks use; the seconds it took.

    Compiles every schema of :data:`WARMUP_CASES` over ``vocab`` (default :func:`warmup_vocab`)
    and walks its instance byte by byte through a :class:`~constrain.matcher.Matcher`, filling the
    packed bitmask before every byte and asking for the forced tokens (fast-forward); with
    ``any_order`` also in any property order; then :data:`AMBIGUOUS_GRAMMAR`. Changes nothing but the process's compiled code
    (and numba's on-disk cache): the constraints are dropped.
    """
    from constrain.grammar import compile_grammar
    from constrain.kernels.bitmask import allocate_bitmask
    from constrain.schema import compile_json_schema

    start = time.perf_counter()
    vocab = vocab if vocab is not None else warmup_vocab()
    byte_token = {}
    for t in range(vocab.size):
        data = vocab.token_bytes(t)
        if data is not None and len(data) == 1:
            byte_token.setdefault(data[0], t)
    bitmask = allocate_bitmask(1, vocab.size)
    for options in ({}, {"property_order": "any"}) if any_order else ({},):
        for schema, instance in WARMUP_CASES:
            matcher = compile_json_schema(schema, vocab, **options).matcher()
            _walk(matcher, json.dumps(instance).encode(), byte_token, bitmask)
    _walk(compile_grammar(AMBIGUOUS_GRAMMAR, vocab).matcher(), b"aby", byte_token, bitmask)
    return time.perf_counter() - start


def _walk(matcher, data: bytes, byte_token: dict[int, int], bitmask) -> None:
    """Accept ``data`` byte by byte, filling the mask and asking for forced tokens before each."""
    for byte in data:
        matcher.fill_bitmask(bitmask, 0)
        matcher.forced_tokens()
        if not matcher.accept_token(byte_token[byte]):
            raise RuntimeError(f"warm-up text refused at byte {byte!r}: {data!r}")
    matcher.fill_bitmask(bitmask, 0)
    if not matcher.is_accepting():
        raise RuntimeError(f"warm-up text not accepted: {data!r}")
