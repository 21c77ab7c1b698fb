"""Numba kernels of the lazy lexer DFA (:class:`constrain.regex.dfa.LazyLexerDFA`).

A lazy lexer state is a set of NFA *configurations* ``count * n_nfa + state`` (``count``: completed
iterations of the counted loop the state belongs to, 0 outside loops). Its transition row is built
on first use (:func:`lazy_expand_kernel`): per byte class, the union of the epsilon closures of the
configurations one byte edge away, interned as a state (:func:`lazy_intern`). States live in
growable flat arrays owned by the Python class; a kernel that runs out of room returns
``NEED_ROOM`` after changing nothing it cannot redo, and is called again once the arrays grew.

The NFA tables (see ``LazyLexerDFA._nfa_arrays``):

* ``eps_ptr/eps_idx``: epsilon successors (CSR); ``edge_ptr/edge_lo/edge_hi/edge_t``: byte edges
  as class ranges ``[edge_lo, edge_hi]`` (CSR);
* ``loop_of[s]``: counted loop of state ``s`` (its body and back state) or -1; ``back_loop[s]``:
  the loop whose back state ``s`` is, or -1; ``loops[i] = (body, back, exit, min, max)``, max -1
  when unbounded;
* ``keep[s]``: ``s`` has a byte edge or is final, and can reach its terminal's final state (only
  such configurations are kept in a set); ``term_of[s]`` / ``final_term[s]``: the terminal of
  ``s`` / the terminal ``s`` is final for (-1).
"""

from __future__ import annotations

import numba
import numpy as np

NEED_ROOM = -3
TOO_MANY_STATES = -4


@numba.njit(cache=True, nogil=True)
def _hs_add(tab: np.ndarray, used: np.ndarray, n_used: int, key: int) -> int:
    """Insert ``key`` into the open-addressing set ``tab`` (-1 empty, size a power of two);
    returns the new ``n_used`` (unchanged if present). ``used`` lists the slots taken."""
    mask = tab.shape[0] - 1
    h = (key * 0x9E3779B97F4A7C15) & mask
    while True:
        k = tab[h]
        if k == key:
            return n_used
        if k < 0:
            tab[h] = key
            used[n_used] = h
            return n_used + 1
        h = (h + 1) & mask


@numba.njit(cache=True, nogil=True)
def _hs_clear(tab: np.ndarray, used: np.ndarray, n_used: int) -> None:
    for i in range(n_used):
        tab[used[i]] = -1


@numba.njit(cache=True, nogil=True)
def lazy_closure(key, n, eps_ptr, eps_idx, loop_of, back_loop, loops, keep, out, n_out, tab, used, stack):
    """Append to ``out`` (from ``n_out``) the kept configurations of the epsilon closure of
    ``key``; returns the new length, or -1 when ``out``/``tab`` are too small. ``tab``/``used``
    are an empty scratch set (left empty). Counts: kept inside a loop's body, one more on entering
    its back state (saturating at ``min`` when unbounded), reset to 0 elsewhere; a back state
    continues the body while count < max and exits once count >= min."""
    n_used = _hs_add(tab, used, 0, key)
    sp = 0
    stack[sp] = key
    sp += 1
    limit = tab.shape[0] >> 1
    while sp > 0:
        sp -= 1
        k = stack[sp]
        x = k % n
        cnt = k // n
        if keep[x]:
            if n_out >= out.shape[0]:
                _hs_clear(tab, used, n_used)
                return -1
            out[n_out] = k
            n_out += 1
        bl = back_loop[x]
        lx = loop_of[x]
        for j in range(eps_ptr[x], eps_ptr[x + 1]):
            y = eps_idx[j]
            nk = -1
            if bl >= 0:
                if y == loops[bl, 2]:
                    if cnt >= loops[bl, 3]:
                        nk = y
                elif loops[bl, 4] < 0 or cnt < loops[bl, 4]:
                    nk = cnt * n + y
            else:
                ly = loop_of[y]
                if ly < 0:
                    nk = y
                elif y == loops[ly, 1]:
                    c2 = cnt + 1
                    if loops[ly, 4] < 0 and c2 > loops[ly, 3]:
                        c2 = loops[ly, 3]
                    nk = c2 * n + y
                elif ly == lx:
                    nk = cnt * n + y
                else:
                    nk = y
            if nk < 0:
                continue
            before = n_used
            n_used = _hs_add(tab, used, n_used, nk)
            if n_used != before:
                if n_used >= limit or sp >= stack.shape[0]:
                    _hs_clear(tab, used, n_used)
                    return -1
                stack[sp] = nk
                sp += 1
    _hs_clear(tab, used, n_used)
    return n_out


