"""TokenTrie: the vocabulary as a flat byte trie in DFS order, for numba kernels.

Node 0 is the root (the empty string). Every other node ``i`` adds one byte ``node_byte[i]`` to its
parent's string and sits at depth ``node_depth[i]`` (root depth 0). Nodes are stored in depth-first
order, so the subtree of ``i`` is the index range ``[i, subtree_end[i])``: a kernel that finds a
byte invalid skips the whole subtree with one assignment. Tokens whose bytes end at node ``i`` are
``token_ids[node_token_start[i]:node_token_start[i + 1]]`` (several ids may share the same bytes).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np


@dataclass(frozen=True, eq=False)
class TokenTrie:
    """Flat DFS-ordered byte trie over the tokens of a vocabulary (immutable)."""

    node_byte: np.ndarray  # uint8 [n_nodes]; node 0 (root) holds 0
    node_depth: np.ndarray  # int32 [n_nodes]
    subtree_end: np.ndarray  # int32 [n_nodes]: one past the last node of the subtree
    node_token_start: np.ndarray  # int32 [n_nodes + 1]: CSR offsets into token_ids
    token_ids: np.ndarray  # int32 [n_tokens_in_trie]
    max_depth: int

    @property
    def n_nodes(self) -> int:
        return int(self.node_byte.shape[0])

    @classmethod
    def build(cls, token_bytes: Sequence[bytes | None]) -> TokenTrie:
        """Build the trie from ``token_bytes`` (index = token id; ``None`` / empty are left out)."""
        by_bytes: dict[bytes, list[int]] = {}
        for tid, b in enumerate(token_bytes):
            if b:
                by_bytes.setdefault(b, []).append(tid)
        keys = sorted(by_bytes)
        node_byte = [0]
        node_depth = [0]
        node_tokens: list[list[int]] = [[]]
        path: list[int] = [0]  # node index per depth along the current path
        prev = b""
        for key in keys:
            # Sorted keys: the common prefix with the previous key is still on the path.
            common = 0
            limit = min(len(prev), len(key))
            while common < limit and prev[common] == key[common]:
                common += 1
            del path[common + 1 :]
            for depth in range(common + 1, len(key) + 1):
                node_byte.append(key[depth - 1])
                node_depth.append(depth)
                node_tokens.append([])
                path.append(len(node_byte) - 1)
            node_tokens[path[len(key)]].extend(by_bytes[key])
            prev = key
        n = len(node_byte)
        depth_arr = np.asarray(node_depth, dtype=np.int32)
        subtree_end = _subtree_ends(depth_arr)
        counts = np.fromiter((len(t) for t in node_tokens), dtype=np.int32, count=n)
        starts = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(counts, out=starts[1:])
        flat = np.fromiter((t for ts in node_tokens for t in ts), dtype=np.int32, count=int(starts[-1]))
        return cls(
            node_byte=np.asarray(node_byte, dtype=np.uint8),
            node_depth=depth_arr,
            subtree_end=subtree_end,
            node_token_start=starts,
            token_ids=flat,
            max_depth=int(depth_arr.max()) if n else 0,
        )

    def find(self, data: bytes) -> int:
        """Index of the node spelling ``data``, or -1 if no token starts with ``data``."""
        node = 0
        for byte in data:
            node = self._child(node, byte)
            if node < 0:
                return -1
        return node

    def _child(self, node: int, byte: int) -> int:
        """The child of ``node`` that adds ``byte``, or -1."""
        child = node + 1
        end = int(self.subtree_end[node])
        while child < end and self.node_byte[child] != byte:
            child = int(self.subtree_end[child])
        return child if child < end else -1

    def tokens_at(self, node: int) -> np.ndarray:
        """Token ids whose bytes end exactly at ``node``."""
        return self.token_ids[self.node_token_start[node] : self.node_token_start[node + 1]]

    def has_children(self, node: int) -> bool:
        """Whether some token extends the string of ``node``."""
        return int(self.subtree_end[node]) > node + 1

    def tokens_along(self, data: bytes) -> list[int]:
        """Ids of the tokens whose bytes are a non-empty prefix of ``data`` (shortest first)."""
        node = 0
        out: list[int] = []
        for byte in data:
            node = self._child(node, byte)
            if node < 0:
                break
            out.extend(self.tokens_at(node).tolist())
        return out

    def longest_token_prefix(self, data: bytes) -> tuple[int, int]:
        """``(token_id, length)`` of the longest token that is a prefix of ``data`` (``(-1, 0)`` if none)."""
        node = 0
        best = (-1, 0)
        for pos, byte in enumerate(data):
            node = self._child(node, byte)
            if node < 0:
                break
            toks = self.tokens_at(node)
            if len(toks):
                best = (int(toks[0]), pos + 1)
        return best


def _subtree_ends(depth: np.ndarray) -> np.ndarray:
    """One-past-the-end index of each node's subtree, from DFS depths (stack pass, O(n))."""
    n = depth.shape[0]
    ends = np.full(n, n, dtype=np.int32)
    stack: list[int] = []
    for i in range(n):
        d = int(depth[i])
        while stack and int(depth[stack[-1]]) >= d:
            ends[stack.pop()] = i
        stack.append(i)
    return ends


