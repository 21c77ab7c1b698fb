"""Constrained generation with the real default model (SmolLM2-135M-Instruct). Marked slow (~15 s load)."""

from __future__ import annotations

import re

import pytest

import constrain

pytestmark = pytest.mark.slow

CASES = [
    ("Give me a US phone number.", r"\(\d{3}\) \d{3}-\d{4}"),
    ("When did Apollo 11 land on the Moon? Answer with a date.", r"\d{4}-\d{2}-\d{2}"),
    ("Write the email address of a support desk.", r"[a-z]{2,12}@[a-z]{2,12}\.(com|org|net)"),
    ("Is the sky blue? Answer yes or no.", r"(yes|no)"),
]


@pytest.mark.parametrize(("prompt", "pattern"), CASES)
def test_greedy_generation_matches(default_model, prompt, pattern):
    model, tokenizer = default_model
    text = constrain.generate(model, tokenizer, prompt, regex=pattern, max_new_tokens=40)
    assert re.fullmatch(pattern, text, re.ASCII), text


def test_sampling_is_seeded_and_matches(default_model):
    model, tokenizer = default_model
    pattern = r"[A-Z][a-z]{2,10} [A-Z][a-z]{2,10}"
    kwargs = dict(regex=pattern, max_new_tokens=30, temperature=1.0, top_p=0.95)
    a = constrain.generate(model, tokenizer, "Invent a person's name.", seed=7, **kwargs)
    b = constrain.generate(model, tokenizer, "Invent a person's name.", seed=7, **kwargs)
    assert a == b and re.fullmatch(pattern, a)


def test_generate_ids_reports_stop_and_timings(default_model):
    model, tokenizer = default_model
    result = constrain.generate_ids(model, tokenizer, "Pick a digit.", regex=r"\d", max_new_tokens=5)
    assert re.fullmatch(r"\d", result.text)
    # \d allows nothing after one digit: generation stops without a forward pass for EOS.
    assert result.stop_reason == "constraint_complete" and len(result.token_ids) == 1
    assert len(result.step_seconds) == 1
    assert result.mask_seconds < result.seconds


def test_incomplete_output_raises_with_the_prefix(default_model):
    model, tokenizer = default_model
    with pytest.raises(constrain.IncompleteGenerationError) as info:
        constrain.generate(model, tokenizer, "Count.", regex=r"\d{50}", max_new_tokens=3)
    assert re.fullmatch(r"\d{1,3}", info.value.text)


def test_logits_processor_with_model_generate(default_model):
    import torch
    from transformers import LogitsProcessorList

    model, tokenizer = default_model
    vocab = constrain.Vocabulary.from_tokenizer(tokenizer, model.config.vocab_size)
    pattern = r"(red|green|blue)( and (red|green|blue))?"
    constraint = constrain.compile_regex(pattern, vocab)
    prompts = ["Name a colour.", "What colour is grass?"]
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
        for p in prompts
    ]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    processor = constrain.ConstrainLogitsProcessor(constraint)
    with torch.no_grad():
        out = model.generate(
            **batch,
            max_new_tokens=12,
            do_sample=False,
            logits_processor=LogitsProcessorList([processor]),
            eos_token_id=vocab.eos_token_ids[0],
            pad_token_id=tokenizer.pad_token_id,
        )
    for row in out[:, batch["input_ids"].shape[1]:].tolist():
        ids = [t for t in row if t not in vocab.eos_token_ids and t != tokenizer.pad_token_id]
        text = vocab.decode(ids).decode()
        assert re.fullmatch(pattern, text), text
    assert all(m.is_terminated() or m.is_accepting() for m in processor.matchers)


def test_cli_generate(default_model, capsys):
    from constrain.cli import main

    assert main(["generate", "--regex", r"\d{4}", "--max-new-tokens", "8", "Pick a year."]) == 0
    out = capsys.readouterr().out.strip()
    assert re.fullmatch(r"\d{4}", out)


def test_cli_reports_bad_regex(default_model, capsys):
    from constrain.cli import main

    assert main(["generate", "--regex", r"a(?=b)", "x"]) == 2
    assert "lookahead" in capsys.readouterr().err


def test_aligned_sampling_through_generate(default_model):
    model, tokenizer = default_model
    pattern = r"(red|green|blue) (cat|dog)"
    outs = constrain.generate(
        model, tokenizer, "Name a coloured animal.", regex=pattern, sampling="aligned", num_samples=20, seed=3
    )
    assert len(outs) == 20 and all(re.fullmatch(pattern, o) for o in outs)
    with pytest.raises(ValueError, match="num_samples"):
        constrain.generate(model, tokenizer, "x", regex=pattern, sampling="aligned")
    with pytest.raises(ValueError, match="sampling must be"):
        constrain.generate(model, tokenizer, "x", regex=pattern, sampling="beam")


def test_aligned_sampling_with_a_grammar(default_model):
    model, tokenizer = default_model
    grammar = 'start: WORD " " WORD\nWORD: "yes" | "no" | "maybe"\n'
    outs = constrain.generate(
        model, tokenizer, "Answer twice.", grammar=grammar, sampling="aligned", num_samples=10, seed=1
    )
    assert all(re.fullmatch(r"(yes|no|maybe) (yes|no|maybe)", o) for o in outs)


def test_search_and_knowledge_through_generate(default_model):
    from constrain.search import keyword_coverage

    model, tokenizer = default_model
    search = constrain.Lookahead(reward=keyword_coverage(["dog"]), k=3, depth=3, weight=4.0)
    text = constrain.generate(
        model, tokenizer, "Write a short phrase about a pet.", search=search,
        regex=r"[A-Za-z ,]{1,40}\.", max_new_tokens=16,
    )
    assert re.fullmatch(r"[A-Za-z ,]{1,40}\.", text)
    trie = constrain.KnowledgeTrie.from_phrases(["Paris is the capital of France"], tokenizer)
    text = constrain.generate(
        model, tokenizer, "What is the capital of France?", knowledge=trie,
        regex=r"[A-Za-z ]{1,30}\.", max_new_tokens=12, seed=0,
    )
    assert re.fullmatch(r"[A-Za-z ]{1,30}\.", text)
    with pytest.raises(TypeError, match="not both"):
        constrain.generate(model, tokenizer, "x", knowledge=trie, search=search)


def test_speculative_through_generate_matches_greedy(default_model):
    model, tokenizer = default_model
    prompt = 'Copy this record as JSON: name "Ada Lovelace", year 1815.'
    pattern = r'\{"name": "[A-Za-z ]{1,20}", "year": [0-9]{4}\}'
    plain = constrain.generate(model, tokenizer, prompt, regex=pattern, max_new_tokens=40)
    fast = constrain.generate(
        model, tokenizer, prompt, regex=pattern, max_new_tokens=40, speculative=constrain.Speculative()
    )
    assert fast == plain and re.fullmatch(pattern, fast)


def test_aligned_sampling_with_a_json_schema(default_model):
    import json

    model, tokenizer = default_model
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": False}
    outs = constrain.generate(
        model, tokenizer, "Is it OK?", schema=schema, schema_options={"whitespace": "compact"},
        sampling="aligned", num_samples=8, seed=2,
    )
    assert all(json.loads(o) in ({"ok": True}, {"ok": False}) for o in outs)
