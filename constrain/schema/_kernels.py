"""Numba kernel of the code-point DFA product (:func:`constrain.schema.cpdfa.product`).

The components are given as one CSR edge list over all their states (``ptr``, and per edge the
code-point range ``lo..hi`` and the target, local to its component); a product state is a row of
``k`` component states (-1: that component is dead). The Python original is kept in ``cpdfa`` as
``_product_reference``, which the tests compare this with.
"""

from __future__ import annotations

import numba
import numpy as np

from constrain.regex._kernels import rehash_slots


@numba.njit(cache=True, nogil=True)
def _row_hash(row) -> np.uint64:
    h = np.uint64(14695981039346656037)
    for v in row:
        h = (h ^ np.uint64(v + 1)) * np.uint64(1099511628211)
    return h


@numba.njit(cache=True, nogil=True)
def product_kernel(base, ptr, lo, hi, tgt, alphabet, max_states):
    """Explore the product of ``k`` DFAs from the row of start states (all 0).

    ``base[c]``: the global id of component ``c``'s state 0 (``ptr`` is indexed by global id);
    each state's edges are sorted and disjoint. ``alphabet``: sorted disjoint ``[n, 2]`` ranges
    every product state splits its row over (a range no component covers goes to the all-dead
    row; one outside the alphabet and every component's edges has no transition). Returns ``(n, rows, row_ptr, seg_lo, seg_hi, seg_tgt)``: product state ``i`` is
    ``rows[i]`` and has the transitions ``seg_*[row_ptr[i]:row_ptr[i + 1]]`` (sorted, adjacent
    ranges to the same target merged); ``n == -1`` when more than ``max_states`` states would be
    needed. Pure.
    """
    k = base.shape[0]
    rows = np.empty((64, k), dtype=np.int64)
    hashes = np.empty(64, dtype=np.uint64)
    rows[0, :] = 0
    hashes[0] = _row_hash(rows[0])
    n = 1
    cap = 256
    slots = np.full(cap, -1, dtype=np.int64)
    slots[np.int64(hashes[0] & np.uint64(cap - 1))] = 0
    row_ptr = np.zeros(65, dtype=np.int64)
    seg_lo = np.empty(256, dtype=np.int64)
    seg_hi = np.empty(256, dtype=np.int64)
    seg_tgt = np.empty(256, dtype=np.int64)
    n_seg = 0
    points = np.empty(256, dtype=np.int64)
    cur = np.empty(k, dtype=np.int64)  # per component: its next edge in the sweep
    nxt = np.empty(k, dtype=np.int64)
    i = 0
    while i < n:
        # boundaries: the alphabet's and every live component edge's
        m = 2 * alphabet.shape[0]
        for c in range(k):
            s = rows[i, c]
            if s >= 0:
                g = base[c] + s
                m += 2 * (ptr[g + 1] - ptr[g])
        if m > points.shape[0]:
            points = np.empty(2 * m, dtype=np.int64)
        m = 0
        for a in range(alphabet.shape[0]):
            points[m] = alphabet[a, 0]
            points[m + 1] = alphabet[a, 1] + 1
            m += 2
        for c in range(k):
            s = rows[i, c]
            if s >= 0:
                g = base[c] + s
                for e in range(ptr[g], ptr[g + 1]):
                    points[m] = lo[e]
                    points[m + 1] = hi[e] + 1
                    m += 2
        pts = np.unique(points[:m])
        for c in range(k):
            s = rows[i, c]
            cur[c] = ptr[base[c] + s] if s >= 0 else 0
        ai = 0
        for j in range(pts.shape[0] - 1):
            a = pts[j]
            b = pts[j + 1] - 1
            while ai < alphabet.shape[0] and alphabet[ai, 1] < a:
                ai += 1
            covered = ai < alphabet.shape[0] and alphabet[ai, 0] <= a
            for c in range(k):
                s = rows[i, c]
                t = -1
                if s >= 0:
                    g = base[c] + s
                    e = cur[c]
                    end = ptr[g + 1]
                    while e < end and hi[e] < a:
                        e += 1
                    cur[c] = e
                    if e < end and lo[e] <= a:
                        t = tgt[e]
                nxt[c] = t
                if t >= 0:
                    covered = True
            if not covered:
                continue  # neither in the alphabet nor on any component's edge
            h = _row_hash(nxt)
            mask = cap - 1
            slot = np.int64(h & np.uint64(mask))
            found = -1
            while slots[slot] >= 0:
                q = slots[slot]
                if hashes[q] == h:
                    same = True
                    for c in range(k):
                        if rows[q, c] != nxt[c]:
                            same = False
                            break
                    if same:
                        found = q
                        break
                slot = (slot + 1) & mask
            if found < 0:
                if n >= max_states:
                    return -1, rows, row_ptr, seg_lo, seg_hi, seg_tgt
                if n >= rows.shape[0]:
                    r2 = np.empty((2 * rows.shape[0], k), dtype=np.int64)
                    r2[:n] = rows[:n]
                    rows = r2
                    h2 = np.empty(2 * hashes.shape[0], dtype=np.uint64)
                    h2[:n] = hashes[:n]
                    hashes = h2
                found = n
                rows[n, :] = nxt
                hashes[n] = h
                slots[slot] = n
                n += 1
                if 2 * n > cap:
                    cap *= 2
                    slots = rehash_slots(hashes, n, cap)
            if n_seg > row_ptr[i] and seg_tgt[n_seg - 1] == found and seg_hi[n_seg - 1] + 1 == a:
                seg_hi[n_seg - 1] = b
            else:
                if n_seg >= seg_lo.shape[0]:
                    g2 = 2 * seg_lo.shape[0]
                    l2 = np.empty(g2, dtype=np.int64)
                    l2[:n_seg] = seg_lo[:n_seg]
                    seg_lo = l2
                    u2 = np.empty(g2, dtype=np.int64)
                    u2[:n_seg] = seg_hi[:n_seg]
                    seg_hi = u2
                    t2 = np.empty(g2, dtype=np.int64)
                    t2[:n_seg] = seg_tgt[:n_seg]
                    seg_tgt = t2
                seg_lo[n_seg] = a
                seg_hi[n_seg] = b
                seg_tgt[n_seg] = found
                n_seg += 1
        if i + 2 > row_ptr.shape[0]:
            p2 = np.zeros(2 * row_ptr.shape[0], dtype=np.int64)
            p2[: i + 1] = row_ptr[: i + 1]
            row_ptr = p2
        row_ptr[i + 1] = n_seg
        i += 1
    return n, rows[:n].copy(), row_ptr[: n + 1].copy(), seg_lo[:n_seg].copy(), seg_hi[:n_seg].copy(), seg_tgt[:n_seg].copy()


