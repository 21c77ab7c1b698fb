"""The spec's toy setup (docs algorithms.md §1f): the skewed binary grammar and a position-only LM."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from constrain.dfa_constraint import compile_regex
from constrain.vocab.vocabulary import Vocabulary

EOS = 2
P_EARLY = np.array([0.55, 0.40, 0.05])  # P(0), P(1), P(EOS) at positions 0-4
P_LATE = np.array([0.10, 0.10, 0.80])  # from position 5 on
SKEWED = "00000|1[01]{4}"  # G_sk = {00000} ∪ 1{0,1}^4: 17 strings


def toy_lm(prefix):
    return np.log(P_EARLY if len(prefix) < 5 else P_LATE)


def enumerate_language():
    return ["00000"] + ["1" + "".join(b) for b in itertools.product("01", repeat=4)]


def exact_q():
    """Q(w) ∝ P(w)·1[w ∈ L] and P(L), by enumeration."""
    p = {w: math.prod(P_EARLY[int(ch)] for ch in w) * P_LATE[EOS] for w in enumerate_language()}
    z = sum(p.values())
    return {w: v / z for w, v in p.items()}, z


def gcd_q():
    """The masked (GCD) sampler's exact distribution: at the root 0 vs 1 renormalised, then forced."""
    q = {"00000": P_EARLY[0] / (P_EARLY[0] + P_EARLY[1])}
    for w in enumerate_language()[1:]:
        q[w] = (1 - q["00000"]) * math.prod(P_EARLY[int(ch)] / (P_EARLY[0] + P_EARLY[1]) for ch in w[1:])
    return q


@pytest.fixture(scope="module")
def binary_vocab():
    return Vocabulary.from_tokens(["0", "1", None], eos_token_ids=[EOS])


@pytest.fixture(scope="module")
def skewed(binary_vocab):
    return compile_regex(SKEWED, binary_vocab)
