"""max_length / min_length: walks end accepting within the budget, never stranded; masks exact."""

from __future__ import annotations

import random
import re
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constrain import compile_grammar, compile_regex, intersect
from constrain.constraints.choice import compile_choice
from constrain.constraints.length import LengthConstraint, max_length, min_length
from constrain.errors import InputError, LimitExceededError, UnsupportedFeatureError
from constrain.limits import Limits
from tests.constraints._util import accepts_ids, random_walk, toy_vocab
from tests.strategies import random_segmentation

VOCAB = toy_vocab()
PATTERNS = [
    "[a-z ]{0,40}",
    "[a-z]+( [a-z]+)*",
    r'\{"a": \[(1|2)(, (1|2))*\]\}',
    "(café|naïve|日本語)+",
    "(ab|a)*c",
    "[0-9]{3,8}",
]
_compiled: dict = {}


def regex(p):
    if p not in _compiled:
        _compiled[p] = compile_regex(p, VOCAB)
    return _compiled[p]


def words(text: bytes) -> int:
    return len(re.findall(rb"[^ \t\n\r\x0b\x0c]+", text))


def min_tokens_to_accept(inner) -> list[float]:
    """Brute force: fewest tokens from each DFA state to acceptance (BFS over advance_token)."""
    n = inner.dfa.n_states
    preds = [[] for _ in range(n)]
    for s in range(n):
        for t in range(VOCAB.size):
            s2 = inner.advance_token(s, t)
            if s2 is not None:
                preds[s2].append(s)
    dist = [float("inf")] * n
    q = deque()
    for s in range(n):
        if inner.dfa.accepting[s]:
            dist[s] = 0
            q.append(s)
    while q:
        s = q.popleft()
        for p in preds[s]:
            if dist[p] == float("inf"):
                dist[p] = dist[s] + 1
                q.append(p)
    return dist


@given(st.sampled_from(PATTERNS), st.integers(0, 12), st.randoms(use_true_random=False))
@settings(max_examples=60)
def test_max_tokens_walks_end_within_budget(pattern, budget, rng):
    inner = regex(pattern)
    try:
        c = max_length(inner, max_tokens=budget)
    except InputError:
        assert min_tokens_to_accept(inner)[0] > budget
        return
    for _ in range(4):
        text, ids, ended = random_walk(c, rng, eos_bias=0.05)
        assert ended and len(ids) <= budget
        assert re.fullmatch(pattern, text.decode())


