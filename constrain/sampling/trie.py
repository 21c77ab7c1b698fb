"""The trie of sampled prefixes behind ASAp, in parallel growable numpy arrays.

Node ``i`` is one token prefix ``w``. Per node: ``parent``, ``token`` (the edge from the parent),
``logp`` (``log P(token | parent prefix)``, full-vocabulary softmax, unmasked), ``log_efg``
(``log c~(w)``, the over-approximated expected future grammaticality), ``flags`` and ``visits``.

An *expanded* node also owns a slice ``[dist_start, dist_start + dist_len)`` of three pooled arrays:
its allowed tokens in ascending order (``dist_tok``), their log-probabilities (``dist_logp``) and the
child node of each (``dist_child``, -1 while that token was never sampled). That slice is both the
cached next-token distribution (a revisited prefix needs no forward pass) and the children map
(a child is found by binary search on ``dist_tok``). Children that were never sampled have
``c~ = 1`` (``log_efg = 0``), as do EOS leaves, for which ``c = 1`` exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

EXPANDED = np.uint8(1)
EOS_LEAF = np.uint8(2)

FORMAT = "constrain.sampling.trie/1"

_NODE_ARRAYS = {
    "parent": np.int32,
    "token": np.int32,
    "logp": np.float64,
    "log_efg": np.float64,
    "flags": np.uint8,
    "visits": np.int64,
    "dist_start": np.int64,
    "dist_len": np.int32,
}
_POOL_ARRAYS = {"dist_tok": np.int32, "dist_logp": np.float64, "dist_child": np.int32}


def logsumexp(x: np.ndarray) -> float:
    """``log(sum(exp(x)))`` in float64; ``-inf`` for an empty or all ``-inf`` input."""
    if len(x) == 0:
        return float("-inf")
    m = float(np.max(x))
    if m == float("-inf"):
        return m
    return m + float(np.log(np.sum(np.exp(x - m))))


class SampleTrie:
    """Sampled prefixes with cached next-token distributions and EFG estimates (see module doc)."""

    def __init__(self, capacity: int = 64):
        self.n_nodes = 0
        self.n_dist = 0
        for name, dtype in _NODE_ARRAYS.items():
            setattr(self, name, np.zeros(capacity, dtype=dtype))
        for name, dtype in _POOL_ARRAYS.items():
            setattr(self, name, np.zeros(capacity, dtype=dtype))
        self.add_node(-1, -1, 0.0, eos=False)  # the root: the empty prefix

    # ------------------------------------------------------------------ growth
    def _grow(self, names: dict[str, Any], needed: int) -> None:
        cap = len(getattr(self, next(iter(names))))
        if needed <= cap:
            return
        new_cap = max(needed, 2 * cap)
        for name in names:
            old = getattr(self, name)
            new = np.zeros(new_cap, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def add_node(self, parent: int, token: int, logp: float, *, eos: bool) -> int:
        """Append a node (unexpanded; ``c~ = 1``) and return its index."""
        i = self.n_nodes
        self._grow(_NODE_ARRAYS, i + 1)
        self.parent[i] = parent
        self.token[i] = token
        self.logp[i] = logp
        self.log_efg[i] = 0.0
        self.flags[i] = EOS_LEAF if eos else 0
        self.visits[i] = 0
        self.dist_start[i] = 0
        self.dist_len[i] = 0
        self.n_nodes = i + 1
        return i

    # ------------------------------------------------------------------ queries
    def is_expanded(self, node: int) -> bool:
        return bool(self.flags[node] & EXPANDED)

    def is_eos_leaf(self, node: int) -> bool:
        return bool(self.flags[node] & EOS_LEAF)

    def slots(self, node: int) -> slice:
        s = int(self.dist_start[node])
        return slice(s, s + int(self.dist_len[node]))

    def child_log_efg(self, node: int) -> np.ndarray:
        """``log c~(w t)`` for every allowed ``t`` of an expanded node (0 for unsampled children)."""
        ch = self.dist_child[self.slots(node)]
        return np.where(ch >= 0, self.log_efg[ch], 0.0)

    def log_weights(self, node: int) -> np.ndarray:
        """ASAp's unnormalised ``log P(t|w) + log c~(w t)`` over the allowed tokens of ``node``."""
        return self.dist_logp[self.slots(node)] + self.child_log_efg(node)

    def find_slot(self, node: int, token: int) -> int:
        """Pool index of ``token`` among ``node``'s allowed tokens, or -1."""
        sl = self.slots(node)
        toks = self.dist_tok[sl]
        k = int(np.searchsorted(toks, token))
        if k < len(toks) and toks[k] == token:
            return sl.start + k
        return -1

    def prefix(self, node: int) -> list[int]:
        """The token ids from the root to ``node``."""
        out = []
        while node > 0:
            out.append(int(self.token[node]))
            node = int(self.parent[node])
        return out[::-1]

    # ------------------------------------------------------------------ mutations
    def expand(self, node: int, tokens: np.ndarray, logps: np.ndarray) -> None:
        """Store ``node``'s allowed tokens (ascending) and their log-probs; ``c~`` := valid mass."""
        n = len(tokens)
        start = self.n_dist
        self._grow(_POOL_ARRAYS, start + n)
        self.dist_tok[start : start + n] = tokens
        self.dist_logp[start : start + n] = logps
        self.dist_child[start : start + n] = -1
        self.n_dist = start + n
        self.dist_start[node] = start
        self.dist_len[node] = n
        self.flags[node] |= EXPANDED
        self.log_efg[node] = logsumexp(np.asarray(logps, dtype=np.float64))

    def child_at(self, node: int, slot: int, *, eos: bool) -> int:
        """The child of ``node`` through pool index ``slot``, created on first use."""
        c = int(self.dist_child[slot])
        if c < 0:
            c = self.add_node(node, int(self.dist_tok[slot]), float(self.dist_logp[slot]), eos=eos)
            self.dist_child[slot] = c
        return c

    def update(self, node: int) -> float:
        """Recompute ``log c~(w) = logsumexp_t(log P(t|w) + log c~(w t))`` from the children."""
        v = logsumexp(self.log_weights(node))
        self.log_efg[node] = v
        return v

    # ------------------------------------------------------------------ persistence
    def arrays(self) -> dict[str, np.ndarray]:
        """The trie as plain arrays (trimmed to their used length)."""
        out = {name: getattr(self, name)[: self.n_nodes].copy() for name in _NODE_ARRAYS}
        out.update({name: getattr(self, name)[: self.n_dist].copy() for name in _POOL_ARRAYS})
        return out

    def save(self, path: str | Path, meta: dict[str, Any] | None = None) -> None:
        """Write the arrays and a JSON ``meta`` string to an ``.npz`` file (no pickled objects)."""
        meta = {"format": FORMAT, **(meta or {})}
        with open(path, "wb") as f:
            np.savez_compressed(f, meta=np.array(json.dumps(meta)), **self.arrays())

    @classmethod
    def load(cls, path: str | Path) -> tuple[SampleTrie, dict[str, Any]]:
        """Read a trie written by :meth:`save`; returns ``(trie, meta)``."""
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"{path}: not a {FORMAT} file (format={meta.get('format')!r})")
            trie = cls.__new__(cls)
            n_nodes = len(data["parent"])
            n_dist = len(data["dist_tok"])
            for name, dtype in _NODE_ARRAYS.items():
                arr = np.zeros(max(n_nodes, 1), dtype=dtype)
                arr[:n_nodes] = data[name]
                setattr(trie, name, arr)
            for name, dtype in _POOL_ARRAYS.items():
                arr = np.zeros(max(n_dist, 1), dtype=dtype)
                arr[:n_dist] = data[name]
                setattr(trie, name, arr)
        trie.n_nodes = n_nodes
        trie.n_dist = n_dist
        if n_nodes == 0:
            raise ValueError(f"{path}: empty trie")
        return trie, meta
