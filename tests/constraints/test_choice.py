"""compile_choice: exactly one of the phrases, under any tokenization; dense and sparse forms agree."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constrain.constraints import SparseDFAConstraint, compile_choice
from constrain.constraints.choice import choice_dfa
from constrain.dfa_constraint import DFAConstraint
from constrain.errors import InputError
from constrain.regex.dfa import regex_to_dfa
from tests.constraints._util import accepts_ids, random_walk, toy_vocab
from tests.strategies import random_segmentation

VOCAB = toy_vocab()
ALPHABET = "abcdo gté日"
phrase_sets = st.lists(st.text(ALPHABET, max_size=8), min_size=1, max_size=12)


def both_forms(phrases):
    dense = compile_choice(phrases, VOCAB)
    sparse = compile_choice(phrases, VOCAB, dense_max_states=0)
    assert isinstance(dense, DFAConstraint) and isinstance(sparse, SparseDFAConstraint)
    return dense, sparse


def brute_bits(c, state) -> np.ndarray:
    allowed = np.zeros(VOCAB.size, dtype=bool)
    for t in range(VOCAB.size):
        allowed[t] = c.advance_token(state, t) is not None
    return allowed


def bits_to_bool(words) -> np.ndarray:
    return np.unpackbits(words.view(np.uint8), bitorder="little")[: VOCAB.size].astype(bool)


@given(phrase_sets, st.randoms(use_true_random=False))
def test_accepts_exactly_the_phrases(phrases, rng):
    wanted = {p.encode() for p in phrases}
    for c in both_forms(phrases):
        for p in wanted:
            ids = random_segmentation(p, VOCAB, rng)
            assert accepts_ids(c, ids), p
            # every proper prefix that is not itself a phrase must not allow EOS
            for k in range(len(p)):
                s = c.advance_bytes(c.initial_state(), p[:k])
                assert s is not None
                assert c.is_accepting(s) == (p[:k] in wanted)
        for _ in range(20):
            other = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 9))).encode()
            s = c.advance_bytes(c.initial_state(), other)
            assert (s is not None and c.is_accepting(s)) == (other in wanted)


@given(phrase_sets, st.randoms(use_true_random=False))
@settings(max_examples=40)
def test_masks_are_exact_and_walks_end_in_a_phrase(phrases, rng):
    wanted = {p.encode() for p in phrases}
    for c in both_forms(phrases):
        for _ in range(5):
            text, ids, ended = random_walk(c, rng)
            assert ended and text in wanted
            # masks along the walk equal the brute-force "advance succeeds" set
            state = c.initial_state()
            for t in ids[:3]:
                assert np.array_equal(bits_to_bool(c.token_bits(state)), brute_bits(c, state))
                state = c.advance_token(state, t)


@given(phrase_sets)
@settings(max_examples=60)
def test_minimal_like_the_regex_compiler(phrases):
    """The trie minimization yields the same number of states as Hopcroft on the alternation."""
    dfa = choice_dfa(phrases)
    ref = regex_to_dfa("(" + "|".join(re.escape(p) for p in phrases) + ")")
    assert dfa.n_states == ref.n_states
    dense = dfa.to_byte_dfa()
    for p in phrases:
        assert dense.matches(p.encode()) and ref.matches(p.encode())


def test_forced_bytes_and_forced_tokens():
    c = compile_choice(["Acme Widget 1", "Acme Widget 2"], VOCAB)
    assert c.forced_bytes(c.initial_state()) == b"Acme Widget "
    m = c.matcher()
    forced = m.forced_tokens()
    assert VOCAB.decode(forced) == b"Acme Widget "[: len(VOCAB.decode(forced))]
    assert forced


def test_empty_set_and_duplicates_and_types():
    with pytest.raises(InputError):
        compile_choice([], VOCAB)
    c = compile_choice(["x", "x", b"x"], VOCAB)
    assert c.dfa.n_states == 2
    c = compile_choice([""], VOCAB)
    assert c.is_accepting(c.initial_state())
    assert not c.token_bits(c.initial_state()).any()
    with pytest.raises(TypeError):
        compile_choice([1], VOCAB)
    with pytest.raises(TypeError):
        compile_choice(["x"], object())


def test_many_phrases_sparse():
    rng = random.Random(7)
    phrases = {
        f"{rng.choice(['Acme', 'Globex', 'Initech'])} {rng.choice(['Widget', 'Gadget', 'Sprocket'])} "
        f"{rng.randint(0, 99999):05d}"
        for _ in range(5000)
    }
    c = compile_choice(phrases, VOCAB, dense_max_states=100)
    assert isinstance(c, SparseDFAConstraint)
    for p in list(phrases)[:200]:
        assert accepts_ids(c, random_segmentation(p.encode(), VOCAB, rng))
    assert not accepts_ids(c, random_segmentation(b"Acme Widget 1234", VOCAB, rng))
    for _ in range(20):
        text, _, ended = random_walk(c, rng)
        assert ended and text.decode() in phrases


def test_smollm2_vocabulary(smollm2_tokenizer, smollm2_vocab):
    rng = random.Random(3)
    phrases = [f"Acme Widget {rng.randint(0, 99999)}" for _ in range(1000)] + ["naïve café", "日本語"]
    c = compile_choice(phrases, smollm2_vocab)
    for p in phrases[:100] + phrases[-2:]:
        ids = smollm2_tokenizer.encode(p, add_special_tokens=False)
        assert accepts_ids(c, ids), p
    assert not accepts_ids(c, smollm2_tokenizer.encode("Acme Widget", add_special_tokens=False))
    for _ in range(10):
        text, _, ended = random_walk(c, rng)
        assert ended and text.decode() in phrases
