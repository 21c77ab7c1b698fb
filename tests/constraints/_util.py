"""Toy vocabularies and masked random walks for the combinator tests."""

from __future__ import annotations

import random

import numpy as np

from constrain.vocab.vocabulary import Vocabulary

MULTI = [
    "ab", "abc", "dog", "do", "og", "cat", "the", " the", " dog", "  ", "ing", "Acme", " Widget",
    "12", "123", "45", "{\"", "\":", "\"}", "[1", ", ", "caf", "é", "ca", "xyz", "a b", "ba", "aa",
    "aaa", "é!", "日本", "語",
]


def toy_vocab(extra: list[str] | None = None) -> Vocabulary:
    """Every single byte, a few multi-byte tokens, and EOS at id 0 (and a duplicate text token)."""
    tokens: list[bytes | None] = [None]  # EOS
    tokens += [bytes([b]) for b in range(256)]
    seen = set(tokens)
    for t in MULTI + (extra or []):
        b = t.encode("utf-8")
        if b not in seen:
            seen.add(b)
            tokens.append(b)
    tokens.append(b"ab")  # two ids with the same bytes
    return Vocabulary(tokens, [0])


def random_walk(constraint, rng: random.Random, max_steps: int = 400, eos_bias: float = 0.3, prefer=None):
    """Sample allowed tokens until EOS; return (text bytes, token ids, ended_with_eos).

    Fails (AssertionError) if the mask is ever empty: a constraint must never strand a walk.
    ``prefer``: token ids picked (when allowed) nine times out of ten, to steer walks into text
    that matters to the constraint.
    """
    m = constraint.matcher()
    vocab = constraint.vocab
    ids = []
    for _ in range(max_steps):
        allowed = m.allowed_token_ids().tolist()
        assert allowed, f"empty mask after {vocab.decode(ids)!r}"
        eos = [t for t in allowed if vocab.is_eos(t)]
        if eos and (len(allowed) == len(eos) or rng.random() < eos_bias):
            t = eos[0]
        else:
            text_ids = [t for t in allowed if not vocab.is_eos(t)]
            preferred = [t for t in text_ids if t in prefer] if prefer else []
            t = rng.choice(preferred if preferred and rng.random() < 0.9 else text_ids)
        assert m.accept_token(t), t
        if vocab.is_eos(t):
            return vocab.decode(ids), ids, True
        ids.append(t)
    return vocab.decode(ids), ids, False


def accepts_ids(constraint, ids: list[int]) -> bool:
    """Whether the tokens are accepted one by one and EOS is allowed after them."""
    m = constraint.matcher()
    for t in ids:
        if not m.is_token_allowed(t) or not m.accept_token(t):
            return False
    return m.is_accepting()


def mask_bits(constraint, state) -> np.ndarray:
    """bool[V]: the non-EOS tokens ``constraint`` allows in ``state``."""
    words = constraint.token_bits(state)
    return np.unpackbits(words.view(np.uint8), bitorder="little")[: constraint.vocab.size].astype(bool)


def assert_same_masks(a, b, ids: list[int]) -> tuple:
    """Walk ``a`` and ``b`` along ``ids`` in lockstep, asserting equal masks and acceptance at every
    step (the final state too); return the two final states."""
    s_a, s_b = a.initial_state(), b.initial_state()
    for t in list(ids) + [None]:
        assert np.array_equal(mask_bits(a, s_a), mask_bits(b, s_b)), a.vocab.decode(ids)
        assert a.is_accepting(s_a) == b.is_accepting(s_b)
        if t is None:
            break
        s_a, s_b = a.advance_token(s_a, t), b.advance_token(s_b, t)
        assert s_a is not None and s_b is not None
    return s_a, s_b
