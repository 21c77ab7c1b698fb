"""KID acceptance tests (algorithms.md §2e) on a seeded tiny random Llama and a toy vocabulary."""

from __future__ import annotations

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from constrain import compile_regex  # noqa: E402
from constrain.decode import DecodeOptions, decode_batch  # noqa: E402
from constrain.knowledge import KIDConfig, KnowledgeTrie, generate_with_knowledge  # noqa: E402
from constrain.knowledge.kid import infused_distribution  # noqa: E402
from tests.search.toy import TOKENS, WORDS, ToyTokenizer, tiny_llama, toy_vocab  # noqa: E402

TOK = ToyTokenizer()
PROMPT = "The dog"


@pytest.fixture(scope="module")
def model():
    return tiny_llama(0)


@pytest.fixture(scope="module")
def trie():
    return KnowledgeTrie.from_triples(
        [("dog", "chases", "frisbee ball"), ("dog", "sleeps in", "house"), ("cat", "sits on", "chair")], TOK
    )


def run(model, **kw):
    kw.setdefault("vocab", toy_vocab())
    kw.setdefault("max_new_tokens", 20)
    kw.setdefault("return_result", True)
    return generate_with_knowledge(model, TOK, kw.pop("prompt", PROMPT), **kw)


def test_knowledge_is_found_and_infused(model, trie):
    r = run(model, knowledge=trie, seed=0)
    assert r.knowledge_sizes[0] > 0 and r.n_updates > 0
    assert all(s > b for s, b in zip(r.infused_mass, r.base_mass))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_degenerate_equivalence_sampling(model, trie, seed):
    base = run(model, knowledge=None, seed=seed)
    assert run(model, knowledge=trie, seed=seed, config=KIDConfig(n_iter=0)).token_ids == base.token_ids
    zero = run(model, knowledge=trie, seed=seed, config=KIDConfig(step_size=0.0, gm_scale=1.0))
    assert zero.n_updates > 0 and zero.token_ids == base.token_ids
    # with real infusion the distribution changes (same seed)
    assert run(model, knowledge=trie, seed=seed, config=KIDConfig(step_size=0.5)).token_ids != base.token_ids


def test_empty_knowledge_equals_plain_greedy_decoding(model):
    vocab = toy_vocab()
    empty = KnowledgeTrie.from_phrases([], TOK)
    r = run(model, knowledge=empty, temperature=0.0, top_k=0, top_p=1.0, no_repeat_ngram=0)
    assert r.n_updates == 0 and set(r.knowledge_sizes) == {0}
    matcher = compile_regex("(?s).*", vocab).matcher()
    ref = decode_batch(model, [TOK.encode(PROMPT)], [matcher], vocab, DecodeOptions(max_new_tokens=20), pad_token_id=0)[0]
    assert r.token_ids == ref.token_ids


def test_no_knowledge_in_context_means_no_update(model, trie):
    r = run(model, knowledge=trie, prompt="A river boat", seed=0, max_new_tokens=1)
    assert r.knowledge_sizes == [0] and r.n_updates == 0


def test_kv_cache_grows_by_one_per_token(model, trie):
    r = run(model, knowledge=trie, seed=3, max_new_tokens=15)
    n = len(TOK.encode(PROMPT))
    assert r.kv_lengths == list(range(n, n + len(r.kv_lengths)))
    assert r.n_updates > 0


def test_context_is_not_fed_twice(model):
    """With n_iter=0 every step's distribution equals a fresh forward over prompt + output."""
    ids = TOK.encode(PROMPT)
    r = run(model, knowledge=None, temperature=0.0, top_k=0, top_p=1.0, no_repeat_ngram=0, max_new_tokens=6)
    seq = ids + r.token_ids
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([seq])).logits[0]
    assert r.token_ids == [int(torch.argmax(logits[i])) for i in range(len(ids) - 1, len(seq) - 1)]


