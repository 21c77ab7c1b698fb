"""intersect: materialized products of DFAs and lazy products with grammars."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constrain import compile_grammar, compile_regex
from constrain.constraints.choice import compile_choice
from constrain.constraints.combine import (
    IntersectConstraint,
    LazyIntersectionWarning,
    LiveIntersectConstraint,
    intersect,
)
from constrain.constraints.keywords import compile_keywords
from constrain.dfa_constraint import DFAConstraint
from constrain.errors import InputError, LimitExceededError, UnsupportedFeatureError
from constrain.limits import Limits
from tests.constraints._util import accepts_ids, random_walk, toy_vocab
from tests.strategies import random_segmentation

VOCAB = toy_vocab()
LETTERS = {t for t in range(VOCAB.size) if VOCAB.token_bytes(t) and set(VOCAB.token_bytes(t)) <= set(b"dog ")}


def test_regex_and_keyword_materialized():
    c = intersect(compile_regex("[a-z ]{0,40}", VOCAB), compile_keywords(["dog"], vocab=VOCAB))
    assert isinstance(c, DFAConstraint)
    rng = random.Random(1)
    for _ in range(60):
        text, _, ended = random_walk(c, rng, prefer=LETTERS if rng.random() < 0.5 else None)
        assert ended  # bounded language: every walk ends
        assert re.fullmatch("[a-z ]{0,40}", text.decode()) and "dog" in text.decode()
    good = b"the quick brown fox saw a lazy dog"
    for _ in range(5):
        assert accepts_ids(c, random_segmentation(good, VOCAB, rng))
    assert not accepts_ids(c, random_segmentation(b"the quick brown fox saw a lazy cat", VOCAB, rng))
    # after 38 letters without "dog" there is no completion: the token is masked out up front
    s = c.advance_bytes(c.initial_state(), b"a" * 37)
    assert s is not None and c.advance_bytes(s, b"a") is None and c.advance_bytes(s, b"dog") is not None


@given(st.sampled_from(["[a-z ]{0,12}", "(ab|a)*c", "[abc]*", "a*b?c*", "(yes|no|maybe)"]),
       st.lists(st.text("abc", min_size=1, max_size=2), max_size=2),
       st.lists(st.text("abc", min_size=1, max_size=2), max_size=1),
       st.lists(st.text("abcy ", max_size=12), max_size=30))
@settings(max_examples=80)
def test_product_language_brute_force(pattern, inc, exc, texts):
    if any(e in i for e in exc for i in inc):
        return
    kw = compile_keywords(inc, exc, vocab=VOCAB)
    try:
        c = intersect(compile_regex(pattern, VOCAB), kw)
    except InputError:
        c = None
    for t in texts:
        want = bool(re.fullmatch(pattern, t)) and all(i in t for i in inc) and not any(e in t for e in exc)
        if c is None:
            assert not want
        else:
            assert c.dfa.matches(t.encode()) == want, t


@given(st.randoms(use_true_random=False))
@settings(max_examples=20)
def test_lazy_equals_materialized_when_no_dead_ends(rng):
    r, k = compile_regex("[a-z ]*", VOCAB), compile_keywords(["dog"], ["cat"], vocab=VOCAB)
    mat = intersect(r, k)
    lazy = intersect(r, k, materialize="never")
    assert isinstance(lazy, IntersectConstraint)
    text, ids, ended = random_walk(lazy, rng, max_steps=60, prefer=LETTERS)
    s_l, s_m = lazy.initial_state(), mat.initial_state()
    for t in ids:
        assert np.array_equal(lazy.token_bits(s_l), mat.token_bits(s_m))
        assert lazy.is_accepting(s_l) == mat.is_accepting(s_m)
        s_l, s_m = lazy.advance_token(s_l, t), mat.advance_token(s_m, t)
    if ended:
        assert "dog" in text.decode() and "cat" not in text.decode()


GRAMMAR = r"""
start: word (" " word)*
word: /[a-z]+/
"""


def test_grammar_and_keywords():
    g = compile_grammar(GRAMMAR, VOCAB)
    c = intersect(g, compile_keywords(["dog"], ["cat"], vocab=VOCAB))
    assert isinstance(c, LiveIntersectConstraint)  # exact: see test_live_intersect.py
    rng = random.Random(5)
    ended_count = 0
    for _ in range(30):
        text, _, ended = random_walk(c, rng, max_steps=80, prefer=LETTERS)
        if ended:
            ended_count += 1
            s = text.decode()
            assert re.fullmatch("[a-z]+( [a-z]+)*", s) and "dog" in s and "cat" not in s
    assert ended_count >= 10
    assert accepts_ids(c, random_segmentation(b"a dog barks", VOCAB, rng))
    assert not accepts_ids(c, random_segmentation(b"a dog  barks", VOCAB, rng))
    assert not accepts_ids(c, random_segmentation(b"a cat barks dog", VOCAB, rng))
    # three parts, one a regex: flattened, the two DFA parts materialized into one
    c3 = intersect(c, compile_regex("[a-z ]{0,20}", VOCAB))
    assert isinstance(c3, LiveIntersectConstraint) and len(c3.parts) == 2
    assert accepts_ids(c3, random_segmentation(b"dog", VOCAB, rng))
    assert not accepts_ids(c3, random_segmentation(b"dog " + b"a" * 20, VOCAB, rng))
    # never: the lazy product of all three
    lazy = intersect(c, compile_regex("[a-z ]{0,20}", VOCAB), materialize="never")
    assert type(lazy) is IntersectConstraint and len(lazy.parts) == 3
    with pytest.raises(UnsupportedFeatureError):
        intersect(g, compile_grammar(GRAMMAR, VOCAB), materialize="always")


def test_forced_bytes():
    ch = compile_choice(["Acme Widget 1", "Acme Widget 2"], VOCAB)
    lazy = intersect(ch, compile_regex("Acme.*", VOCAB), materialize="never")
    assert lazy.forced_bytes(lazy.initial_state()) == b"Acme Widget "
    lazy2 = intersect(compile_regex("ab(c|d)", VOCAB), compile_regex("abc|abd|xy", VOCAB), materialize="never")
    assert lazy2.forced_bytes(lazy2.initial_state()) == b"ab"
    clash = intersect(compile_regex("ab", VOCAB), compile_regex("xy", VOCAB), materialize="never")
    assert clash.forced_bytes(clash.initial_state()) == b""
    mat = intersect(ch, compile_regex("Acme.*", VOCAB))
    assert mat.forced_bytes(mat.initial_state()) == b"Acme Widget "


def test_errors():
    other = toy_vocab(["zzz"])
    with pytest.raises(ValueError):
        intersect(compile_regex("a", VOCAB), compile_regex("a", other))
    with pytest.raises(InputError):
        intersect(compile_regex("a", VOCAB), compile_regex("b", VOCAB))
    big = compile_regex("[a-z]{0,30}", VOCAB)
    kw = compile_keywords(["dog", "cow", "pig"], vocab=VOCAB)
    with pytest.raises(LimitExceededError):
        intersect(big, kw, materialize="always", limits=Limits(max_dfa_states=50))
    with pytest.warns(LazyIntersectionWarning):
        assert type(intersect(big, kw, limits=Limits(max_dfa_states=50))) is IntersectConstraint
    with pytest.raises(TypeError):
        intersect(big, "x")


def test_sparse_choice_lazy_and_smollm2(smollm2_tokenizer, smollm2_vocab):
    rng = random.Random(2)
    phrases = [f"Acme Widget {rng.randint(0, 99999)}" for _ in range(3000)]
    ch = compile_choice(phrases, smollm2_vocab, dense_max_states=10)
    c = intersect(ch, compile_regex("Acme Widget [0-4][0-9]*", smollm2_vocab))
    assert isinstance(c, DFAConstraint)
    for p in phrases[:50]:
        ids = smollm2_tokenizer.encode(p, add_special_tokens=False)
        assert accepts_ids(c, ids) == (p[12] in "01234"), p
    for _ in range(10):
        text, _, ended = random_walk(c, rng)
        assert ended and text.decode() in phrases and text.decode()[12] in "01234"
