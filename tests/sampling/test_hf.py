"""The samplers on a transformers causal LM: a tiny random Llama (no download) and the default model."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from constrain.sampling import AlignedSampler, HFCausalLM, MaskedSampler, generate_aligned  # noqa: E402

WORDS = "(red|green|blue) (cat|dog)"
TEXTS = {f"{c} {a}" for c in ("red", "green", "blue") for a in ("cat", "dog")}


@pytest.fixture(scope="module")
def tiny_llama(smollm2_tokenizer):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(smollm2_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    model = transformers.LlamaForCausalLM(config).eval()
    return model


def _fresh_logprobs(model, ids):
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1].double()
    return torch.log_softmax(logits, -1).numpy()


def test_kv_cache_reuse_matches_fresh_forward(tiny_llama):
    prompt = [1, 17, 300, 4000]
    lm = HFCausalLM(tiny_llama, prompt)
    # A trie-like visiting order: deeper, sideways, back up, again (cache cropped each time).
    for prefix in ([], [5], [5, 6], [5, 6, 7], [5, 9], [], [8, 8, 8], [5, 6, 7, 10], [5, 6, 7]):
        got = lm.logprobs(prefix)
        got = got - np.logaddexp.reduce(got)
        np.testing.assert_allclose(got, _fresh_logprobs(tiny_llama, prompt + prefix), atol=1e-4)
    # Only what follows the common prefix with the previous call is fed: the prompt once, then
    # 1+1+1 (deeper), 1 ([5, 9]), 1 (back to [], the prompt's last token), 3, 4, 1.
    assert lm.n_tokens_fed == 4 + 3 + 1 + 1 + 3 + 4 + 1


def test_aligned_sampler_on_a_transformers_model(tiny_llama, smollm2_tokenizer):
    s = AlignedSampler(tiny_llama, smollm2_tokenizer, WORDS, "Name a coloured animal.", seed=0, max_new_tokens=16)
    out = s.sample(30)
    assert set(out) <= TEXTS
    assert s.prompt_ids and s.n_expansions == s.stats()["cached_distributions"]
    # the per-sample probability agrees with the trie walk; bounded by 1
    lp = s.next_sample_logprob(s.sample_ids(1)[0])
    assert -math.inf < lp <= 0
    m = MaskedSampler(tiny_llama, smollm2_tokenizer, WORDS, "Name a coloured animal.", seed=0, max_new_tokens=16)
    assert set(m.sample(10)) <= TEXTS


def test_generate_aligned_entry_point(tiny_llama, smollm2_tokenizer):
    out = generate_aligned(tiny_llama, smollm2_tokenizer, "Name a coloured animal.", WORDS, 5, seed=1)
    assert len(out) == 5 and set(out) <= TEXTS


@pytest.mark.slow
def test_default_model_samples_stay_in_the_language(default_model):
    model, tokenizer = default_model
    torch.set_num_threads(1)
    s = AlignedSampler(model, tokenizer, WORDS, "Name a colour and an animal.", seed=0, max_new_tokens=16)
    out = s.sample(50)
    assert set(out) <= TEXTS
    assert s.log_efg_root <= 0.0
