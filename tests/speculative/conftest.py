"""Toy vocabulary and a tiny random float64 Llama (no download) shared by the speculative tests."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from constrain.vocab.vocabulary import Vocabulary  # noqa: E402


def toy_tokens() -> list[str | None]:
    chars = [chr(c) for c in range(32, 127)]  # printable ASCII, one token each
    words = [
        '{"', '"}', '":', '",', ' "', '": "', '", "', 'name', 'age', 'city', 'Ada', ' Ada', 'Love', 'lace',
        ' Lovelace', 'London', ' London', 'Paris', 'born', '18', '15', '12', '10', '-1', '-', 'true',
        'false', 'null', 'ab', 'ba', 'abc', 'cat', 'dog', ' cat', ' dog', 'red', 'blue', ' red', ' blue',
        'the', ' the', 'and', ' and', 'is', ' is', 'on', ' on', 'mat', ' mat', 'ing', 'er', 'ed',
    ]
    extra = [w + x for w in ("to", "re", "in", "an", "or") for x in ("", "s", "e", "t", "n")]
    toks: list[str | None] = [None] + chars + words + extra  # id 0 = EOS (special, no text)
    seen, out = set(), []
    for t in toks:
        if t is None or t not in seen:
            out.append(t)
            if t is not None:
                seen.add(t)
    while len(out) < 300:
        out.append(f"<x{len(out)}>")
    return out


@pytest.fixture(scope="session")
def toy_vocab() -> Vocabulary:
    return Vocabulary.from_tokens(toy_tokens(), eos_token_ids=0)


def make_toy_llama(vocab_size: int, seed: int, layers: int = 2):
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
    )
    model = transformers.LlamaForCausalLM(config).double().eval()
    with torch.no_grad():  # sharper than the default init, so greedy margins are not tiny
        model.lm_head.weight.mul_(40.0)
    return model


@pytest.fixture(scope="session")
def toy_llama(toy_vocab):
    return make_toy_llama(toy_vocab.size, seed=0, layers=4)


@pytest.fixture(scope="session")
def toy_draft_llama(toy_vocab):
    return make_toy_llama(toy_vocab.size, seed=1, layers=2)
