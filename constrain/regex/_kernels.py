"""Numba kernels of DFA minimization: Hopcroft's partition refinement over flat arrays, and the
BFS numbering of the quotient.

Used by :func:`constrain.regex.dfa.hopcroft_refine` (lexer DFAs, and the code-point DFAs of
:mod:`constrain.schema.cpdfa`). The Python implementation it replaced is kept in ``dfa.py`` as
the reference the tests compare it with.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def hopcroft_kernel(trans: np.ndarray, block0: np.ndarray, n_blocks0: int) -> np.ndarray:
    """The coarsest refinement of the partition ``block0`` (dense ids ``0..n_blocks0-1``) that is
    stable under ``trans`` (``int32[n, k]``, complete: every entry in ``0..n-1``); block of each
    state (ids not in any particular order). ``O(k n log n)``.

    The partition is one permutation of the states (``elems``) cut into ranges, one per block
    (``first``, ``size``); ``loc`` is a state's index in it. Splitting by a splitter set moves the
    predecessors of its states to the front of their block's range (``marked``), then cuts the
    range; the smaller part becomes a new block and a new splitter. Every initial block but the
    largest starts as a splitter, which suffices for any initial partition. Pure.
    """
    n, k = trans.shape
    # predecessors per (class, target): CSR over index c * n + t
    inv_start = np.zeros(k * n + 1, dtype=np.int64)
    for s in range(n):
        for c in range(k):
            inv_start[c * n + trans[s, c] + 1] += 1
    for i in range(k * n):
        inv_start[i + 1] += inv_start[i]
    fill = inv_start[:-1].copy()
    inv = np.empty(k * n, dtype=np.int64)
    for s in range(n):
        for c in range(k):
            j = c * n + trans[s, c]
            inv[fill[j]] = s
            fill[j] += 1
    # the partition, states grouped by block (counting sort)
    block_of = block0.astype(np.int64).copy()
    first = np.zeros(n + 1, dtype=np.int64)
    size = np.zeros(n + 1, dtype=np.int64)
    for s in range(n):
        size[block_of[s]] += 1
    acc = 0
    for b in range(n_blocks0):
        first[b] = acc
        acc += size[b]
    elems = np.empty(n, dtype=np.int64)
    loc = np.empty(n, dtype=np.int64)
    put = first.copy()
    for s in range(n):
        b = block_of[s]
        elems[put[b]] = s
        loc[s] = put[b]
        put[b] += 1
    n_blocks = n_blocks0
    marked = np.zeros(n + 1, dtype=np.int64)
    work = np.empty(2 * n + 2, dtype=np.int64)
    n_work = 0
    largest = 0
    for b in range(n_blocks0):
        if size[b] > size[largest]:
            largest = b
    for b in range(n_blocks0):
        if b != largest and size[b] > 0:
            work[n_work] = b
            n_work += 1
    buf = np.empty(n, dtype=np.int64)
    touched = np.empty(n + 1, dtype=np.int64)
    while n_work > 0:
        n_work -= 1
        a = work[n_work]
        m = size[a]
        for i in range(m):  # a snapshot: the splitter may itself be split below
            buf[i] = elems[first[a] + i]
        for c in range(k):
            n_touched = 0
            for i in range(m):
                j = c * n + buf[i]
                for p in range(inv_start[j], inv_start[j + 1]):
                    s = inv[p]
                    b = block_of[s]
                    pos = loc[s]
                    front = first[b] + marked[b]
                    if pos < front:
                        continue  # already marked
                    if marked[b] == 0:
                        touched[n_touched] = b
                        n_touched += 1
                    u = elems[front]
                    elems[front] = s
                    loc[s] = front
                    elems[pos] = u
                    loc[u] = pos
                    marked[b] += 1
            for ti in range(n_touched):
                b = touched[ti]
                mk = marked[b]
                marked[b] = 0
                if mk == size[b]:
                    continue
                nb = n_blocks
                n_blocks += 1
                if mk <= size[b] - mk:  # the marked front part is the new (smaller) block
                    first[nb] = first[b]
                    size[nb] = mk
                    first[b] += mk
                    size[b] -= mk
                else:
                    first[nb] = first[b] + mk
                    size[nb] = size[b] - mk
                    size[b] = mk
                for q in range(first[nb], first[nb] + size[nb]):
                    block_of[elems[q]] = nb
                work[n_work] = nb
                n_work += 1
    return block_of


@numba.njit(cache=True, nogil=True)
def bfs_order_kernel(quot: np.ndarray, start: int, dead: int) -> tuple[np.ndarray, np.ndarray]:
    """``(order, seq)``: the number of each block in the order a queue BFS from ``start`` over the
    rows of ``quot`` (``int64[n_blocks, k]``, left to right) first meets it (-1: unreached or
    ``dead``), and the blocks in that order. Pure."""
    nb, k = quot.shape
    order = np.full(nb, -1, dtype=np.int64)
    seq = np.empty(nb, dtype=np.int64)
    order[start] = 0
    seq[0] = start
    n = 1
    head = 0
    while head < n:
        b = seq[head]
        head += 1
        for c in range(k):
            t = quot[b, c]
            if t != dead and order[t] < 0:
                order[t] = n
                seq[n] = t
                n += 1
    return order, seq[:n]
