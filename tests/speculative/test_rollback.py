"""After every step the committed matcher equals a replay of the committed tokens, and the target's
KV cache holds exactly the committed sequence minus its newest token (fed with the next drafts)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from constrain.dfa_constraint import compile_regex  # noqa: E402
from constrain.speculative import (  # noqa: E402
    Drafter,
    ModelDrafter,
    Speculative,
    generate_speculative,
)

from .test_greedy_identity import RandomDrafter, _prompts, compile_toy  # noqa: E402


class EosEagerDrafter(Drafter):
    """Proposes EOS as soon as it is allowed, otherwise a random valid token (tests termination)."""

    name = "eos_eager"

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def extend(self, builder) -> None:
        eos = builder.vocab.eos_token_ids[0]
        while builder.room:
            mask = builder.current_mask()
            t = eos if mask[eos] else int(self.rng.choice(np.flatnonzero(mask)))
            if not builder.add(t, self.name, 0.95):
                return


def _check_steps(constraint, vocab, steps, result):
    assert steps, "no step was taken"
    for i, info in enumerate(steps):
        replay = constraint.matcher()
        assert replay.accept_tokens(info["committed"]) == len(info["committed"])
        assert replay.state == info["state"]
        assert replay.is_terminated() == info["terminated"]
        assert info["consumed"] == info["committed"]
        assert info["committed"][-len(info["emitted"]):] == info["emitted"]
        assert info["emitted"][: info["accepted"]] == info["draft"][: info["accepted"]]
        eos_at = [j for j, t in enumerate(info["committed"]) if vocab.is_eos(t)]
        if eos_at:  # EOS ends the output: nothing after it, and no step after this one
            assert eos_at == [len(info["committed"]) - 1]
            assert i == len(steps) - 1
        assert info["cache"] == info["prompt_len"] + len(info["committed"]) - 1
    committed = steps[-1]["committed"]
    assert result.token_ids == [t for t in committed if not vocab.is_eos(t)]


def _run(model, vocab, prompt, constraint, spec, **kw):
    steps = []

    def on_step(info):
        m = info.matcher
        steps.append(dict(state=m.state, terminated=m.is_terminated(), consumed=m.consumed_tokens,
                          committed=info.committed, emitted=info.emitted, draft=info.draft,
                          accepted=info.accepted, cache=info.target.cache_length, prompt_len=info.prompt_len))

    res = generate_speculative(model, vocab, prompt, constraint, spec, on_step=on_step, allow_incomplete=True, **kw)
    return res, steps


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("drafter", ["default", "random", "eos_eager", "draft_model"])
@pytest.mark.parametrize("which", ["json", "grammar", "schema"])
def test_matcher_and_kv_cache_follow_the_committed_tokens(toy_llama, toy_draft_llama, toy_vocab, temperature,
                                                          drafter, which):
    constraint = compile_toy(which, toy_vocab)
    spec = {
        "default": Speculative(),
        "random": Speculative(drafter=RandomDrafter(5), max_draft=5, stop_threshold=1.0),
        "eos_eager": Speculative(drafter=EosEagerDrafter(6), max_draft=5, stop_threshold=1.0),
        "draft_model": Speculative(drafter=ModelDrafter(toy_draft_llama), max_draft=4),
    }[drafter]
    rejected = 0
    for k, prompt in enumerate(_prompts(toy_vocab, 3, seed=11)):
        res, steps = _run(toy_llama, toy_vocab, prompt, constraint, spec, max_new_tokens=40,
                          temperature=temperature, seed=k)
        _check_steps(constraint, toy_vocab, steps, res)
        rejected += sum(1 for s in steps if s["accepted"] < len(s["draft"]))
    if drafter in ("random", "eos_eager"):
        assert rejected > 0  # rollback was exercised


def test_budget_is_respected_mid_draft(toy_llama, toy_vocab):
    constraint = compile_regex(r"[a-z]{30}", toy_vocab)
    prompt = _prompts(toy_vocab, 1, seed=2)[0]
    res, steps = _run(toy_llama, toy_vocab, prompt, constraint,
                      Speculative(drafter=RandomDrafter(0), max_draft=8, stop_threshold=1.0), max_new_tokens=7)
    assert len(res.token_ids) == 7 and res.stop_reason == "max_new_tokens"
    _check_steps(constraint, toy_vocab, steps, res)
