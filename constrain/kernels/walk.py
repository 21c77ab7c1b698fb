"""Numba kernels that walk the token trie over a byte DFA to find the allowed tokens.

The walk visits trie nodes in DFS order while advancing the DFA one byte per node; when a byte has
no transition, the node's whole subtree (every token with that prefix) is skipped at once. Kernels
see arrays and ints only; wrappers in the callers check shapes and dtypes.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def dfa_token_mask_kernel(
    transitions: np.ndarray,  # int32 [n_states, 256], -1 = reject
    start_state: int,
    node_byte: np.ndarray,  # uint8 [n_nodes]
    node_depth: np.ndarray,  # int32 [n_nodes]
    subtree_end: np.ndarray,  # int32 [n_nodes]
    node_token_start: np.ndarray,  # int32 [n_nodes + 1]
    token_ids: np.ndarray,  # int32 [n]
    max_depth: int,
    out_words: np.ndarray,  # uint32 [W], OR-ed into (caller zeroes it)
) -> int:
    """Set the bit of every token whose bytes lead ``start_state`` to a live DFA state.

    Every DFA state is assumed live (dead states are removed at compile time), so a token is allowed
    exactly when no byte of it hits -1. Returns the number of trie nodes visited (for benchmarks).
    """
    n = node_byte.shape[0]
    states = np.empty(max_depth + 1, dtype=np.int32)
    states[0] = start_state
    visited = 0
    i = 1
    while i < n:
        visited += 1
        d = node_depth[i]
        s = transitions[states[d - 1], node_byte[i]]
        if s < 0:
            i = subtree_end[i]
            continue
        states[d] = s
        for k in range(node_token_start[i], node_token_start[i + 1]):
            t = token_ids[k]
            out_words[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
        i += 1
    return visited


@numba.njit(cache=True, nogil=True)
def dfa_advance_kernel(transitions: np.ndarray, state: int, data: np.ndarray) -> int:
    """State after feeding ``data`` (uint8) from ``state``; -1 if rejected."""
    for b in data:
        state = transitions[state, b]
        if state < 0:
            return -1
    return state


@numba.njit(cache=True, nogil=True)
def dfa_token_next_kernel(
    transitions: np.ndarray,
    start_state: int,
    node_byte: np.ndarray,
    node_depth: np.ndarray,
    subtree_end: np.ndarray,
    node_token_start: np.ndarray,
    token_ids: np.ndarray,
    max_depth: int,
    out_next: np.ndarray,  # int32 [V], written for tokens that survive (caller fills with -1)
) -> None:
    """For every token, the DFA state after its bytes from ``start_state`` (same walk as the mask)."""
    n = node_byte.shape[0]
    states = np.empty(max_depth + 1, dtype=np.int32)
    states[0] = start_state
    i = 1
    while i < n:
        d = node_depth[i]
        s = transitions[states[d - 1], node_byte[i]]
        if s < 0:
            i = subtree_end[i]
            continue
        states[d] = s
        for k in range(node_token_start[i], node_token_start[i + 1]):
            out_next[token_ids[k]] = s
        i += 1
