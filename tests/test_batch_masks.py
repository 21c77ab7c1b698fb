"""fill_bitmasks fills every row exactly as the row's own matcher would."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import constrain
from constrain.batch import fill_bitmasks
from tests import tokenizer_factory as tf
from tests.strategies import PATTERNS

VOCAB = constrain.Vocabulary.from_tokenizer(tf.byte_level_bpe())
COMPILED = [constrain.compile_regex(p, VOCAB) for p in PATTERNS[:6]]


def random_matcher(rnd: random.Random) -> constrain.Matcher:
    m = rnd.choice(COMPILED).matcher()
    for _ in range(rnd.randrange(6)):
        allowed = [t for t in m.allowed_token_ids() if not VOCAB.is_eos(int(t))]
        if not allowed:
            break
        m.accept_token(int(rnd.choice(allowed)))
    return m


@given(st.integers(1, 12), st.randoms(use_true_random=False), st.booleans())
@settings(max_examples=40)
def test_batch_fill_equals_row_fill(batch, rnd, with_gaps):
    matchers = [random_matcher(rnd) for _ in range(batch)]
    if with_gaps:
        matchers = [None if rnd.random() < 0.3 else m for m in matchers]
    bm = constrain.allocate_bitmask(batch, VOCAB.size)
    bm[:] = 7  # untouched rows keep this
    fill_bitmasks(matchers, bm)
    for i, m in enumerate(matchers):
        if m is None:
            assert (bm[i] == 7).all()
        else:
            ref = constrain.allocate_bitmask(1, VOCAB.size)
            m.fill_bitmask(ref, 0)
            assert np.array_equal(bm[i], ref[0])
