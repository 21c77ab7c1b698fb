"""fill_bitmasks fills every row exactly as the row's own matcher would."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import constrain
import constrain.batch as batch_module
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


@given(st.integers(1, 40), st.randoms(use_true_random=False), st.booleans())
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


class _CountingPool(ThreadPoolExecutor):
    """A pool that counts the chunks handed to its workers."""

    def __init__(self, workers: int):
        super().__init__(max_workers=workers)
        self.submitted = 0

    def submit(self, fn, /, *args, **kwargs):
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


@pytest.mark.parametrize(("rows", "workers", "handed_out"), [(8, 4, 0), (15, 4, 0), (16, 4, 1), (24, 3, 2), (40, 4, 3)])
def test_workers_get_chunks_of_at_least_min_rows(rows, workers, handed_out):
    """Small batches stay on the calling thread (a worker's wake-up costs more than a few rows);
    larger ones are split into at most one chunk per worker, the caller filling one; every row is
    filled as its own matcher fills it."""
    rnd = random.Random(rows)
    matchers = [random_matcher(rnd) for _ in range(rows)]
    bm = constrain.allocate_bitmask(rows, VOCAB.size)
    with _CountingPool(workers) as pool:
        fill_bitmasks(matchers, bm, executor=pool)
    assert pool.submitted == handed_out
    for i, m in enumerate(matchers):
        ref = constrain.allocate_bitmask(1, VOCAB.size)
        m.fill_bitmask(ref, 0)
        assert np.array_equal(bm[i], ref[0])


def test_the_shared_pool_is_bounded(monkeypatch):
    monkeypatch.setattr(batch_module, "_POOL", None)
    monkeypatch.setattr(batch_module.os, "cpu_count", lambda: 64)
    pool = batch_module.mask_pool()
    try:
        assert pool._max_workers == batch_module.MAX_MASK_WORKERS
    finally:
        pool.shutdown()
    monkeypatch.setattr(batch_module, "_POOL", None)
    monkeypatch.setattr(batch_module.os, "cpu_count", lambda: 1)
    pool = batch_module.mask_pool()
    try:
        assert pool._max_workers == 2  # the decode loop's fill runs on a worker that may hand out a chunk
    finally:
        pool.shutdown()
