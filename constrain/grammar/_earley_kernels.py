"""Numba kernels of the Earley recognizer (:mod:`constrain.grammar.earley`): a column's closure and
the union of states, over flat tables.

An item is an int64 ``origin << lr_bits | lr`` (``lr`` numbers the (rule, dot) pairs, ``origin``
the id of the state the item was predicted in, 0 for "this column"). The grammar is
``lr_next[lr]`` (the symbol after the dot: a terminal id >= 0, a nonterminal ``-(n + 1)``, or
:data:`END`), ``lr_end_lhs[lr]`` (at an end: the rule's left-hand symbol), and per nonterminal
``n`` the first pairs of its rules, ``rules_lr[rules_ptr[n]:rules_ptr[n + 1]]``. Finished states
store their items sorted by (symbol after the dot, item) in ``st_syms`` / ``st_items`` from
``st_ptr[sid]`` to ``st_ptr[sid + 1]``, so the items of a state waiting on a symbol are one range
(a binary search) and the sorted array is the state's canonical form (its interning key).

The kernels write only their scratch and output arrays; a negative return asks the caller for
larger scratch (``-1``) or output (``-2``) arrays and a retry.
"""

from __future__ import annotations

import numba
import numpy as np

END = np.int32(2**31 - 1)
"""``lr_next`` of a (rule, dot) pair with the dot at the end."""
EMPTY = np.int64(-1)


@numba.njit(cache=True, nogil=True, inline="always")
def _push(item, hkeys, hused, n_used, work, n_work):
    """Add ``item`` to the column's set and work stack unless it is there; the new counts, or
    ``(-1, -1)`` when the set is half full (the caller retries with a larger table)."""
    mask = hkeys.shape[0] - 1
    h = (item * np.int64(-7046029254386353131)) >> np.int64(17)
    i = h & mask
    while True:
        k = hkeys[i]
        if k == item:
            return n_used, n_work
        if k == EMPTY:
            break
        i = (i + 1) & mask
    if 2 * (n_used + 1) > hkeys.shape[0]:
        return -1, -1
    hkeys[i] = item
    hused[n_used] = i
    work[n_work] = item
    return n_used + 1, n_work + 1


@numba.njit(cache=True, nogil=True)
def earley_close_kernel(seed, n_seed, src, terms, n_terms, lr_bits, lr_next, lr_end_lhs, rules_ptr, rules_lr,
                        nullable, st_ptr, st_syms, st_items, pred_stamp, stamp, hkeys, hused, work,
                        out_items, out_syms, exp_words, info):
    """The closure of one column; its items (dot before a symbol) sorted by (symbol, item) in
    ``out_items`` / ``out_syms``, the count returned.

    Seed: ``seed[:n_seed]``, plus, when ``src >= 1``, the items of state ``src`` waiting on each
    terminal of ``terms[:n_terms]`` with the dot moved over it (a scan). Prediction adds every rule
    of a nonterminal once per column (``pred_stamp[n] == stamp`` marks it; the caller passes a
    fresh stamp), and moves the dot over a nullable one; an item at its end whose origin is an
    earlier state moves on the items of that state waiting on its left-hand symbol (items completed
    in this column are nullable: the predictor moved their parents already). Writes ``info[0]``:
    1 if the augmented start rule ended (the input is a sentence), and ``exp_words``: the expected
    terminals as bits. ``hkeys`` (a power of two, all ``EMPTY``) is left all ``EMPTY``.
    Returns -1 (``hkeys`` / ``work`` too small) or -2 (``out_*`` too small): nothing usable then.
    """
    mask = (np.int64(1) << lr_bits) - 1
    n_used = 0
    n_work = 0
    status = 0
    for k in range(n_seed):
        n_used, n_work = _push(seed[k], hkeys, hused, n_used, work, n_work)
        if n_used < 0:
            status = -1
            break
    if status == 0 and src >= 1:
        a = st_ptr[src]
        b = st_ptr[src + 1]
        own = (np.int64(src) << lr_bits) + 1
        for j in range(n_terms):
            t = terms[j]
            lo = a + np.searchsorted(st_syms[a:b], t, "left")
            hi = a + np.searchsorted(st_syms[a:b], t, "right")
            for k in range(lo, hi):
                p = st_items[k]
                n_used, n_work = _push(p + 1 if p > mask else p + own, hkeys, hused, n_used, work, n_work)
                if n_used < 0:
                    break
            if n_used < 0:
                status = -1
                break
    finished = 0
    n_out = 0
    while status == 0 and n_work > 0:
        n_work -= 1
        item = work[n_work]
        lr = item & mask
        sym = lr_next[lr]
        if sym == END:
            if lr == 1:  # rule 0 (S' -> start) at its end
                finished = 1
            oid = item >> lr_bits
            if oid == 0:
                continue
            lhs = lr_end_lhs[lr]
            a = st_ptr[oid]
            b = st_ptr[oid + 1]
            lo = a + np.searchsorted(st_syms[a:b], lhs, "left")
            hi = a + np.searchsorted(st_syms[a:b], lhs, "right")
            own = (oid << lr_bits) + 1
            for k in range(lo, hi):
                p = st_items[k]
                n_used, n_work = _push(p + 1 if p > mask else p + own, hkeys, hused, n_used, work, n_work)
                if n_used < 0:
                    status = -1
                    break
            continue
        if n_out >= out_items.shape[0]:
            status = -2
            break
        out_items[n_out] = item
        out_syms[n_out] = sym
        n_out += 1
        if sym < 0:
            nt = -sym - 1
            if pred_stamp[nt] != stamp:
                pred_stamp[nt] = stamp
                for k in range(rules_ptr[nt], rules_ptr[nt + 1]):
                    n_used, n_work = _push(np.int64(rules_lr[k]), hkeys, hused, n_used, work, n_work)
                    if n_used < 0:
                        break
                if n_used < 0:
                    status = -1
                    break
            if nullable[nt]:
                n_used, n_work = _push(item + 1, hkeys, hused, n_used, work, n_work)
                if n_used < 0:
                    status = -1
                    break
    # leave the table empty for the next call (after a failure the count of used slots is lost)
    if status != 0:
        hkeys[:] = EMPTY
        return status
    for k in range(n_used):
        hkeys[hused[k]] = EMPTY
    info[0] = finished
    _sort_by_symbol(out_items, out_syms, n_out)
    exp_words[:] = 0
    for k in range(n_out):
        s = out_syms[k]
        if s >= 0:
            exp_words[s >> 6] |= np.uint64(1) << np.uint64(s & 63)
    return n_out