@given(st.sampled_from(PATTERNS), st.integers(0, 12), st.randoms(use_true_random=False))
@settings(max_examples=60)
def test_max_chars_and_words_walks(pattern, budget, rng):
    inner = regex(pattern)
    for kw in ({"max_chars": budget}, {"max_words": budget // 4}, {"max_chars": budget + 3, "max_tokens": budget // 2 + 1}):
        try:
            c = max_length(inner, **kw)
        except InputError:
            continue
        for _ in range(3):
            text, ids, ended = random_walk(c, rng, eos_bias=0.05)
            if not ended:  # words bound no byte count: "(ab|a)*c" may grow "aaaa..." forever (never stranded)
                assert list(kw) == ["max_words"]
                continue
            assert re.fullmatch(pattern, text.decode())
            assert len(text.decode()) <= kw.get("max_chars", 10**9)
            assert words(text) <= kw.get("max_words", 10**9)
            assert len(ids) <= kw.get("max_tokens", 10**9)


@given(st.sampled_from(PATTERNS[:4]), st.integers(0, 8), st.randoms(use_true_random=False))
@settings(max_examples=25)
def test_max_tokens_mask_is_exact(pattern, budget, rng):
    """A token is allowed iff the inner allows it and acceptance stays reachable within the budget."""
    inner = regex(pattern)
    dist = min_tokens_to_accept(inner)
    if dist[0] > budget:
        return
    c = max_length(inner, max_tokens=budget)
    _, ids, _ = random_walk(c, rng, eos_bias=0.1)
    state, used = c.initial_state(), 0
    for t in ids + [None]:
        bits = np.unpackbits(c.token_bits(state).view(np.uint8), bitorder="little")[: VOCAB.size]
        for u in range(VOCAB.size):
            s2 = inner.advance_token(state[0], u)
            want = s2 is not None and used + 1 + dist[s2] <= budget
            assert bool(bits[u]) == want, (u, VOCAB.token_bytes(u))
        if t is None:
            break
        state, used = c.advance_token(state, t), used + 1


@given(st.sampled_from(PATTERNS[:2] + PATTERNS[3:4]), st.integers(0, 10), st.integers(0, 3), st.randoms(use_true_random=False))
@settings(max_examples=40)
def test_min_length(pattern, min_chars, min_words, rng):
    try:
        c = min_length(regex(pattern), min_chars=min_chars, min_words=min_words)
    except InputError:
        assert " " not in pattern and min_words >= 2  # one word at most: infeasible
        return
    for _ in range(3):
        text, ids, ended = random_walk(c, rng, eos_bias=0.3, max_steps=200)
        if ended:
            assert len(text.decode()) >= min_chars and words(text) >= min_words
    both = max_length(c, max_chars=min_chars + 8)
    assert isinstance(both, LengthConstraint) and both.bounds.min_chars == min_chars
    for _ in range(3):
        text, ids, ended = random_walk(both, rng, eos_bias=0.3)
        assert ended and min_chars <= len(text.decode()) <= min_chars + 8


def test_json_like_budget_forces_closing():
    inner = regex(r'\{"a": \[(1|2)(, (1|2))*\]\}')
    prefix = [VOCAB.trie.longest_token_prefix(b)[0] for b in (b'{"', b"a", b'":', b" ", b"[", b"1")]
    assert VOCAB.decode(prefix) == b'{"a": [1'
    c = max_length(inner, max_tokens=len(prefix) + 2)  # "]" then "}": exactly two tokens left
    m = c.matcher()
    assert m.accept_tokens(prefix) == len(prefix)
    allowed = m.allowed_token_ids().tolist()
    assert [VOCAB.token_bytes(t) for t in allowed] == [b"]"]
    assert m.accept_token(allowed[0])
    assert [VOCAB.token_bytes(t) for t in m.allowed_token_ids()] == [b"}"]
    # ", " "2" "]" "}" needs four tokens
    c2 = max_length(inner, max_tokens=len(prefix) + 4)
    m2 = c2.matcher()
    m2.accept_tokens(prefix)
    assert {VOCAB.token_bytes(t) for t in m2.allowed_token_ids()} == {b", ", b"]"}
    # "," " " "2" "]" "}" needs five
    c5 = max_length(inner, max_tokens=len(prefix) + 5)
    m5 = c5.matcher()
    m5.accept_tokens(prefix)
    assert {VOCAB.token_bytes(t) for t in m5.allowed_token_ids()} == {b", ", b",", b"]"}
    c3 = max_length(inner, max_tokens=len(prefix) + 3)
    m3 = c3.matcher()
    m3.accept_tokens(prefix)
    assert {VOCAB.token_bytes(t) for t in m3.allowed_token_ids()} == {b"]"}


def test_errors_and_unsupported():
    g = compile_grammar('start: "a"+\n', VOCAB)
    lazy = intersect(g, regex("[a-z ]{0,40}"), materialize="never")  # no completion analysis
    with pytest.raises(UnsupportedFeatureError):
        max_length(lazy, max_tokens=3)
    live = intersect(g, regex("[a-z ]{0,40}"))  # exact: bounded like a grammar (test_live_intersect.py)
    assert isinstance(max_length(live, max_tokens=3).inner, type(live))
    assert isinstance(max_length(g, max_tokens=3), LengthConstraint)  # grammars: test_length_grammar.py
    with pytest.raises(InputError):
        max_length(regex("[0-9]{3,8}"), max_chars=2)
    with pytest.raises(ValueError):
        max_length(regex("[0-9]{3,8}"), max_chars=-1)
    with pytest.raises(LimitExceededError):
        min_length(regex("[a-z ]{0,40}"), min_chars=30, limits=Limits(max_dfa_states=100))


def test_choice_inner_and_raw_bytes():
    c = max_length(compile_choice(["yes", "no", "maybe not"], VOCAB), max_chars=3)
    m = c.matcher()
    assert not m.accept_bytes(b"mayb")
    assert m.accept_bytes(b"ye") and m.accept_bytes(b"s") and m.is_accepting()
    rng = random.Random(0)
    for _ in range(10):
        text, _, ended = random_walk(c, rng)
        assert ended and text in (b"yes", b"no")
    assert not accepts_ids(c, random_segmentation(b"maybe not", VOCAB, rng))


def test_smollm2_vocabulary(smollm2_tokenizer, smollm2_vocab):
    inner = compile_regex("[a-z ]{0,60}", smollm2_vocab)
    c = max_length(inner, max_tokens=6)
    rng = random.Random(4)
    for _ in range(10):
        text, ids, ended = random_walk(c, rng, eos_bias=0.02)
        assert ended and len(ids) <= 6 and re.fullmatch("[a-z ]{0,60}", text.decode())
    ok = smollm2_tokenizer.encode("the cat sat", add_special_tokens=False)
    assert len(ok) <= 6 and accepts_ids(c, ok)
