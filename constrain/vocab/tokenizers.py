"""Decode the token strings of Hugging Face tokenizers into bytes.

Reads the tokenizer's own description (``tokenizers`` JSON: model, decoder, added tokens) to tell
the spelling apart instead of guessing from a few tokens; falls back to token-string heuristics for
tokenizers without a fast backend.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from constrain.errors import VocabularyError
from constrain.vocab.vocabulary import VocabType

_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
# Share of (non-special) tokens that may fail to map before we call the tokenizer unusable.
_MAX_UNMAPPABLE_SHARE = 0.01


@functools.lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode character table."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@functools.lru_cache(maxsize=1)
def unicode_to_bytes() -> dict[str, int]:
    """Inverse of :func:`bytes_to_unicode`."""
    return {c: b for b, c in bytes_to_unicode().items()}


def _backend_json(tokenizer: Any) -> dict[str, Any] | None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None and type(tokenizer).__module__.startswith("tokenizers"):
        backend = tokenizer
    if backend is None or not hasattr(backend, "to_str"):
        return None
    return json.loads(backend.to_str())


def _component_types(component: dict[str, Any] | None) -> list[str]:
    """Types of a decoder / pre-tokenizer, flattening ``Sequence`` components."""
    if not component:
        return []
    if component.get("type") == "Sequence":
        parts = component.get("decoders") or component.get("pretokenizers") or []
        return [t for p in parts for t in _component_types(p)]
    return [component.get("type", "")]


def detect_vocab_type(spec: dict[str, Any] | None, token_strings: list[str]) -> VocabType:
    """Tell byte-level BPE, SentencePiece byte fallback and raw vocabularies apart.

    Raises ``VocabularyError`` for spellings we cannot map exactly (WordPiece).
    """
    if spec is not None:
        model = spec.get("model") or {}
        types = _component_types(spec.get("decoder")) + _component_types(spec.get("pre_tokenizer"))
        if model.get("type") == "WordPiece" or "WordPiece" in types:
            raise VocabularyError(
                "WordPiece tokenizers (BERT-style '##' continuations) insert spaces between words "
                "when decoding, so their tokens have no exact bytes; use a BPE or SentencePiece model"
            )
        if "ByteLevel" in types:
            return VocabType.BYTE_LEVEL
        if model.get("byte_fallback") or "ByteFallback" in types or "Metaspace" in types:
            return VocabType.BYTE_FALLBACK
        if any("▁" in t for t in token_strings[:5000]) and "Replace" in types:
            return VocabType.BYTE_FALLBACK
        return VocabType.RAW
    # No fast backend: judge from the token strings themselves.
    sample = token_strings
    if sum("Ġ" in t or "Ċ" in t for t in sample) > 10:
        return VocabType.BYTE_LEVEL
    if sum("▁" in t for t in sample) > 10 or sum(bool(_BYTE_TOKEN.match(t)) for t in sample) >= 200:
        return VocabType.BYTE_FALLBACK
    return VocabType.RAW


def token_string_to_bytes(text: str, vocab_type: VocabType) -> bytes | None:
    """Bytes of one (non-added) token string; ``None`` if it cannot be mapped."""
    if vocab_type is VocabType.BYTE_LEVEL:
        table = unicode_to_bytes()
        try:
            return bytes(table[c] for c in text)
        except KeyError:
            return None
    if vocab_type is VocabType.BYTE_FALLBACK:
        m = _BYTE_TOKEN.match(text)
        if m:
            return bytes([int(m.group(1), 16)])
        return text.replace("▁", " ").encode("utf-8")
    return text.encode("utf-8")


def tokenizer_token_bytes(tokenizer: Any) -> tuple[list[bytes | None], list[int], VocabType]:
    """Return ``(token_bytes, eos_token_ids, vocab_type)`` for a Hugging Face tokenizer."""
    if not hasattr(tokenizer, "get_vocab"):
        raise TypeError(
            f"expected a transformers or tokenizers tokenizer, got {type(tokenizer).__name__}"
        )
    vocab: dict[str, int] = tokenizer.get_vocab()
    if not vocab:
        raise VocabularyError("the tokenizer has an empty vocabulary")
    spec = _backend_json(tokenizer)
    size = max(vocab.values()) + 1
    id_to_str: list[str | None] = [None] * size
    for s, i in vocab.items():
        id_to_str[i] = s
    vocab_type = detect_vocab_type(spec, [s for s in id_to_str if s is not None])

    special: set[int] = set()
    added_plain: dict[int, str] = {}
    if spec is not None:
        for added in spec.get("added_tokens") or []:
            if added.get("special"):
                special.add(int(added["id"]))
            else:
                added_plain[int(added["id"])] = added["content"]
    for attr in ("all_special_ids",):
        special.update(int(i) for i in getattr(tokenizer, attr, None) or [])
    # transformers marks added tokens through added_tokens_decoder.
    for i, tok in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items():
        if getattr(tok, "special", False):
            special.add(int(i))
        else:
            added_plain.setdefault(int(i), str(tok))

    token_bytes: list[bytes | None] = [None] * size
    unmappable = []
    for i, s in enumerate(id_to_str):
        if s is None or i in special:
            continue
        if i in added_plain:
            # Added tokens are matched on raw text before the model's spelling applies.
            token_bytes[i] = added_plain[i].encode("utf-8")
            continue
        b = token_string_to_bytes(s, vocab_type)
        if b is None:
            unmappable.append(s)
        token_bytes[i] = b
    if len(unmappable) > _MAX_UNMAPPABLE_SHARE * size:
        raise VocabularyError(
            f"{len(unmappable)} of {size} tokens cannot be mapped to bytes as {vocab_type.value} "
            f"(e.g. {unmappable[:5]!r}): is this the tokenizer the model was trained with?"
        )

    eos: list[int] = []
    eos_id = getattr(tokenizer, "eos_token_id", None)
    if eos_id is not None:
        eos.append(int(eos_id))
    elif spec is not None:
        # A bare tokenizers.Tokenizer has no EOS attribute: take the usual names.
        for name in ("</s>", "<|endoftext|>", "<|im_end|>", "<eos>", "<|end_of_text|>"):
            if name in vocab:
                eos.append(vocab[name])
                break
    if not eos:
        raise VocabularyError("the tokenizer has no EOS token; pass eos_token_ids= explicitly")
    return token_bytes, eos, vocab_type
