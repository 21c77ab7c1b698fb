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

from constrain.grammar._earley_kernels import chart_intern_kernel, earley_close_kernel


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
    sub_bytes: np.ndarray,  # uint64 [n_nodes, 4]: bytes below each node (vocab.trie.subtree_byte_sets)
    self_loop: np.ndarray,  # uint64 [n_q, 4]: bytes that lead each lexer state back to itself
) -> int:
    """Return the number of boundary points found (may exceed ``cap``: then rerun with more room).

    With a lazy lexer a transition may be unknown (``-2``): the point is then reported with
    ``bnd_state = -2 - state`` (the state whose row is missing) and its subtree skipped; the caller
    builds the rows and walks again.

    Shortcut: at a node in a live state ``s`` where no expected terminal ends and whose terminals
    are not all ignored whitespace, a subtree whose bytes all loop on ``s`` (a JSON string body
    over ASCII text) keeps ``s`` on every path: all its tokens are allowed and it holds no boundary
    point, so its tokens are set without walking it.
    """
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
            if s == -2:
                # lazy lexer: row not built; report (node, -2 - state) and skip the subtree
                if not (d == d0 + 1 and first_blocked[node_byte[i]]):
                    if nb < cap:
                        bnd_node[nb] = i
                        bnd_state[nb] = -2 - states[d - 1]
                        bnd_ws[nb] = 0
                    nb += 1
                i = subtree_end[i]
                continue
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
            end_i = subtree_end[i]
            if accept_ok[s] and end_i > i + 1:
                if nb < cap:
                    bnd_node[nb] = i
                    bnd_state[nb] = s
                    bnd_ws[nb] = ws if ws <= ws_bound else ws_bound + 1
                nb += 1
            elif end_i > i + 1 and not ws_only[s]:
                inside = True
                for w in range(4):
                    if sub_bytes[i, w] & ~self_loop[s, w]:
                        inside = False
                        break
                if inside:
                    for j in range(node_token_start[i + 1], node_token_start[end_i]):
                        t = token_ids[j]
                        out_words[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
                    i = end_i
                    continue
            i += 1
    return nb


@numba.njit(cache=True, nogil=True)
def safe_depth_kernel(
    transitions: np.ndarray,  # int32 [n_q, 256]; -1 reject, -2 row not built (lazy lexer)
    live_ok: np.ndarray,  # bool [n_q]: some expected terminal can still be completed
    ws_only: np.ndarray,  # bool [n_q]: every live expected terminal is ignored whitespace
    start_q: int,
    max_chars: int,
    max_set: int,  # give up (return the level reached) when a level holds more states than this
    step_b: np.ndarray,  # int32 [k]: first bytes of safe characters, one per (byte class, decoder state)
    step_u: np.ndarray,  # int32 [k]: UTF-8 decoder state after that byte (0: a whole character)
    cont_ptr: np.ndarray,  # int32 [9]: continuation bytes allowed in decoder state u, one per byte class:
    cont_b: np.ndarray,  # int32: cont_b[cont_ptr[u]:cont_ptr[u + 1]]
    utf8_next: np.ndarray,  # int32 [8, 3]: per decoder state, (low, high, next state)
    mark: np.ndarray,  # int64 [>= 8 * n_q] scratch, stamps of (state, decoder state) pairs
    stamp: np.ndarray,  # int64 [1] in/out: last stamp used in ``mark`` (grows by one per level)
    cur: np.ndarray,  # int32 [>= n_q] scratch
    nxt: np.ndarray,  # int32 [>= n_q] scratch
    stk_x: np.ndarray,  # int32 [>= 8 * n_q] scratch
    stk_u: np.ndarray,  # int32 [>= 8 * n_q] scratch
    missing: np.ndarray,  # int32 [>= 9 * n_q] out: lazy states whose rows are needed (see below)
    reached: np.ndarray,  # int32 [k] out: every state read on the way, level by level (see below)
    n_reached: np.ndarray,  # int64 [2] out: entries of ``reached`` written (-1 if it overflowed), and
    # the answer's cap (see below)
) -> int:
    """How many characters of *any* safe JSON-string text ``start_q`` reads while staying live.

    Safe text: well-formed UTF-8 of code points U+0020 and up, except ``"`` and ``\\``. Returns the
    largest ``n <= max_chars`` such that every byte prefix of every safe string of at most ``n``
    characters leads from ``start_q`` to a state that is live and not whitespace-only: exactly the
    condition for a grammar walk to allow every token of that text (the prefixes are the trie
    nodes above the token; blocked first bytes are the caller's to check). Bytes of one class of
    the lexer lead to the same state, so one byte per class is read
    (:func:`constrain.vocab.slices.safe_byte_steps`). Returns ``max_chars`` as soon
    as one level's set of states equals the previous one (a loop, e.g. a JSON string body).
    Returns ``-2 - m`` when the rows of ``m`` lazy lexer states are needed and not built yet: every
    such state of the first level that meets one, in ``missing[:m]`` (possibly repeated), so the
    caller builds them all before it asks again (a level that also meets a dead byte answers its
    depth instead: unknown rows cannot raise it). A level
    of more than ``max_set`` states ends the search at the level reached (a smaller depth is
    always sound: the walk then visits those slices itself).

    The states after ``n`` characters form a set (``cur``); each level explores every safe byte
    from each of them, the continuation bytes of multi-byte characters through (state, decoder
    state) pairs, each pair once per level.

    ``reached`` lists the states each level read (after a whole or a partial character), levels
    in order, with ``-1 - level`` before each level's entries. ``n_reached[1]`` is the cap: where
    the answer did not come from a failing state (it is ``max_chars``, or the level where the set
    grew past ``max_set``), what was read does not depend on ``live_ok`` / ``ws_only`` and the
    cap is that answer; the depth for another expected set is then the first level holding a
    state that fails it, or the cap (see ``GrammarConstraint._safe_depth``). Otherwise (a failing
    state, missing rows) the cap is -1.
    """
    n_reached[1] = -1
    ncur = 1
    cur[0] = start_q
    nr = 0
    cap_r = reached.shape[0]
    for level in range(max_chars):
        stamp[0] += 1
        st = stamp[0]
        nn = 0
        sp = 0
        nmiss = 0
        if nr < cap_r:
            reached[nr] = -1 - level
        nr += 1
        for i in range(ncur):
            x = cur[i]
            for j in range(step_b.shape[0]):
                b = step_b[j]
                u = step_u[j]
                y = transitions[x, b]
                if y == -2:
                    missing[nmiss] = x
                    nmiss += 1
                    break  # the row of x is not built: none of its bytes can be read
                if y < 0 or not live_ok[y] or ws_only[y]:
                    n_reached[0] = nr if nr <= cap_r else -1
                    return level
                k = y * 8 + u
                if mark[k] != st:
                    mark[k] = st
                    if nr < cap_r:
                        reached[nr] = y
                    nr += 1
                    if u == 0:
                        nxt[nn] = y
                        nn += 1
                    else:
                        stk_x[sp] = y
                        stk_u[sp] = u
                        sp += 1
        while sp > 0:
            sp -= 1
            x = stk_x[sp]
            u = stk_u[sp]
            u2 = utf8_next[u, 2]
            for j in range(cont_ptr[u], cont_ptr[u + 1]):
                y = transitions[x, cont_b[j]]
                if y == -2:
                    missing[nmiss] = x
                    nmiss += 1
                    break
                if y < 0 or not live_ok[y] or ws_only[y]:
                    n_reached[0] = nr if nr <= cap_r else -1
                    return level
                k = y * 8 + u2
                if mark[k] != st:
                    mark[k] = st
                    if nr < cap_r:
                        reached[nr] = y
                    nr += 1
                    if u2 == 0:
                        nxt[nn] = y
                        nn += 1
                    else:
                        stk_x[sp] = y
                        stk_u[sp] = u2
                        sp += 1
        if nmiss > 0:
            n_reached[0] = nr if nr <= cap_r else -1
            return -2 - nmiss
        if nn > max_set:
            n_reached[0] = nr if nr <= cap_r else -1
            n_reached[1] = level + 1
            return level + 1
        if nn == ncur:
            a = np.sort(cur[:ncur])
            c = np.sort(nxt[:nn])
            same = True
            for i in range(nn):
                if a[i] != c[i]:
                    same = False
                    break
            if same:
                n_reached[0] = nr if nr <= cap_r else -1
                n_reached[1] = max_chars
                return max_chars
        for i in range(nn):
            cur[i] = nxt[i]
        ncur = nn
    n_reached[0] = nr if nr <= cap_r else -1
    n_reached[1] = max_chars
    return max_chars


@numba.njit(cache=True, nogil=True)
def safe_reach_kernel(reached: np.ndarray, n: int, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The states of :func:`safe_depth_kernel`'s ``reached[:n]``, each once, with the first level
    that read it: ``(states int64, levels int64)`` in order of first appearance. ``first``: int64
    scratch over the lexer states, all -1 on entry and on return."""
    states = np.empty(n, np.int64)
    levels = np.empty(n, np.int64)
    k = 0
    level = -1
    for i in range(n):
        x = reached[i]
        if x < 0:
            level += 1
        elif first[x] < 0:
            first[x] = level
            states[k] = x
            levels[k] = level
            k += 1
    for j in range(k):
        first[states[j]] = -1
    return states[:k].copy(), levels[:k].copy()


@numba.njit(cache=True, nogil=True)
def reach_depth_kernel(live_ok: np.ndarray, ws_only: np.ndarray, states: np.ndarray, levels: np.ndarray,
                       cap: int) -> int:
    """The safe-text depth of one expected set from a kept reach (:func:`safe_reach_kernel`): the
    first level holding a state that is dead or whitespace-only for the set, else ``cap`` (the
    search's answer that did not depend on the set: ``max_chars``, or where it was cut short)."""
    best = -1
    for j in range(states.shape[0]):
        s = states[j]
        if (not live_ok[s] or ws_only[s]) and (best < 0 or levels[j] < best):
            best = levels[j]
    return cap if best < 0 else best


@numba.njit(cache=True, nogil=True)
def merge_lookup(mkeys: np.ndarray, mvals: np.ndarray, p1: int, p2: int) -> int:
    """Open-addressing table (linear probing, size a power of two, empty key -1): merged pid or -1."""
    key = (np.int64(p1) << 32) | np.int64(p2)
    mask = mkeys.shape[0] - 1
    h = (p1 * 1000003 + p2 * 7919) & mask
    while True:
        k = mkeys[h]
        if k == key:
            return mvals[h]
        if k < 0:
            return -1
        h = (h + 1) & mask


@numba.njit(cache=True, nogil=True)
def merge_insert(mkeys: np.ndarray, mvals: np.ndarray, p1: int, p2: int, r: int) -> None:
    key = (np.int64(p1) << 32) | np.int64(p2)
    mask = mkeys.shape[0] - 1
    h = (p1 * 1000003 + p2 * 7919) & mask
    while mkeys[h] >= 0 and mkeys[h] != key:
        h = (h + 1) & mask
    mkeys[h] = key
    mvals[h] = r


@numba.njit(cache=True, nogil=True)
def _merge_into(tp, d, m, p, mkeys, mvals, req_p, req_q, nreq) -> int:
    """Slot ``m`` of depth ``d`` and parser id ``p`` meet: store their union; returns ``nreq``."""
    p1 = min(p, tp[d, m])
    p2 = max(p, tp[d, m])
    r = merge_lookup(mkeys, mvals, p1, p2)
    if r < 0:
        if nreq < req_p.shape[0]:
            req_p[nreq] = p1
            req_q[nreq] = -2 - p2
        return nreq + 1
    tp[d, m] = r
    return nreq


@numba.njit(cache=True, nogil=True)
def grammar_mask_kernel(
    transitions: np.ndarray,  # int32 [n_q, 256], -1 = reject
    p_eset: np.ndarray,  # int32 [P]: expected-terminal-set id of each parser id
    live_tab: np.ndarray,  # bool [E, n_q]: some expected terminal can still be completed
    acc_tab: np.ndarray,  # bool [E, n_q]: some expected terminal (ignored ones included) ends here
    wsonly_tab: np.ndarray,  # bool [E, n_q]: every live expected terminal is an ignored whitespace one
    ws_live: np.ndarray,  # bool [n_q]: an ignored whitespace terminal is live (the byte count matters)
    acc_col: np.ndarray,  # int32 [n_q]: column of an accepting lexer state in scan_tab, -1 if none
    scan_tab: np.ndarray,  # int32 [P, n_acc]: parser id after the real terminals ending in q; -1 none, -2 unknown
    mkeys: np.ndarray,  # int64 [2^k] open-addressing table: (min pid << 32 | max pid) -> merged pid
    mvals: np.ndarray,  # int64 [2^k]
    ign_start: np.ndarray,  # int32 [n_q + 1]: CSR over the ignored terminals accepting in q
    ign_bid: np.ndarray,  # int32: blocked-set id after that ignored lexeme
    ign_isws: np.ndarray,  # bool: that ignored terminal is a whitespace one (count carries on)
    blocked_tab: np.ndarray,  # bool [n_blocked, 256]
    ws_bound: int,
    init_p: np.ndarray,  # int32 [k]: the grammar state's threads (parser id, lexer state or -1, ws, blocked id)
    init_q: np.ndarray,
    init_ws: np.ndarray,
    init_b: np.ndarray,
    tp: np.ndarray,  # int32 [max_depth + 1, cap] scratch, kept across a resume: threads per depth
    tq: np.ndarray,
    tw: np.ndarray,
    tb: np.ndarray,
    cnt: np.ndarray,  # int32 [max_depth + 1] scratch: threads per depth
    resume: np.ndarray,  # int64 [1] in/out: node to resume at (0: fresh walk)
    node_byte: np.ndarray,
    node_depth: np.ndarray,
    subtree_end: np.ndarray,
    node_token_start: np.ndarray,
    token_ids: np.ndarray,
    out_words: np.ndarray,  # uint32 [W], OR-ed into
    req_p: np.ndarray,  # int32 [rcap] out: unknown transitions: scan (pid, lexer state) or merge (pid, -2 - pid)
    req_q: np.ndarray,
) -> int:
    """One walk of the whole trie with every thread of a grammar state at once.

    Per trie depth the kernel keeps the live threads (distinct); past min(8, cap / 8) of them, a new
    thread that differs from a kept one only in its parser state is merged into it (item-set
    union, as in ``advance_bytes``; merged states need their own Earley scans, so merging is the
    exception). A child node's threads are its parent's threads advanced by the node's
    byte. Where a lexeme may end inside a longer token the thread forks in place: the parser
    transition is read from ``scan_tab`` and ignored lexemes from the CSR tables. At a node with
    unknown transitions (scans or merges) the kernel records them in ``req_*``, saves the node in
    ``resume`` and returns their number (may exceed ``req_p.shape[0]``); the caller fills the tables
    and calls again with the same scratch to go on from that node (its ancestors' threads are
    intact). Returns 0 when the walk is complete, -1 when more than ``cap`` threads meet at one node
    (the mask is then unusable).
    """
    cap = tp.shape[1]
    soft = min(8, cap >> 3)  # past this many threads at a node, merge instead of adding
    i = resume[0]
    if i == 0:
        n0 = init_p.shape[0]
        if n0 > cap:
            return -1
        for k in range(n0):
            tp[0, k] = init_p[k]
            tq[0, k] = init_q[k]
            tw[0, k] = init_ws[k]
            tb[0, k] = init_b[k]
        cnt[0] = n0
        i = 1
    n_nodes = node_byte.shape[0]
    while i < n_nodes:
        d = node_depth[i]
        c = node_byte[i]
        pd = d - 1
        n = 0
        nreq = 0
        for k in range(cnt[pd]):
            q = tq[pd, k]
            if q < 0:
                b = tb[pd, k]
                if b >= 0 and blocked_tab[b, c]:
                    continue
                q = 0
            q2 = transitions[q, c]
            if q2 == -2:  # lazy lexer: row of q not built yet
                if nreq < req_p.shape[0]:
                    req_p[nreq] = -1
                    req_q[nreq] = q
                nreq += 1
                continue
            if q2 < 0:
                continue
            p = tp[pd, k]
            e = p_eset[p]
            if not live_tab[e, q2]:
                continue
            ws = 0
            if ws_live[q2]:
                ws = tw[pd, k] + 1
                if ws > ws_bound:
                    if wsonly_tab[e, q2]:
                        continue
                    ws = ws_bound + 1
            same = -1
            dup = False
            for m in range(n):
                if tq[d, m] == q2 and tw[d, m] == ws:
                    if tp[d, m] == p:
                        dup = True
                        break
                    same = m
            if dup:
                continue
            if same >= 0 and n >= soft:
                nreq = _merge_into(tp, d, same, p, mkeys, mvals, req_p, req_q, nreq)
                continue
            if n >= cap:
                return -1
            tp[d, n] = p
            tq[d, n] = q2
            tw[d, n] = ws
            tb[d, n] = -1
            n += 1
        if nreq > 0:
            resume[0] = i
            return nreq
        if n == 0:
            i = subtree_end[i]
            continue
        for j in range(node_token_start[i], node_token_start[i + 1]):
            t = token_ids[j]
            out_words[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
        nn = n
        if subtree_end[i] > i + 1:
            # lexeme ends inside a longer token: fork boundary threads (lexer state -1) in place
            for k in range(n):
                q2 = tq[d, k]
                p = tp[d, k]
                if not acc_tab[p_eset[p], q2]:
                    continue
                w = tw[d, k]
                r = scan_tab[p, acc_col[q2]]
                if r == -2:
                    if nreq < req_p.shape[0]:
                        req_p[nreq] = p
                        req_q[nreq] = q2
                    nreq += 1
                    continue
                if r >= 0:
                    same = -1
                    dup = False
                    for m in range(n, nn):
                        if tw[d, m] == 0 and tb[d, m] == -1:
                            if tp[d, m] == r:
                                dup = True
                                break
                            same = m
                    if dup:
                        pass
                    elif same >= 0 and nn - n >= soft:
                        nreq = _merge_into(tp, d, same, r, mkeys, mvals, req_p, req_q, nreq)
                    elif nn >= cap:
                        return -1
                    else:
                        tp[d, nn] = r
                        tq[d, nn] = -1
                        tw[d, nn] = 0
                        tb[d, nn] = -1
                        nn += 1
                for j in range(ign_start[q2], ign_start[q2 + 1]):
                    if ign_isws[j]:
                        if w > ws_bound:
                            continue
                        w2 = w
                    else:
                        w2 = 0
                    b2 = ign_bid[j]
                    same = -1
                    dup = False
                    for m in range(n, nn):
                        if tw[d, m] == w2 and tb[d, m] == b2:
                            if tp[d, m] == p:
                                dup = True
                                break
                            same = m
                    if dup:
                        pass
                    elif same >= 0 and nn - n >= soft:
                        nreq = _merge_into(tp, d, same, p, mkeys, mvals, req_p, req_q, nreq)
                    elif nn >= cap:
                        return -1
                    else:
                        tp[d, nn] = p
                        tq[d, nn] = -1
                        tw[d, nn] = w2
                        tb[d, nn] = b2
                        nn += 1
            if nreq > 0:
                resume[0] = i
                return nreq
        cnt[d] = nn
        i += 1
    resume[0] = n_nodes
    return 0


@numba.njit(cache=True, nogil=True, inline="always")
def _bit_indices_into(x, base, out, k):
    """Write ``base`` plus the index of each set bit of the uint64 word ``x``, ascending, to
    ``out[k:]``; returns the new ``k``."""
    b = 0
    while x:
        if x & np.uint64(1):
            out[k] = base + b
            k += 1
        x >>= np.uint64(1)
        b += 1
    return k


@numba.njit(cache=True, nogil=True)
def _scan_pid(p, q2, p_eset, live_tab, acc_tab, wsonly_tab, ek, ch, pk):
    """The parser id after parser id ``p`` scans the terminals lexer state ``q2`` accepts (-1: the
    parser expects none of them), computed here: the Earley closure of the scan
    (:func:`earley_close_kernel`), the chart state interned (:func:`chart_intern_kernel`) and its
    parser id (:func:`assign_pid_kernel`), as ``GrammarConstraint._fill_scan`` does with objects.
    -3 when an array or the scratch is too small, or the parser-id limit is reached: the caller
    then asks Python, which grows them (or raises). ``ek`` / ``ch`` / ``pk``: the closure's
    tables and scratch, the chart, the parser-id tables (``GrammarConstraint._scan_context``)."""
    (lr_bits, lr_next, lr_end_lhs, rules_ptr, rules_lr, nullable, pred_stamp, stamp, hkeys, hused, work,
     out_items, out_syms, exp_words, info, no_seed, terms) = ek
    st_ptr, st_syms, st_items, st_exp, st_fin, st_hash, ih_keys, ih_sid, st_counts = ch
    pid_sid = pk[3]
    term_words = pk[12]
    sid = pid_sid[p]
    n_t = 0
    for w in range(term_words.shape[2]):
        n_t = _bit_indices_into(term_words[q2, 1, w] & st_exp[sid, w], 64 * w, terms, n_t)
    if n_t == 0:
        return -1
    stamp[0] += 1
    n = earley_close_kernel(no_seed, 0, sid, terms, n_t, lr_bits, lr_next, lr_end_lhs, rules_ptr, rules_lr, nullable,
                            st_ptr, st_syms, st_items, pred_stamp, stamp[0], hkeys, hused, work, out_items, out_syms,
                            exp_words, info)
    if n < 0:
        return -3
    sid2 = chart_intern_kernel(out_items, out_syms, n, info[0], exp_words, st_ptr, st_syms, st_items, st_exp, st_fin,
                               st_hash, ih_keys, ih_sid, st_counts)
    if sid2 < 0:
        return -3
    r = assign_pid_kernel(sid2, st_exp, p_eset, live_tab, acc_tab, wsonly_tab, pk)
    return r if r >= 0 else -3


@numba.njit(cache=True, nogil=True)
def _fork_threads(tp, tq, tw, tb, d, n, p_eset, live_tab, acc_tab, wsonly_tab, acc_col, scan_tab, mkeys, mvals,
                  ign_start, ign_bid, ign_isws, ws_bound, soft, cap, req_p, req_q, nreq, ek, ch, pk):
    """Fork the boundary threads of threads ``[0, n)`` at depth ``d`` into slots ``n..``.

    Same rules as the fork step of :func:`grammar_mask_kernel`, except that an unknown parser
    scan is computed here (:func:`_scan_pid`) and only recorded when that cannot be done.
    Returns ``(nn, nreq)``: the new thread count (``-1``: over ``cap``) and the number of unknown
    transitions recorded so far.
    """
    nn = n
    for k in range(n):
        q2 = tq[d, k]
        p = tp[d, k]
        if q2 < 0 or not acc_tab[p_eset[p], q2]:
            continue
        w = tw[d, k]
        r = scan_tab[p, acc_col[q2]]
        if r == -2:
            r = _scan_pid(p, q2, p_eset, live_tab, acc_tab, wsonly_tab, ek, ch, pk)
            if r == -3:
                if nreq < req_p.shape[0]:
                    req_p[nreq] = p
                    req_q[nreq] = q2
                nreq += 1
                continue
            scan_tab[p, acc_col[q2]] = r
        if r >= 0:
            same = -1
            dup = False
            for m in range(n, nn):
                if tw[d, m] == 0 and tb[d, m] == -1:
                    if tp[d, m] == r:
                        dup = True
                        break
                    same = m
            if dup:
                pass
            elif same >= 0 and nn - n >= soft:
                nreq = _merge_into(tp, d, same, r, mkeys, mvals, req_p, req_q, nreq)
            elif nn >= cap:
                return -1, nreq
            else:
                tp[d, nn] = r
                tq[d, nn] = -1
                tw[d, nn] = 0
                tb[d, nn] = -1
                nn += 1
        for j in range(ign_start[q2], ign_start[q2 + 1]):
            if ign_isws[j]:
                if w > ws_bound:
                    continue
                w2 = w
            else:
                w2 = 0
            b2 = ign_bid[j]
            same = -1
            dup = False
            for m in range(n, nn):
                if tw[d, m] == w2 and tb[d, m] == b2:
                    if tp[d, m] == p:
                        dup = True
                        break
                    same = m
            if dup:
                pass
            elif same >= 0 and nn - n >= soft:
                nreq = _merge_into(tp, d, same, p, mkeys, mvals, req_p, req_q, nreq)
            elif nn >= cap:
                return -1, nreq
            else:
                tp[d, nn] = p
                tq[d, nn] = -1
                tw[d, nn] = w2
                tb[d, nn] = b2
                nn += 1
    return nn, nreq


@numba.njit(cache=True, nogil=True)
def grammar_fork_jobs_kernel(
    transitions, p_eset, live_tab, acc_tab, wsonly_tab, ws_live, acc_col, scan_tab, mkeys, mvals,
    ign_start, ign_bid, ign_isws, blocked_tab, ws_bound,
    job_node: np.ndarray,  # int32 [J]: trie node where a lexeme of the job's thread ends (node has children)
    job_p: np.ndarray,  # int32 [J]: parser id of the thread
    job_q: np.ndarray,  # int32 [J]: accepting lexer state reached at that node
    job_w: np.ndarray,  # int32 [J]: ignored-whitespace count at that node
    tp, tq, tw, tb, cnt,  # scratch as in grammar_mask_kernel
    resume: np.ndarray,  # int64 [2] in/out: (job, node) to resume at; (0, 0): fresh
    node_byte, node_depth, subtree_end, node_token_start, token_ids,
    out_words, req_p, req_q,
    ek, ch, pk,  # unknown parser scans are computed in the kernel: see _scan_pid
) -> int:
    """Walk the strict subtree of each job's node with the threads forked there (lexeme ended).

    A job is a boundary point of one thread's lexeme walk (:func:`grammar_walk_kernel`): the
    tokens along the lexeme itself are already in the mask; this adds every token that continues
    past the lexeme end, exactly as :func:`grammar_mask_kernel` would after forking at that node
    (scan the parser, ignored lexemes, merges past a few threads). Same return protocol as
    :func:`grammar_mask_kernel`, with ``resume = (job, node)``.
    """
    cap = tp.shape[1]
    soft = min(8, cap >> 3)
    jstart = resume[0]
    inode = resume[1]
    for jb in range(jstart, job_node.shape[0]):
        root = job_node[jb]
        d0 = node_depth[root]
        end = subtree_end[root]
        if jb != jstart or inode == root or inode == 0:
            # (re)start the job: fork the one thread at the root, keep only the forked threads
            tp[d0, 0] = job_p[jb]
            tq[d0, 0] = job_q[jb]
            tw[d0, 0] = job_w[jb]
            tb[d0, 0] = -1
            nn, nreq = _fork_threads(tp, tq, tw, tb, d0, 1, p_eset, live_tab, acc_tab, wsonly_tab, acc_col, scan_tab,
                                     mkeys, mvals, ign_start, ign_bid, ign_isws, ws_bound, soft, cap, req_p, req_q, 0,
                                     ek, ch, pk)
            if nn < 0:
                return -1
            if nreq > 0:
                resume[0] = jb
                resume[1] = root
                return nreq
            for m in range(1, nn):
                tp[d0, m - 1] = tp[d0, m]
                tq[d0, m - 1] = tq[d0, m]
                tw[d0, m - 1] = tw[d0, m]
                tb[d0, m - 1] = tb[d0, m]
            cnt[d0] = nn - 1
            if nn - 1 == 0:
                continue
            i = root + 1
        else:
            i = inode
        while i < end:
            d = node_depth[i]
            c = node_byte[i]
            pd = d - 1
            n = 0
            nreq = 0
            for k in range(cnt[pd]):
                q = tq[pd, k]
                if q < 0:
                    b = tb[pd, k]
                    if b >= 0 and blocked_tab[b, c]:
                        continue
                    q = 0
                q2 = transitions[q, c]
                if q2 == -2:  # lazy lexer: row of q not built yet
                    if nreq < req_p.shape[0]:
                        req_p[nreq] = -1
                        req_q[nreq] = q
                    nreq += 1
                    continue
                if q2 < 0:
                    continue
                p = tp[pd, k]
                e = p_eset[p]
                if not live_tab[e, q2]:
                    continue
                ws = 0
                if ws_live[q2]:
                    ws = tw[pd, k] + 1
                    if ws > ws_bound:
                        if wsonly_tab[e, q2]:
                            continue
                        ws = ws_bound + 1
                same = -1
                dup = False
                for m in range(n):
                    if tq[d, m] == q2 and tw[d, m] == ws:
                        if tp[d, m] == p:
                            dup = True
                            break
                        same = m
                if dup:
                    continue
                if same >= 0 and n >= soft:
                    nreq = _merge_into(tp, d, same, p, mkeys, mvals, req_p, req_q, nreq)
                    continue
                if n >= cap:
                    return -1
                tp[d, n] = p
                tq[d, n] = q2
                tw[d, n] = ws
                tb[d, n] = -1
                n += 1
            if nreq > 0:
                resume[0] = jb
                resume[1] = i
                return nreq
            if n == 0:
                i = subtree_end[i]
                continue
            for j in range(node_token_start[i], node_token_start[i + 1]):
                t = token_ids[j]
                out_words[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
            nn = n
            if subtree_end[i] > i + 1:
                nn, nreq = _fork_threads(tp, tq, tw, tb, d, n, p_eset, live_tab, acc_tab, wsonly_tab, acc_col,
                                         scan_tab, mkeys, mvals, ign_start, ign_bid, ign_isws, ws_bound, soft, cap,
                                         req_p, req_q, 0, ek, ch, pk)
                if nn < 0:
                    return -1
                if nreq > 0:
                    resume[0] = jb
                    resume[1] = i
                    return nreq
            cnt[d] = nn
            i += 1
    resume[0] = job_node.shape[0]
    resume[1] = 0
    return 0


@numba.njit(cache=True, nogil=True)
def _product_edges_pass(delta, reps, weight, f_next, inf, head, fill, src, wt, write: bool) -> None:
    """One pass over the edges (q, f) -> (delta[q, rep], f_next[f, c]) of the lexer x unit graph:
    count them per target node into ``head[v + 1]`` (``write=False``) or write their sources and
    weights at ``fill[v]`` (``write=True``)."""
    k = weight.shape[0]
    for q in range(delta.shape[0]):
        for c in range(reps.shape[0]):
            q2 = delta[q, reps[c]]
            if q2 < 0:
                continue
            for f in range(k):
                if weight[f, c] >= inf:
                    continue
                v = q2 * k + f_next[f, c]
                if write:
                    src[fill[v]] = q * k + f
                    wt[fill[v]] = weight[f, c]
                    fill[v] += 1
                else:
                    head[v + 1] += 1


@numba.njit(cache=True, nogil=True)
def _reverse_product_graph(delta, reps, weight, f_next, inf):
    """``(head, src, wt)``: the reversed lexer x unit graph in CSR form (node ``q * k + f``; the
    edges into v are ``src[head[v]:head[v + 1]]`` with weights ``wt``)."""
    n = delta.shape[0] * weight.shape[0]
    head = np.zeros(n + 1, dtype=np.int64)
    empty = np.empty(0, dtype=np.int64)
    _product_edges_pass(delta, reps, weight, f_next, inf, head, empty, empty, empty, False)
    for v in range(n):
        head[v + 1] += head[v]
    fill = head[:n].copy()
    src = np.empty(head[n], dtype=np.int64)
    wt = np.empty(head[n], dtype=np.int64)
    _product_edges_pass(delta, reps, weight, f_next, inf, head, fill, src, wt, True)
    return head, src, wt


@numba.njit(cache=True, nogil=True)
def lexer_relevance_kernel(delta: np.ndarray, reps: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, int]:
    """``(row[t, q], n_rows)``: a row index for each lexer state q from which a lexeme of target t
    can still end (backward reachability in the lexer DFA), -1 for the others."""
    n_q = delta.shape[0]
    n_t = targets.shape[0]
    one = np.zeros((1, reps.shape[0]), dtype=np.int64)  # the lexer graph alone: a 1-state unit
    head, src, _ = _reverse_product_graph(delta, reps, one, one, 1)
    row = np.full((n_t, n_q), -1, dtype=np.int64)
    stack = np.empty(n_q, dtype=np.int64)
    n_rows = 0
    for t in range(n_t):
        n_st = 0
        for q in range(n_q):
            if targets[t, q]:
                row[t, q] = n_rows
                n_rows += 1
                stack[n_st] = q
                n_st += 1
        while n_st > 0:
            n_st -= 1
            v = stack[n_st]
            for e in range(head[v], head[v + 1]):
                u = src[e]
                if row[t, u] < 0:
                    row[t, u] = n_rows
                    n_rows += 1
                    stack[n_st] = u
                    n_st += 1
    return row, n_rows


@numba.njit(cache=True, nogil=True)
def lexer_distances_kernel(
    delta: np.ndarray,  # int64 [n_q, 256], -1 = reject
    reps: np.ndarray,  # int64 [n_cls]: one representative byte per class of equal columns
    weight: np.ndarray,  # int64 [k, n_cls]: cost of the class's bytes from unit state f (0, 1 or inf)
    f_next: np.ndarray,  # int64 [k, n_cls]: unit state after the class's bytes
    targets: np.ndarray,  # bool [T, n_q]: lexer states where each target's lexeme may end
    row: np.ndarray,  # int64 [T, n_q]: lexer_relevance_kernel's rows
    n_rows: int,
    inf: int,
) -> np.ndarray:
    """``D[row[t, q], f_in, f_out]``: least cost from (lexer state q, unit state f_in) to (a state
    of target t, unit state f_out), in the product of the lexer DFA and the unit automaton.

    One 0-1 breadth-first search per (target, f_out) over the reversed product graph: each product
    node is expanded once, at its final distance (a node's distance decreases at most twice, so
    the level buffers hold 2 * nodes entries). Weights must be 0, 1 or ``inf`` (no edge). Pairs
    (t, q) without a row have no finite distance (q cannot reach t's end at all).
    """
    n_q = delta.shape[0]
    k = weight.shape[0]
    n_t = targets.shape[0]
    n = n_q * k
    head, src, wt = _reverse_product_graph(delta, reps, weight, f_next, inf)
    out = np.full((n_rows, k, k), inf, dtype=np.int64)
    dist = np.empty(n, dtype=np.int64)
    done = np.empty(n, dtype=np.bool_)
    cur = np.empty(2 * n + 1, dtype=np.int64)
    nxt = np.empty(2 * n + 1, dtype=np.int64)
    for t in range(n_t):
        for f_out in range(k):
            dist[:] = inf
            done[:] = False
            n_cur = 0
            for q in range(n_q):
                if targets[t, q]:
                    v = q * k + f_out
                    dist[v] = 0
                    cur[n_cur] = v
                    n_cur += 1
            d = 0
            while n_cur > 0:
                n_nxt = 0
                i = 0
                while i < n_cur:
                    v = cur[i]
                    i += 1
                    if done[v] or dist[v] != d:
                        continue
                    done[v] = True
                    out[row[t, v // k], v % k, f_out] = d
                    for e in range(head[v], head[v + 1]):
                        u = src[e]
                        nd = d + wt[e]
                        if nd < dist[u]:
                            dist[u] = nd
                            if wt[e] == 0:
                                cur[n_cur] = u
                                n_cur += 1
                            else:
                                nxt[n_nxt] = u
                                n_nxt += 1
                cur, nxt = nxt, cur
                n_cur = n_nxt
                d += 1
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _eset_state_entry(live_row, acc_row, ws_mask, eset_cols, lo, hi, live_tab, acc_tab, wsonly_tab, e, q):
    """``live_tab`` / ``acc_tab`` / ``wsonly_tab`` ``[e, q]`` from lexer state ``q``'s terminal rows
    and expected set ``e``'s terminals ``eset_cols[lo:hi]``."""
    live = False
    accept = False
    non_ws = False
    for j in range(lo, hi):
        t = eset_cols[j]
        if live_row[t]:
            live = True
            if not ws_mask[t]:
                non_ws = True
        if acc_row[t]:
            accept = True
    live_tab[e, q] = live
    acc_tab[e, q] = accept
    wsonly_tab[e, q] = live and not non_ws


@numba.njit(cache=True, nogil=True, inline="always")
def _eset_state_entry_words(lw, aw, ew, enw, live_tab, acc_tab, wsonly_tab, e, q):
    """As :func:`_eset_state_entry` from bit words: ``lw`` / ``aw`` the live / accepting terminals
    of state ``q``, ``ew`` / ``enw`` expected set ``e``'s terminals / its non-whitespace ones
    (uint64 words; cheaper than the column loop when the set has many terminals)."""
    live = False
    accept = False
    non_ws = False
    for w in range(ew.shape[0]):
        if lw[w] & ew[w]:
            live = True
        if aw[w] & ew[w]:
            accept = True
        if lw[w] & enw[w]:
            non_ws = True
    live_tab[e, q] = live
    acc_tab[e, q] = accept
    wsonly_tab[e, q] = live and not non_ws


@numba.njit(cache=True, nogil=True, inline="always")
def _uses_words(lo, hi, n_words):
    """Whether an expected set of ``hi - lo`` terminals is tested by bit words (three word ANDs a
    word) rather than column by column."""
    return hi - lo > 3 * n_words


@numba.njit(cache=True, nogil=True)
def eset_words_kernel(eset_cols, lo, hi, ws_mask, out):
    """``out[0]`` / ``out[1]`` (uint64 words, zeroed here): the terminals ``eset_cols[lo:hi]`` of one
    expected set / those of them that are not whitespace."""
    out[:] = 0
    for j in range(lo, hi):
        t = eset_cols[j]
        bit = np.uint64(1) << np.uint64(t & 63)
        out[0, t >> 6] |= bit
        if not ws_mask[t]:
            out[1, t >> 6] |= bit


@numba.njit(cache=True, nogil=True)
def lazy_state_rows_kernel(new_acc, new_live, ws_mask, eset_ptr, eset_cols, eset_words, n_e, n_old,
                           live_tab, acc_tab, wsonly_tab, ws_live, acc_col, n_acc_cols, term_words):
    """The per-lexer-state table entries of lazily built states ``n_old ..`` (rows ``new_acc`` /
    ``new_live``, ``bool[m, n_terms]``), written in place: ``ws_live`` (a whitespace terminal is
    live), ``acc_col`` (a scan-table column for states accepting something, numbered from
    ``n_acc_cols``; -1 none), and per expected set ``e < n_e`` (its terminals
    ``eset_cols[eset_ptr[e]:eset_ptr[e + 1]]``, as bit words ``eset_words[e]``): ``live_tab[e, q]``
    some expected terminal is live, ``acc_tab[e, q]`` one accepts, ``wsonly_tab[e, q]`` only
    whitespace ones are live. ``term_words``: the states' rows as bit words (written too).
    Returns the new column count."""
    m, n_terms = new_acc.shape
    n_words = eset_words.shape[2]
    lw = np.zeros(n_words, np.uint64)
    aw = np.zeros(n_words, np.uint64)
    for i in range(m):
        q = n_old + i
        wl = False
        aa = False
        lw[:] = 0
        aw[:] = 0
        for t in range(n_terms):
            bit = np.uint64(1) << np.uint64(t & 63)
            if new_live[i, t]:
                lw[t >> 6] |= bit
                if ws_mask[t]:
                    wl = True
            if new_acc[i, t]:
                aw[t >> 6] |= bit
                aa = True
        term_words[q, 0, :] = lw
        term_words[q, 1, :] = aw
        ws_live[q] = wl
        if aa:
            acc_col[q] = n_acc_cols
            n_acc_cols += 1
        else:
            acc_col[q] = -1
        for e in range(n_e):
            lo = eset_ptr[e]
            hi = eset_ptr[e + 1]
            if _uses_words(lo, hi, n_words):
                _eset_state_entry_words(lw, aw, eset_words[e, 0], eset_words[e, 1], live_tab, acc_tab, wsonly_tab,
                                        e, q)
            else:
                _eset_state_entry(new_live[i], new_acc[i], ws_mask, eset_cols, lo, hi, live_tab, acc_tab,
                                  wsonly_tab, e, q)
    return n_acc_cols


@numba.njit(cache=True, nogil=True)
def row_classes_kernel(term_words: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Lexer states ``0 .. n - 1`` grouped by their terminal rows (``term_words[q]``: live and
    accepting terminals as uint64 words): ``(class of each state int32 [n], a state of each class
    int64 [C])``, classes numbered in order of first appearance. States of one class have the
    same entries in every expected set's table row, so a row can be computed per class."""
    n_words = term_words.shape[2]
    size = 1
    while size < 2 * n + 2:
        size *= 2
    slots = np.full(size, -1, np.int64)
    row_class = np.empty(n, np.int32)
    reps = np.empty(n, np.int64)
    n_cls = 0
    for q in range(n):
        h = np.uint64(1469598103934665603)
        for k in range(2):
            for w in range(n_words):
                h = (h ^ term_words[q, k, w]) * np.uint64(1099511628211)
        slot = np.int64(h & np.uint64(size - 1))
        while True:
            c = slots[slot]
            if c < 0:
                slots[slot] = n_cls
                reps[n_cls] = q
                row_class[q] = n_cls
                n_cls += 1
                break
            r = reps[c]
            same = True
            for k in range(2):
                for w in range(n_words):
                    if term_words[r, k, w] != term_words[q, k, w]:
                        same = False
                        break
                if not same:
                    break
            if same:
                row_class[q] = c
                break
            slot = (slot + 1) & (size - 1)
    return row_class, reps[:n_cls].copy()


@numba.njit(cache=True, nogil=True)
def eset_class_rows_kernel(eset_cols, lo, hi, ws_mask, n, e, live_tab, acc_tab, wsonly_tab, eset_words,
                           row_class, class_words):
    """A new expected set ``e``'s rows of ``live_tab`` / ``acc_tab`` / ``wsonly_tab`` (terminals
    ``eset_cols[lo:hi]``, its words written to ``eset_words[e]``) for states ``0 .. n - 1`` of a
    packed eager lexer whose states are grouped by their terminal rows (:func:`row_classes_kernel`;
    ``class_words[c]``: the rows of class ``c`` as words): the set's entries are computed once per
    class, then copied to the states."""
    eset_words_kernel(eset_cols, lo, hi, ws_mask, eset_words[e])
    ew = eset_words[e, 0]
    enw = eset_words[e, 1]
    n_cls = class_words.shape[0]
    # the classes' entries, as one row of class-indexed tables
    cls_live = np.empty((1, n_cls), np.bool_)
    cls_acc = np.empty((1, n_cls), np.bool_)
    cls_wsonly = np.empty((1, n_cls), np.bool_)
    for c in range(n_cls):
        _eset_state_entry_words(class_words[c, 0], class_words[c, 1], ew, enw, cls_live, cls_acc, cls_wsonly, 0, c)
    for q in range(n):
        c = row_class[q]
        live_tab[e, q] = cls_live[0, c]
        acc_tab[e, q] = cls_acc[0, c]
        wsonly_tab[e, q] = cls_wsonly[0, c]


@numba.njit(cache=True, nogil=True, inline="always")
def _words_hash(words):
    h = np.uint64(14695981039346656037)
    for w in range(words.shape[0]):
        h = (h ^ words[w]) * np.uint64(1099511628211)
    return np.int64(h >> np.uint64(1))


@numba.njit(cache=True, nogil=True)
def eset_rehash_kernel(eset_words, n_e, eh_keys, eh_eid):
    """Insert expected sets ``0 .. n_e - 1`` (by their terminal words ``eset_words[e, 0]``) into an
    empty table (after it grew)."""
    mask = eh_keys.shape[0] - 1
    for e in range(n_e):
        h = _words_hash(eset_words[e, 0])
        i = h & mask
        while eh_keys[i] >= 0:
            i = (i + 1) & mask
        eh_keys[i] = h
        eh_eid[i] = e


@numba.njit(cache=True, nogil=True)
def assign_pid_kernel(sid, st_exp, p_eset, live_tab, acc_tab, wsonly_tab, pk):
    """The parser id of chart state ``sid`` (see :class:`constrain.grammar.earley._Chart`): its own,
    or a new one (``counts[0]`` parser ids so far, written to ``pid_sid`` / ``sid_pid`` /
    ``p_eset``). ``pk``: the parser-id tables (``GrammarConstraint._pid_context``). A new id's expected set (the state's expected terminals ``st_exp[sid]`` plus the
    ignored ones ``ign_words``) is looked up by its words in ``eh_keys`` / ``eh_eid``; a new set
    (``counts[1]`` so far) gets its terminals in ``eset_cols`` / ``eset_ptr`` and its table rows
    for lexer states ``0 .. n_rows - 1`` as :meth:`GrammarConstraint._parser_id` computes them
    (by classes where ``class_words`` has rows, else by ``term_words``, which must hold the
    states' rows). Returns -1, changing nothing, when an array is too small (the caller grows
    them and asks again), -2 when a new id would reach ``max_pids``."""
    (ign_words, ws_mask, sid_pid, pid_sid, scan_rows, eh_keys, eh_eid, eset_words, eset_ptr, eset_cols,
     row_class, class_words, term_words, n_rows, counts, max_pids) = pk
    if sid >= sid_pid.shape[0]:
        return -1
    p = sid_pid[sid]
    if p >= 0:
        return p
    n_p = counts[0]
    if n_p >= max_pids:
        return -2
    if n_p >= p_eset.shape[0] or n_p >= pid_sid.shape[0] or n_p >= scan_rows:
        return -1
    n_w = ign_words.shape[0]
    key = np.empty(n_w, np.uint64)
    n_cols = 0
    for w in range(n_w):
        key[w] = st_exp[sid, w] | ign_words[w]
        x = key[w]
        while x:
            x &= x - np.uint64(1)
            n_cols += 1
    h = _words_hash(key)
    mask = eh_keys.shape[0] - 1
    i = h & mask
    e = -1
    while eh_keys[i] >= 0:
        if eh_keys[i] == h:
            c = eh_eid[i]
            same = True
            for w in range(n_w):
                if eset_words[c, 0, w] != key[w]:
                    same = False
                    break
            if same:
                e = c
                break
        i = (i + 1) & mask
    if e < 0:
        n_e = counts[1]
        lo = eset_ptr[n_e]
        if (n_e >= live_tab.shape[0] or n_e >= eset_words.shape[0] or n_e + 2 > eset_ptr.shape[0]
                or lo + n_cols > eset_cols.shape[0] or 2 * (n_e + 1) > eh_keys.shape[0]):
            return -1
        k = lo
        for w in range(n_w):
            k = _bit_indices_into(key[w], 64 * w, eset_cols, k)
        eset_ptr[n_e + 1] = k
        if class_words.shape[0] > 0:
            eset_class_rows_kernel(eset_cols, lo, k, ws_mask, n_rows, n_e, live_tab, acc_tab, wsonly_tab, eset_words,
                                   row_class, class_words)
        else:
            eset_words_kernel(eset_cols, lo, k, ws_mask, eset_words[n_e])
            ew = eset_words[n_e, 0]
            enw = eset_words[n_e, 1]
            for q in range(n_rows):
                _eset_state_entry_words(term_words[q, 0], term_words[q, 1], ew, enw, live_tab, acc_tab, wsonly_tab,
                                        n_e, q)
        eh_keys[i] = h
        eh_eid[i] = n_e
        counts[1] = n_e + 1
        e = n_e
    p_eset[n_p] = e
    pid_sid[n_p] = sid
    sid_pid[sid] = n_p
    counts[0] = n_p + 1
    return n_p
