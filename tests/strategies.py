"""Shared hypothesis strategies and helpers for constraint tests."""

from __future__ import annotations

import random

from constrain.vocab.vocabulary import Vocabulary

# The GGUF conversion of SmolLM2's tokenizer has no token for these bytes, so its BPE silently drops
# them (e.g. the lead byte 0xF1 of U+40000..U+7FFFF): no tokenization can spell such text.
SMOLLM2_MISSING_BYTES = {4, 6, 19, 20, 22, 29, 192, 193, 241, 242, *range(245, 256)}

# Patterns used across the property tests: literals, classes, repetition, alternation, unicode.
PATTERNS = [
    r"\d{3}-\d{4}",
    r"\d{4}-\d{2}-\d{2}",
    r"[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,4}",
    r"(yes|no|maybe)",
    r"\(?\d{3}\)? ?\d{3}-\d{4}",
    r"[A-Z][a-z]{0,8}( [A-Z][a-z]{0,8}){0,2}",
    r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?",
    r'"([^"\\]|\\["\\/bfnrt])*"',
    r"(ab|a)*c",
    r"[^\n]{0,12}",
    r"(café|naïve|日本語)+",
    r"true|false|null",
]


def random_segmentation(data: bytes, vocab: Vocabulary, rng: random.Random) -> list[int] | None:
    """A random tokenization of ``data`` into vocabulary tokens (not the canonical one); None if none."""
    trie = vocab.trie
    ids: list[int] = []
    pos = 0
    while pos < len(data):
        # All tokens that are a prefix of the rest: walk the trie along data[pos:].
        options: list[tuple[int, int]] = []
        node = 0
        for i in range(pos, len(data)):
            child = node + 1
            end = int(trie.subtree_end[node])
            while child < end and trie.node_byte[child] != data[i]:
                child = int(trie.subtree_end[child])
            if child >= end:
                break
            node = child
            for t in trie.tokens_at(node):
                options.append((int(t), i + 1 - pos))
        if not options:
            return None
        token, length = rng.choice(options)
        ids.append(token)
        pos += length
    return ids