def _contexts(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return [list(rng.integers(1, len(TOKENS), 8)) for _ in range(n)]


def _stats(model, cfg, k_ids, ctxs):
    mass, kl, up = [], [], 0
    for c in ctxs:
        b, s = infused_distribution(model, c, k_ids, cfg)
        mb, ms = float(b[k_ids].exp().sum()), float(s[k_ids].exp().sum())
        mass.append(ms)
        kl.append(float((s.exp() * (s - b)).sum()))
        up += ms > mb
    return np.mean(mass), np.mean(kl), up / len(ctxs)


def test_infusion_raises_knowledge_mass_over_200_steps(model):
    rng = np.random.default_rng(1)
    k_ids = sorted(int(t) for t in rng.choice(np.arange(1, len(TOKENS)), 5, replace=False))
    from constrain.constraints import min_length

    # EOS is not allowed before 201 tokens, so all 200 steps are taken.
    never_ends = min_length(compile_regex("[^#]*", toy_vocab()), min_tokens=201)
    r = run(model, knowledge=k_ids, seed=0, max_new_tokens=200, prompt="The dog run", constraint=never_ends,
            allow_incomplete=True)
    assert r.n_updates == 200 and len(r.token_ids) == 200
    ups = np.mean([s > b for s, b in zip(r.infused_mass, r.base_mass)])
    assert ups >= 0.95


def test_infusion_is_monotone_in_iterations_step_size_and_kl_scale(model):
    k_ids = [TOKENS.index(" cat"), TOKENS.index(" boat"), TOKENS.index(" sun"), TOKENS.index("."), TOKENS.index(" book")]
    ctxs = _contexts()
    by_iter = [_stats(model, KIDConfig(n_iter=n), k_ids, ctxs) for n in (1, 3, 5)]
    assert by_iter[0][0] < by_iter[1][0] < by_iter[2][0]
    assert all(s[2] == 1.0 for s in by_iter)
    by_alpha = [_stats(model, KIDConfig(step_size=a), k_ids, ctxs) for a in (0.01, 0.05, 0.2)]
    assert by_alpha[0][0] < by_alpha[1][0] < by_alpha[2][0]
    by_beta = [_stats(model, KIDConfig(kl_scale=b, step_size=0.2), k_ids, ctxs) for b in (0.01, 0.1, 1.0)]
    assert by_beta[0][1] >= by_beta[1][1] >= by_beta[2][1]


GRAMMAR = r"( (dog|cat|park|ball|frisbee|tree)){2,6}\."


def test_knowledge_outside_the_mask_is_not_infused(model):
    vocab = toy_vocab()
    c = compile_regex(GRAMMAR, vocab)
    outside = [TOKENS.index(" boat"), TOKENS.index(" moon")]  # never allowed by GRAMMAR
    r = run(model, knowledge=outside, constraint=c, seed=0)
    assert set(r.knowledge_sizes) == {0} and r.n_updates == 0
    assert r.token_ids == run(model, knowledge=None, constraint=c, seed=0).token_ids
    assert re.fullmatch(GRAMMAR, r.text)


@settings(max_examples=25, deadline=None)
@given(
    words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=5, unique=True),
    knowledge=st.lists(st.sampled_from(WORDS), min_size=1, max_size=4, unique=True),
    seed=st.integers(0, 1000),
)
def test_outputs_always_satisfy_the_constraint(model, words, knowledge, seed):
    vocab = toy_vocab()
    pattern = "( (" + "|".join(words) + ")){1,5}\\."
    c = compile_regex(pattern, vocab)
    trie = KnowledgeTrie.from_phrases([" ".join(knowledge)], TOK)
    prompt = "The " + " ".join(knowledge)
    r = run(model, knowledge=trie, constraint=c, seed=seed, prompt=prompt, config=KIDConfig(step_size=0.3))
    assert re.fullmatch(pattern, r.text), r.text
    m = c.matcher()
    assert m.accept_tokens(r.token_ids) == len(r.token_ids) and m.is_accepting()
    allowed = {TOKENS.index(" " + w) for w in words}
    assert r.n_updates == sum(1 for k in r.knowledge_sizes if k) and r.n_updates <= len(r.knowledge_sizes)
    if not set(TOKENS.index(" " + w) for w in knowledge) & allowed:
        assert r.n_updates == 0
