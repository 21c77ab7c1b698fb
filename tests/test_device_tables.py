"""Device tables (on CPU tensors here) equal the matcher's masks and transitions."""

from __future__ import annotations

import random

import numpy as np
import pytest

import constrain
from tests import tokenizer_factory as tf
from tests.strategies import PATTERNS

torch = pytest.importorskip("torch")
from constrain.integrations.device_tables import DeviceDFATables  # noqa: E402

VOCAB = constrain.Vocabulary.from_tokenizer(tf.byte_level_bpe())


@pytest.mark.parametrize("pattern", PATTERNS)
def test_tables_agree_with_matchers(pattern):
    c = constrain.compile_regex(pattern, VOCAB)
    tables = DeviceDFATables(c, "cpu")
    rnd = random.Random(0)
    for _ in range(20):
        m = c.matcher()
        state = tables.initial_states(1)
        for _ in range(15):
            allowed = m.allowed_token_ids()
            table_allowed = np.flatnonzero(tables.masks(state)[0].numpy())
            assert allowed.tolist() == table_allowed.tolist()
            if not len(allowed):
                break
            t = int(rnd.choice(allowed))
            m.accept_token(t)
            state = tables.advance(state, torch.tensor([t]))
            if VOCAB.is_eos(t):
                assert bool(tables.is_finished(state)[0])
                # After EOS only EOS stays allowed.
                assert np.flatnonzero(tables.masks(state)[0].numpy()).tolist() == [t]
                break
            assert int(state[0]) == m.state


def test_limit_is_enforced():
    c = constrain.compile_regex(r"[a-z]{3}", VOCAB, limits=constrain.Limits(max_device_table_bytes=100))
    with pytest.raises(constrain.LimitExceededError, match="max_device_table_bytes"):
        DeviceDFATables(c, "cpu")


def test_grammar_constraints_are_refused():
    g = constrain.compile_grammar('start: "a"+', VOCAB)
    with pytest.raises(TypeError, match="regex"):
        DeviceDFATables(g, "cpu")