@numba.njit(cache=True, nogil=True)
def _sort_by_symbol(items, syms, n):
    """Sort ``items[:n]`` / ``syms[:n]`` together by (symbol, item) in place."""
    order = np.argsort(items[:n])
    it = items[:n][order]
    sy = syms[:n][order]
    order2 = np.argsort(sy, kind="mergesort")  # stable: items stay ascending within a symbol
    items[:n] = it[order2]
    syms[:n] = sy[order2]


@numba.njit(cache=True, nogil=True)
def earley_union_kernel(sids, st_ptr, st_syms, st_items, out_items, out_syms):
    """The union of the items of states ``sids``, sorted by (symbol, item), each once, in
    ``out_items`` / ``out_syms``; the count, or -2 when the outputs are too small."""
    n = 0
    for j in range(sids.shape[0]):
        a = st_ptr[sids[j]]
        b = st_ptr[sids[j] + 1]
        if n + (b - a) > out_items.shape[0]:
            return -2
        out_items[n:n + b - a] = st_items[a:b]
        out_syms[n:n + b - a] = st_syms[a:b]
        n += b - a
    _sort_by_symbol(out_items, out_syms, n)
    m = 0
    for k in range(n):
        if m == 0 or out_items[k] != out_items[m - 1]:
            out_items[m] = out_items[k]
            out_syms[m] = out_syms[k]
            m += 1
    return m


@numba.njit(cache=True, nogil=True, inline="always")
def _state_hash(items, a, n, finished):
    """A non-negative hash of a state's sorted items ``items[a:a + n]`` and its finish flag."""
    h = np.uint64(14695981039346656037)
    for k in range(a, a + n):
        h = (h ^ np.uint64(items[k])) * np.uint64(1099511628211)
    h = (h ^ np.uint64(finished)) * np.uint64(1099511628211)
    return np.int64(h >> np.uint64(1))


@numba.njit(cache=True, nogil=True)
def chart_intern_kernel(out_items, out_syms, n, finished, words, st_ptr, st_syms, st_items, st_exp, st_fin,
                        st_hash, hkeys, hsid, counts):
    """The id of the state whose sorted items are ``out_items[:n]`` (symbols ``out_syms[:n]``) with
    finish flag ``finished``: an existing one, or a new one appended to the chart (its items, its
    expected terminals ``words``, its flag and hash; ``counts`` = [states, items] grows). Returns
    -1, changing nothing, when an array is too small for a new state (the caller grows them all).

    ``hkeys`` / ``hsid``: open addressing over the states' hashes (-1 empty, at most half full).
    """
    h = _state_hash(out_items, 0, n, finished)
    mask = hkeys.shape[0] - 1
    i = h & mask
    while hkeys[i] >= 0:
        if hkeys[i] == h:
            s = hsid[i]
            a = st_ptr[s]
            if st_fin[s] == finished and st_ptr[s + 1] - a == n:
                same = True
                for k in range(n):
                    if st_items[a + k] != out_items[k]:
                        same = False
                        break
                if same:
                    return s
        i = (i + 1) & mask
    sid = counts[0]
    a = counts[1]
    if (sid + 2 > st_ptr.shape[0] or a + n > st_items.shape[0] or sid >= st_exp.shape[0]
            or 2 * (sid + 1) > hkeys.shape[0]):
        return -1
    st_items[a:a + n] = out_items[:n]
    st_syms[a:a + n] = out_syms[:n]
    st_ptr[sid + 1] = a + n
    st_exp[sid, :] = words
    st_fin[sid] = finished
    st_hash[sid] = h
    hkeys[i] = h
    hsid[i] = sid
    counts[0] = sid + 1
    counts[1] = a + n
    return sid


@numba.njit(cache=True, nogil=True)
def chart_rehash_kernel(st_hash, n_states, hkeys, hsid):
    """Insert states ``1 .. n_states - 1`` by their kept hashes into an empty table (after it grew)."""
    mask = hkeys.shape[0] - 1
    for s in range(1, n_states):
        i = st_hash[s] & mask
        while hkeys[i] >= 0:
            i = (i + 1) & mask
        hkeys[i] = st_hash[s]
        hsid[i] = s