@numba.njit(cache=True, nogil=True)
def trie_over_dfa_kernel(g_ptr, g_byte, g_tgt, g_acc, g_of, kid_ptr, kid_byte, kid_node, dead_node, drop_g_start, g_start):
    """The byte DFA of :func:`constrain.schema.cpdfa.except_names_byte_dfa` as CSR arrays.

    States: trie nodes ``0..t-1`` (node ``i`` in state ``g_of[i]`` of the string automaton
    ``g``, given as CSR ``g_ptr``/``g_byte``/``g_tgt``, bytes ascending), then ``g``'s states
    (``t + s``). A node's row is its ``g`` state's row, where the bytes of its children
    (``kid_byte[kid_ptr[i]:kid_ptr[i + 1]]`` ascending, to nodes ``kid_node``) lead into the trie
    instead. Nodes with ``dead_node`` set are dropped with the edges into them, and so is ``g``'s
    start when ``drop_g_start``; the others are renumbered in order. Trie nodes never accept.
    Returns ``(offsets, edge_byte uint8, edge_target int32, accepting)``. Pure.
    """
    t = len(g_of)
    n_g = len(g_ptr) - 1
    total = t + n_g
    new_id = np.empty(total, dtype=np.int64)
    m = 0
    for s in range(total):
        keep = not dead_node[s] if s < t else not (drop_g_start and s - t == g_start)
        if keep:
            new_id[s] = m
            m += 1
        else:
            new_id[s] = -1
    bound = 0  # each kept state has at most its g state's edges
    for s in range(total):
        if new_id[s] >= 0:
            g = g_of[s] if s < t else s - t
            bound += g_ptr[g + 1] - g_ptr[g]
    offsets = np.zeros(m + 1, dtype=np.int64)
    edge_byte = np.empty(bound, dtype=np.uint8)
    edge_target = np.empty(bound, dtype=np.int32)
    accepting = np.zeros(m, dtype=np.bool_)
    j = 0
    for s in range(total):
        if new_id[s] < 0:
            continue
        g = g_of[s] if s < t else s - t
        if s >= t:
            accepting[new_id[s]] = g_acc[g]
        k = kid_ptr[s] if s < t else 0
        k_end = kid_ptr[s + 1] if s < t else 0
        for e in range(g_ptr[g], g_ptr[g + 1]):
            b = g_byte[e]
            while k < k_end and kid_byte[k] < b:
                k += 1
            tgt = kid_node[k] if k < k_end and kid_byte[k] == b else t + g_tgt[e]
            if new_id[tgt] >= 0:
                edge_byte[j] = b
                edge_target[j] = new_id[tgt]
                j += 1
        offsets[new_id[s] + 1] = j
    return offsets, edge_byte[:j], edge_target[:j], accepting
