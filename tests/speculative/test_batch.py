"""Batched speculative decoding: every row is what greedy masked decoding gives it alone, and after
every step each row's matcher and attended KV positions follow its committed tokens."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from constrain.speculative import (  # noqa: E402
    Chain,
    ForcedDrafter,
    LayerSkipDrafter,
    ModelDrafter,
    Speculative,
    generate_speculative,
    speculative_decode_batch,
)

from .test_greedy_identity import RandomDrafter, _baseline, _prompts, compile_toy  # noqa: E402
from .test_rollback import EosEagerDrafter  # noqa: E402

SPECS = {
    "default": lambda m: Speculative(),
    "random": lambda m: Speculative(drafter=RandomDrafter(0), max_draft=4, stop_threshold=1.0),
    "draft_model": lambda m: Speculative(drafter=ModelDrafter(m), max_draft=4),
    "layer_skip": lambda m: Speculative(drafter=Chain([ForcedDrafter(), LayerSkipDrafter(2)]), max_draft=5),
}


def _ragged_prompts(vocab, n, seed):
    """Prompts of clearly different lengths (so padding and per-row positions matter)."""
    out = _prompts(vocab, n, seed=seed)
    for i in range(n):
        out[i] = out[i][: 1 + (3 * i) % len(out[i])] + out[i] * (i % 2)
    return out


@pytest.mark.parametrize("which", ["json", "grammar", "schema", "mixed"])
@pytest.mark.parametrize("drafter", list(SPECS))
def test_batched_greedy_equals_per_row_masked_greedy(toy_llama, toy_draft_llama, toy_vocab, which, drafter):
    kinds = ["json", "schema", "grammar", "list"] if which == "mixed" else [which] * 4
    constraints = [compile_toy(k, toy_vocab) for k in kinds]
    prompts = _ragged_prompts(toy_vocab, 4, seed=len(which) + 7)
    spec = SPECS[drafter](toy_draft_llama)
    results = generate_speculative(toy_llama, toy_vocab, prompts, constraints, spec, max_new_tokens=40,
                                   allow_incomplete=True)
    assert len(results) == 4
    accepted = 0
    for prompt, c, res in zip(prompts, constraints, results):
        base = _baseline(toy_llama, prompt, c, toy_vocab, 40)
        assert res.token_ids == base.token_ids, (drafter, which, res.text, base.text)
        assert res.stop_reason == base.stop_reason
        assert res.prompt_tokens == len(prompt)
        accepted += sum(res.speculative["accepted_lengths"])
    if drafter == "default" and which != "grammar":
        assert accepted > 0  # forced bytes of the JSON shapes are drafted and accepted
    # one forward per step for the whole batch: no row took more forwards than the batch did
    assert all(r.speculative["forward_passes"] <= r.speculative["batch_forward_passes"] for r in results)


def test_batched_rows_finish_independently_and_share_forwards(toy_llama, toy_vocab):
    # one short constraint, one long: the short row stops early, the long one keeps going
    from constrain.dfa_constraint import compile_regex

    short, long_ = compile_regex(r"(red|blue)", toy_vocab), compile_regex(r"[a-z]{25}", toy_vocab)
    prompts = _ragged_prompts(toy_vocab, 2, seed=3)
    res = generate_speculative(toy_llama, toy_vocab, prompts, [short, long_], Speculative(), max_new_tokens=30)
    assert res[0].text in ("red", "blue") and res[0].stop_reason in ("eos", "constraint_complete")
    assert len(res[1].text) == 25
    assert res[0].speculative["forward_passes"] < res[1].speculative["forward_passes"]
    assert res[1].speculative["forward_passes"] == res[1].speculative["batch_forward_passes"]
    for p, c, r in zip(prompts, [short, long_], res):
        assert r.token_ids == _baseline(toy_llama, p, c, toy_vocab, 30).token_ids


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("drafter", ["default", "random", "eos_eager", "draft_model"])
def test_batched_matcher_and_cache_follow_each_rows_committed_tokens(toy_llama, toy_draft_llama, toy_vocab,
                                                                     temperature, drafter):
    kinds = ["schema", "json", "grammar", "schema"]
    constraints = [compile_toy(k, toy_vocab) for k in kinds]
    prompts = _ragged_prompts(toy_vocab, 4, seed=11)
    spec = {
        "default": Speculative(),
        "random": Speculative(drafter=RandomDrafter(5), max_draft=5, stop_threshold=1.0),
        "eos_eager": Speculative(drafter=EosEagerDrafter(6), max_draft=5, stop_threshold=1.0),
        "draft_model": Speculative(drafter=ModelDrafter(toy_draft_llama), max_draft=4),
    }[drafter]
    steps: dict[int, list[dict]] = {b: [] for b in range(4)}
    columns: list[int] = []

    def on_step(info):
        m = info.matcher
        steps[info.row].append(dict(state=m.state, terminated=m.is_terminated(), consumed=m.consumed_tokens,
                                    committed=info.committed, emitted=info.emitted, draft=info.draft,
                                    accepted=info.accepted, cache=info.target.cache_length,
                                    prompt_len=info.prompt_len))
        columns.append(info.target.cache_columns)

    drafters = [spec.build_drafter() for _ in prompts]
    results = speculative_decode_batch(
        toy_llama, prompts, [c.matcher() for c in constraints], toy_vocab, drafters, max_draft=spec.max_draft,
        stop_threshold=spec.stop_threshold, max_new_tokens=40, temperature=temperature, seed=3,
        allow_incomplete=True, on_step=on_step,
    )
    rejected = 0
    for b, (c, res) in enumerate(zip(constraints, results)):
        rows = steps[b]
        assert rows, "no step was taken"
        for i, info in enumerate(rows):
            replay = c.matcher()
            assert replay.accept_tokens(info["committed"]) == len(info["committed"])
            assert replay.state == info["state"]
            assert replay.is_terminated() == info["terminated"]
            assert info["consumed"] == info["committed"]
            assert info["committed"][-len(info["emitted"]):] == info["emitted"]
            assert info["emitted"][: info["accepted"]] == info["draft"][: info["accepted"]]
            eos_at = [j for j, t in enumerate(info["committed"]) if toy_vocab.is_eos(t)]
            if eos_at:
                assert eos_at == [len(info["committed"]) - 1] and i == len(rows) - 1
            # the row attends to exactly its prompt + committed tokens minus the newest (fed next step)
            assert info["cache"] == info["prompt_len"] + len(info["committed"]) - 1
            rejected += info["accepted"] < len(info["draft"])
        assert res.token_ids == [t for t in rows[-1]["committed"] if not toy_vocab.is_eos(t)]
        assert len(res.token_ids) <= 40
    assert max(columns) >= max(s[-1]["cache"] for s in steps.values())  # rejected positions stay in the cache
    if drafter in ("random", "eos_eager"):
        assert rejected > 0  # rollback was exercised


def test_batched_sampling_is_seeded_and_valid(toy_llama, toy_vocab):
    constraints = [compile_toy(k, toy_vocab) for k in ("schema", "json", "list")]
    prompts = _ragged_prompts(toy_vocab, 3, seed=5)
    runs = [generate_speculative(toy_llama, toy_vocab, prompts, constraints,
                                 Speculative(drafter=RandomDrafter(2), max_draft=4, stop_threshold=1.0),
                                 max_new_tokens=40, temperature=1.0, seed=s, allow_incomplete=True)
            for s in (0, 0, 1)]
    assert [r.token_ids for r in runs[0]] == [r.token_ids for r in runs[1]]
    assert [r.token_ids for r in runs[0]] != [r.token_ids for r in runs[2]]
    for res, c in zip(runs[2], constraints):
        m = c.matcher()
        assert m.accept_tokens(res.token_ids) == len(res.token_ids)


def test_batch_of_one_takes_the_batch_one_path(toy_llama, toy_vocab):
    c = compile_toy("json", toy_vocab)
    prompt = _prompts(toy_vocab, 1, seed=2)[0]
    (res,) = generate_speculative(toy_llama, toy_vocab, [prompt], c, Speculative(), max_new_tokens=30,
                                  allow_incomplete=True)
    assert "batch_forward_passes" not in res.speculative
    assert res.token_ids == _baseline(toy_llama, prompt, c, toy_vocab, 30).token_ids


def test_constraint_list_must_match_the_prompts(toy_llama, toy_vocab):
    c = compile_toy("json", toy_vocab)
    with pytest.raises(ValueError, match="2 constraints for 3 prompts"):
        generate_speculative(toy_llama, toy_vocab, _prompts(toy_vocab, 3), [c, c], Speculative())


@pytest.mark.slow
def test_batched_greedy_on_the_default_model_through_generate(default_model):
    import constrain
    from constrain.generate import encode_prompt
    from constrain.integrations.transformers import model_vocab_size, vocabulary_for

    from .test_greedy_identity import PEOPLE

    torch.set_num_threads(1)
    model, tok = default_model
    vocab = vocabulary_for(tok, model_vocab_size(model, tok))
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 40},
                                               "born": {"type": "string", "maxLength": 12},
                                               "city": {"type": "string", "maxLength": 30}},
              "required": ["name", "born", "city"], "additionalProperties": False}
    prompts = [f"Convert this record to JSON: name {n}; born {b}; city {c}." for n, b, c in PEOPLE[:3]]
    prompts.append("Invent a pirate and write name, born and city as JSON.")
    texts = constrain.generate(model, tok, prompts, schema=schema, speculative=constrain.Speculative(),
                               max_new_tokens=48)
    compiled = constrain.compile_json_schema(schema, vocab)
    results = generate_speculative(model, tok, prompts, compiled, Speculative(), max_new_tokens=48)
    assert texts == [r.text for r in results]
    for prompt, res in zip(prompts, results):
        ids = encode_prompt(tok, prompt)
        base = _baseline(model, ids, compiled, vocab, 48)
        if res.token_ids != base.token_ids:
            # allowed only at a near-tie (padded batch vs one-row float32 kernels): check the margin
            i = next(i for i, (a, b) in enumerate(zip(base.token_ids + [-1], res.token_ids + [-2])) if a != b)
            m = compiled.matcher()
            m.accept_tokens(base.token_ids[:i])
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([ids + base.token_ids[:i]])).logits[0, -1].float().numpy()
            top = np.sort(logits[m.allowed_token_ids()])[::-1]
            assert top[0] - top[1] < 1e-3, (prompt, res.text, base.text)
    assert sum(n.split()[0] in r.text for (n, _, _), r in zip(PEOPLE, results)) >= 2  # values were echoed
    assert sum(r.speculative["forward_passes"] for r in results) < 0.75 * sum(len(r.token_ids) for r in results)
