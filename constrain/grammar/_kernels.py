"""Numba kernel for grammar masks: walk token-trie subtrees over the combined lexer DFA.

One call serves one lexing *context* (a parser state, a lexer state and an ignored-byte count):
the per-state arrays ``live_ok`` / ``accept_ok`` / ``ws_only`` are the lexer DFA restricted to the
terminals the parser expects there. The kernel sets the bit of every token whose bytes keep the
lexeme live and records the *boundary points* (trie node, lexer state) where a lexeme could end
inside a longer token; the Python driver scans the parser there and walks the node's subtree
again from the lexer start state.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def grammar_walk_kernel(
    transitions: np.ndarray,  # int32 [n_q, 256], -1 = reject
    live_ok: np.ndarray,  # bool [n_q]: some expected terminal can still be completed
    accept_ok: np.ndarray,  # bool [n_q]: some expected terminal ends here
    ws_only: np.ndarray,  # bool [n_q]: every live expected terminal is an ignored whitespace one
    ws0: int,  # ignored whitespace bytes before the walk (includes the lexeme so far)
    ws_bound: int,  # max consecutive ignored whitespace bytes
    start_q: int,
    first_blocked: np.ndarray,  # bool [256]: bytes that may not follow the walk's start
    roots: np.ndarray,  # int32 [k]: walk the strict subtree of each root node
    node_byte: np.ndarray,
    node_depth: np.ndarray,
    subtree_end: np.ndarray,
    node_token_start: np.ndarray,
    token_ids: np.ndarray,
    max_depth: int,
    out_words: np.ndarray,  # uint32 [W], OR-ed into
    bnd_node: np.ndarray,  # int32 [cap] out: boundary trie nodes
    bnd_state: np.ndarray,  # int32 [cap] out: lexer state at the boundary
    bnd_ws: np.ndarray,  # int32 [cap] out: ignored-byte count at the boundary (capped at bound+1)
) -> int:
    """Return the number of boundary points found (may exceed ``cap``: then rerun with more room)."""
    states = np.empty(max_depth + 1, dtype=np.int32)
    cap = bnd_node.shape[0]
    nb = 0
    for k in range(roots.shape[0]):
        r = roots[k]
        d0 = node_depth[r]
        states[d0] = start_q
        i = r + 1
        end = subtree_end[r]
        while i < end:
            d = node_depth[i]
            s = transitions[states[d - 1], node_byte[i]]
            if s < 0 or not live_ok[s] or (d == d0 + 1 and first_blocked[node_byte[i]]):
                i = subtree_end[i]
                continue
            ws = ws0 + d - d0
            if ws_only[s] and ws > ws_bound:
                i = subtree_end[i]
                continue
            states[d] = s
            for j in range(node_token_start[i], node_token_start[i + 1]):
                t = token_ids[j]
                out_words[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
            if accept_ok[s] and subtree_end[i] > i + 1:
                if nb < cap:
                    bnd_node[nb] = i
                    bnd_state[nb] = s
                    bnd_ws[nb] = ws if ws <= ws_bound else ws_bound + 1
                nb += 1
            i += 1
    return nb
