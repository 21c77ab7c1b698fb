"""Vocabulary slices: the tokens of JSON-string text, grouped by length, each in its own trie.

Most tokens of a real vocabulary are plain text: well-formed UTF-8 with no ``"``, no ``\\`` and no
control character (*safe* text). Inside a JSON string body nearly all of them are allowed, and a
trie walk that proves it one node at a time visits most of the trie (a hundred microseconds on a
50k vocabulary). Following llguidance's *slicer*, the trie is split into a forest of sub-tries:

* slice ``k`` (``k = 0 .. n-1``): the tokens of safe text whose length in code points lies in
  ``SLICE_CHARS[k]`` (1-4, 5-8, 9-16 characters);
* the rest: every other token (quotes, escapes, control bytes, partial UTF-8 sequences, safe text
  longer than 16 characters).

A mask kernel first asks how many characters of arbitrary safe text the lexer state accepts
without ever leaving its live region (:func:`constrain.grammar._kernels.safe_depth_kernel`). Every
slice whose longest token fits that depth is allowed wholesale (its precomputed word mask is OR-ed
in) and only the other sub-tries are walked; with no slice covered the whole trie is walked, as
before slicing. This is exact, not a heuristic: a token is in the mask
of a lexeme walk iff every prefix of it keeps the lexeme live, and every prefix of a slice token is
safe text of at most that many characters (or such text followed by part of one character), which
is exactly what the depth check explored.

Built once per vocabulary (:attr:`constrain.vocab.vocabulary.Vocabulary.slices`); immutable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from constrain.vocab.trie import TokenTrie, subtree_byte_sets

SLICE_CHARS: tuple[tuple[int, int], ...] = ((1, 4), (5, 8), (9, 16))
"""Code-point length ranges of the slices (inclusive). Their union's top is the most characters the
depth check ever explores (:attr:`VocabSlices.max_chars`)."""


# UTF-8 decoder states of safe text: after a lead byte, the continuation bytes still due. Per state:
# (lowest, highest) allowed next byte and the state after it (0: the character is complete).
UTF8_NEXT = np.array(
    [
        [0, 0, 0],  # 0: character boundary
        [0x80, 0xBF, 0],  # 1: one continuation byte due
        [0x80, 0xBF, 1],  # 2: two due
        [0x80, 0xBF, 2],  # 3: three due
        [0xA0, 0xBF, 1],  # 4: after E0 (no overlong forms)
        [0x80, 0x9F, 1],  # 5: after ED (no surrogates)
        [0x90, 0xBF, 2],  # 6: after F0 (no overlong forms)
        [0x80, 0x8F, 2],  # 7: after F4 (nothing past U+10FFFF)
    ],
    dtype=np.int32,
)
UTF8_LEAD = np.zeros(256, dtype=np.int32)
"""Decoder state after each lead byte of a multi-byte character (0: not a lead byte)."""
UTF8_LEAD[0xC2:0xE0] = 1
UTF8_LEAD[0xE0] = 4
UTF8_LEAD[0xE1:0xED] = 2
UTF8_LEAD[0xED] = 5
UTF8_LEAD[0xEE:0xF0] = 2
UTF8_LEAD[0xF0] = 6
UTF8_LEAD[0xF1:0xF4] = 3
UTF8_LEAD[0xF4] = 7

SAFE_FIRST = np.zeros(256, dtype=bool)
"""Bytes that begin a safe character: U+0020 and up except ``"`` and ``\\`` (ASCII), and lead bytes."""
SAFE_FIRST[0x20:0x80] = True
SAFE_FIRST[[0x22, 0x5C]] = False
SAFE_FIRST[UTF8_LEAD > 0] = True


