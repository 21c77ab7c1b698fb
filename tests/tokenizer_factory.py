"""Small tokenizers of the three families, trained offline with the `tokenizers` library.

Nothing is downloaded: each tokenizer is trained in memory on a tiny built-in corpus.
"""

from __future__ import annotations

import functools
import json

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    'JSON: {"name": "Ada", "age": 36, "tags": ["math", "code"], "ok": true}',
    "Phone 555-1234, date 2024-05-17, email ada@example.com",
    "def f(x):\n    return x * 2 + 1\n",
    "SELECT name, age FROM people WHERE age > 30 ORDER BY name;",
    "über café naïve 日本語 テキスト ✓ 🚀",
] * 20


def _specials() -> list[str]:
    return ["<unk>", "<s>", "</s>"]


@functools.lru_cache(maxsize=None)
def byte_level_bpe(vocab_size: int = 600) -> Tokenizer:
    """GPT-2 style byte-level BPE (Ġ for space); EOS is ``</s>`` (special)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=_specials(),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


@functools.lru_cache(maxsize=None)
def sentencepiece_byte_fallback(vocab_size: int = 400, prepend: bool = False) -> Tokenizer:
    """Llama-style BPE: ``▁`` for spaces, ``<0xNN>`` byte-fallback tokens for unseen characters."""
    base = Tokenizer(models.BPE(unk_token="<unk>"))
    base.normalizer = normalizers.Replace(" ", "▁")
    base.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=_specials(), show_progress=False)
    base.train_from_iterator(CORPUS, trainer)
    spec = json.loads(base.to_str())
    vocab = spec["model"]["vocab"]
    for byte in range(256):  # real SentencePiece models hold the byte tokens in the model vocab
        vocab.setdefault(f"<0x{byte:02X}>", len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in spec["model"]["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True))
    norm = [normalizers.Replace(" ", "▁")]
    if prepend:
        norm.insert(0, normalizers.Prepend("▁"))
    tok.normalizer = normalizers.Sequence(norm)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens(_specials())
    return tok


@functools.lru_cache(maxsize=None)
def plain_bpe(vocab_size: int = 300) -> Tokenizer:
    """A BPE whose token strings are literal text (no byte-level or ``▁`` spelling)."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=_specials(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def plain_alphabet() -> str:
    """Characters the plain tokenizer can encode without ``<unk>``."""
    return "".join(sorted(set("".join(CORPUS))))