@numba.njit(cache=True, nogil=True)
def _set_hash(keys: np.ndarray, lo: int, hi: int) -> int:
    h = np.int64(hi - lo) * np.int64(1000003)
    for i in range(lo, hi):
        h = (h ^ keys[i]) * np.int64(0x100000001B3)
    return h & np.int64(0x7FFFFFFFFFFFFFFF)


@numba.njit(cache=True, nogil=True)
def lazy_intern(keys, lo, hi, n, term_of, final_term, set_ptr, set_keys, hashes, htab, n_states, trans, acc, live,
                expanded, max_states):
    """The id of the state whose configurations are ``keys[lo:hi]`` (sorted, distinct, not
    empty), created if new: its accepting and live terminals set, its row unknown (-2).
    Returns ``NEED_ROOM`` when an array is full (nothing changed) or ``TOO_MANY_STATES``."""
    h = _set_hash(keys, lo, hi)
    mask = htab.shape[0] - 1
    slot = h & mask
    length = hi - lo
    while True:
        d = htab[slot]
        if d < 0:
            break
        if hashes[d] == h and set_ptr[d + 1] - set_ptr[d] == length:
            same = True
            base = set_ptr[d]
            for i in range(length):
                if set_keys[base + i] != keys[lo + i]:
                    same = False
                    break
            if same:
                return d
        slot = (slot + 1) & mask
    d = n_states[0]
    if d >= max_states:
        return TOO_MANY_STATES
    if d + 1 >= hashes.shape[0] or d + 1 >= trans.shape[0] or 2 * (d + 1) > htab.shape[0]:
        return NEED_ROOM
    base = set_ptr[d]
    if base + length > set_keys.shape[0]:
        return NEED_ROOM
    for i in range(length):
        k = keys[lo + i]
        set_keys[base + i] = k
        s = k % n
        live[d, term_of[s]] = True
        f = final_term[s]
        if f >= 0:
            acc[d, f] = True
    set_ptr[d + 1] = base + length
    hashes[d] = h
    htab[slot] = d
    for b in range(256):
        trans[d, b] = -2
    expanded[d] = False
    n_states[0] = d + 1
    return d