def safe_byte_steps(byte_class: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The bytes a safe-text check reads, one per class of ``byte_class`` (bytes of a class lead to
    the same state; ``None``: every byte its own class): ``(step_b, step_u, cont_ptr, cont_b)``.

    ``step_b[j]`` begins a safe character and leaves the UTF-8 decoder in state ``step_u[j]``
    (0: the character is complete), one per (class, decoder state); the continuation bytes allowed
    in decoder state ``u`` are ``cont_b[cont_ptr[u]:cont_ptr[u + 1]]``, one per class (the first
    byte of each class in byte order)."""
    cls = np.arange(256, dtype=np.int32) if byte_class is None else np.ascontiguousarray(byte_class, dtype=np.int32)
    return _safe_byte_steps(cls, SAFE_FIRST, UTF8_LEAD, UTF8_NEXT)


@numba.njit(cache=True, nogil=True)
def _safe_byte_steps(cls, safe_first, lead, nxt):
    n_cls = 0
    for b in range(256):
        n_cls = max(n_cls, cls[b] + 1)
    seen = np.full(n_cls * 8, -1, dtype=np.int64)  # stamp per (class, decoder state)
    step_b = np.empty(256, dtype=np.int32)
    step_u = np.empty(256, dtype=np.int32)
    k = 0
    for b in range(256):
        if safe_first[b]:
            key = cls[b] * 8 + lead[b]
            if seen[key] < 0:
                seen[key] = 0
                step_b[k] = b
                step_u[k] = lead[b]
                k += 1
    cont_ptr = np.zeros(nxt.shape[0] + 1, dtype=np.int32)
    cont_b = np.empty(nxt.shape[0] * 64, dtype=np.int32)
    last_u = np.zeros(n_cls, dtype=np.int32)  # the decoder state a class was last taken for
    m = 0
    for u in range(1, nxt.shape[0]):
        for b in range(nxt[u, 0], nxt[u, 1] + 1):
            if last_u[cls[b]] != u:
                last_u[cls[b]] = u
                cont_b[m] = b
                m += 1
        cont_ptr[u + 1] = m
    return step_b[:k].copy(), step_u[:k].copy(), cont_ptr, cont_b[:m].copy()


def safe_text_length(data: bytes) -> int:
    """Code points of ``data`` if it is safe JSON-string text (well-formed UTF-8, no ``"``, no
    ``\\``, nothing below U+0020), else -1."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return -1
    for ch in text:
        if ch == '"' or ch == "\\" or ord(ch) < 0x20:
            return -1
    return len(text)


@dataclass(frozen=True, eq=False)
class VocabSlices:
    """The vocabulary's trie and its split into sub-tries, as one forest.

    ``forest`` is one flat DFS-ordered trie array holding several tries one after the other (each
    root a depth-0 node), so a kernel walks a trie by its root and node ids are unique across the
    forest. Root 0 is the whole trie (walked when no slice is covered: one walk, and the lexeme
    ends inside tokens are found once); root 1 holds the rest, root ``k + 2`` slice ``k``: every
    token of the vocabulary is in the whole trie and in exactly one of the others.
    """

    forest: TokenTrie
    roots: np.ndarray  # int32 [n_slices + 2]: root of the whole trie, of the rest, then of each slice
    slice_words: np.ndarray  # uint32 [n_slices, W]: bitmask of each slice's tokens
    slice_max_chars: np.ndarray  # int32 [n_slices]: longest token of each slice, in code points
    max_chars: int  # the most characters a depth check needs to explore
    walk_roots: tuple[np.ndarray, ...]  # per depth 0 .. max_chars: roots to walk
    covered_words: tuple[np.ndarray, ...]  # per depth: union of the slices covered (their tokens allowed)

    @property
    def sub_bytes(self) -> np.ndarray:
        """``uint64[n_nodes, 4]``: bytes below each forest node (cached per forest)."""
        return subtree_byte_sets(self.forest)


def build_slices(token_bytes: list[bytes | None], n_words: int, whole: TokenTrie | None = None) -> VocabSlices:
    """Split the tokens of ``token_bytes`` (index = token id) into the rest and the slices of
    :data:`SLICE_CHARS`; ``n_words`` is the bitmask width of the vocabulary, ``whole`` its trie
    (built here if not given)."""
    n_slices = len(SLICE_CHARS)
    groups: list[list[bytes | None]] = [[None] * len(token_bytes) for _ in range(n_slices + 1)]
    slice_words = np.zeros((n_slices, n_words), dtype=np.uint32)
    slice_max = np.zeros(n_slices, dtype=np.int32)
    for tid, data in enumerate(token_bytes):
        if not data:
            continue
        n = safe_text_length(data)
        group = 0
        for k, (lo, hi) in enumerate(SLICE_CHARS):
            if lo <= n <= hi:
                group = k + 1
                slice_words[k, tid >> 5] |= np.uint32(1 << (tid & 31))
                slice_max[k] = max(slice_max[k], n)
                break
        groups[group][tid] = data
    if whole is None:
        whole = TokenTrie.build(token_bytes)
    forest, roots = _concatenate([whole] + [TokenTrie.build(g) for g in groups])
    max_chars = int(slice_max.max()) if n_slices else 0
    walk_roots, covered = [], []
    for depth in range(max_chars + 1):
        fits = [k for k in range(n_slices) if slice_max[k] <= depth]
        if fits:
            walk = [roots[1]] + [roots[k + 2] for k in range(n_slices) if k not in fits]
        else:
            walk = [roots[0]]
        walk_roots.append(np.asarray(walk, dtype=np.int32))
        words = np.zeros(n_words, dtype=np.uint32)
        for k in fits:
            words |= slice_words[k]
        covered.append(words)
    return VocabSlices(forest, roots, slice_words, slice_max, max_chars, tuple(walk_roots), tuple(covered))


def _concatenate(tries: list[TokenTrie]) -> tuple[TokenTrie, np.ndarray]:
    """One flat array of several tries (node ids and token offsets shifted), and their roots."""
    roots, node_off, tok_off = [], 0, 0
    parts: dict[str, list[np.ndarray]] = {"byte": [], "depth": [], "end": [], "start": [], "ids": []}
    for t in tries:
        roots.append(node_off)
        parts["byte"].append(t.node_byte)
        parts["depth"].append(t.node_depth)
        parts["end"].append(t.subtree_end + node_off)
        parts["start"].append(t.node_token_start[:-1] + tok_off)
        parts["ids"].append(t.token_ids)
        node_off += t.n_nodes
        tok_off += int(t.node_token_start[-1])
    parts["start"].append(np.asarray([tok_off], dtype=np.int32))
    forest = TokenTrie(
        node_byte=np.concatenate(parts["byte"]).astype(np.uint8),
        node_depth=np.concatenate(parts["depth"]).astype(np.int32),
        subtree_end=np.concatenate(parts["end"]).astype(np.int32),
        node_token_start=np.concatenate(parts["start"]).astype(np.int32),
        token_ids=np.concatenate(parts["ids"]).astype(np.int32),
        max_depth=max(t.max_depth for t in tries),
    )
    return forest, np.asarray(roots, dtype=np.int32)
