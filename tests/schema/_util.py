"""Helpers: lark (dynamic_complete) as the grammar reference, jsonschema as the validity oracle."""

from __future__ import annotations

import functools
import json

import jsonschema
import lark
from lark.exceptions import LarkError

from constrain.kernels.bitmask import allocate_bitmask, allowed_token_ids
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


def segment_tokens(vocab, data: bytes, rnd=None, max_len: int = 6) -> list[int]:
    """Token ids spelling ``data``: greedy longest tokens, or (``rnd``) random tokens of at most
    ``max_len`` bytes (the vocabulary must hold every single byte)."""
    if rnd is None:
        out, pos = [], 0
        while pos < len(data):
            tid, n = vocab.trie.longest_token_prefix(data[pos:])
            out.append(tid)
            pos += n
        return out
    by_bytes = {vocab.token_bytes(i): i for i in range(vocab.size) if vocab.token_bytes(i)}
    out, pos = [], 0
    while pos < len(data):
        n = rnd.choice([k for k in range(1, min(max_len, len(data) - pos) + 1) if data[pos:pos + k] in by_bytes])
        out.append(by_bytes[data[pos:pos + n]])
        pos += n
    return out


def run_tokens(constraint, tokens, eos: int = 0) -> str:
    """'accept' / 'prefix' / 'reject'; checks that the mask agrees with accept_token at every step
    and that EOS is allowed exactly where the output may end."""
    m = constraint.matcher()
    bm = allocate_bitmask(1, m.vocab_size)
    for t in tokens:
        m.fill_bitmask(bm, 0)
        allowed = set(allowed_token_ids(bm[0], m.vocab_size).tolist())
        ok = m.accept_token(t)
        assert ok == (t in allowed), f"mask says {t in allowed}, accept_token says {ok} for {constraint.vocab.token_bytes(t)!r}"
        if not ok:
            return "reject"
    m.fill_bitmask(bm, 0)
    assert (eos in set(allowed_token_ids(bm[0], m.vocab_size).tolist())) == m.is_accepting()
    return "accept" if m.is_accepting() else "prefix"


def masked_walk(constraint, rnd, favoured: set, eos: int = 0, steps: int = 400, p_favoured: float = 0.9,
                p_stop: float = 0.3, long: int = 200):
    """A random walk through the masks that prefers the ``favoured`` token texts (the ones that
    provoke the run-time checks); asserts the mask is never empty. Past ``long`` bytes it heads
    for closing tokens. Returns ``(text, matcher)``, or ``None`` when ``steps`` ran out first."""
    vocab = constraint.vocab
    m = constraint.matcher()
    bm = allocate_bitmask(1, m.vocab_size)
    out = b""
    for _ in range(steps):
        m.fill_bitmask(bm, 0)
        allowed = allowed_token_ids(bm[0], m.vocab_size).tolist()
        assert allowed, f"stalled after {out!r}"
        if eos in allowed and (len(allowed) == 1 or rnd.random() < p_stop or len(out) > long):
            return out, m
        nice = [t for t in allowed if t != eos and vocab.token_bytes(t) in favoured]
        pool = nice if nice and rnd.random() < p_favoured else [t for t in allowed if t != eos]
        if len(out) > long:
            pool = [t for t in allowed if t != eos and vocab.token_bytes(t)[:1] in (b"}", b"]", b'"')] or pool
        t = rnd.choice(pool)
        assert m.accept_token(t)
        out += vocab.token_bytes(t)
    return None