_SUBTREE_BYTES: "weakref.WeakKeyDictionary[TokenTrie, np.ndarray]" = weakref.WeakKeyDictionary()


def subtree_byte_sets(trie: TokenTrie) -> np.ndarray:
    """``uint64[n_nodes, 4]``: the set of bytes that occur below each node (its strict subtree), as
    a 256-bit set (byte ``b`` is bit ``b % 64`` of word ``b // 64``). Cached per trie.

    A mask kernel in a lexer state that loops on itself over every byte of such a set can allow
    the whole subtree without walking it."""
    got = _SUBTREE_BYTES.get(trie)
    if got is None:
        got = _subtree_byte_sets(trie.node_byte, trie.subtree_end)
        _SUBTREE_BYTES[trie] = got
    return got


@numba.njit(cache=True, nogil=True)
def _subtree_byte_sets(node_byte: np.ndarray, subtree_end: np.ndarray) -> np.ndarray:
    n = node_byte.shape[0]
    out = np.zeros((n, 4), dtype=np.uint64)
    for i in range(n - 1, -1, -1):  # children come after their parent: bottom-up
        j = i + 1
        end = subtree_end[i]
        while j < end:
            b = node_byte[j]
            out[i, b >> 6] |= np.uint64(1) << np.uint64(b & 63)
            for w in range(4):
                out[i, w] |= out[j, w]
            j = subtree_end[j]
    return out


def self_loop_byte_sets(transitions: np.ndarray) -> np.ndarray:
    """``uint64[n_states, 4]``: per state of an ``int32[n, 256]`` byte table, the bytes that lead
    back to the same state (same 256-bit layout as :func:`subtree_byte_sets`)."""
    return self_loop_byte_sets_of(transitions, np.arange(transitions.shape[0]))


def self_loop_byte_sets_of(rows: np.ndarray, states: np.ndarray) -> np.ndarray:
    """:func:`self_loop_byte_sets` of some rows of a table: ``rows[k]`` is the row of ``states[k]``."""
    return _self_loop_kernel(np.ascontiguousarray(rows), np.asarray(states, dtype=np.int64))


@numba.njit(cache=True, nogil=True)
def _self_loop_kernel(rows: np.ndarray, states: np.ndarray) -> np.ndarray:
    out = np.zeros((rows.shape[0], 4), dtype=np.uint64)
    for k in range(rows.shape[0]):
        s = states[k]
        for b in range(256):
            if rows[k, b] == s:
                out[k, b >> 6] |= np.uint64(1) << np.uint64(b & 63)
    return out
