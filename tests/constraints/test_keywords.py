"""compile_keywords: contains every included phrase, none of the excluded ones, valid UTF-8 only."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from constrain.constraints.keywords import compile_keywords, keywords_dfa
from constrain.errors import InputError, LimitExceededError
from constrain.limits import Limits
from tests.constraints._util import accepts_ids, random_walk, toy_vocab
from tests.strategies import random_segmentation

VOCAB = toy_vocab()
ALPHA = "abcAé"
PREFER = {t for t in range(VOCAB.size) if VOCAB.token_bytes(t) and set(VOCAB.token_bytes(t).decode("utf-8", "replace")) <= set(ALPHA)}
phrase = st.text(ALPHA, min_size=1, max_size=3)
problems = st.tuples(
    st.lists(phrase, max_size=3), st.lists(phrase, max_size=2), st.booleans()
)


def brute(text: str, inc, exc, case_sensitive: bool) -> bool:
    flags = 0 if case_sensitive else re.IGNORECASE
    return all(re.search(re.escape(p), text, flags) for p in inc) and not any(
        re.search(re.escape(p), text, flags) for p in exc
    )


def dfa_or_none(inc, exc, cs):
    try:
        return keywords_dfa(inc, exc, case_sensitive=cs)
    except InputError:
        # only possible when an excluded phrase occurs inside an included one
        flags = 0 if cs else re.IGNORECASE
        assert any(re.search(re.escape(e), i, flags) for e in exc for i in inc)
        return None


@given(problems, st.lists(st.text(ALPHA + " ", max_size=10), max_size=30))
def test_dfa_equals_brute_force(problem, texts):
    inc, exc, cs = problem
    dfa = dfa_or_none(inc, exc, cs)
    assume(dfa is not None)
    # texts built to contain the included phrases too, not only random ones
    rng = random.Random(len(texts))
    for t in texts + [t + "".join(rng.sample(inc, len(inc))) + t for t in texts]:
        assert dfa.matches(t.encode()) == brute(t, inc, exc, cs), t
    assert not dfa.matches(b"\xff" + "".join(inc).encode())  # invalid UTF-8 never


@given(problems, st.randoms(use_true_random=False))
@settings(max_examples=50)
def test_masked_walks_satisfy_the_phrases(problem, rng):
    inc, exc, cs = problem
    assume(dfa_or_none(inc, exc, cs) is not None)
    c = compile_keywords(inc, exc, vocab=VOCAB, case_sensitive=cs)
    ended_walks = 0
    for _ in range(4):
        text, _, ended = random_walk(c, rng, eos_bias=0.5, prefer=PREFER)
        if ended:
            ended_walks += 1
            assert brute(text.decode("utf-8"), inc, exc, cs), text
    ENDED.append(ended_walks)


ENDED: list[int] = []


def test_walks_mostly_end():
    """Guard against a vacuous walk property: most walks above must have reached EOS."""
    if ENDED:
        assert sum(ENDED) >= 2 * len(ENDED), ENDED


@given(problems, st.lists(st.text(ALPHA + " x", max_size=4), min_size=1, max_size=4), st.randoms(use_true_random=False))
@settings(max_examples=60)
def test_valid_texts_are_accepted_under_random_tokenizations(problem, fillers, rng):
    inc, exc, cs = problem
    assume(dfa_or_none(inc, exc, cs) is not None)
    parts = list(inc) + fillers
    rng.shuffle(parts)
    text = "".join(parts)
    assume(brute(text, inc, exc, cs))
    c = compile_keywords(inc, exc, vocab=VOCAB, case_sensitive=cs)
    for _ in range(3):
        assert accepts_ids(c, random_segmentation(text.encode(), VOCAB, rng))


def test_examples_and_errors():
    c = compile_keywords(["dog", "cat"], ["bad"], vocab=VOCAB)
    d = c.dfa
    assert d.matches(b"the cat saw a dog") and not d.matches(b"a bad dog and cat") and not d.matches(b"dog")
    ci = keywords_dfa(["dog"], case_sensitive=False)
    assert ci.matches("DoG".encode()) and keywords_dfa(["é"], case_sensitive=False).matches("É".encode())
    assert keywords_dfa().matches("anything ✓".encode()) and not keywords_dfa().matches(b"\xc3")
    with pytest.raises(InputError):
        keywords_dfa(["beta"], ["eta"])
    with pytest.raises(InputError):
        keywords_dfa([], [""])
    with pytest.raises(LimitExceededError):
        keywords_dfa([f"w{i}x" for i in range(12)], limits=Limits(max_dfa_states=1000))


def test_smollm2_vocabulary(smollm2_tokenizer, smollm2_vocab):
    c = compile_keywords(["dog", "park"], ["cat"], vocab=smollm2_vocab)
    ok = smollm2_tokenizer.encode("The dog ran to the park.", add_special_tokens=False)
    bad = smollm2_tokenizer.encode("The dog and the cat ran to the park.", add_special_tokens=False)
    assert accepts_ids(c, ok) and not accepts_ids(c, bad)
