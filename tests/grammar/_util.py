"""Shared helpers for grammar tests: toy vocabularies, feeding text, lark as the reference."""

from __future__ import annotations

import functools

import lark
import numpy as np
from lark.exceptions import LarkError

from constrain.grammar import compile_grammar
from constrain.kernels.bitmask import allocate_bitmask, allowed_token_ids
from constrain.vocab.vocabulary import Vocabulary

EOS = 0
MULTI = [
    "{", '":', '",', '"', "true", "false", "null", " ", "  ", "ab", "ba", "if", "ifa", "a+", "+a",
    "aa", "aaa", "1,", ", ", "()", "(a", "a)", "\n", "\n    ", "    ", "select", "SELECT", " from",
    "a b", "--", "ab ", '"a', '"}', "]}", "[1", "12", "0.", "e+", "+1", ";;", "xy", "x(", "\r\n",
]


@functools.lru_cache(maxsize=None)
def toy_vocab() -> Vocabulary:
    """EOS at id 0, every single byte, then multi-byte tokens (some duplicating bytes)."""
    tokens: list = [None] + [bytes([b]) for b in range(256)] + [t.encode() for t in MULTI]
    return Vocabulary.from_tokens(tokens, eos_token_ids=[EOS])


@functools.lru_cache(maxsize=None)
def compiled(grammar: str, start: str = "start"):
    return compile_grammar(grammar, toy_vocab(), start=start)


@functools.lru_cache(maxsize=None)
def lark_parser(grammar: str, start: str = "start") -> lark.Lark:
    return lark.Lark(grammar, parser="earley", lexer="dynamic_complete", start=start)


def lark_accepts(grammar: str, text: str, start: str = "start") -> bool:
    try:
        lark_parser(grammar, start).parse(text)
        return True
    except LarkError:
        return False


def byte_token(b: int) -> int:
    return 1 + b


def tokenize_bytes(data: bytes) -> list[int]:
    return [byte_token(b) for b in data]


def tokenize_greedy(data: bytes) -> list[int]:
    """Longest-match tokenization with the toy vocabulary (always possible: single bytes exist)."""
    trie = toy_vocab().trie
    out, pos = [], 0
    while pos < len(data):
        tid, n = trie.longest_token_prefix(data[pos:])
        out.append(tid)
        pos += n
    return out


def random_segmentation(data: bytes, rnd) -> list[int]:
    """A random split of ``data`` into toy-vocabulary tokens (multi-byte where one fits)."""
    vocab = toy_vocab()
    by_bytes = {vocab.token_bytes(i): i for i in range(1, vocab.size)}
    out, pos = [], 0
    while pos < len(data):
        options = [n for n in range(1, min(6, len(data) - pos) + 1) if data[pos : pos + n] in by_bytes]
        n = rnd.choice(options)
        out.append(by_bytes[data[pos : pos + n]])
        pos += n
    return out


def feed(constraint, tokens: list[int]):
    """Matcher after accepting ``tokens``; ``None`` if one is rejected."""
    m = constraint.matcher()
    for t in tokens:
        if not m.accept_token(t):
            return None
    return m


def allowed(matcher) -> np.ndarray:
    bm = allocate_bitmask(1, matcher.vocab_size)
    matcher.fill_bitmask(bm, 0)
    return allowed_token_ids(bm[0], matcher.vocab_size)


def classify(constraint, data: bytes, tokens: list[int]) -> str:
    """'accept', 'prefix' (valid but not complete) or 'reject' after feeding ``tokens``."""
    m = feed(constraint, tokens)
    if m is None:
        return "reject"
    return "accept" if m.is_accepting() else "prefix"