@numba.njit(cache=True, nogil=True)
def lazy_expand_kernel(q, n, class_of, n_cls, eps_ptr, eps_idx, edge_ptr, edge_lo, edge_hi, edge_t, loop_of,
                       back_loop, loops, keep, term_of, final_term, set_ptr, set_keys, hashes, htab, n_states,
                       trans, acc, live, expanded, max_states, buf, tab, used, stack):
    """Build the transition row of state ``q`` (creating its successors). Returns 0, or
    ``NEED_ROOM`` (grow the state arrays, or ``buf``/``tab`` when ``buf`` is full: the row is then
    not written) or ``TOO_MANY_STATES``. ``buf``: int64 scratch for closures and unions."""
    # the moves of q: one per (configuration, byte edge), each with the closure of its target
    m_lo = np.empty(64, np.int64)
    m_hi = np.empty(64, np.int64)
    m_ptr = np.zeros(65, np.int64)
    n_moves = 0
    nb = 0
    for i in range(set_ptr[q], set_ptr[q + 1]):
        k = set_keys[i]
        x = k % n
        cnt = k // n
        lx = loop_of[x]
        for e in range(edge_ptr[x], edge_ptr[x + 1]):
            t = edge_t[e]
            tk = t
            if lx >= 0 and loop_of[t] == lx:
                tk = cnt * n + t
            nb2 = lazy_closure(tk, n, eps_ptr, eps_idx, loop_of, back_loop, loops, keep, buf, nb, tab, used, stack)
            if nb2 < 0:
                return NEED_ROOM
            if nb2 == nb:
                continue
            if n_moves == m_lo.shape[0]:
                m_lo = np.concatenate((m_lo, np.empty(n_moves, np.int64)))
                m_hi = np.concatenate((m_hi, np.empty(n_moves, np.int64)))
                m_ptr = np.concatenate((m_ptr, np.zeros(n_moves, np.int64)))
            m_lo[n_moves] = edge_lo[e]
            m_hi[n_moves] = edge_hi[e]
            n_moves += 1
            m_ptr[n_moves] = nb2
            nb = nb2
    # class runs between the ends of the moves' ranges: one union (and one state) per run
    point = np.zeros(n_cls + 1, np.bool_)
    for j in range(n_moves):
        point[m_lo[j]] = True
        point[m_hi[j] + 1] = True
    row = np.full(n_cls, -1, np.int64)
    a = 0
    while a < n_cls:
        b = a + 1
        while b < n_cls and not point[b]:
            b += 1
        start = nb
        n_used = 0
        for j in range(n_moves):
            if m_lo[j] <= a and a <= m_hi[j]:
                for i in range(m_ptr[j], m_ptr[j + 1]):
                    before = n_used
                    n_used = _hs_add(tab, used, n_used, buf[i])
                    if n_used != before:
                        if nb >= buf.shape[0] or n_used >= (tab.shape[0] >> 1):
                            _hs_clear(tab, used, n_used)
                            return NEED_ROOM
                        buf[nb] = buf[i]
                        nb += 1
        _hs_clear(tab, used, n_used)
        if nb > start:
            buf[start:nb].sort()
            d = lazy_intern(buf, start, nb, n, term_of, final_term, set_ptr, set_keys, hashes, htab, n_states,
                            trans, acc, live, expanded, max_states)
            if d < 0:
                return d
            for c in range(a, b):
                row[c] = d
        nb = start
        a = b
    for byte in range(256):
        trans[q, byte] = row[class_of[byte]]
    expanded[q] = True
    return 0


@numba.njit(cache=True, nogil=True, inline="always")
def _loops_over(trans, s, sub_bytes, i) -> bool:
    """Whether every byte below trie node ``i`` (``sub_bytes[i]``, 4 words) leads state ``s`` to itself."""
    for b in range(256):
        if (sub_bytes[i, b >> 6] >> np.uint64(b & 63)) & np.uint64(1) and trans[s, b] != s:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def lazy_expand_walk_kernel(start_q, roots, node_byte, node_depth, subtree_end, sub_bytes, max_depth, live_cols,
                            out, n_out, n, class_of, n_cls, eps_ptr, eps_idx, edge_ptr, edge_lo, edge_hi, edge_t,
                            loop_of, back_loop, loops, keep, term_of, final_term, set_ptr, set_keys, hashes, htab,
                            n_states, trans, acc, live, expanded, max_states, buf, tab, used, stack):
    """Build the row of every state a walk of the trie subtrees below ``roots`` reaches from
    ``start_q`` and reads a byte in, while some terminal of ``live_cols`` stays live: the rows a
    grammar walk over those subtrees needs, at once instead of a few bytes per walk. Subtrees whose
    bytes all loop on the state are not entered (every state there is that one). Appends the ids
    of the states expanded to ``out`` from ``n_out[0]`` (and advances it); stops early when ``out``
    is full. Returns 0, or a status of :func:`lazy_expand_kernel` (act on it and call again:
    rows built so far stay built)."""
    states = np.empty(max_depth + 1, np.int64)
    for k in range(roots.shape[0]):
        r = roots[k]
        d0 = node_depth[r]
        states[d0] = start_q
        i = r + 1
        end = subtree_end[r]
        while i < end:
            d = node_depth[i]
            p = states[d - 1]
            if not expanded[p]:
                if n_out[0] >= out.shape[0]:
                    return 0
                st = lazy_expand_kernel(p, n, class_of, n_cls, eps_ptr, eps_idx, edge_ptr, edge_lo, edge_hi, edge_t,
                                        loop_of, back_loop, loops, keep, term_of, final_term, set_ptr, set_keys,
                                        hashes, htab, n_states, trans, acc, live, expanded, max_states, buf, tab,
                                        used, stack)
                if st != 0:
                    return st
                out[n_out[0]] = p
                n_out[0] += 1
            s = trans[p, node_byte[i]]
            ok = s >= 0
            if ok:
                ok = False
                for j in range(live_cols.shape[0]):
                    if live[s, live_cols[j]]:
                        ok = True
                        break
            if not ok or subtree_end[i] == i + 1:
                i = subtree_end[i]  # dead, or a leaf: its row is not read
                continue
            if s == p and _loops_over(trans, s, sub_bytes, i):
                i = subtree_end[i]
                continue
            states[d] = s
            i += 1
    return 0


