"""ASAp against the exact conditional distribution on the spec's toy setup (algorithms.md §1f).

All toy tests run without torch; fixed seeds; the statistical thresholds use p = 1e-3.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from constrain.dfa_constraint import compile_regex
from constrain.sampling import AlignedSampler, MaskedSampler, NoValidSampleError, SampleTrie
from constrain.sampling.trie import logsumexp
from constrain.vocab.vocabulary import Vocabulary

from .conftest import EOS, P_EARLY, P_LATE, exact_q, gcd_q, toy_lm
from .stats import chi2_sf, chi_square_test, kl_empirical

SEEDS = range(10)


class _RenormalizedASAp(AlignedSampler):
    """The known-wrong variant: P renormalised over the allowed tokens in the EFG update."""

    def _update_node(self, node):
        _renormalized_update(self.trie, node)


def _renormalized_update(trie: SampleTrie, node: int) -> None:
    lp = trie.dist_logp[trie.slots(node)]
    trie.log_efg[node] = logsumexp(lp - logsumexp(lp) + trie.child_log_efg(node))


def _window_kls(cls, vocab, constraint, seed, checkpoints=(400, 1600, 6400)):
    """KL(empirical of samples N/2..N ‖ Q) at each checkpoint N, from one run."""
    q, _ = exact_q()
    out = cls(toy_lm, vocab, constraint, seed=seed).sample(max(checkpoints))
    return [kl_empirical(out[n // 2 : n], q) for n in checkpoints]


# ---------------------------------------------------------------------------- reference values
def test_reference_values_of_the_spec():
    q, z = exact_q()
    g = gcd_q()
    assert len(q) == 17
    assert z == pytest.approx(0.3009, abs=1e-4)
    assert q["00000"] == pytest.approx(0.134, abs=1e-3)
    assert g["00000"] == pytest.approx(0.579, abs=1e-3)
    assert sum(g[w] * math.log(g[w] / q[w]) for w in q) == pytest.approx(0.544, abs=1e-3)


# ---------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("seed", range(5))
def test_exact_after_every_string_was_seen(binary_vocab, skewed, seed):
    q, z = exact_q()
    s = AlignedSampler(toy_lm, binary_vocab, skewed, seed=seed)
    seen: set[str] = set()
    n = 0
    while len(seen) < len(q):
        seen.update(s.sample(1))
        n += 1
        assert n < 2000
    for w, qw in q.items():
        ids = [int(ch) for ch in w]
        assert abs(math.exp(s.next_sample_logprob(ids)) - qw) < 1e-12
    assert abs(math.exp(s.log_efg_root) - z) < 1e-12
    assert s.next_sample_logprob([0, 0, 0]) == float("-inf")  # not in the language


def test_masked_sampler_is_exactly_gcd(binary_vocab, skewed):
    s = MaskedSampler(toy_lm, binary_vocab, skewed, seed=0)
    s.sample(50)
    for w, gw in gcd_q().items():
        assert math.exp(s.next_sample_logprob([int(ch) for ch in w])) == pytest.approx(gw, abs=1e-12)


def _exact_c(trie, node):
    """Exact expected future grammaticality c(w) of a trie node's prefix in the toy setup."""
    if trie.is_eos_leaf(node):
        return 1.0
    prefix = "".join(str(t) for t in trie.prefix(node))
    return sum(
        math.prod(P_EARLY[int(ch)] for ch in w[len(prefix) :]) * P_LATE[EOS]
        for w in exact_q()[0]
        if w.startswith(prefix)
    )


def test_invariants_after_every_sample(binary_vocab, skewed):
    s = AlignedSampler(toy_lm, binary_vocab, skewed, seed=3)
    prev = np.zeros(0)
    for _ in range(150):
        s.sample(1)
        trie = s.trie
        efg = np.exp(trie.log_efg[: trie.n_nodes])
        for node in range(trie.n_nodes):
            assert efg[node] >= _exact_c(trie, node) - 1e-12  # c~ over-approximates c
            if trie.is_eos_leaf(node):
                assert trie.log_efg[node] == 0.0
        assert np.all(efg[: len(prev)] <= prev + 1e-15)  # non-increasing
        prev = efg
    assert efg[0] == pytest.approx(exact_q()[1], abs=1e-12)


# ---------------------------------------------------------------------------- convergence
def test_kl_shrinks_for_asap_and_masked_stays_biased(binary_vocab, skewed):
    asap = np.array([_window_kls(AlignedSampler, binary_vocab, skewed, s) for s in SEEDS])
    med = np.median(asap, axis=0)
    assert med[0] <= 0.06 and med[1] <= 0.012 and med[2] <= 0.004, med
    assert med[0] > med[1] > med[2]
    masked = np.array([_window_kls(MaskedSampler, binary_vocab, skewed, s, (400, 1600, 3200)) for s in SEEDS[:5]])
    assert np.all(np.median(masked, axis=0) > 0.4), masked  # GCD's KL is 0.544


