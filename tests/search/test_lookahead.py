"""DeAL lookahead acceptance tests (algorithms.md §3e) on a seeded tiny random Llama + toy vocabulary."""

from __future__ import annotations

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from constrain import compile_keywords, compile_regex, intersect, max_length  # noqa: E402
from constrain.decode import DecodeOptions, decode_batch  # noqa: E402
from constrain.knowledge._kv import KVForward  # noqa: E402
from constrain.search import Lookahead, generate_with_search, keyword_coverage, length_reward  # noqa: E402
from constrain.search.lookahead import _Beam, _candidates, _Masker, _rollouts  # noqa: E402
from constrain.search.rewards import concept_present, word_count  # noqa: E402
from tests.search.toy import TOKENS, WORDS, ToyTokenizer, tiny_llama, toy_vocab  # noqa: E402

TOK = ToyTokenizer()
SENT = "( (" + "|".join(WORDS) + ")){1,10}\\."  # word sequences over the 30-word vocabulary


@pytest.fixture(scope="module")
def model():
    return tiny_llama(0)


def search(model, prompt, la, constraint=None, n=12, **kw):
    return generate_with_search(model, TOK, TOK.encode(prompt), search=la, constraint=constraint, vocab=toy_vocab(),
                                max_new_tokens=n, return_result=True, **kw)


def greedy(model, prompt, constraint=None, n=12):
    vocab = toy_vocab()
    c = constraint or compile_regex("(?s).*", vocab)
    return decode_batch(model, [TOK.encode(prompt)], [c.matcher()], vocab, DecodeOptions(max_new_tokens=n),
                        pad_token_id=0)[0].token_ids


@pytest.mark.parametrize("prompt", ["The dog", "A cat", "The river boat"])
def test_reduces_to_greedy(model, prompt):
    vocab = toy_vocab()
    reward = keyword_coverage(["sun"])
    c = compile_regex(SENT, vocab)
    assert search(model, prompt, Lookahead(reward, k=1, weight=0.0), allow_incomplete=True).token_ids == greedy(model, prompt)
    assert search(model, prompt, Lookahead(reward, k=1, weight=5.0), allow_incomplete=True).token_ids == greedy(model, prompt)
    assert search(model, prompt, Lookahead(reward, k=vocab.size, depth=2, weight=0.0), allow_incomplete=True).token_ids == greedy(model, prompt)
    assert search(model, prompt, Lookahead(reward, k=1, weight=0.0), c).token_ids == greedy(model, prompt, c)
    assert search(model, prompt, Lookahead(reward, k=vocab.size, weight=0.0), c).token_ids == greedy(model, prompt, c)


def _coverage(model, sets, **la):
    hits = 0
    for kws in sets:
        r = search(model, "The", Lookahead(keyword_coverage(kws), **la), compile_regex(SENT, toy_vocab()))
        hits += all(concept_present(k, r.text) for k in kws)
    return hits / len(sets)


@pytest.fixture(scope="module")
def coverage_runs(model):
    """Hard coverage of 100 random 3-keyword sets (toy LM, 30-word vocabulary, k=5; §3e.2)."""
    rng = np.random.default_rng(0)
    sets = [list(rng.choice(WORDS, 3, replace=False)) for _ in range(100)]
    text = TOK.decode(greedy(model, "The", compile_regex(SENT, toy_vocab())))
    base = np.mean([all(concept_present(k, text) for k in s) for s in sets])
    by_weight = [_coverage(model, sets, k=5, depth=6, weight=w) for w in (0.0, 0.5, 1.0, 4.0)]
    by_depth = [_coverage(model, sets, k=5, depth=d, weight=4.0) for d in (0, 2)] + [by_weight[-1]]
    return base, by_weight, by_depth


def test_keyword_coverage_beats_greedy_and_grows_with_weight(coverage_runs):
    base, by_weight, by_depth = coverage_runs
    assert by_weight[0] == base  # λ = 0 is greedy
    assert by_weight[-1] > base
    assert all(a <= b for a, b in zip(by_weight, by_weight[1:])), by_weight
    assert by_depth[-1] > by_depth[0]  # a lookahead beats scoring the prefix alone