OUT_FULL = -5
"""Status of :func:`lazy_expand_ahead_kernel`: its ``out`` list is full (take it and call again)."""


@numba.njit(cache=True, nogil=True)
def lazy_expand_ahead_kernel(qs, depth, reps, depth_ok, out, n_out, max_new, n, class_of, n_cls, eps_ptr, eps_idx,
                             edge_ptr, edge_lo, edge_hi, edge_t, loop_of, back_loop, loops, keep, term_of, final_term,
                             set_ptr, set_keys, hashes, htab, n_states, trans, acc, live, expanded, max_states, buf,
                             tab, used, stack):
    """Build the row of every state less than ``depth`` bytes from a state of ``qs`` (reading one
    byte per class: ``reps``). ``depth_ok[s]``: how far ahead of ``s`` rows are known built (read
    and raised; sized to the state capacity, so states created here have entries). Appends the
    ids of the states expanded to ``out`` from ``n_out[0]``. ``max_new`` > 0: once a row built
    here has created that many states, stop with ``OUT_FULL`` before the next row. Returns 0,
    ``OUT_FULL``, or a status of :func:`lazy_expand_kernel`; on any status the depths raised by
    this call are reset to 0 (a lower depth only costs a look again: rows built stay built), so
    the caller acts on it and calls again with the same arguments."""
    n0 = n_states[0]
    cap = max(64, 2 * qs.shape[0])
    todo_s = np.empty(cap, np.int64)
    todo_d = np.empty(cap, np.int64)
    raised = np.empty(cap, np.int64)
    n_raised = 0
    sp = qs.shape[0]
    todo_s[:sp] = qs
    todo_d[:sp] = depth
    status = 0
    while sp > 0:
        sp -= 1
        s = todo_s[sp]
        d = todo_d[sp]
        if depth_ok[s] >= d:
            continue
        if not expanded[s]:
            if n_out[0] >= out.shape[0] or (max_new > 0 and n_states[0] - n0 >= max_new):
                status = OUT_FULL
                break
            status = lazy_expand_kernel(s, n, class_of, n_cls, eps_ptr, eps_idx, edge_ptr, edge_lo, edge_hi, edge_t,
                                        loop_of, back_loop, loops, keep, term_of, final_term, set_ptr, set_keys,
                                        hashes, htab, n_states, trans, acc, live, expanded, max_states, buf, tab,
                                        used, stack)
            if status != 0:
                break
            out[n_out[0]] = s
            n_out[0] += 1
        depth_ok[s] = d
        if n_raised == raised.shape[0]:
            raised = np.concatenate((raised, np.empty(n_raised, np.int64)))
        raised[n_raised] = s
        n_raised += 1
        if d > 1:
            for j in range(reps.shape[0]):
                t = trans[s, reps[j]]
                if t >= 0 and depth_ok[t] < d - 1:
                    if sp == todo_s.shape[0]:
                        todo_s = np.concatenate((todo_s, np.empty(sp, np.int64)))
                        todo_d = np.concatenate((todo_d, np.empty(sp, np.int64)))
                    todo_s[sp] = t
                    todo_d[sp] = d - 1
                    sp += 1
    if status != 0:
        for j in range(n_raised):
            depth_ok[raised[j]] = 0
    return status


