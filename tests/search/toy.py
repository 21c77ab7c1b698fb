"""A toy word-level tokenizer/vocabulary and a seeded tiny random Llama (no download) for the
knowledge and search tests."""

from __future__ import annotations

import functools

from constrain.vocab.vocabulary import Vocabulary

WORDS = (
    "dog cat bird fish tree park ball frisbee catch run jump sleep eat food water river boat sun "
    "moon car road house door window book read write chair table music"
).split()
assert len(WORDS) == 30
EOS = 0
TOKENS = ["<eos>", ".", ",", " the", " a", "The", "A"] + [" " + w for w in WORDS] + WORDS


class ToyTokenizer:
    """Greedy longest-match over :data:`TOKENS`; characters no token covers are skipped."""

    eos_token_id = EOS
    pad_token_id = EOS
    chat_template = None

    def __init__(self):
        self.index = {t: i for i, t in enumerate(TOKENS) if i != EOS}
        self.max_len = max(len(t) for t in self.index)

    def __len__(self) -> int:
        return len(TOKENS)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        out, i = [], 0
        while i < len(text):
            for n in range(min(self.max_len, len(text) - i), 0, -1):
                t = self.index.get(text[i : i + n])
                if t is not None:
                    out.append(t)
                    i += n
                    break
            else:
                i += 1
        return out

    def __call__(self, text: str, add_special_tokens: bool = False):
        return {"input_ids": self.encode(text)}

    def decode(self, ids) -> str:
        return "".join(TOKENS[i] for i in ids if i != EOS)


@functools.lru_cache(maxsize=1)
def toy_vocab() -> Vocabulary:
    return Vocabulary.from_tokens([None] + TOKENS[1:], eos_token_ids=[EOS])


def tiny_llama(seed: int = 0, vocab_size: int | None = None):
    import torch
    import transformers

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=vocab_size or len(TOKENS),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=256,
        bos_token_id=None,
        eos_token_id=EOS,
        pad_token_id=EOS,
    )
    return transformers.LlamaForCausalLM(config).eval()