def test_keyword_coverage_non_decreasing_in_depth(coverage_runs):
    _, _, by_depth = coverage_runs
    assert all(a <= b for a, b in zip(by_depth, by_depth[1:])), by_depth
    assert by_depth[1] > by_depth[0]  # every lookahead length adds something here, not only the longest


def _length_runs(model):
    vocab = toy_vocab()
    c = compile_regex("( (" + "|".join(WORDS) + ")){1,20}\\.", vocab)
    short_search = short_greedy = 0
    prompts = ["The " + w for w in WORDS]
    for p in prompts:
        r = search(model, p, Lookahead(length_reward(8), k=10, depth=6, weight=4.0), c, n=24)
        assert re.fullmatch("( (" + "|".join(WORDS) + ")){1,20}\\.", r.text)
        short_search += word_count(r.text) <= 8
        short_greedy += word_count(TOK.decode(greedy(model, p, c, n=24))) <= 8
    return short_search / len(prompts), short_greedy / len(prompts)


@pytest.fixture(scope="module")
def length_runs(model):
    return _length_runs(model)


def test_length_reward_keeps_more_outputs_short_than_greedy(length_runs):
    search_rate, greedy_rate = length_runs
    assert search_rate > greedy_rate, length_runs


def test_length_reward_meets_the_spec_threshold(length_runs):
    assert length_runs[0] >= 0.9, length_runs


def test_reward_model_stub_bans_a_token(model):
    banned = "dog"

    def stub(text: str) -> float:  # a "reward model" that hates one word
        return -10.0 if re.search(r"\bdog\b", text) else 0.0

    plain = [TOK.decode(greedy(model, p)) for p in ("The", "A", "The river", "The cat")]
    assert any(banned in t for t in plain)  # greedy does produce it
    for p in ("The", "A", "The river", "The cat"):
        r = search(model, p, Lookahead(stub, k=8, depth=3, weight=100.0), allow_incomplete=True)
        assert not re.search(r"\bdog\b", r.text), r.text


def test_rollouts_leave_the_parent_untouched_and_caches_are_exact(model):
    vocab = toy_vocab()
    c = compile_regex(SENT, vocab)
    prompt = TOK.encode("The dog")
    kv = KVForward(model)
    with torch.no_grad():
        logits, past = kv(torch.tensor([prompt]), None)
    m = c.matcher()
    m.accept_token(TOKENS.index(" cat"))
    with torch.no_grad():
        logits, past = kv(torch.tensor([[TOKENS.index(" cat")]]), past)
    parent = _Beam([TOKENS.index(" cat")], m, 0.0, False, "", past, torch.log_softmax(logits[0, -1].double(), -1))
    saved = [(k.clone(), v.clone()) for k, v in past]
    state, consumed = m.state, m.consumed_tokens
    kids = []
    for a in (TOKENS.index(" sun"), TOKENS.index(" boat"), TOKENS.index(".")):
        cm = m.copy()
        assert cm.accept_token(a)
        kids.append(_Beam(parent.tokens + [a], cm, 0.0, False, "", parent_past=past))
    kid_states = [k.matcher.consumed_tokens for k in kids]
    with torch.no_grad():
        _rollouts(kv, parent, kids, Lookahead(keyword_coverage(["moon"]), k=3, depth=5), _Masker(vocab, True), 0, vocab.size,
                  torch.device("cpu"), lambda toks: 0.0)
    for (k, v), (k0, v0) in zip(past, saved):
        assert torch.equal(k, k0) and torch.equal(v, v0)
    assert m.state == state and m.consumed_tokens == consumed
    assert [k.matcher.consumed_tokens for k in kids] == kid_states  # rollouts used copies
    for kid in kids:  # the first rollout pass's row is the child's exact cache / distribution
        with torch.no_grad():
            fresh = torch.log_softmax(model(input_ids=torch.tensor([prompt + kid.tokens])).logits[0, -1].double(), -1)
        assert torch.allclose(kid.logp, fresh, atol=1e-5)
        assert kid.past[0][0].shape[-2] == len(prompt) + len(kid.tokens)