def test_kl_of_all_samples_below_001_by_a_few_thousand(binary_vocab, skewed):
    q, _ = exact_q()
    out = AlignedSampler(toy_lm, binary_vocab, skewed, seed=11).sample(4000)
    kls = [kl_empirical(out[:n], q) for n in (100, 1000, 4000)]
    assert kls[0] > kls[1] > kls[2] and kls[2] < 0.01, kls
    masked = MaskedSampler(toy_lm, binary_vocab, skewed, seed=11).sample(4000)
    assert kl_empirical(masked, q) > 0.4


def test_chi_square_passes_asap_and_rejects_masked(binary_vocab, skewed):
    q, _ = exact_q()
    # ASAp is exact once every string was seen (median 53 samples): test samples 500..4500.
    out = AlignedSampler(toy_lm, binary_vocab, skewed, seed=5).sample(4500)[500:]
    assert chi_square_test(out, q) > 1e-3
    masked = MaskedSampler(toy_lm, binary_vocab, skewed, seed=5).sample(4000)
    assert chi_square_test(masked, q) < 1e-3


def test_renormalized_update_fails_the_kl_test(binary_vocab, skewed):
    """Mutation test: the discriminating tests above catch renormalising P over allowed tokens."""
    bad = np.array([_window_kls(_RenormalizedASAp, binary_vocab, skewed, s) for s in range(3)])
    assert np.all(np.median(bad, axis=0) > 0.4), bad  # stuck at GCD's 0.54, far above 0.004
    out = _RenormalizedASAp(toy_lm, binary_vocab, skewed, seed=5).sample(4500)[500:]
    assert chi_square_test(out, exact_q()[0]) < 1e-3


# ---------------------------------------------------------------------------- chi-square helper
def test_chi2_sf_matches_scipy_or_known_values():
    # Known values: sf(x=dof, dof=2) = e^-1; chi2(16) 99.9th percentile = 39.252
    assert chi2_sf(2.0, 2) == pytest.approx(math.exp(-1.0), rel=1e-12)
    assert chi2_sf(39.252, 16) == pytest.approx(1e-3, rel=1e-3)
    assert chi2_sf(10.828, 1) == pytest.approx(1e-3, rel=1e-3)
    assert chi2_sf(0.0, 5) == 1.0
    scipy_stats = pytest.importorskip("scipy.stats")
    for dof in (1, 2, 3, 7, 16, 31):
        for x in (0.5, 3.0, 17.0, 60.0):
            assert chi2_sf(x, dof) == pytest.approx(scipy_stats.chi2.sf(x, dof), rel=1e-9, abs=1e-300)


# ---------------------------------------------------------------------------- multi-char tokens
def _enumerate_token_sequences(constraint, vocab_size, max_len=8):
    out = []

    def dfs(m, prefix):
        for t in m.allowed_token_ids():
            t = int(t)
            if t == EOS_MULTI:
                out.append(tuple(prefix))
                continue
            if len(prefix) < max_len:
                m.accept_token(t)
                dfs(m, prefix + [t])
                m.rollback(1)

    dfs(constraint.matcher(), [])
    return out


EOS_MULTI = 4


def _random_lm(seed, vocab_size):
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(vocab_size + 1, 8, vocab_size)) * 0.7

    def lm(prefix):
        last = prefix[-1] if prefix else vocab_size
        return table[last, min(len(prefix), 7)]

    return lm


def _log_p(lm, ids):
    total = 0.0
    for i, t in enumerate(ids):
        x = lm(list(ids[:i]))
        total += x[t] - logsumexp(x)
    return total


def test_exact_over_token_sequences_with_multichar_tokens():
    """Non-canonical tokenizations are distinct outputs: Q is over token sequences."""
    vocab = Vocabulary.from_tokens(["a", "b", "ab", "ba", None], eos_token_ids=[EOS_MULTI])
    constraint = compile_regex("(ab|ba)(a|b){0,2}", vocab)
    lm = _random_lm(0, 5)
    seqs = _enumerate_token_sequences(constraint, 5)
    logp = {s: _log_p(lm, list(s) + [EOS_MULTI]) for s in seqs}
    log_z = logsumexp(np.array(list(logp.values())))
    s = AlignedSampler(lm, vocab, constraint, seed=1)
    seen = set()
    for _ in range(20000):
        seen.add(tuple(s.sample_ids(1)[0]))
        if len(seen) == len(seqs):
            break
    assert seen == set(seqs)
    for seq, lp in logp.items():
        assert s.next_sample_logprob(seq) == pytest.approx(lp - log_z, abs=1e-10)
    assert s.log_efg_root == pytest.approx(log_z, abs=1e-10)