@numba.njit(cache=True, nogil=True)
def lazy_find(keys, set_ptr, set_keys, hashes, htab) -> int:
    """The id of the state whose configurations are ``keys`` (sorted), or -1 if there is none."""
    if keys.shape[0] == 0:
        return -1
    h = _set_hash(keys, 0, keys.shape[0])
    mask = htab.shape[0] - 1
    slot = h & mask
    while True:
        d = htab[slot]
        if d < 0:
            return -1
        if hashes[d] == h and set_ptr[d + 1] - set_ptr[d] == keys.shape[0]:
            base = set_ptr[d]
            same = True
            for i in range(keys.shape[0]):
                if set_keys[base + i] != keys[i]:
                    same = False
                    break
            if same:
                return d
        slot = (slot + 1) & mask


@numba.njit(cache=True, nogil=True)
def lazy_rehash(hashes, size):
    """An interning table of ``size`` slots (a power of two) holding states ``0 .. len(hashes)``."""
    htab = np.full(size, -1, np.int64)
    mask = size - 1
    for d in range(hashes.shape[0]):
        slot = hashes[d] & mask
        while htab[slot] >= 0:
            slot = (slot + 1) & mask
        htab[slot] = d
    return htab


@numba.njit(cache=True, nogil=True)
def coreach_kernel(eps_ptr, eps_idx, edge_ptr, edge_t, finals):
    """``bool[n]``: whether each NFA state reaches one of ``finals`` over epsilon and byte edges
    (loop counts ignored). A reverse search over a predecessor CSR built here. Pure."""
    n = eps_ptr.shape[0] - 1
    counts = np.zeros(n + 1, dtype=np.int64)
    for s in range(n):
        for j in range(eps_ptr[s], eps_ptr[s + 1]):
            counts[eps_idx[j] + 1] += 1
        for j in range(edge_ptr[s], edge_ptr[s + 1]):
            counts[edge_t[j] + 1] += 1
    for i in range(n):
        counts[i + 1] += counts[i]
    put = counts[:n].copy()
    preds = np.empty(counts[n], dtype=np.int64)
    for s in range(n):
        for j in range(eps_ptr[s], eps_ptr[s + 1]):
            t = eps_idx[j]
            preds[put[t]] = s
            put[t] += 1
        for j in range(edge_ptr[s], edge_ptr[s + 1]):
            t = edge_t[j]
            preds[put[t]] = s
            put[t] += 1
    seen = np.zeros(n, dtype=np.bool_)
    stack = np.empty(n, dtype=np.int64)
    sp = 0
    for f in finals:
        if not seen[f]:
            seen[f] = True
            stack[sp] = f
            sp += 1
    while sp > 0:
        sp -= 1
        t = stack[sp]
        for j in range(counts[t], counts[t + 1]):
            s = preds[j]
            if not seen[s]:
                seen[s] = True
                stack[sp] = s
                sp += 1
    return seen


@numba.njit(cache=True, nogil=True)
def reads_byte_kernel(starts, eps_ptr, eps_idx, edge_ptr, edge_lo, edge_hi, edge_t, coreach, byte_ok):
    """Per start state: whether some byte edge between co-reachable states reachable from it
    (over co-reachable states, loop counts ignored) reads a byte ``b`` with ``byte_ok[b]``
    (edges as byte ranges ``edge_lo..edge_hi``). Pure."""
    n = eps_ptr.shape[0] - 1
    out = np.zeros(starts.shape[0], dtype=np.bool_)
    stamp = np.zeros(n, dtype=np.int64)
    stack = np.empty(n, dtype=np.int64)
    for i in range(starts.shape[0]):
        a = starts[i]
        gen = i + 1
        stamp[a] = gen
        sp = 1
        stack[0] = a
        found = False
        while sp > 0 and not found:
            sp -= 1
            s = stack[sp]
            for j in range(edge_ptr[s], edge_ptr[s + 1]):
                t = edge_t[j]
                if coreach[t]:
                    for b in range(edge_lo[j], edge_hi[j] + 1):
                        if byte_ok[b]:
                            found = True
                            break
                    if found:
                        break
                    if stamp[t] != gen:
                        stamp[t] = gen
                        stack[sp] = t
                        sp += 1
            if found:
                break
            for j in range(eps_ptr[s], eps_ptr[s + 1]):
                t = eps_idx[j]
                if coreach[t] and stamp[t] != gen:
                    stamp[t] = gen
                    stack[sp] = t
                    sp += 1
        out[i] = found
    return out