@settings(max_examples=20, deadline=None)
@given(
    keywords=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3, unique=True),
    k=st.integers(1, 6),
    depth=st.integers(0, 4),
    weight=st.sampled_from([0.0, 1.0, 5.0]),
)
def test_hard_constraint_always_holds(model, keywords, k, depth, weight):
    vocab = toy_vocab()
    c = max_length(intersect(compile_keywords(include=[" " + w for w in keywords], vocab=vocab), compile_regex(SENT, vocab)),
                   max_tokens=11)
    r = search(model, "The", Lookahead(keyword_coverage(keywords), k=k, depth=depth, weight=weight), c, n=12)
    m = c.matcher()
    assert m.accept_tokens(r.token_ids) == len(r.token_ids) and m.is_accepting()
    assert re.fullmatch(SENT, r.text) and all(" " + w in r.text for w in keywords)


def test_candidates_add_the_end_token_outside_the_top_k():
    vocab = toy_vocab()
    c = compile_regex(SENT, vocab)
    m = c.matcher()
    assert m.accept_token(TOKENS.index(" dog"))
    masker = _Masker(vocab, True)
    logp = torch.full((vocab.size,), -1.0, dtype=torch.float64)
    logp[TOKENS.index(".")] = -9.0  # the only token that ends the sentence, far outside the top-3
    logp = masker.apply(logp[None, :], [m])[0]
    reward = keyword_coverage(["sun"])
    cands = _candidates(logp, m, Lookahead(reward, k=3), masker)
    assert len(cands) == 4 and cands[-1] == TOKENS.index(".")
    assert all(float(logp[a]) == -1.0 for a in cands[:3])
    assert _candidates(logp, m, Lookahead(reward, k=3, end_option=False), masker) == cands[:3]
    one = _candidates(logp, m, Lookahead(reward, k=1), masker)  # k = 1 stays plain greedy
    assert len(one) == 1 and float(logp[one[0]]) == -1.0
    assert _candidates(logp, m, Lookahead(reward, k=3, end_scan=0), masker) == cands[:3]
    m.accept_token(TOKENS.index("."))  # only EOS remains: EOS is the end token
    logp = masker.apply(torch.zeros((1, vocab.size), dtype=torch.float64), [m])[0]
    assert _candidates(logp, m, Lookahead(reward, k=3), masker) == [0]
    free = torch.zeros(vocab.size, dtype=torch.float64)
    free[0] = -20.0
    assert _candidates(free, None, Lookahead(reward, k=3), _Masker(vocab, False))[-1] == 0  # unconstrained: EOS


def test_reward_aware_rollouts_end_when_ending_scores_best(model):
    """The length test's mechanism: with R_len the reward-aware rollout puts the full stop near N
    words, so every candidate's rollout is complete; the paper's greedy rollout never ends."""
    vocab = toy_vocab()
    c = compile_regex("( (" + "|".join(WORDS) + ")){1,20}\\.", vocab)
    out = {}
    for mode in ("reward", "greedy"):
        seen = []
        reward = length_reward(4)

        def spy(text):
            seen.append(text)
            return reward(text)

        r = search(model, "The dog", Lookahead(spy, k=4, depth=8, weight=4.0, rollout=mode), c, n=24)
        out[mode] = (r.text, seen)
    text, seen = out["reward"]
    assert word_count(text) <= 4 and text.endswith(".")
    assert any(t.endswith(".") for t in seen)  # rollouts consider ending ...
    assert not any(t.endswith(".") and word_count(t) > 5 for t in seen)  # ... and end by N + 1 words
    assert not any(t.endswith(".") for t in out["greedy"][1][:4])  # the paper's greedy rollouts of the top-4 do not end


def test_reward_aware_rollout_with_zero_weight_is_greedy(model):
    vocab = toy_vocab()
    c = compile_regex(SENT, vocab)
    for p in ("The dog", "A cat"):
        a = search(model, p, Lookahead(keyword_coverage(["sun"]), k=4, depth=3, weight=0.0, rollout="reward"), c)
        b = search(model, p, Lookahead(keyword_coverage(["sun"]), k=4, depth=3, weight=0.0, rollout="greedy"), c)
        assert a.token_ids == b.token_ids == greedy(model, p, c)


def test_lookahead_rejects_bad_parameters():
    r = keyword_coverage(["sun"])
    for bad in (dict(k=0), dict(beam=0), dict(depth=-1), dict(end_scan=-1), dict(rollout="beam")):
        with pytest.raises(ValueError):
            Lookahead(r, **bad)
