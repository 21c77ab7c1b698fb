"""Batching, fast-forward, opportunistic masking and overlap with the real model. Slow.

Greedy decoding makes the checks exact: each feature must leave the output unchanged (or, for
"bytes" fast-forward, keep it valid while forcing tokens).
"""

from __future__ import annotations

import re

import pytest

import constrain

pytestmark = pytest.mark.slow

PERSON = r'\{"name": "[A-Z][a-z]{1,12}", "age": [1-9][0-9]?, "city": "[A-Z][a-z]{2,15}"\}'
PROMPTS = [
    "Describe a person as JSON with name, age and city.",
    "Give me a JSON record for a customer living in Paris.",
    "JSON for a young programmer from Berlin, please.",
]


@pytest.fixture(scope="module")
def person(default_model):
    model, tokenizer = default_model
    vocab = constrain.Vocabulary.from_tokenizer(tokenizer, model.config.vocab_size)
    return constrain.compile_regex(PERSON, vocab)


def _one_by_one(model, tokenizer, constraint, **kw):
    return [constrain.generate(model, tokenizer, p, constraint=constraint, max_new_tokens=60, **kw) for p in PROMPTS]


def test_batch_equals_one_by_one(default_model, person):
    model, tokenizer = default_model
    singles = _one_by_one(model, tokenizer, person)
    batched = constrain.generate(model, tokenizer, PROMPTS, constraint=person, max_new_tokens=60)
    assert all(re.fullmatch(PERSON, t) for t in batched)
    assert batched == singles


def test_batch_with_one_constraint_per_row(default_model, person):
    model, tokenizer = default_model
    vocab = person.vocab
    digits = constrain.compile_regex(r"[0-9]{3}", vocab)
    out = constrain.generate(model, tokenizer, PROMPTS[:2], constraint=[person, digits], max_new_tokens=60)
    assert re.fullmatch(PERSON, out[0]) and re.fullmatch(r"[0-9]{3}", out[1])


def test_singleton_fast_forward_is_identical_to_greedy(default_model, person):
    model, tokenizer = default_model
    plain = _one_by_one(model, tokenizer, person)
    ff = _one_by_one(model, tokenizer, person, fast_forward="singleton")
    assert ff == plain


def test_bytes_fast_forward_forces_tokens_and_stays_valid(default_model, person):
    model, tokenizer = default_model
    results = constrain.generate_ids(
        model, tokenizer, PROMPTS, constraint=person, max_new_tokens=60, fast_forward=True
    )
    for r in results:
        assert re.fullmatch(PERSON, r.text)
        assert r.forced_tokens >= 4  # '{"', 'name', '":', ... are forced
        # Every step fed at least one token; forced ones came without a sampling step.
        assert len(r.step_seconds) + r.forced_tokens >= len(r.token_ids)


def test_opportunistic_greedy_is_identical(default_model, person):
    model, tokenizer = default_model
    assert _one_by_one(model, tokenizer, person, opportunistic=True) == _one_by_one(model, tokenizer, person)


def test_overlap_off_is_identical(default_model, person):
    model, tokenizer = default_model
    on = constrain.generate(model, tokenizer, PROMPTS, constraint=person, max_new_tokens=60)
    off = constrain.generate(model, tokenizer, PROMPTS, constraint=person, max_new_tokens=60, overlap=False)
    assert on == off


def test_opportunistic_rejects_top_p(default_model, person):
    model, tokenizer = default_model
    with pytest.raises(ValueError, match="opportunistic"):
        constrain.generate(
            model, tokenizer, "x", constraint=person, temperature=1.0, top_p=0.9, opportunistic=True
        )


def test_device_tables_match_the_cpu_path(default_model, person):
    model, tokenizer = default_model
    cpu = constrain.generate(model, tokenizer, PROMPTS, constraint=person, max_new_tokens=60)
    results = constrain.generate_ids(
        model, tokenizer, PROMPTS, constraint=person, max_new_tokens=60, device_tables=True
    )
    assert [r.path for r in results] == ["device"] * len(PROMPTS)
    assert [r.text for r in results] == cpu


def test_device_tables_of_a_schema_and_a_mixed_batch_match_the_cpu_path(default_model, person):
    """Schemas (grammar constraints) and a batch mixing constraints decode on the lazily filled
    device tables exactly as on the CPU path."""
    model, tokenizer = default_model
    schema = constrain.compile_json_schema(
        {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer", "minimum": 0, "maximum": 120}},
         "required": ["name", "age"], "additionalProperties": False},
        person.vocab,
    )
    constraints = [schema, person, schema]
    cpu = [
        constrain.generate(model, tokenizer, p, constraint=c, max_new_tokens=60)
        for p, c in zip(PROMPTS, constraints)
    ]
    results = constrain.generate_ids(
        model, tokenizer, PROMPTS, constraint=constraints, max_new_tokens=60, device_tables=True
    )
    assert [r.path for r in results] == ["device"] * len(PROMPTS)
    assert [r.text for r in results] == cpu


def test_device_tables_fall_back_when_too_large(default_model, person):
    model, tokenizer = default_model
    tiny = constrain.Limits(max_device_table_bytes=1024)
    small = constrain.compile_regex(r"[0-9]{2}", person.vocab, limits=tiny)
    with pytest.warns(UserWarning, match="max_device_table_bytes"):
        r = constrain.generate_ids(model, tokenizer, "Two digits.", constraint=small, device_tables=True)
    assert r.path == "cpu" and re.fullmatch(r"[0-9]{2}", r.text)
