"""Numba kernels of the constraint combinators: phrase tries, acyclic minimization, sparse DFA walks.

A *sparse* DFA stores the outgoing edges of state ``s`` as ``edge_byte[offsets[s]:offsets[s+1]]``
(sorted ascending) with targets ``edge_target[...]``; it costs ~5 bytes per edge instead of 1 KiB
per state, which is what a 100k-phrase choice needs. Kernels see arrays and ints only.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def build_phrase_trie(data, starts, ends, max_len):
    """Trie of sorted, distinct byte strings ``data[starts[i]:ends[i]]``.

    Returns ``(parent, byte, accepting)`` per node, node 0 the root. Nodes are numbered in creation
    order, so every child has a larger id than its parent, and siblings are created in ascending
    byte order (the strings are sorted).
    """
    n_max = 1 + data.shape[0]
    parent = np.empty(n_max, dtype=np.int32)
    byte = np.zeros(n_max, dtype=np.uint8)
    accepting = np.zeros(n_max, dtype=np.bool_)
    path = np.zeros(max_len + 1, dtype=np.int32)
    parent[0] = -1
    n = 1
    prev_s = 0
    prev_len = 0
    for i in range(starts.shape[0]):
        s = starts[i]
        length = ends[i] - s
        common = 0
        if i > 0:
            lim = min(length, prev_len)
            while common < lim and data[s + common] == data[prev_s + common]:
                common += 1
        for d in range(common + 1, length + 1):
            parent[n] = path[d - 1]
            byte[n] = data[s + d - 1]
            path[d] = n
            n += 1
        accepting[path[length]] = True
        prev_s = s
        prev_len = length
    return parent[:n], byte[:n], accepting[:n]


@numba.njit(cache=True, nogil=True)
def minimize_acyclic(byte, accepting, child_start, children):
    """Canonical representative of every node of an acyclic DFA (trie), bottom-up by hashing.

    Nodes are processed from the last to the first (children before parents); two nodes are merged
    when they agree on accepting and on the list of (byte, canonical child). This yields the minimal
    DFA in linear expected time. ``children[child_start[v]:child_start[v+1]]`` are the children of
    ``v`` in ascending byte order.
    """
    n = byte.shape[0]
    canon = np.empty(n, dtype=np.int32)
    size = 1
    while size < 2 * n + 2:
        size <<= 1
    mask = size - 1
    table = np.full(size, -1, dtype=np.int32)
    for v in range(n - 1, -1, -1):
        h = np.uint64(1469598103934665603) if accepting[v] else np.uint64(7809847782465536322)
        for k in range(child_start[v], child_start[v + 1]):
            c = children[k]
            h = (h ^ np.uint64(byte[c])) * np.uint64(1099511628211)
            h = (h ^ np.uint64(canon[c])) * np.uint64(1099511628211)
            h ^= h >> np.uint64(29)
        idx = np.int64(h & np.uint64(mask))
        while True:
            r = table[idx]
            if r == -1:
                table[idx] = v
                canon[v] = v
                break
            same = accepting[r] == accepting[v] and (
                child_start[r + 1] - child_start[r] == child_start[v + 1] - child_start[v]
            )
            if same:
                a = child_start[r]
                b = child_start[v]
                for k in range(child_start[v + 1] - child_start[v]):
                    cr = children[a + k]
                    cv = children[b + k]
                    if byte[cr] != byte[cv] or canon[cr] != canon[cv]:
                        same = False
                        break
            if same:
                canon[v] = r
                break
            idx = (idx + 1) & mask
    return canon


@numba.njit(cache=True, nogil=True, inline="always")
def sparse_step(offsets, edge_byte, edge_target, state, b):
    """Successor of ``state`` on byte ``b`` in a sparse DFA, -1 if none (binary search)."""
    lo = offsets[state]
    hi = offsets[state + 1]
    while lo < hi:
        mid = (lo + hi) >> 1
        eb = edge_byte[mid]
        if eb < b:
            lo = mid + 1
        elif eb > b:
            hi = mid
        else:
            return edge_target[mid]
    return -1


@numba.njit(cache=True, nogil=True)
def sparse_advance_kernel(offsets, edge_byte, edge_target, state, data):
    """State after ``data`` (uint8) from ``state`` in a sparse DFA; -1 if rejected."""
    for b in data:
        state = sparse_step(offsets, edge_byte, edge_target, state, b)
        if state < 0:
            return -1
    return state


@numba.njit(cache=True, nogil=True)
def sparse_token_mask_kernel(
    offsets, edge_byte, edge_target, start_state,
    node_byte, node_depth, subtree_end, node_token_start, token_ids, max_depth, out_words,
):
    """Set the bit of every token whose bytes lead ``start_state`` to a (live) state; see walk.py."""
    n = node_byte.shape[0]
    states = np.empty(max_depth + 1, dtype=np.int32)
    states[0] = start_state
    i = 1
    while i < n:
        d = node_depth[i]
        s = sparse_step(offsets, edge_byte, edge_target, states[d - 1], node_byte[i])
        if s < 0:
            i = subtree_end[i]
            continue
        states[d] = s
        for k in range(node_token_start[i], node_token_start[i + 1]):
            t = token_ids[k]
            out_words[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
        i += 1


@numba.njit(cache=True, nogil=True)
def sparse_token_ends_kernel(
    offsets, edge_byte, edge_target, start_state,
    node_byte, node_depth, subtree_end, node_token_start, token_ids, max_depth, out_end,
):
    """``out_end[t]`` = state after token ``t`` from ``start_state`` (caller fills it with -1)."""
    n = node_byte.shape[0]
    states = np.empty(max_depth + 1, dtype=np.int32)
    states[0] = start_state
    i = 1
    while i < n:
        d = node_depth[i]
        s = sparse_step(offsets, edge_byte, edge_target, states[d - 1], node_byte[i])
        if s < 0:
            i = subtree_end[i]
            continue
        states[d] = s
        for k in range(node_token_start[i], node_token_start[i + 1]):
            out_end[token_ids[k]] = s
        i += 1
