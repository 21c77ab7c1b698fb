"""Speculative sampling has the distribution of masked sampling (chi-square against enumeration).

Toy setup (algorithms.md 4e): vocabulary {EOS, a, b, c, d, ab}, target and draft log-linear in the
last two tokens (draft = target + noise), constraint ``(a|b)(a|b|c){0,2}d?`` (finite language,
several tokenizations per string). The exact masked-sampling distribution over token sequences is
enumerated; speculative samples from the real loop (``speculative_decode``) must fit it (p > 1e-3),
and the known biased variant (truncate an *unmasked* stochastic draft at its first invalid token,
then sample that position from p') must not (p < 1e-6).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy import stats

from constrain.dfa_constraint import compile_regex
from constrain.speculative import (
    CallableLM,
    Chain,
    Drafter,
    ForcedDrafter,
    ModelDrafter,
    PromptLookupDrafter,
    speculative_decode,
)
from constrain.vocab.vocabulary import Vocabulary

V = 6
PROMPT = [1, 5, 2]  # "a" "ab" "b"
REGEX = r"(a|b)(a|b|c){0,2}d?"


@pytest.fixture(scope="module")
def toy():
    vocab = Vocabulary.from_tokens([None, "a", "b", "c", "d", "ab"], eos_token_ids=0)
    rng = np.random.default_rng(7)
    target_table = rng.normal(size=(V, V, V)) * 0.8
    draft_table = target_table + rng.normal(size=(V, V, V)) * 1.0
    draft_table[..., 3] += 1.5  # the draft likes "c", often where it is invalid (after "d", 3rd char)
    return dict(
        vocab=vocab,
        constraint=compile_regex(REGEX, vocab),
        target=lambda ids: target_table[ids[-2], ids[-1]],
        draft=lambda ids: draft_table[ids[-2], ids[-1]],
    )


def exact_distribution(toy, temperature=1.0) -> dict[tuple[int, ...], float]:
    """Masked sampling, enumerated: P(token sequence) (EOS not included in the key)."""
    vocab, out = toy["vocab"], {}

    def walk(matcher, seq, prob):
        allowed = matcher.allowed_token_ids()
        z = np.asarray(toy["target"](PROMPT + seq), dtype=np.float64) / temperature
        p = np.exp(z - z[allowed].max())
        mask = np.zeros(V, dtype=bool)
        mask[allowed] = True
        p = np.where(mask, p, 0.0)
        p /= p.sum()
        for t in allowed:
            if vocab.is_eos(int(t)):
                out[tuple(seq)] = out.get(tuple(seq), 0.0) + prob * p[t]
            else:
                m = matcher.copy()
                assert m.accept_token(int(t))
                walk(m, seq + [int(t)], prob * p[t])

    walk(toy["constraint"].matcher(), [], 1.0)
    assert abs(sum(out.values()) - 1.0) < 1e-12
    return out


class ArgmaxDrafter(Drafter):
    """Deterministic (one-hot q) drafts: argmax of the masked draft model."""

    name = "argmax"

    def __init__(self, fn):
        self.fn = fn

    def extend(self, builder) -> None:
        while builder.room:
            z = np.where(builder.current_mask(), self.fn(builder.context), -np.inf)
            if not builder.add(int(np.argmax(z)), self.name, 0.8):
                return


class TruncatedUnmaskedDrafter(Drafter):
    """THE BIASED VARIANT (spec 4b counterexample): sample from the *unmasked* draft q, cut the
    draft at the first invalid token; the loop then samples that position from p' (no residual)."""

    name = "biased"

    def __init__(self, fn):
        self.fn = fn

    def extend(self, builder) -> None:
        while builder.room:
            z = np.asarray(self.fn(builder.context), dtype=np.float64)
            q = np.exp(z - z.max())
            q /= q.sum()
            x = int(builder.rng.choice(V, p=q))
            if not builder.add(x, self.name, 0.8, q):  # an invalid x ends the draft here
                return


def sample_counts(toy, make_drafter, n, seed, temperature=1.0, max_draft=3):
    rng = np.random.default_rng(seed)
    counts: Counter = Counter()
    accepted = 0
    for _ in range(n):
        res = speculative_decode(
            CallableLM(toy["target"]), PROMPT, toy["constraint"].matcher(), toy["vocab"], make_drafter(),
            max_draft=max_draft, stop_threshold=1.0, max_new_tokens=8, temperature=temperature, rng=rng,
        )
        counts[tuple(res.token_ids)] += 1
        accepted += sum(res.speculative["accepted_lengths"])
    return counts, accepted


def chi_square_p(counts: Counter, exact: dict, n: int) -> float:
    assert set(counts) <= set(exact), set(counts) - set(exact)
    keys = sorted(exact, key=lambda k: -exact[k])
    obs, exp, pool_o, pool_e = [], [], 0.0, 0.0
    for k in keys:
        e = exact[k] * n
        if e < 5:
            pool_o += counts.get(k, 0)
            pool_e += e
        else:
            obs.append(counts.get(k, 0))
            exp.append(e)
    if pool_e > 0:
        obs.append(pool_o)
        exp.append(pool_e)
    return float(stats.chisquare(obs, exp).pvalue)


N = 12000


def test_language_is_enumerable_and_varied(toy):
    exact = exact_distribution(toy)
    assert 30 < len(exact) < 200
    assert max(exact.values()) < 0.3


@pytest.mark.parametrize(
    "name",
    ["no_draft", "masked_stochastic_model", "deterministic_chain"],
)
def test_speculative_sampling_matches_masked_sampling(toy, name):
    exact = exact_distribution(toy)
    make = {
        "no_draft": lambda: Chain([]),
        "masked_stochastic_model": lambda: ModelDrafter(toy["draft"]),
        "deterministic_chain": lambda: Chain([ForcedDrafter(), PromptLookupDrafter(), ArgmaxDrafter(toy["draft"])]),
    }[name]
    counts, accepted = sample_counts(toy, make, N, seed=1)
    p = chi_square_p(counts, exact, N)
    print(f"{name}: chi-square p = {p:.3g}, accepted drafts = {accepted}")
    assert p > 1e-3
    if name != "no_draft":
        assert accepted > N // 2  # the drafts were really used


def test_sampling_at_another_temperature(toy):
    exact = exact_distribution(toy, temperature=0.6)
    counts, _ = sample_counts(toy, lambda: ModelDrafter(toy["draft"]), N // 2, seed=2, temperature=0.6)
    p = chi_square_p(counts, exact, N // 2)
    print(f"T=0.6 masked stochastic draft: chi-square p = {p:.3g}")
    assert p > 1e-3


def test_truncating_an_unmasked_stochastic_draft_is_biased(toy):
    exact = exact_distribution(toy)
    counts, _ = sample_counts(toy, lambda: TruncatedUnmaskedDrafter(toy["draft"]), N, seed=3)
    p = chi_square_p(counts, exact, N)
    print(f"biased truncation: chi-square p = {p:.3g}")
    assert p < 1e-6
