"""Numba kernels of DFA minimization: Hopcroft's partition refinement over flat arrays (partial
tables: only the transitions there are), and the BFS numbering of the quotient.

Used by :func:`constrain.regex.dfa._minimize_ids` (lexer DFAs, and the code-point DFAs of
:mod:`constrain.schema.cpdfa`) and :func:`constrain.regex.dfa.hopcroft_refine`. The Python
implementation they replaced is kept in ``dfa.py`` as the reference the tests compare with.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _predecessors(table: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The transitions of ``table`` (``int32[n, k]``, -1 none) listed per target state (CSR):
    ``(ptr, source, class)``, target ``t``'s in ``ptr[t]:ptr[t + 1]``, sources ascending. Pure."""
    n, k = table.shape
    ptr = np.zeros(n + 1, dtype=np.int64)
    for s in range(n):
        for c in range(k):
            t = table[s, c]
            if t >= 0:
                ptr[t + 1] += 1
    for t in range(n):
        ptr[t + 1] += ptr[t]
    src = np.empty(ptr[n], dtype=np.int64)
    cls = np.empty(ptr[n], dtype=np.int64)
    fill = ptr[:n].copy()
    for s in range(n):
        for c in range(k):
            t = table[s, c]
            if t >= 0:
                src[fill[t]] = s
                cls[fill[t]] = c
                fill[t] += 1
    return ptr, src, cls


