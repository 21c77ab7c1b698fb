"""Continuous batching: ``max_batch_size`` keeps at most that many rows in the model's batch and
admits a waiting prompt as soon as a row finishes (its prompt prefilled on its own, its KV cache
left-padded and appended to the running batch's).

Greedy decoding makes the checks exact: every row must get the tokens it gets decoded alone.
The fast tests use a tiny random Llama in float64 (so padding cannot flip an argmax) over the
SmolLM2 vocabulary; the slow one uses SmolLM2 itself.
"""

from __future__ import annotations

import functools
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import constrain
from constrain.decode import BatchForward, DecodeOptions, _left_pad_cat, decode_batch

torch = pytest.importorskip("torch")

RECORD = r'\{"id": [0-9]{1,3}, "tag": "[a-z]{1,6}"\}'


@pytest.fixture(scope="module")
def tiny(smollm2_vocab):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=smollm2_vocab.size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                      bos_token_id=1, eos_token_id=smollm2_vocab.eos_token_ids[0])
    model = LlamaForCausalLM(cfg).double().eval()
    vocab = smollm2_vocab
    constraints = [
        constrain.compile_regex(RECORD, vocab),
        constrain.compile_regex(r"[a-z ]{1,30}", vocab),
        constrain.compile_regex(r"(yes|no|maybe)", vocab),
    ]
    return model, vocab, constraints


class ForwardSpy:
    """Wraps a model: records the batch size and width of every forward pass, delegates the rest."""

    def __init__(self, model):
        self.model = model
        self.calls: list[tuple[int, int]] = []

        @functools.wraps(model.forward)
        def forward(*args, **kwargs):
            ids = kwargs["input_ids"]
            self.calls.append((int(ids.shape[0]), int(ids.shape[1])))
            return model(*args, **kwargs)

        self.forward = forward

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def parameters(self):
        return self.model.parameters()


def _prompts(lengths: list[int]) -> list[list[int]]:
    # Distinct token ids per prompt (avoid specials at the low ids).
    return [[1000 + 37 * i + 3 * k for k in range(n)] for i, n in enumerate(lengths)]


def _decode(model, vocab, prompts, constraints, budgets, **kw):
    options = DecodeOptions(max_new_tokens=max(budgets), allow_incomplete=True, **kw)
    return decode_batch(model, prompts, [c.matcher() for c in constraints], vocab, options,
                        pad_token_id=vocab.eos_token_ids[0], row_max_new_tokens=budgets)


@settings(max_examples=12)
@given(
    rows=st.lists(st.tuples(st.integers(1, 9), st.integers(0, 2), st.integers(1, 14)), min_size=2, max_size=6),
    capacity=st.integers(1, 4),
    fast_forward=st.sampled_from([False, "singleton", "bytes"]),
)
def test_continuous_batching_gives_each_row_its_tokens_alone(tiny, rows, capacity, fast_forward):
    model, vocab, constraints = tiny
    prompts = _prompts([n for n, _, _ in rows])
    cons = [constraints[c] for _, c, _ in rows]
    budgets = [b for _, _, b in rows]
    alone = [_decode(model, vocab, [p], [c], [b], fast_forward=fast_forward)[0]
             for p, c, b in zip(prompts, cons, budgets)]
    spy = ForwardSpy(model)
    together = _decode(spy, vocab, prompts, cons, budgets, fast_forward=fast_forward, max_batch_size=capacity)
    assert [r.token_ids for r in together] == [r.token_ids for r in alone]
    assert [r.stop_reason for r in together] == [r.stop_reason for r in alone]
    assert max(b for b, _ in spy.calls) <= capacity


def test_a_waiting_prompt_joins_the_running_batch(tiny):
    """Row 1 ends after one token; prompt 2 is prefilled alone and decodes beside row 0."""
    model, vocab, constraints = tiny
    prompts = _prompts([5, 3, 7])
    digits = constrain.compile_regex("[0-9]{40}", vocab)  # SmolLM2 writes one digit per token
    spy = ForwardSpy(model)
    out = _decode(spy, vocab, prompts, [digits] * 3, [12, 1, 12], max_batch_size=2)
    assert [len(r.token_ids) for r in out] == [12, 1, 12]
    # Prefills: prompts 0 and 1 together (width 5), then prompt 2 alone (width 7) while row 0 runs.
    assert spy.calls[0] == (2, 5)
    assert (1, 7) in spy.calls
    joined_at = spy.calls.index((1, 7))
    assert spy.calls[joined_at + 1][0] == 2  # the next step decodes rows 0 and 2 together
    # Static batches of two would need 12 + 12 steps; refilling overlaps rows 0 and 2.
    assert sum(1 for b, w in spy.calls if w == 1) < 12 + 12


