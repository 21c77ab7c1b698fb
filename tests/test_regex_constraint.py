"""compile_regex + Matcher (``\\d \\w \\s`` are ASCII, as with ``re.ASCII``): kernel vs reference, soundness, completeness, the matcher contract."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import constrain
from constrain import Vocabulary, allocate_bitmask, bitmask_to_bool
from constrain.kernels.reference import reference_dfa_token_mask
from tests import tokenizer_factory as tf
from tests.strategies import PATTERNS, SMOLLM2_MISSING_BYTES, random_segmentation


@pytest.fixture(scope="module")
def bpe_vocab():
    return Vocabulary.from_tokenizer(tf.byte_level_bpe())


_COMPILED: dict[tuple[int, str], constrain.DFAConstraint] = {}


def compiled(pattern: str, vocab: Vocabulary) -> constrain.DFAConstraint:
    key = (id(vocab), pattern)
    if key not in _COMPILED:
        _COMPILED[key] = constrain.compile_regex(pattern, vocab)
    return _COMPILED[key]


def mask_of(matcher) -> np.ndarray:
    bm = allocate_bitmask(1, matcher.vocab_size)
    matcher.fill_bitmask(bm, 0)
    return bm[0]


# ---------------------------------------------------------------- kernel vs reference
@given(st.sampled_from(PATTERNS), st.randoms(use_true_random=False))
def test_kernel_mask_equals_reference(bpe_vocab, pattern, rnd):
    c = compiled(pattern, bpe_vocab)
    state = rnd.randrange(c.dfa.n_states)
    c.clear_cache()
    m = c.matcher()
    m._states[-1] = state  # test-only: jump to an arbitrary (live) state
    expected = reference_dfa_token_mask(
        c.dfa.transitions, state, bpe_vocab.tokens, bpe_vocab.eos_token_ids, bool(c.dfa.accepting[state])
    )
    assert np.array_equal(mask_of(m), expected)
    assert np.array_equal(mask_of(m), expected)  # second call served from the cache


@pytest.mark.parametrize("pattern", PATTERNS[:6])
def test_kernel_mask_equals_reference_smollm2(smollm2_vocab, pattern):
    c = constrain.compile_regex(pattern, smollm2_vocab)
    for state in range(min(c.dfa.n_states, 6)):
        expected = reference_dfa_token_mask(
            c.dfa.transitions, state, smollm2_vocab.tokens, smollm2_vocab.eos_token_ids, bool(c.dfa.accepting[state])
        )
        m = c.matcher()
        m._states[-1] = state
        assert np.array_equal(mask_of(m), expected)


# ---------------------------------------------------------------- soundness
@given(st.sampled_from(PATTERNS), st.randoms(use_true_random=False))
@settings(max_examples=60)
def test_masked_random_walks_only_produce_matches(bpe_vocab, pattern, rnd):
    c = compiled(pattern, bpe_vocab)
    m = c.matcher()
    for _ in range(40):
        allowed = np.flatnonzero(bitmask_to_bool(mask_of(m), bpe_vocab.size))
        assert len(allowed), "stuck: no token allowed before the output could end"
        token = int(rnd.choice(allowed))
        assert m.accept_token(token)
        if bpe_vocab.is_eos(token):
            text = bpe_vocab.decode(m.consumed_tokens).decode("utf-8")
            assert re.fullmatch(pattern, text, re.ASCII), (pattern, text)
            return
    # Not ended: the prefix must still be extendable to a match (every DFA state is live).
    assert m.constraint.advance_bytes(m.constraint.initial_state(), bpe_vocab.decode(m.consumed_tokens)) is not None


# ---------------------------------------------------------------- completeness
@st.composite
def pattern_and_match(draw):
    pattern = draw(st.sampled_from(PATTERNS))
    text = draw(st.from_regex(pattern, fullmatch=True))
    return pattern, text


def _check_accepts_all_segmentations(vocab, pattern, text, rnd):
    c = compiled(pattern, vocab)
    data = text.encode("utf-8")
    for _ in range(3):
        ids = random_segmentation(data, vocab, rnd)
        assert ids is not None
        m = c.matcher()
        for t in ids:
            assert bitmask_to_bool(mask_of(m), vocab.size)[t], (pattern, text, ids)
            assert m.accept_token(t), (pattern, text, ids)
        assert m.is_accepting()
        assert m.accept_token(vocab.eos_token_ids[0])
        assert m.is_terminated()


@given(pattern_and_match(), st.randoms(use_true_random=False))
@settings(max_examples=80)
def test_every_segmentation_of_a_match_is_accepted(bpe_vocab, case, rnd):
    pattern, text = case
    if re.fullmatch(pattern, text, re.ASCII) is None:  # from_regex works with re semantics; keep only true matches
        return
    _check_accepts_all_segmentations(bpe_vocab, pattern, text, rnd)


@given(pattern_and_match(), st.randoms(use_true_random=False))
@settings(max_examples=40)
def test_every_segmentation_of_a_match_is_accepted_smollm2(smollm2_vocab, case, rnd):
    pattern, text = case
    if re.fullmatch(pattern, text, re.ASCII) is None or set(text.encode()) & SMOLLM2_MISSING_BYTES:
        return
    _check_accepts_all_segmentations(smollm2_vocab, pattern, text, rnd)


@given(st.sampled_from(PATTERNS), st.text(max_size=12))
def test_non_matches_never_end_accepting(bpe_vocab, pattern, text):
    c = compiled(pattern, bpe_vocab)
    m = c.matcher()
    ids = random_segmentation(text.encode(), bpe_vocab, random.Random(0))
    ok = m.accept_tokens(ids) == len(ids)
    if ok and m.is_accepting():
        assert re.fullmatch(pattern, text, re.ASCII)
    if re.fullmatch(pattern, text, re.ASCII) is None:
        assert not (ok and m.accept_token(bpe_vocab.eos_token_ids[0]))


# ---------------------------------------------------------------- the matcher contract
def test_matcher_contract(bpe_vocab):
    c = constrain.compile_regex(r"ab|abc", bpe_vocab)
    ids = random_segmentation(b"abc", bpe_vocab, random.Random(1))
    tok_a = random_segmentation(b"a", bpe_vocab, random.Random(0))[0]
    tok_x = random_segmentation(b"x", bpe_vocab, random.Random(0))[0]
    eos = bpe_vocab.eos_token_ids[0]
    m = c.matcher()
    assert not m.is_accepting()
    assert not m.accept_token(tok_x) and m.consumed_tokens == []  # rejection leaves state unchanged
    assert not m.accept_token(eos)
    assert m.accept_token(tok_a)
    fork = m.copy()
    assert m.accept_tokens(ids[1:] if ids[0] == tok_a else []) >= 0
    m.reset()
    assert m.consumed_tokens == [] and m.state == c.initial_state()
    assert m.accept_tokens(ids) == len(ids) and m.is_accepting()
    assert m.accept_token(eos) and m.is_terminated()
    # After EOS only EOS stays allowed.
    allowed = np.flatnonzero(bitmask_to_bool(mask_of(m), bpe_vocab.size))
    assert allowed.tolist() == [eos]
    assert not m.accept_token(tok_a)
    m.rollback(1)
    assert not m.is_terminated() and m.is_accepting()
    m.rollback(len(ids))
    assert m.state == c.initial_state()
    with pytest.raises(ValueError, match="cannot roll back"):
        m.rollback(1)
    assert fork.consumed_tokens == [tok_a]  # the copy was not affected


def test_fill_bitmask_writes_only_its_row(bpe_vocab):
    c = constrain.compile_regex(r"\d+", bpe_vocab)
    bm = allocate_bitmask(3, bpe_vocab.size)
    bm[0] = -1
    bm[2] = -1
    c.matcher().fill_bitmask(bm, row=1)
    assert (bm[0] == -1).all() and (bm[2] == -1).all()
    assert bitmask_to_bool(bm[1], bpe_vocab.size).sum() > 0
    with pytest.raises(ValueError, match="must be int32"):
        c.matcher().fill_bitmask(np.zeros((1, 3), np.int64))


def test_ids_beyond_the_tokenizer_are_never_allowed():
    tok = tf.byte_level_bpe()
    vocab = Vocabulary.from_tokenizer(tok, vocab_size=tok.get_vocab_size() + 40)
    m = constrain.compile_regex(r".*", vocab).matcher()
    allowed = bitmask_to_bool(mask_of(m), vocab.size)
    assert not allowed[tok.get_vocab_size():].any()
    assert not m.accept_token(vocab.size - 1)


def test_forced_tokens_follow_the_forced_text(smollm2_vocab):
    c = constrain.compile_regex(r'\{"name": "[a-z]+"\}', smollm2_vocab)
    m = c.matcher()
    forced = m.forced_tokens()
    text = smollm2_vocab.decode(forced)
    assert forced and b'{"name": "'.startswith(text)
    assert m.accept_tokens(forced) == len(forced)
    # The quote before the name can merge with letters into one token: forcing stops before it.
    assert text != b'{"name": "'
    m2 = constrain.compile_regex(r"[a-z]+", smollm2_vocab).matcher()
    assert m2.forced_tokens() == []


def test_regex_errors_name_the_position(bpe_vocab):
    with pytest.raises(constrain.UnsupportedFeatureError, match=r"regex at 2.*lookahead"):
        constrain.compile_regex(r"ab(?=c)", bpe_vocab)
    with pytest.raises(constrain.RegexSyntaxError, match=r"regex at \d+"):
        constrain.compile_regex(r"a(b", bpe_vocab)
    with pytest.raises(constrain.LimitExceededError, match="max_dfa_states"):
        constrain.compile_regex(r"(a|b)*a(a|b){40}", bpe_vocab)
    with pytest.raises(TypeError, match="constrain.Vocabulary"):
        constrain.compile_regex(r"a", object())


def test_tokens_the_vocabulary_cannot_finish_are_never_allowed():
    # No token spells "c", "h" or "ch": after " cat" the word " catch" cannot be finished.
    vocab = Vocabulary.from_tokens([None, " cat", " catch", " dog", ".", "x"], eos_token_ids=0)
    c = constrain.compile_regex(r"( (catch|dog)){1,3}\.", vocab)
    m = c.matcher()
    allowed = set(m.allowed_token_ids().tolist())
    assert allowed == {2, 3}  # " catch", " dog" — not " cat"
    assert not m.accept_token(1)
    # Every masked random walk finishes.
    rnd = random.Random(0)
    for _ in range(50):
        m.reset()
        while True:
            ids = m.allowed_token_ids()
            assert len(ids), "stuck"
            t = int(rnd.choice(ids))
            m.accept_token(t)
            if vocab.is_eos(t):
                break
    with pytest.raises(constrain.VocabularyError, match="no sequence of this vocabulary"):
        constrain.compile_regex(r"ch", vocab)


@given(st.sampled_from(PATTERNS), st.randoms(use_true_random=False))
@settings(max_examples=30)
def test_masked_walks_never_get_stuck_with_a_gappy_vocabulary(pattern, rnd):
    # A vocabulary with most single bytes missing: multi-byte tokens must carry the walk.
    keep = [bytes([b]) for b in b"0123456789-.@ ()"] + [b"ab", b"abc", b"c", b"ca", b"y", b"es", b"n", b"o",
            b"true", b"false", b"null", b'"', b'\\"', "é".encode(), "日本語".encode(), b"X", b"Xa"]
    vocab = Vocabulary.from_tokens([None] + keep, eos_token_ids=0)
    try:
        c = constrain.compile_regex(pattern, vocab)
    except constrain.VocabularyError:
        return
    m = c.matcher()
    for _ in range(30):
        ids = m.allowed_token_ids()
        assert len(ids), (pattern, vocab.decode(m.consumed_tokens))
        t = int(rnd.choice(ids))
        m.accept_token(t)
        if vocab.is_eos(t):
            assert re.fullmatch(pattern, vocab.decode(m.consumed_tokens).decode(), re.ASCII)
            break
