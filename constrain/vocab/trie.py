"""TokenTrie: the vocabulary as a flat byte trie in DFS order, for numba kernels.

Node 0 is the root (the empty string). Every other node ``i`` adds one byte ``node_byte[i]`` to its
parent's string and sits at depth ``node_depth[i]`` (root depth 0). Nodes are stored in depth-first
order, so the subtree of ``i`` is the index range ``[i, subtree_end[i])``: a kernel that finds a
byte invalid skips the whole subtree with one assignment. Tokens whose bytes end at node ``i`` are
``token_ids[node_token_start[i]:node_token_start[i + 1]]`` (several ids may share the same bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
            child = node + 1
            end = int(self.subtree_end[node])
            while child < end and self.node_byte[child] != byte:
                child = int(self.subtree_end[child])
            if child >= end:
                return -1
            node = child
        return node

    def tokens_at(self, node: int) -> np.ndarray:
        """Token ids whose bytes end exactly at ``node``."""
        return self.token_ids[self.node_token_start[node] : self.node_token_start[node + 1]]

    def has_children(self, node: int) -> bool:
        """Whether some token extends the string of ``node``."""
        return int(self.subtree_end[node]) > node + 1

    def longest_token_prefix(self, data: bytes) -> tuple[int, int]:
        """``(token_id, length)`` of the longest token that is a prefix of ``data`` (``(-1, 0)`` if none)."""
        node = 0
        best = (-1, 0)
        for pos, byte in enumerate(data):
            child = node + 1
            end = int(self.subtree_end[node])
            while child < end and self.node_byte[child] != byte:
                child = int(self.subtree_end[child])
            if child >= end:
                break
            node = child
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