# ---------------------------------------------------------------------------- persistence, API
def test_save_load_continues_identically(tmp_path, binary_vocab, skewed):
    a = AlignedSampler(toy_lm, binary_vocab, skewed, seed=42)
    first = a.sample(40)
    path = tmp_path / "trie.npz"
    a.save(path)
    cont = a.sample(200)
    b = AlignedSampler(toy_lm, binary_vocab, skewed, seed=999).load(path)
    assert b.n_samples == 40
    assert b.sample(200) == cont
    for name, arr in a.trie.arrays().items():  # identical tries afterwards
        np.testing.assert_array_equal(arr, b.trie.arrays()[name])
    # Without the RNG state, a reseeded sampler continues from the same trie deterministically.
    c1 = AlignedSampler(toy_lm, binary_vocab, skewed, seed=7).load(path, restore_rng=False).sample(30)
    c2 = AlignedSampler(toy_lm, binary_vocab, skewed, seed=7).load(path, restore_rng=False).sample(30)
    assert c1 == c2  # same seed after load: same outputs
    assert len(first) == 40
    with np.load(path, allow_pickle=False) as data:  # plain arrays, no pickled objects
        assert data["parent"].dtype == np.int32 and data["log_efg"].dtype == np.float64


def test_load_rejects_a_mismatched_sampler(tmp_path, binary_vocab, skewed):
    a = AlignedSampler(toy_lm, binary_vocab, skewed, seed=0)
    a.sample(5)
    a.save(tmp_path / "t.npz")
    with pytest.raises(ValueError, match="kind"):
        MaskedSampler(toy_lm, binary_vocab, skewed).load(tmp_path / "t.npz")
    with pytest.raises(ValueError, match="temperature"):
        AlignedSampler(toy_lm, binary_vocab, skewed, temperature=0.5).load(tmp_path / "t.npz")


def test_revisited_prefixes_cost_no_model_call(binary_vocab, skewed):
    calls = []

    def lm(prefix):
        calls.append(tuple(prefix))
        return toy_lm(prefix)

    s = AlignedSampler(lm, binary_vocab, skewed, seed=0)
    s.sample(500)
    assert len(calls) == len(set(calls)) == s.n_expansions  # one call per distinct prefix
    assert len(calls) <= 1 + 1 + 4 + 1 + 2 + 4 + 8 + 16  # every viable prefix of L at most once


def test_sample_returns_text_and_respects_the_constraint(binary_vocab, skewed):
    out = AlignedSampler(toy_lm, binary_vocab, skewed, seed=0).sample(50)
    assert all(w in exact_q()[0] for w in out)
    assert MaskedSampler(toy_lm, binary_vocab, skewed, seed=0).sample(3) == MaskedSampler(
        toy_lm, binary_vocab, "00000|1[01]{4}", seed=0
    ).sample(3)


def test_temperature_tempers_the_target(binary_vocab, skewed):
    s = AlignedSampler(toy_lm, binary_vocab, skewed, seed=0, temperature=0.5)
    s.sample(300)
    # Exact target at T=0.5: P_T ∝ P^2 per step.
    e, l_ = P_EARLY_T, P_LATE_T
    p = {w: math.prod(e[int(ch)] for ch in w) * l_[EOS] for w in exact_q()[0]}
    z = sum(p.values())
    assert math.exp(s.log_efg_root) == pytest.approx(z, abs=1e-12)
    assert math.exp(s.next_sample_logprob([0] * 5)) == pytest.approx(p["00000"] / z, abs=1e-12)


P_EARLY_T = np.array([0.55, 0.40, 0.05]) ** 2 / np.sum(np.array([0.55, 0.40, 0.05]) ** 2)
P_LATE_T = np.array([0.10, 0.10, 0.80]) ** 2 / np.sum(np.array([0.10, 0.10, 0.80]) ** 2)


def test_dead_ends_are_learned_and_retried():
    """A vocabulary without '0' makes '00000' impossible to spell: those prefixes are dead ends."""
    vocab = Vocabulary.from_tokens(["0", "1", None, "00"], eos_token_ids=[EOS])
    constraint = compile_regex("000|11", vocab)

    def lm(prefix):
        return np.log([0.3, 0.3, 0.1, 0.3])

    s = AlignedSampler(lm, vocab, constraint, seed=0, max_new_tokens=2)
    out = s.sample(200)
    # Within 2 tokens "000" needs "0"+"00" or "00"+"0"; "0","0","0" is cut off by max_new_tokens.
    assert set(out) == {"000", "11"}
    assert s.n_dead_ends > 0
    m = MaskedSampler(lm, vocab, constraint, seed=0, max_new_tokens=2)
    assert set(m.sample(50)) <= {"000", "11"}


def test_no_valid_output_raises(binary_vocab):
    constraint = compile_regex("0{7}", binary_vocab)
    with pytest.raises(NoValidSampleError):
        AlignedSampler(toy_lm, binary_vocab, constraint, seed=0, max_new_tokens=5).sample(1)


def test_bad_arguments(binary_vocab, skewed):
    with pytest.raises(ValueError):
        AlignedSampler(toy_lm, binary_vocab, skewed, temperature=0)
    with pytest.raises(TypeError):
        AlignedSampler(toy_lm, binary_vocab, skewed, prompt="text needs a tokenizer")
    with pytest.raises(TypeError):
        AlignedSampler(object(), binary_vocab, skewed)
