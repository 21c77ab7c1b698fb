"""Greedy speculative decoding is token-identical to greedy masked decoding (constrain.decode)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from constrain.decode import DecodeOptions, decode_batch  # noqa: E402
from constrain.dfa_constraint import compile_regex  # noqa: E402
from constrain.grammar import compile_grammar  # noqa: E402
from constrain.schema import compile_json_schema  # noqa: E402
from constrain.speculative import (  # noqa: E402
    Chain,
    Drafter,
    ForcedDrafter,
    LayerSkipDrafter,
    ModelDrafter,
    PromptLookupDrafter,
    Speculative,
    generate_speculative,
)

from .conftest import make_toy_llama  # noqa: E402

JSON_RE = r'\{"name": "[A-Za-z ]{1,16}", "age": [0-9]{1,3}, "city": "(London|Paris|[a-z]{1,8})"\}'
LIST_RE = r"\[(red|blue|cat|dog)(, (red|blue|cat|dog)){0,5}\]"
FREE_RE = r"[a-z ]{3,30}\."
GRAMMAR = r"""
start: "(" item (" " item)* ")"
item: WORD | start
WORD: /[a-z]{1,6}/
"""
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 10},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "city": {"enum": ["London", "Paris"]},
        "tags": {"type": "array", "items": {"enum": ["red", "blue", "cat"]}, "maxItems": 3},
    },
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}


def compile_toy(which: str, vocab):
    """The toy constraints: JSON-shaped / list / free-text regexes, a Lark grammar, a JSON schema."""
    return {
        "json": lambda: compile_regex(JSON_RE, vocab),
        "list": lambda: compile_regex(LIST_RE, vocab),
        "free": lambda: compile_regex(FREE_RE, vocab),
        "grammar": lambda: compile_grammar(GRAMMAR, vocab),
        "schema": lambda: compile_json_schema(SCHEMA, vocab),
    }[which]()


class RandomDrafter(Drafter):
    """Proposes random *valid* tokens (one-hot): mostly rejected, so rollback runs all the time."""

    name = "random"

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def extend(self, builder) -> None:
        while builder.room:
            allowed = np.flatnonzero(builder.current_mask())
            if not builder.add(int(self.rng.choice(allowed)), self.name, 0.9):
                return


def _prompts(vocab, n, seed=0):
    rng = np.random.default_rng(seed)
    words = [vocab.tokens.index(w) for w in (b"name", b" Ada", b" Lovelace", b"age", b"18", b" London", b"red",
                                              b" cat", b"the", b" mat")]
    out = []
    for _ in range(n):
        ids = list(rng.choice(words, size=rng.integers(3, 9))) + list(rng.integers(1, vocab.size, size=3))
        out.append([int(t) for t in ids])
    return out


def _baseline(model, prompt, constraint, vocab, max_new_tokens):
    opts = DecodeOptions(max_new_tokens=max_new_tokens, allow_incomplete=True)
    return decode_batch(model, [prompt], [constraint.matcher()], vocab, opts, pad_token_id=0)[0]


DRAFTERS = {
    "default": lambda m: Speculative(),
    "lookup": lambda m: Speculative(drafter="lookup", max_draft=5),
    "forced": lambda m: Speculative(drafter="forced"),
    "random": lambda m: Speculative(drafter=RandomDrafter(0), max_draft=4, stop_threshold=1.0),
    "draft_model": lambda m: Speculative(drafter=ModelDrafter(m), max_draft=4),
    "layer_skip": lambda m: Speculative(drafter=Chain([ForcedDrafter(), LayerSkipDrafter(2)]), max_draft=6),
    "chain_all": lambda m: Speculative(drafter=[ForcedDrafter(), PromptLookupDrafter(), RandomDrafter(1)]),
}


@pytest.mark.parametrize("which", ["json", "list", "free", "grammar", "schema"])
@pytest.mark.parametrize("drafter", list(DRAFTERS))
def test_greedy_matches_masked_greedy_on_a_toy_llama(toy_llama, toy_draft_llama, toy_vocab, which, drafter):
    constraint = compile_toy(which, toy_vocab)
    total_accepted = 0
    for prompt in _prompts(toy_vocab, 4, seed=hash(which) % 1000):
        base = _baseline(toy_llama, prompt, constraint, toy_vocab, 40)
        spec = DRAFTERS[drafter](toy_draft_llama)
        res = generate_speculative(toy_llama, toy_vocab, prompt, constraint, spec, max_new_tokens=40,
                                   allow_incomplete=True)
        assert res.token_ids == base.token_ids, (drafter, which, res.text, base.text)
        assert res.stop_reason == base.stop_reason
        total_accepted += sum(res.speculative["accepted_lengths"])
        assert res.speculative["forward_passes"] <= len(base.step_seconds) + 1
    if drafter in ("default", "forced") and which in ("json", "list", "schema"):
        assert total_accepted > 0  # forced bytes of the JSON/list shapes are drafted and accepted


def test_layer_skip_model_runs_the_first_layers_and_leaves_the_model_alone(toy_llama):
    from constrain.speculative import layer_skip_model

    ids = torch.tensor([[5, 17, 42, 99, 3]])
    before = toy_llama(input_ids=ids).logits
    draft = layer_skip_model(toy_llama, 2)
    got = draft(input_ids=ids).logits
    # by hand: embeddings, first two decoder layers, final norm, LM head
    inner = toy_llama.model
    h = inner.embed_tokens(ids)
    pos = torch.arange(ids.shape[1])[None]
    rope = inner.rotary_emb(h, pos)
    mask = torch.full((ids.shape[1], ids.shape[1]), float("-inf"), dtype=h.dtype).triu(1)[None, None]
    for layer in inner.layers[:2]:
        out = layer(h, attention_mask=mask, position_ids=pos, position_embeddings=rope)
        h = out[0] if isinstance(out, tuple) else out
    want = toy_llama.lm_head(inner.norm(h))
    torch.testing.assert_close(got, want)
    assert len(toy_llama.model.layers) == 4 and toy_llama.config.num_hidden_layers == 4
    torch.testing.assert_close(toy_llama(input_ids=ids).logits, before)
    assert not torch.allclose(got, before)


def test_greedy_with_a_draft_model_is_identical_and_accepts_drafts(toy_llama, toy_vocab):
    # the target as its own draft model: every draft is accepted, output still identical
    constraint = compile_regex(FREE_RE, toy_vocab)
    prompt = _prompts(toy_vocab, 1, seed=3)[0]
    base = _baseline(toy_llama, prompt, constraint, toy_vocab, 30)
    same = make_toy_llama(toy_vocab.size, seed=0, layers=4)
    res = generate_speculative(toy_llama, toy_vocab, prompt, constraint,
                               Speculative(drafter=ModelDrafter(same), max_draft=5, stop_threshold=1.0),
                               max_new_tokens=30, allow_incomplete=True)
    assert res.token_ids == base.token_ids
    per = res.speculative["per_drafter"]["model"]
    assert per["accepted"] == per["judged"] > 0
    assert res.speculative["forward_passes"] < len(base.token_ids) / 3


PEOPLE = [
    ("Ada Lovelace", "1815-12-10", "London"), ("Alan Turing", "1912-06-23", "Maida Vale"),
    ("Grace Hopper", "1906-12-09", "New York"), ("Marie Curie", "1867-11-07", "Warsaw"),
    ("Emmy Noether", "1882-03-23", "Erlangen"), ("Niels Bohr", "1885-10-07", "Copenhagen"),
]
REAL_RE = r'\{"name": "[A-Za-z .\-]{1,40}", "born": "[0-9]{4}-[0-9]{2}-[0-9]{2}", "city": "[A-Za-z .\-]{1,30}"\}'


def _real_prompts():
    echo = [f"Convert this record to JSON with keys name, born, city: name {n}; born {b}; city {c}."
            for n, b, c in PEOPLE]
    other = ["Describe a fictional pirate as JSON with keys name, born (YYYY-MM-DD), city.",
             "Invent an astronaut and give name, born (YYYY-MM-DD) and city as JSON.",
             "Make up a medieval baker; answer as JSON with keys name, born, city.",
             "Give a made-up jazz musician as JSON with keys name, born, city."]
    return echo + other


@pytest.mark.slow
def test_greedy_identity_on_the_default_model(default_model):
    from constrain.generate import encode_prompt
    from constrain.integrations.transformers import model_vocab_size, vocabulary_for

    torch.set_num_threads(1)
    model, tok = default_model
    vocab = vocabulary_for(tok, model_vocab_size(model, tok))
    constraint = compile_regex(REAL_RE, vocab)
    forwards = tokens = 0
    for prompt in _real_prompts():
        ids = encode_prompt(tok, prompt)
        base = _baseline(model, ids, constraint, vocab, 64)
        res = generate_speculative(model, tok, prompt, constraint, Speculative(), max_new_tokens=64,
                                   allow_incomplete=True)
        if res.token_ids != base.token_ids:
            # allowed only at a near-tie (float32 batched vs one-token kernels): check the margin
            i = next(i for i, (a, b) in enumerate(zip(base.token_ids + [-1], res.token_ids + [-2])) if a != b)
            m = constraint.matcher()
            m.accept_tokens(base.token_ids[:i])
            allowed = m.allowed_token_ids()
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([ids + base.token_ids[:i]])).logits[0, -1].float().numpy()
            top = np.sort(logits[allowed])[::-1]
            assert top[0] - top[1] < 1e-4, (prompt, res.text, base.text)
        forwards += res.speculative["forward_passes"]
        tokens += len(res.token_ids)
    assert forwards < 0.75 * tokens  # forced + lookup drafts save forward passes
