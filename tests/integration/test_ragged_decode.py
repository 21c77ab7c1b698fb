"""Ragged batches: fast-forwarded tokens fed over several steps, finished rows leaving the batch.

Greedy decoding makes the checks exact: a batch with "singleton" fast-forward must give, row by
row, the tokens of plain greedy decoding of each prompt alone.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

import constrain
from constrain.decode import DecodeOptions, decode_batch, feed_width
from constrain.generate import encode_prompt

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"},
                   "city": {"type": "string", "maxLength": 12}},
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}
PROMPTS = [
    "Describe a person as JSON with name, age and city.",
    "Give me three digits.",
    "JSON for a young programmer from Berlin, please.",
    "A customer record from Paris, as JSON.",
]


@given(st.lists(st.integers(0, 12), min_size=1, max_size=40), st.floats(0.0, 1.0))
def test_feed_width_keeps_the_block_full_enough(lengths, fill):
    width = feed_width(lengths, fill)
    assert 1 <= width <= max(1, max(lengths))
    if width > 1:
        assert sum(min(n, width) for n in lengths) >= fill * width * len(lengths)
    wider = width + 1
    if wider <= max(lengths):  # the chosen width is the widest that qualifies
        assert sum(min(n, wider) for n in lengths) < fill * wider * len(lengths)


def test_feed_width_single_row_feeds_everything():
    assert feed_width([7], 1.0) == 7
    assert feed_width([7, 1, 1, 1], 0.0) == 7
    assert feed_width([7, 1, 1, 1], 0.5) == 3  # 3+1+1+1 = 6 >= 0.5*3*4; width 4: 7 < 8
    assert feed_width([7, 1, 1, 1], 1.0) == 1


def test_ragged_fill_is_checked():
    with pytest.raises(ValueError):
        DecodeOptions(ragged_fill=1.5)


@pytest.fixture(scope="module")
def setup(default_model):
    model, tokenizer = default_model
    vocab = constrain.Vocabulary.from_tokenizer(tokenizer, model.config.vocab_size)
    person = constrain.compile_json_schema(SCHEMA, vocab)
    digits = constrain.compile_regex(r"[0-9]{3}", vocab)
    constraints = [person, digits, person, person]
    prompts = [encode_prompt(tokenizer, p) for p in PROMPTS]
    return model, vocab, constraints, prompts


def _decode(setup, rows, **kw):
    model, vocab, constraints, prompts = setup
    options = DecodeOptions(max_new_tokens=48, **kw)
    return decode_batch(model, [prompts[i] for i in rows], [constraints[i].matcher() for i in rows], vocab,
                        options, pad_token_id=vocab.eos_token_ids[0])


@pytest.mark.slow
@pytest.mark.parametrize("ragged_fill", [0.0, 0.5])
def test_batched_singleton_fast_forward_equals_plain_greedy_alone(setup, ragged_fill):
    alone = [_decode(setup, [i])[0] for i in range(len(PROMPTS))]
    batched = _decode(setup, list(range(len(PROMPTS))), fast_forward="singleton", ragged_fill=ragged_fill)
    assert [r.token_ids for r in batched] == [r.token_ids for r in alone]
    assert sum(r.forced_tokens for r in batched) > 0  # the JSON keys are forced
    for r, i in zip(batched, range(len(PROMPTS))):
        if i == 1:
            assert re.fullmatch(r"[0-9]{3}", r.text)
        else:
            assert set(json.loads(r.text)) == {"name", "age", "city"}


@pytest.mark.slow
def test_finished_rows_leave_the_batch(setup):
    # The digits row ends after 3 tokens; the others go on in a smaller batch and keep their outputs.
    batched = _decode(setup, [1, 0, 2])
    alone = [_decode(setup, [i])[0] for i in (1, 0, 2)]
    assert [r.token_ids for r in batched] == [r.token_ids for r in alone]
    assert len(batched[0].token_ids) == 3 < len(batched[1].token_ids)
    assert batched[0].steps == max(len(r.step_seconds) for r in batched)


@pytest.mark.slow
def test_per_row_budgets(setup):
    """row_max_new_tokens: each row stops at its own budget, with the tokens greedy gives it anyway."""
    model, vocab, constraints, prompts = setup
    full = _decode(setup, [0, 2, 3], allow_incomplete=True)
    budgets = [3, 7, 48]
    cut = decode_batch(model, [prompts[i] for i in (0, 2, 3)], [constraints[i].matcher() for i in (0, 2, 3)],
                       vocab, DecodeOptions(max_new_tokens=48, allow_incomplete=True),
                       pad_token_id=vocab.eos_token_ids[0], row_max_new_tokens=budgets)
    for r, f, n in zip(cut, full, budgets):
        assert r.token_ids == f.token_ids[:n]
    assert [r.stop_reason for r in cut[:2]] == ["max_new_tokens"] * 2
    with pytest.raises(ValueError):
        decode_batch(model, [prompts[0]], [constraints[0].matcher()], vocab, DecodeOptions(),
                     pad_token_id=vocab.eos_token_ids[0], row_max_new_tokens=[0])