@numba.njit(cache=True, nogil=True)
def hopcroft_partial_kernel(table: np.ndarray, block0: np.ndarray, n_blocks0: int) -> np.ndarray:
    """The coarsest refinement of the partition ``block0`` (dense ids ``0..n_blocks0-1``) that
    is stable under a transition table (``int32[n, k]``; -1: no transition, a complete table has
    none): Hopcroft's algorithm reading only the transitions there are, so a sparse table (a
    lexer whose states have edges on a few of its classes) costs its edges, not ``k n``.

    The partition is one permutation of the states (``elems``) cut into ranges, one per block
    (``first``, ``size``); ``loc`` is a state's index in it. Splitting by a class's sources
    moves them to the front of their block's range (``marked``), then cuts the range; the
    smaller part becomes a new block and a new splitter.

    Two states are merged iff they have the same block in ``block0`` and, on every class, both
    lack a transition or both go to merged states; so "no transition" must mean "dead" (remove
    the transitions into states that cannot accept first). Every initial block starts as a
    splitter (with a partial table, stability under the whole state set is not free, so the
    complete version's "all but the largest" does not hold); a split block then adds its
    smaller part, as a state with a transition into the block goes into exactly one part.

    A splitter's incoming transitions are read once, bucketed by class (the predecessors are
    listed per target state), then each class's sources split the blocks they fall in:
    ``O(m log n + k s)`` for ``m`` transitions and ``s`` splitters (Valmari and Lehtinen's bound
    for partial DFAs, plus a pass over the classes per splitter). Block ids dense, in no
    particular order. Pure."""
    n, k = table.shape
    in_ptr, in_src, in_cls = _predecessors(table)
    m_edges = in_ptr[n]
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
    for b in range(n_blocks0):
        if size[b] > 0:
            work[n_work] = b
            n_work += 1
    touched = np.empty(n + 1, dtype=np.int64)
    cls_start = np.zeros(k + 1, dtype=np.int64)
    cls_put = np.zeros(k, dtype=np.int64)
    bucket = np.empty(m_edges, dtype=np.int64)
    while n_work > 0:
        n_work -= 1
        a = work[n_work]
        # the splitter's incoming transitions by class (a snapshot: it may be split below)
        cls_start[:] = 0
        for i in range(first[a], first[a] + size[a]):
            t = elems[i]
            for p in range(in_ptr[t], in_ptr[t + 1]):
                cls_start[in_cls[p] + 1] += 1
        for c in range(k):
            cls_start[c + 1] += cls_start[c]
        if cls_start[k] == 0:
            continue
        for c in range(k):
            cls_put[c] = cls_start[c]
        for i in range(first[a], first[a] + size[a]):
            t = elems[i]
            for p in range(in_ptr[t], in_ptr[t + 1]):
                c = in_cls[p]
                bucket[cls_put[c]] = in_src[p]
                cls_put[c] += 1
        for c in range(k):
            if cls_start[c] == cls_start[c + 1]:
                continue
            n_touched = 0
            for j in range(cls_start[c], cls_start[c + 1]):
                s = bucket[j]
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
def quotient_partial_kernel(table: np.ndarray, blk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The quotient table of the partition ``blk`` of the states of a partial table
    (``int32[n, k]``, -1 none): each block's row is its first state's row mapped to blocks,
    blocks numbered in the order a queue BFS from state 0's block (classes left to right) meets
    them, -1 staying -1. Returns ``(table int32[m, k], rep int64[m])``, ``rep`` the first state
    of each numbered block. Pure."""
    n, k = table.shape
    nb = 0
    for s in range(n):
        if blk[s] + 1 > nb:
            nb = blk[s] + 1
    first = np.full(nb, -1, dtype=np.int64)
    for s in range(n):
        if first[blk[s]] < 0:
            first[blk[s]] = s
    order = np.full(nb, -1, dtype=np.int64)
    seq = np.empty(nb, dtype=np.int64)
    order[blk[0]] = 0
    seq[0] = blk[0]
    m = 1
    head = 0
    while head < m:
        r = first[seq[head]]
        head += 1
        for c in range(k):
            t = table[r, c]
            if t >= 0 and order[blk[t]] < 0:
                order[blk[t]] = m
                seq[m] = blk[t]
                m += 1
    out = np.empty((m, k), dtype=np.int32)
    rep = np.empty(m, dtype=np.int64)
    for i in range(m):
        r = first[seq[i]]
        rep[i] = r
        for c in range(k):
            t = table[r, c]
            out[i, c] = -1 if t < 0 else order[blk[t]]
    return out, rep


@numba.njit(cache=True, nogil=True)
def _close(seeds, n_seeds, eps_ptr, eps_idx, important, stamp, gen, stack, out):
    """Epsilon closure of ``seeds[:n_seeds]``: its important states (those with a byte edge or a
    final one), in no particular order, in ``out[:m]``; returns ``m``. ``stamp``/``gen`` mark
    visited states (``stamp`` is written: its entries become ``gen``, so after the call an
    important state is in the closure iff its stamp is ``gen``)."""
    top = 0
    for i in range(n_seeds):
        s = seeds[i]
        if stamp[s] != gen:
            stamp[s] = gen
            stack[top] = s
            top += 1
    m = 0
    while top > 0:
        top -= 1
        x = stack[top]
        if important[x]:
            out[m] = x
            m += 1
        for p in range(eps_ptr[x], eps_ptr[x + 1]):
            y = eps_idx[p]
            if stamp[y] != gen:
                stamp[y] = gen
                stack[top] = y
                top += 1
    return m


@numba.njit(cache=True, nogil=True)
def rehash_slots(hashes, n, cap):
    """An open-addressing table of ``cap`` slots (a power of two; -1 empty) holding the indices
    ``0..n-1`` by ``hashes``, linear probing. Pure."""
    slots = np.full(cap, -1, dtype=np.int64)
    mask = cap - 1
    for q in range(n):
        j = np.int64(hashes[q] & np.uint64(mask))
        while slots[j] >= 0:
            j = (j + 1) & mask
        slots[j] = q
    return slots


@numba.njit(cache=True, nogil=True)
def _set_hash(vals, m):
    """A hash of the set ``vals[:m]`` that does not depend on the order (a sum of mixed
    elements; equal sets, equal hashes)."""
    h = np.uint64(m) * np.uint64(0x9E3779B97F4A7C15)
    for i in range(m):
        z = np.uint64(vals[i]) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        h += z ^ (z >> np.uint64(31))
    return h


@numba.njit(cache=True, nogil=True)
def subset_kernel(eps_ptr, eps_idx, edge_ptr, edge_lo, edge_hi, edge_tgt, final_of, start, n_cls, max_states, max_pool):
    """Subset construction of an NFA given as CSR arrays: epsilon edges ``eps_ptr``/``eps_idx``,
    range edges ``edge_ptr`` with class bounds ``edge_lo..edge_hi`` (inclusive) and targets
    ``edge_tgt``; ``final_of[s]``: the pattern whose final state ``s`` is (-1: none).

    Returns ``(n, table, acc_ptr, acc_idx)``: ``table[d, k]`` the successor of DFA state ``d`` on
    class ``k`` (-1: none), DFA state 0 the closure of ``start``, states numbered in the order
    they are first met (rows in order, classes left to right), and the sorted pattern indices
    accepted by ``d`` in ``acc_idx[acc_ptr[d]:acc_ptr[d + 1]]``. ``n == -1`` when more than
    ``max_states`` states would be needed, ``-2`` when the subsets would hold more than
    ``max_pool`` NFA states in all (a work bound: the cost grows with it; the other outputs are
    then meaningless). Pure.
    """
    n_nfa = len(eps_ptr) - 1
    important = np.zeros(n_nfa, dtype=np.bool_)
    for s in range(n_nfa):
        important[s] = edge_ptr[s + 1] > edge_ptr[s] or final_of[s] >= 0
    stamp = np.zeros(n_nfa, dtype=np.int64)
    stack = np.empty(n_nfa, dtype=np.int64)
    buf = np.empty(n_nfa, dtype=np.int64)
    pool = np.empty(1024, dtype=np.int64)
    set_ptr = np.zeros(65, dtype=np.int64)
    hashes = np.empty(64, dtype=np.uint64)
    table = np.empty((64, n_cls), dtype=np.int32)
    cap = 256
    slots = np.full(cap, -1, dtype=np.int64)
    counts = np.zeros(n_cls + 1, dtype=np.int64)
    put = np.zeros(n_cls, dtype=np.int64)
    mark = np.zeros(n_cls + 1, dtype=np.bool_)
    seg_of = np.zeros(n_cls, dtype=np.int64)
    seg_res = np.zeros(n_cls, dtype=np.int64)
    pairs = np.empty(256, dtype=np.int64)
    seed = np.empty(1, dtype=np.int64)
    seed[0] = start
    # the set made from one NFA state's closure, per NFA state (-1: not made yet): a segment
    # with a single target (a trie state's bytes that continue no name, most chains) is a
    # lookup, not a closure and a hash probe
    single = np.full(n_nfa, -1, dtype=np.int64)
    single_t = -1
    gen = 1
    m = _close(seed, 1, eps_ptr, eps_idx, important, stamp, gen, stack, buf)
    n_sets = 0
    d = -1  # the state whose row is being built (-1: the start set)
    while True:
        n_seg = 1
        if d >= 0:
            # successors of set d. The classes are cut into segments at this set's edge bounds
            # (every edge of the set covers a segment whole or not at all, so the classes of a
            # segment have one successor); targets per segment by counting sort, then one closure
            # per segment whose targets differ from the segment before.
            mark[0] = True
            for i in range(set_ptr[d], set_ptr[d + 1]):
                s = pool[i]
                for e in range(edge_ptr[s], edge_ptr[s + 1]):
                    mark[edge_lo[e]] = True
                    mark[edge_hi[e] + 1] = True
            g = -1
            for k in range(n_cls):
                if mark[k]:
                    g += 1
                    mark[k] = False
                seg_of[k] = g
            mark[n_cls] = False
            n_seg = g + 1
            counts[: n_seg + 1] = 0
            for i in range(set_ptr[d], set_ptr[d + 1]):
                s = pool[i]
                for e in range(edge_ptr[s], edge_ptr[s + 1]):
                    for g in range(seg_of[edge_lo[e]], seg_of[edge_hi[e]] + 1):
                        counts[g + 1] += 1
            for g in range(n_seg):
                counts[g + 1] += counts[g]
            total = counts[n_seg]
            if total > len(pairs):
                pairs = np.empty(2 * total, dtype=np.int64)
            put[:n_seg] = counts[:n_seg]
            for i in range(set_ptr[d], set_ptr[d + 1]):
                s = pool[i]
                for e in range(edge_ptr[s], edge_ptr[s + 1]):
                    t = edge_tgt[e]
                    for g in range(seg_of[edge_lo[e]], seg_of[edge_hi[e]] + 1):
                        pairs[put[g]] = t
                        put[g] += 1
        for k in range(n_seg):
            if d >= 0:
                seg_res[k] = -1
                lo = counts[k]
                hi = counts[k + 1]
                if lo == hi:
                    continue
                if k > 0 and counts[k] - counts[k - 1] == hi - lo:
                    # the same targets as the segment before (the same edges cover both): same successor
                    plo = counts[k - 1]
                    same = True
                    for i in range(hi - lo):
                        if pairs[plo + i] != pairs[lo + i]:
                            same = False
                            break
                    if same:
                        seg_res[k] = seg_res[k - 1]
                        continue
                single_t = pairs[lo] if hi - lo == 1 else -1
                if single_t >= 0 and single[single_t] >= 0:
                    seg_res[k] = single[single_t]
                    continue
                gen += 1
                m = _close(pairs[lo:hi], hi - lo, eps_ptr, eps_idx, important, stamp, gen, stack, buf)
            h = _set_hash(buf, m)
            mask = cap - 1
            j = np.int64(h & np.uint64(mask))
            found = -1
            while slots[j] >= 0:
                c = slots[j]
                if hashes[c] == h and set_ptr[c + 1] - set_ptr[c] == m:
                    # same size, and every member of c is in the closure just made (stamped gen)
                    same = True
                    base = set_ptr[c]
                    for i in range(m):
                        if stamp[pool[base + i]] != gen:
                            same = False
                            break
                    if same:
                        found = c
                        break
                j = (j + 1) & mask
            if found < 0:
                if n_sets >= max_states:
                    return -1, table, set_ptr, pool
                found = n_sets
                n_sets += 1
                if n_sets >= len(hashes):
                    grow = 2 * len(hashes)
                    h2 = np.empty(grow, dtype=np.uint64)
                    h2[: n_sets - 1] = hashes[: n_sets - 1]
                    hashes = h2
                    p2 = np.zeros(grow + 1, dtype=np.int64)
                    p2[:n_sets] = set_ptr[:n_sets]
                    set_ptr = p2
                    t2 = np.empty((grow, n_cls), dtype=np.int32)
                    t2[: n_sets - 1] = table[: n_sets - 1]
                    table = t2
                base = set_ptr[found]
                if base + m > max_pool:
                    return -2, table, set_ptr, pool
                if base + m > len(pool):
                    p3 = np.empty(2 * (base + m), dtype=np.int64)
                    p3[:base] = pool[:base]
                    pool = p3
                pool[base : base + m] = buf[:m]
                set_ptr[found + 1] = base + m
                hashes[found] = h
                slots[j] = found
                if 2 * n_sets > cap:  # keep the load at most one half
                    cap *= 2
                    slots = rehash_slots(hashes, n_sets, cap)
            if d >= 0:
                seg_res[k] = found
                if single_t >= 0:
                    single[single_t] = found
        if d >= 0:
            for k in range(n_cls):
                table[d, k] = seg_res[seg_of[k]]
        d += 1
        if d >= n_sets:
            break
    # accepted patterns of each set
    acc_ptr = np.zeros(n_sets + 1, dtype=np.int64)
    n_acc = 0
    for c in range(n_sets):
        for i in range(set_ptr[c], set_ptr[c + 1]):
            if final_of[pool[i]] >= 0:
                n_acc += 1
    acc_idx = np.empty(n_acc, dtype=np.int64)
    n_acc = 0
    for c in range(n_sets):
        a0 = n_acc
        for i in range(set_ptr[c], set_ptr[c + 1]):
            f = final_of[pool[i]]
            if f >= 0:
                acc_idx[n_acc] = f
                n_acc += 1
        acc_idx[a0:n_acc].sort()
        acc_ptr[c + 1] = n_acc
    return n_sets, table[:n_sets].copy(), acc_ptr, acc_idx


@numba.njit(cache=True, nogil=True)
def live_terminals_kernel(table: np.ndarray, acc: np.ndarray, acc_rows: np.ndarray, acc_terms: np.ndarray) -> np.ndarray:
    """``live[s, i]``: an accepting state of terminal ``i`` (``acc[:, i]``, whose true entries
    are exactly the pairs ``(acc_rows[j], acc_terms[j])``) is reachable from ``s`` in ``table``
    (``int32[n, k]``, -1 none; a column per byte or per byte class): one reverse BFS per
    terminal over the distinct predecessor edges, seeded from the pairs (``acc`` is not scanned
    column by column). Pure."""
    n = table.shape[0]
    n_terms = acc.shape[1]
    cnt = np.zeros(n + 1, dtype=np.int64)
    mark = np.full(n, -1, dtype=np.int64)
    for s in range(n):
        for b in range(table.shape[1]):
            t = table[s, b]
            if t >= 0 and mark[t] != s:
                mark[t] = s
                cnt[t + 1] += 1
    for t in range(n):
        cnt[t + 1] += cnt[t]
    preds = np.empty(cnt[n], dtype=np.int64)
    fill = cnt[:n].copy()
    mark[:] = -1
    for s in range(n):
        for b in range(table.shape[1]):
            t = table[s, b]
            if t >= 0 and mark[t] != s:
                mark[t] = s
                preds[fill[t]] = s
                fill[t] += 1
    # the accepting states of each terminal (counting sort of the pairs by terminal)
    seed_ptr = np.zeros(n_terms + 1, dtype=np.int64)
    for j in range(len(acc_terms)):
        seed_ptr[acc_terms[j] + 1] += 1
    for i in range(n_terms):
        seed_ptr[i + 1] += seed_ptr[i]
    seeds = np.empty(len(acc_terms), dtype=np.int64)
    put = seed_ptr[:n_terms].copy()
    for j in range(len(acc_terms)):
        seeds[put[acc_terms[j]]] = acc_rows[j]
        put[acc_terms[j]] += 1
    live = acc.copy()
    queue = np.empty(n, dtype=np.int64)
    for i in range(n_terms):
        q = 0
        for j in range(seed_ptr[i], seed_ptr[i + 1]):
            queue[q] = seeds[j]
            q += 1
        head = 0
        while head < q:
            t = queue[head]
            head += 1
            for p in range(cnt[t], cnt[t + 1]):
                s = preds[p]
                if not live[s, i]:
                    live[s, i] = True
                    queue[q] = s
                    q += 1
    return live


@numba.njit(cache=True, nogil=True)
def uses_bytes_kernel(table: np.ndarray, live: np.ndarray, which: np.ndarray) -> np.ndarray:
    """``uses[i]``: some edge of ``table`` on a byte with ``which[b]`` joins two states live for
    terminal ``i`` (so some string of ``i`` contains such a byte). Pure."""
    n, n_terms = live.shape
    uses = np.zeros(n_terms, dtype=np.bool_)
    for s in range(n):
        for b in range(table.shape[1]):
            if not which[b]:
                continue
            t = table[s, b]
            if t < 0:
                continue
            for i in range(n_terms):
                if live[s, i] and live[t, i]:
                    uses[i] = True
    return uses