def test_every_prompt_at_once_is_the_default(tiny):
    model, vocab, constraints = tiny
    prompts = _prompts([4, 6, 5])
    spy = ForwardSpy(model)
    _decode(spy, vocab, prompts, [constraints[1]] * 3, [5, 5, 5])
    assert spy.calls[0] == (3, 6)
    assert all(b <= 3 for b, _ in spy.calls)


def test_max_batch_size_is_checked():
    with pytest.raises(ValueError, match="max_batch_size"):
        DecodeOptions(max_batch_size=0)


def test_left_pad_cat_lines_up_last_positions():
    a = torch.ones((2, 3), dtype=torch.long)
    b = torch.full((1, 5), 2, dtype=torch.long)
    out = _left_pad_cat(a, b)
    assert out.tolist() == [[0, 0, 1, 1, 1], [0, 0, 1, 1, 1], [2, 2, 2, 2, 2]]
    assert _left_pad_cat(b, a).tolist() == [[2] * 5, [0, 0, 1, 1, 1], [0, 0, 1, 1, 1]]


def test_appended_cache_rows_give_the_logits_of_separate_runs(tiny):
    """Two prompts prefilled apart, merged, then stepped together == each stepped alone."""
    model, vocab, _ = tiny
    p0, p1 = _prompts([3, 6])[:2]
    singles = []
    for p in (p0, p1):
        f = BatchForward(model)
        f(torch.tensor([p]), torch.ones((1, len(p)), dtype=torch.long), torch.arange(len(p))[None])
        logits = f(torch.tensor([[42]]), torch.ones((1, len(p) + 1), dtype=torch.long),
                   torch.tensor([[len(p)]]))
        singles.append(logits[0, -1])
    f0, f1 = BatchForward(model), BatchForward(model)
    f0(torch.tensor([p0]), torch.ones((1, 3), dtype=torch.long), torch.arange(3)[None])
    f1(torch.tensor([p1]), torch.ones((1, 6), dtype=torch.long), torch.arange(6)[None])
    assert f0.can_append_rows()
    assert f0.append_rows(f1.cache)
    attention = _left_pad_cat(torch.ones((1, 3), dtype=torch.long), torch.ones((1, 6), dtype=torch.long))
    assert f0.cache.get_seq_length() == attention.shape[1] == 6
    step_attention = torch.cat([attention, torch.ones((2, 1), dtype=torch.long)], dim=1)
    logits = f0(torch.tensor([[42], [42]]), step_attention, torch.tensor([[3], [6]]))
    assert torch.allclose(logits[0, -1], singles[0], atol=1e-9)
    assert torch.allclose(logits[1, -1], singles[1], atol=1e-9)
    # Row 1 leaves: the three left-padding columns of row 0 are no longer needed.
    assert f0.select_rows(torch.tensor([0]))
    trimmed = f0.trim_left(step_attention[[0]])
    assert trimmed.shape[1] == 4 and f0.cache.get_seq_length() == 4


@pytest.mark.slow
def test_continuous_batching_on_smollm2_equals_greedy_alone(default_model):
    model, tokenizer = default_model
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                               "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    prompts = ["A person as JSON.", "Give me three digits.", "A pilot from Lima, as JSON.", "Yes or no?"]
    vocab = constrain.Vocabulary.from_tokenizer(tokenizer, model.config.vocab_size)
    person = constrain.compile_json_schema(schema, vocab)
    cons = [person, constrain.compile_regex(r"[0-9]{3}", vocab), person, constrain.compile_regex("(yes|no)", vocab)]
    alone = [constrain.generate_ids(model, tokenizer, p, constraint=c, max_new_tokens=40, fast_forward="singleton")
             for p, c in zip(prompts, cons)]
    together = constrain.generate_ids(model, tokenizer, prompts, constraint=cons, max_new_tokens=40,
                                      fast_forward="singleton", max_batch_size=2)
    assert [r.token_ids for r in together] == [r.token_ids for r in alone]
    assert re.fullmatch(r"[0-9]{3}", together[1].text)
    assert set(json.loads(together[2].text)) == {"name", "age"}
    with pytest.raises(ValueError, match="max_batch_size"):
        constrain.generate(model, tokenizer, prompts, schema=schema, max_batch_size=2, sampling="aligned")
