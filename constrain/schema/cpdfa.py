"""Code-point DFAs: boolean combinations and length bounds of string languages, back to regex text.

The schema compiler writes every string language as a regex over the *serialized* string body
(:mod:`.json_string`). Intersections ("keys that match pattern A but not B and are not a declared
name", "strings that match the pattern and have 1..191 code points") have no direct regex
syntax, so they go through DFAs over decoded code points:

* :func:`from_branches` -- the search language of a parsed ECMA pattern
  (:func:`.json_string.search_branches`), by Thompson NFA and subset construction;
* :func:`names` (a finite set of strings) and :func:`length` (``lo..hi`` code points);
* :func:`product` -- several DFAs run in lockstep, each product state labelled with a function
  of the components' acceptance (intersection, complement and difference are all labellings);
* :func:`minimize` and :func:`to_regex` -- Hopcroft partition refinement, then state elimination to
  a regex in which every edge is an :func:`.json_string.escaped_class` (one spelling per code point,
  so the regex is exact on decoded strings);
* :func:`to_byte_dfa` -- the same language as a byte automaton over the quoted spellings, for the
  languages whose regex would be too long (a pattern under a length bound): each code-point edge
  becomes the UTF-8 / escape byte sequences of its spellings, shared between states.

Transitions are lists of disjoint inclusive code-point intervals ``(lo, hi, target)`` over
``json_string.ALL`` (surrogates excluded); a missing interval goes to an implicit dead state.
Every construction is bounded: ``Limits.max_nfa_states``, ``Limits.max_dfa_states`` and
``Limits.max_schema_regex_chars`` raise :class:`LimitExceededError` naming the field.
"""

from __future__ import annotations

import functools
import heapq
from dataclasses import dataclass, field
from typing import Callable, Hashable, Sequence

from constrain._cache import BoundedCache
from constrain.errors import LimitExceededError
from constrain.limits import Limits
from constrain.schema import json_string as js

__all__ = ["DFA", "from_branches", "length", "minimize", "names", "product", "to_byte_dfa", "to_regex"]

_ALL_SEGMENTS = js.ALL


@dataclass
class DFA:
    """``trans[s]``: sorted disjoint ``(lo, hi, target)``; ``labels[s]``: hashable; start is 0."""

    trans: list
    labels: list
    # the same transitions as CSR arrays (row_ptr, lo, hi, target), when the maker had them
    csr: tuple | None = field(default=None, repr=False, compare=False)

    @property
    def n_states(self) -> int:
        return len(self.trans)

    def step(self, s: int, cp: int) -> int:
        for lo, hi, t in self.trans[s]:
            if lo <= cp <= hi:
                return t
        return -1

    def run(self, text: str):
        """The label after reading ``text`` (None: the dead state)."""
        s = 0
        for ch in text:
            s = self.step(s, ord(ch))
            if s < 0:
                return None
        return self.labels[s]


def _limit(field: str, limit: int, msg: str) -> LimitExceededError:
    return LimitExceededError(field, limit, msg)


# ------------------------------------------------------------------------------------------ NFA
class _NFA:
    def __init__(self, limits: Limits):
        self.eps: list[list[int]] = []
        self.edges: list[list[tuple]] = []  # (ranges, target)
        self.limits = limits

    def state(self) -> int:
        if len(self.eps) >= self.limits.max_nfa_states:
            raise _limit("max_nfa_states", self.limits.max_nfa_states, "pattern NFA is too large")
        self.eps.append([])
        self.edges.append([])
        return len(self.eps) - 1

    def build(self, node, s: int) -> int:
        """Add ``node`` starting at ``s``; return its end state."""
        if isinstance(node, js.Cls):
            t = self.state()
            r = js.intersect(js.normalize(node.ranges), js.ALL)
            if r:
                self.edges[s].append((r, t))
            return t
        if isinstance(node, js.Seq):
            for x in node.items:
                s = self.build(x, s)
            return s
        if isinstance(node, js.Alt):
            end = self.state()
            for x in node.items:
                a = self.state()
                self.eps[s].append(a)
                self.eps[self.build(x, a)].append(end)
            return end
        if isinstance(node, js.Rep):
            for _ in range(node.lo):
                s = self.build(node.item, s)
            if node.hi is None:
                a = self.state()
                self.eps[s].append(a)
                b = self.build(node.item, a)
                self.eps[b].append(a)
                return a
            end = self.state()
            self.eps[s].append(end)
            for _ in range(node.hi - node.lo):
                s = self.build(node.item, s)
                self.eps[s].append(end)
            return end
        raise ValueError(f"anchor inside a pattern body: {node!r}")

    def any_loop(self, s: int) -> int:
        a = self.state()
        self.eps[s].append(a)
        self.edges[a].append((js.ALL, a))
        return a


def _segments(edges: Sequence[tuple[int, int, object]]) -> list[tuple[int, int, list]]:
    """Split intervals ``(lo, hi, x)`` at every boundary: ``[(lo, hi, [x covering it...])]``
    over the intervals some edge covers, in order."""
    points = sorted({p for lo, hi, _x in edges for p in (lo, hi + 1)})
    at = {p: i for i, p in enumerate(points)}
    covers: list[list] = [[] for _ in range(len(points) - 1)]
    for lo, hi, x in edges:  # each edge onto the pieces it spans, in edge order
        for j in range(at[lo], at[hi + 1]):
            covers[j].append(x)
    return [(points[j], points[j + 1] - 1, c) for j, c in enumerate(covers) if c]


def _merge_adjacent(trans: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    out: list[list[int]] = []
    for lo, hi, t in trans:
        if out and out[-1][2] == t and out[-1][1] + 1 == lo:
            out[-1][1] = hi
        else:
            out.append([lo, hi, t])
    return [tuple(x) for x in out]


def _determinize(nfa: _NFA, start: int, final: int, limits: Limits) -> DFA:
    def closure(states) -> frozenset:
        seen = set(states)
        stack = list(states)
        while stack:
            s = stack.pop()
            for t in nfa.eps[s]:
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        return frozenset(seen)

    first = closure([start])
    index = {first: 0}
    order = [first]
    trans: list = []
    labels: list = []
    i = 0
    while i < len(order):
        cur = order[i]
        i += 1
        labels.append(final in cur)
        edges = [(lo, hi, t) for s in cur for ranges, t in nfa.edges[s] for lo, hi in ranges]
        row = []
        for lo, hi, targets in _segments(edges):
            nxt = closure(targets)
            if nxt not in index:
                if len(order) >= limits.max_dfa_states:
                    raise _limit("max_dfa_states", limits.max_dfa_states, "pattern DFA is too large")
                index[nxt] = len(order)
                order.append(nxt)
            row.append((lo, hi, index[nxt]))
        trans.append(_merge_adjacent(row))
    return DFA(trans, labels)


def from_branches(branches, limits: Limits) -> DFA:
    """DFA (labels: accepting bool) of the strings a pattern finds a match in, from
    :func:`.json_string.search_branches` output."""
    nfa = _NFA(limits)
    start = nfa.state()
    final = nfa.state()
    for anchored_start, anchored_end, body in branches:
        s = nfa.state()
        nfa.eps[start].append(s)
        if not anchored_start:
            s = nfa.any_loop(s)
        s = nfa.build(body, s)
        if not anchored_end:
            s = nfa.any_loop(s)
        nfa.eps[s].append(final)
    return _determinize(nfa, start, final, limits)


def names(strings) -> DFA:
    """DFA (labels: accepting bool) of a finite set of strings (a trie)."""
    trans: list[dict] = [{}]
    labels = [False]
    for s in strings:
        node = 0
        for ch in s:
            cp = ord(ch)
            if cp not in trans[node]:
                trans.append({})
                labels.append(False)
                trans[node][cp] = len(trans) - 1
            node = trans[node][cp]
        labels[node] = True
    return DFA([[(cp, cp, t) for cp, t in sorted(row.items())] for row in trans], labels)


def length(lo: int, hi: int | None, limits: Limits) -> DFA:
    """DFA (labels: accepting bool) of the strings of ``lo..hi`` code points (hi None: no maximum)."""
    top = hi if hi is not None else lo
    if top + 1 > limits.max_dfa_states:
        raise _limit("max_dfa_states", limits.max_dfa_states, f"length bound {top} needs {top + 1} DFA states")
    trans, labels = [], []
    for i in range(top + 1):
        nxt = i + 1 if i < top else (i if hi is None else -1)
        trans.append([(a, b, nxt) for a, b in _ALL_SEGMENTS] if nxt >= 0 else [])
        labels.append(i >= lo and (hi is None or i <= hi))
    return DFA(trans, labels)


def product(dfas: Sequence[DFA], label: Callable[[tuple], Hashable], limits: Limits, what: str = "string language") -> DFA:
    """The DFAs run in lockstep over the whole alphabet; a product state is labelled with
    ``label(tuple of component labels)`` (a dead component contributes ``None``). Explored in
    numba (:func:`constrain.schema._kernels.product_kernel`; states numbered as
    :func:`_product_reference` numbers them)."""
    import numpy as np

    from constrain.schema._kernels import product_kernel

    k = len(dfas)
    sizes = [d.n_states for d in dfas]
    base = np.zeros(k, dtype=np.int64)
    if k > 1:
        base[1:] = np.cumsum(sizes[:-1])
    counts = [len(row) for d in dfas for row in d.trans]
    ptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    flat = np.array([e for d in dfas for row in d.trans for e in row], dtype=np.int64).reshape(-1, 3)
    alphabet = np.array(_ALL_SEGMENTS, dtype=np.int64).reshape(-1, 2)
    n, rows, row_ptr, seg_lo, seg_hi, seg_tgt = product_kernel(
        base, ptr, flat[:, 0].copy(), flat[:, 1].copy(), flat[:, 2].copy(), alphabet, limits.max_dfa_states
    )
    if n < 0:
        raise _limit("max_dfa_states", limits.max_dfa_states,
                     f"the {what} (product of {k} DFAs) needs more than {limits.max_dfa_states} states")
    segs = list(zip(seg_lo.tolist(), seg_hi.tolist(), seg_tgt.tolist()))
    bounds = row_ptr.tolist()
    trans = [segs[bounds[q] : bounds[q + 1]] for q in range(n)]
    csr = (row_ptr[: n + 1], seg_lo, seg_hi, seg_tgt)
    # component labels per product state (row -1, a dead component, reads the appended None),
    # then one label() call per distinct combination
    cols = []
    for c, d in enumerate(dfas):
        lab = np.empty(d.n_states + 1, dtype=object)
        lab[:-1] = d.labels
        lab[-1] = None
        cols.append(lab[rows[:, c]].tolist())
    memo: dict = {}
    labels = []
    for combo in zip(*cols):
        got = memo.get(combo, memo)
        if got is memo:
            got = memo[combo] = label(combo)
        labels.append(got)
    return DFA(trans, labels, csr)


def _product_reference(dfas: Sequence[DFA], label: Callable[[tuple], Hashable], limits: Limits, what: str = "string language") -> DFA:
    """:func:`product` in plain Python (the original, kept for the tests)."""
    k = len(dfas)
    first = tuple(0 for _ in range(k))
    index = {first: 0}
    order = [first]
    trans: list = []
    labels: list = []
    i = 0
    while i < len(order):
        cur = order[i]
        i += 1
        labels.append(label(tuple(None if s < 0 else d.labels[s] for d, s in zip(dfas, cur))))
        edges = [(lo, hi, None) for lo, hi in _ALL_SEGMENTS]
        for c, (d, s) in enumerate(zip(dfas, cur)):
            if s >= 0:
                edges.extend((lo, hi, (c, t)) for lo, hi, t in d.trans[s])
        row = []
        for lo, hi, cover in _segments(edges):
            tgt = [-1] * k
            for x in cover:
                if x is not None:
                    tgt[x[0]] = x[1]
            nxt = tuple(tgt)
            if nxt not in index:
                if len(order) >= limits.max_dfa_states:
                    raise _limit("max_dfa_states", limits.max_dfa_states,
                                 f"the {what} (product of {k} DFAs) needs more than {limits.max_dfa_states} states")
                index[nxt] = len(order)
                order.append(nxt)
            row.append((lo, hi, index[nxt]))
        trans.append(_merge_adjacent(row))
    return DFA(trans, labels)


def minimize(dfa: DFA, accept: Callable[[Hashable], bool]) -> DFA | None:
    """The minimal DFA (labels: bool) of the strings whose state label satisfies ``accept``,
    without states that cannot reach acceptance or be reached (None: the empty language).

    In arrays: the edges cut the code points into classes, the class table is minimized by the
    lexers' partial-table Hopcroft (:func:`constrain.regex.dfa._minimize_ids`: dead states
    dropped, states numbered in BFS order from the start), and each row is written back as
    ranges, adjacent classes with one target merged. :func:`_minimize_reference` is the Python
    original (another numbering, the same minimal DFA)."""
    import numpy as np

    from constrain.regex.dfa import _minimize_ids

    n = dfa.n_states
    acc = np.fromiter((bool(accept(x)) for x in dfa.labels), dtype=bool, count=n)
    if not acc.any():
        return None
    if dfa.csr is not None:
        ptr, lo, hi, tgt = (np.asarray(a, dtype=np.int64) for a in dfa.csr)
        src = np.repeat(np.arange(n, dtype=np.int64), np.diff(ptr))
    else:
        flat = [(q, a, b, t) for q, row in enumerate(dfa.trans) for a, b, t in row]
        arr = np.asarray(flat, dtype=np.int64).reshape(-1, 4)
        src, lo, hi, tgt = arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]
    points = np.unique(np.concatenate([lo, hi + 1]))
    k = max(len(points) - 1, 1)
    table = np.full((n, k), -1, dtype=np.int32)
    if len(src):
        c0 = np.searchsorted(points, lo)
        span = np.searchsorted(points, hi + 1) - c0
        total = int(span.sum())
        offset = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(span) - span, span)
        table[np.repeat(src, span), np.repeat(c0, span) + offset] = np.repeat(tgt, span)
    out, rep = _minimize_ids(table, acc.astype(np.int64), k)
    labels = acc[rep].tolist()
    if len(out) == 1 and not labels[0] and (out[0] < 0).all():
        return None  # the start cannot reach acceptance
    # each row's runs of one target over adjacent classes (classes are adjacent code points)
    valid = out >= 0
    starts = valid.copy()
    starts[:, 1:] &= out[:, 1:] != out[:, :-1]
    ends = valid.copy()
    ends[:, :-1] &= out[:, :-1] != out[:, 1:]
    rs, cs = np.nonzero(starts)
    _re, ce = np.nonzero(ends)
    edges = list(zip(points[cs].tolist(), (points[ce + 1] - 1).tolist(), out[rs, cs].tolist()))
    bounds = np.zeros(len(out) + 1, dtype=np.int64)
    np.cumsum(np.bincount(rs, minlength=len(out)), out=bounds[1:])
    b = bounds.tolist()
    return DFA([edges[b[i] : b[i + 1]] for i in range(len(out))], labels)


def _minimize_reference(dfa: DFA, accept: Callable[[Hashable], bool]) -> DFA | None:
    """:func:`minimize` in Python: liveness and reachability by sets, Hopcroft over a class table
    of Python lists, states renumbered in input order (kept for the tests)."""
    n = dfa.n_states
    acc = [bool(accept(x)) for x in dfa.labels]
    # live states: those that can reach an accepting state
    preds: list[set] = [set() for _ in range(n)]
    for s, row in enumerate(dfa.trans):
        for _lo, _hi, t in row:
            preds[t].add(s)
    live = {s for s in range(n) if acc[s]}
    stack = list(live)
    while stack:
        t = stack.pop()
        for s in preds[t]:
            if s not in live:
                live.add(s)
                stack.append(s)
    if 0 not in live:
        return None
    keep = {0}  # live and reachable from the start
    stack = [0]
    while stack:
        for _lo, _hi, t in dfa.trans[stack.pop()]:
            if t in live and t not in keep:
                keep.add(t)
                stack.append(t)
    live = keep
    states = sorted(live)
    block = _hopcroft_blocks(dfa, states, live, acc)
    # renumber so that the start is 0
    remap = {block[0]: 0}
    for s in states:
        remap.setdefault(block[s], len(remap))
    m = len(remap)
    trans: list = [None] * m
    labels = [False] * m
    for s in states:
        b = remap[block[s]]
        if trans[b] is None:
            trans[b] = _merge_adjacent([(lo, hi, remap[block[t]]) for lo, hi, t in dfa.trans[s] if t in live])
            labels[b] = acc[s]
    return DFA(trans, labels)


def _hopcroft_blocks(dfa: DFA, states: list[int], live: set, acc: list[bool]) -> dict[int, int]:
    """The coarsest partition of the live ``states`` that respects acceptance and transitions
    (edges to non-live states go to one dead state): ``{state: block}``.

    Hopcroft's algorithm (:func:`constrain.regex.dfa.hopcroft_refine`) over the code-point classes
    the edges delimit: Moore refinement needs one round per distinguishable length, and a
    length-bounded pattern (``maxLength: 1024``) made that minutes."""
    from constrain.regex.dfa import hopcroft_refine

    points = sorted({p for q in states for lo, hi, t in dfa.trans[q] if t in live for p in (lo, hi + 1)})
    col = {p: i for i, p in enumerate(points)}
    k = max(len(points) - 1, 0)
    dead = len(states)
    index = {q: i for i, q in enumerate(states)}
    table = [[dead] * k for _ in range(dead + 1)]
    for i, q in enumerate(states):
        row = table[i]
        for lo, hi, t in dfa.trans[q]:
            if t in live:
                row[col[lo]:col[hi + 1]] = [index[t]] * (col[hi + 1] - col[lo])
    block_of = hopcroft_refine(table, [0 if acc[q] else 1 for q in states] + [1], k)
    return {q: block_of[i] for i, q in enumerate(states)}

INFINITE = -1
_COUNT_CAP = 1 << 62


def completion_counts(dfa: DFA) -> list[int]:
    """Per state of a DFA from :func:`minimize` (every state live): how many strings it accepts
    (:data:`INFINITE` when infinitely many, i.e. a cycle is reachable; capped at 2**62)."""
    n = dfa.n_states
    infinite = _reaches_cycle(dfa)
    counts = [INFINITE if infinite[q] else -2 for q in range(n)]
    for root in range(n):  # the rest is acyclic: memoized depth-first sums
        if counts[root] != -2:
            continue
        work = [(root, False)]
        while work:
            q, done = work.pop()
            if counts[q] != -2:
                continue
            if not done:
                work.append((q, True))
                work.extend((t, False) for _lo, _hi, t in dfa.trans[q] if counts[t] == -2)
                continue
            total = 1 if dfa.labels[q] else 0
            for lo, hi, t in dfa.trans[q]:
                total = min(_COUNT_CAP, total + (hi - lo + 1) * counts[t])
            counts[q] = total
    return counts


def distance_to_finite(dfa: DFA, counts: list[int]) -> list[int]:
    """Per state: the fewest code points after which a state with finitely many completions can
    be reached (``-1``: never)."""
    n = dfa.n_states
    preds: list[list[int]] = [[] for _ in range(n)]
    for q, row in enumerate(dfa.trans):
        for _lo, _hi, t in row:
            preds[t].append(q)
    dist = [-1] * n
    frontier = [q for q in range(n) if counts[q] != INFINITE]
    for q in frontier:
        dist[q] = 0
    d = 0
    while frontier:
        d += 1
        nxt = []
        for t in frontier:
            for q in preds[t]:
                if dist[q] < 0:
                    dist[q] = d
                    nxt.append(q)
        frontier = nxt
    return dist


def _reaches_cycle(dfa: DFA) -> list[bool]:
    """Per state: whether a cycle is reachable from it (it accepts infinitely many strings, when
    every state is live)."""
    n = dfa.n_states
    succ = [sorted({t for _lo, _hi, t in row}) for row in dfa.trans]
    # states on a cycle: iterative Tarjan SCC
    index = [-1] * n
    low = [0] * n
    on = [False] * n
    cyclic = [False] * n
    stack: list[int] = []
    counter = 0
    for root in range(n):
        if index[root] >= 0:
            continue
        work = [(root, 0)]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on[root] = True
        while work:
            v, i = work[-1]
            if i < len(succ[v]):
                work[-1] = (v, i + 1)
                w = succ[v][i]
                if index[w] < 0:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on[w] = True
                    work.append((w, 0))
                elif on[w]:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                u = work[-1][0]
                low[u] = min(low[u], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on[w] = False
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1 or v in succ[v]:
                    for w in comp:
                        cyclic[w] = True
    # states that can reach a cyclic state: backward search from them
    preds: list[list[int]] = [[] for _ in range(n)]
    for v in range(n):
        for w in succ[v]:
            preds[w].append(v)
    infinite = list(cyclic)
    todo = [v for v in range(n) if cyclic[v]]
    while todo:
        w = todo.pop()
        for v in preds[w]:
            if not infinite[v]:
                infinite[v] = True
                todo.append(v)
    return infinite


# ----------------------------------------------------------------------------- DFA -> regex text
def _union(alts: list[str]) -> str:
    alts = list(dict.fromkeys(alts))
    opt = "" in alts
    alts = [a for a in alts if a != ""]
    if not alts:
        return ""
    body = alts[0] if len(alts) == 1 and _atomic(alts[0]) else "(?:" + "|".join(alts) + ")"
    return body + "?" if opt else body


def _atomic(x: str) -> bool:
    """Whether ``x`` is one regex atom (safe to quantify and to concatenate)."""
    if len(x) == 1 and x.isalnum():
        return True
    if x.startswith("(?:") and x.endswith(")"):
        depth = 0
        i = 0
        while i < len(x):
            c = x[i]
            if c == "\\":
                i += 2
                continue
            if c == "[":
                i = _class_end(x, i) + 1
                continue
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth == 0 and i != len(x) - 1:
                    return False
            i += 1
        return True
    if x.startswith("[") and _class_end(x, 0) == len(x) - 1:
        return True
    if x.startswith("\\") and len(x) == 2:
        return True
    return False


def _class_end(x: str, i: int) -> int:
    j = i + 1
    while j < len(x):
        if x[j] == "\\":
            j += 2
            continue
        if x[j] == "]":
            return j
        j += 1
    return len(x)


def _rep_concat(a, b):
    """atom{l1,h1} then atom{l2,h2} as one repetition (None when the atoms differ or are unknown)."""
    if a is None or b is None:
        return None
    if a[0] is None:
        return b
    if b[0] is None:
        return a
    if a[0] != b[0]:
        return None
    return (a[0], a[1] + b[1], a[2] + b[2])


def _rep_union(a, b):
    """atom{l1,h1} | atom{l2,h2} as one repetition when the count ranges touch (else None)."""
    if a is None or b is None:
        return None
    if a[0] is None and b[0] is None:
        return a
    atom = a[0] if a[0] is not None else b[0]
    if a[0] is not None and b[0] is not None and a[0] != b[0]:
        return None
    lo, hi = min(a[1], b[1]), max(a[2], b[2])
    first, second = sorted((a[1:], b[1:]))
    if second[0] > first[1] + 1:
        return None  # a gap between the two count ranges
    return (atom, lo, hi)


def _rep_text(rep) -> str:
    atom, lo, hi = rep
    if atom is None or hi == 0:
        return ""
    if (lo, hi) == (1, 1):
        return atom
    return js.repeat(atom, lo, hi)


def _star(x: str) -> str:
    if x == "":
        return ""
    return (x if _atomic(x) else "(?:" + x + ")") + "*"


def to_regex(dfa: DFA, limits: Limits, what: str = "string language") -> str | None:
    """Regex over serialized string bodies for a DFA with boolean labels (None: empty language).

    State elimination, cheapest state (in-degree x out-degree) first; ``Limits.max_schema_regex_chars``
    bounds every intermediate regex."""
    n = dfa.n_states
    S, F = n, n + 1
    edges: dict[tuple[int, int], str] = {}
    for s, row in enumerate(dfa.trans):
        by_target: dict[int, list] = {}
        for lo, hi, t in row:
            by_target.setdefault(t, []).append((lo, hi))
        for t, ranges in by_target.items():
            rx = js.escaped_class(tuple(ranges))
            if rx is not None:
                edges[(s, t)] = rx
    edges[(S, 0)] = ""
    for s in range(n):
        if dfa.labels[s]:
            edges[(s, F)] = ""
    # reps[(p, q)] = (atom, lo, hi): the edge's language is atom{lo,hi} (atom None: the empty
    # string). Kept through elimination where it stays exact, so a chain like C{1,255} is written
    # as a counted repetition, not as 255 nested optional groups.
    reps: dict[tuple[int, int], tuple] = {}
    for key, rx in edges.items():
        if rx == "":
            reps[key] = (None, 0, 0)
        elif _atomic(rx):
            reps[key] = (rx, 1, 1)
    outs: dict[int, set] = {}
    ins: dict[int, set] = {}
    for a, b in edges:
        outs.setdefault(a, set()).add(b)
        ins.setdefault(b, set()).add(a)
    remaining = set(range(n))
    cap = limits.max_schema_regex_chars

    def cost(q: int) -> int:
        return (len(ins.get(q, ())) - (q in ins.get(q, ()))) * (len(outs.get(q, ())) - (q in outs.get(q, ())))

    # cheapest state first, from a heap whose stale entries (the cost has changed since) are skipped
    heap = [(cost(q), q) for q in range(n)]
    heapq.heapify(heap)
    while remaining:
        c, k = heapq.heappop(heap)
        if k not in remaining or c != cost(k):
            continue
        remaining.discard(k)
        loop = edges.pop((k, k), None)
        mid = _star(loop) if loop is not None else ""
        preds = [p for p in ins.get(k, ()) if p != k]
        succs = [q for q in outs.get(k, ()) if q != k]
        for p in preds:
            r1 = edges.pop((p, k))
            rep1 = reps.pop((p, k), None)
            outs[p].discard(k)
            for q in succs:
                rep = _rep_concat(rep1, reps.get((k, q))) if loop is None else None
                old = edges.get((p, q))
                if rep is not None and old is not None:
                    rep = _rep_union(reps.get((p, q)), rep)
                if rep is not None:
                    new = _rep_text(rep)
                else:
                    # every edge is safe to concatenate as it is: escaped_class, _union and
                    # repeat group their alternations, and a concatenation has none at top level
                    new = r1 + mid + edges[(k, q)]
                    new = new if old is None else _union([old, new])
                if len(new) > cap:
                    raise _limit("max_schema_regex_chars", cap, f"the regex of this {what} exceeds {cap} characters")
                edges[(p, q)] = new
                if rep is not None:
                    reps[(p, q)] = rep
                else:
                    reps.pop((p, q), None)
                outs.setdefault(p, set()).add(q)
                ins.setdefault(q, set()).add(p)
        for q in succs:
            edges.pop((k, q), None)
            reps.pop((k, q), None)
            ins[q].discard(k)
        ins.pop(k, None)
        outs.pop(k, None)
        for q in set(preds) | set(succs):
            if q in remaining:
                heapq.heappush(heap, (cost(q), q))
    return edges.get((S, F))


# ------------------------------------------------------------------------------ byte automata
_ESCAPED = tuple(cp for cp in range(0x20)) + (0x22, 0x5C)  # code points spelled with a backslash


def _utf8_sequences(lo: int, hi: int) -> list[tuple[tuple[int, int], ...]]:
    """UTF-8 encodings of the code points ``lo..hi`` (no surrogates) as sequences of byte ranges:
    each sequence is the cross product of its ranges (split where the encoding length changes
    or a continuation byte would not span its full range)."""
    for bound in (0x7F, 0x7FF, 0xFFFF):
        if lo <= bound < hi:
            return _utf8_sequences(lo, bound) + _utf8_sequences(bound + 1, hi)
    if hi <= 0x7F:
        return [((lo, hi),)]
    n = 2 if hi <= 0x7FF else 3 if hi <= 0xFFFF else 4
    for i in range(1, n):
        m = (1 << (6 * i)) - 1
        if lo & ~m != hi & ~m:
            if lo & m:
                return _utf8_sequences(lo, lo | m) + _utf8_sequences((lo | m) + 1, hi)
            if hi & m != m:
                return _utf8_sequences(lo, (hi & ~m) - 1) + _utf8_sequences(hi & ~m, hi)
    a, b = chr(lo).encode("utf-8"), chr(hi).encode("utf-8")
    return [tuple(zip(a, b))]


@functools.lru_cache(maxsize=4096)
def _spelled(lo: int, hi: int) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Byte-range sequences spelling exactly the code points ``lo..hi`` (json_string.spell);
    cached: the same classes (``\\S``, ``\\s``, the body class) recur on every state."""
    out = []
    for cp in _ESCAPED:
        if lo <= cp <= hi:
            out.append(tuple((b, b) for b in js.spell(cp).encode("ascii")))
    raw = js.subtract(js.intersect(((lo, hi),), _ALL_SEGMENTS), tuple((cp, cp) for cp in _ESCAPED))
    for a, b in raw:
        out.extend(_utf8_sequences(a, b))
    return tuple(out)


_BYTE_DFAS = BoundedCache(1024, max_weight=4_000_000, weight=lambda sdfa: sdfa.n_edges)
# The byte DFA of a code-point DFA has a state per code-point state plus the shared states inside
# multi-byte spellings: its subset construction is bounded by its input, not by a user limit.
_BYTE_DFA_LIMITS = Limits(max_dfa_states=2**31 - 1)


def to_byte_dfa(dfa: DFA):
    """A :class:`~constrain.constraints.sparse_dfa.SparseDFA` over ``"`` + spelled body + ``"`` for
    a DFA with boolean labels: exactly the JSON strings (one spelling per code point, as in
    :func:`to_regex`) whose decoded value the DFA accepts; minimal (start 0, every state live).

    Kept per DFA content (transitions and labels) in a bounded process-wide table (at most
    1,024 automata and 4 million edges, oldest out first): schemas repeat the same string
    languages (formats, lengths, patterns) across compiles. The arrays of a returned automaton
    are read-only, since it is shared."""
    key = (tuple(map(tuple, dfa.trans)), tuple(dfa.labels))
    hit = _BYTE_DFAS.get(key)
    if hit is not None:
        return hit
    sdfa = _to_byte_dfa(dfa)
    for arr in (sdfa.offsets, sdfa.edge_byte, sdfa.edge_target, sdfa.accepting):
        arr.flags.writeable = False
    return _BYTE_DFAS.put(key, sdfa)


@functools.lru_cache(maxsize=4096)
def _spelled_shape(lo: int, hi: int):
    """The spellings of the code points ``lo..hi`` (:func:`_spelled`) as one small acyclic byte
    automaton, in arrays: ``(n_local, src, lo, hi, dst)`` with local state 0 the start and 1 the
    end (:func:`constrain.regex.dfa.sequences_shape`). Cached: the same classes recur."""
    import numpy as np

    from constrain.regex.dfa import sequences_shape

    n_local, edges = sequences_shape(_spelled(lo, hi))
    arr = np.array(edges, dtype=np.int64).reshape(-1, 4)
    return n_local, arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy(), arr[:, 3].copy()


def _to_byte_dfa(dfa: DFA):
    """:func:`to_byte_dfa`, uncached: the minimal byte DFA, as a SparseDFA.

    An NFA with state 0 before the opening quote, 1 after the closing one (the final state) and
    ``2 + s`` at the start of a code point in state ``s``; each transition ``lo..hi -> t`` of
    ``s`` is a copy of the spelling automaton of ``lo..hi`` from ``2 + s`` to ``2 + t`` (copies
    assembled by numpy). Subset construction and minimization are the lexer's numba kernels.
    :func:`_to_byte_dfa_reference` (the per-byte original) has the same language."""
    import numpy as np

    from constrain.constraints.sparse_dfa import SparseDFA
    from constrain.regex.dfa import _minimize, _subset_construction, csr_order

    n = dfa.n_states
    shapes = []
    src_state = []
    dst_state = []
    for s_, row in enumerate(dfa.trans):
        for lo, hi, t in row:
            shapes.append(_spelled_shape(lo, hi))
            src_state.append(2 + s_)
            dst_state.append(2 + t)
    accept = [2 + s_ for s_ in range(n) if dfa.labels[s_]]
    n_edges = np.fromiter((len(sh[1]) for sh in shapes), dtype=np.int64, count=len(shapes))
    inner = np.fromiter((sh[0] - 2 for sh in shapes), dtype=np.int64, count=len(shapes))
    base = 2 + n + np.concatenate([[0], np.cumsum(inner)[:-1]]).astype(np.int64) if shapes else np.zeros(0, np.int64)
    n_nfa = int(2 + n + inner.sum())

    if shapes:
        # local shape ids -> NFA ids: 0 the transition's source, 1 its target, the others fresh
        s_rep = np.repeat(np.asarray(src_state, dtype=np.int64), n_edges)
        t_rep = np.repeat(np.asarray(dst_state, dtype=np.int64), n_edges)
        b_rep = np.repeat(base, n_edges)

        def place(local):
            return np.where(local == 0, s_rep, np.where(local == 1, t_rep, b_rep + local - 2))

        e_src = place(np.concatenate([sh[1] for sh in shapes]))
        e_lo = np.concatenate([sh[2] for sh in shapes])
        e_hi = np.concatenate([sh[3] for sh in shapes])
        e_dst = place(np.concatenate([sh[4] for sh in shapes]))
    else:
        e_src = e_lo = e_hi = e_dst = np.zeros(0, dtype=np.int64)
    quote = np.array([0x22] * (1 + len(accept)), dtype=np.int64)
    e_src = np.concatenate([e_src, np.array([0] + accept, dtype=np.int64)])
    e_dst = np.concatenate([e_dst, np.array([2] + [1] * len(accept), dtype=np.int64)])
    e_lo = np.concatenate([e_lo, quote])
    e_hi = np.concatenate([e_hi, quote])
    edge_ptr, order = csr_order(e_src, n_nfa)
    eps_ptr = np.zeros(n_nfa + 1, dtype=np.int64)
    table, accepts, class_of, n_cls = _subset_construction(
        eps_ptr, np.zeros(0, dtype=np.int64), edge_ptr, e_lo[order], e_hi[order], e_dst[order], [1], 0,
        _BYTE_DFA_LIMITS, "string automaton",
    )
    table_cls, labels = _minimize(table, accepts, n_cls)
    dense = table_cls[:, class_of]
    rows, cols = np.nonzero(dense >= 0)
    offsets = np.zeros(dense.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=dense.shape[0]), out=offsets[1:])
    accepting = np.array([bool(lab) for lab in labels], dtype=bool)
    return SparseDFA(offsets=offsets, edge_byte=cols.astype(np.uint8), edge_target=dense[rows, cols].astype(np.int32),
                     accepting=accepting)


def _to_byte_dfa_reference(dfa: DFA):
    """:func:`_to_byte_dfa` in plain Python, not minimized (the original, kept for the tests).

    Byte states: 0 before the opening quote, 1 after the closing one (accepting), ``2 + s`` at the
    start of a code point in state ``s``, then the states inside a multi-byte spelling; those are
    shared (the same remaining byte ranges to the same target are one state), so a state costs
    a few byte states and at most a few hundred edges."""
    import numpy as np

    from constrain.constraints.sparse_dfa import SparseDFA

    n = dfa.n_states
    edges: list[dict[int, int]] = [{0x22: 2}, {}] + [{} for _ in range(n)]
    memo: dict[tuple, int] = {}

    def fill(idx: int, items: list) -> None:
        # items grouped by their first byte range (many share one), then one pass per run of bytes
        groups: dict[tuple[int, int], list] = {}
        for seq, t in items:
            lst = groups.get(seq[0])
            if lst is None:
                groups[seq[0]] = [(seq[1:], t)]
            else:
                lst.append((seq[1:], t))
        ranges = list(groups.items())
        points = sorted({lo for lo, _hi in groups} | {hi + 1 for _lo, hi in groups})
        for a, b in zip(points, points[1:]):
            sub = [x for (lo, hi), lst in ranges if lo <= a and b - 1 <= hi for x in lst]
            if not sub:
                continue
            ends = [t for rest, t in sub if not rest]
            if ends:  # the spelling code is prefix-free: a complete code point has no continuation
                assert len(sub) == 1, "overlapping spellings"
                child = 2 + ends[0]
            else:
                key = tuple(sorted(sub))
                child = memo.get(key)
                if child is None:
                    child = memo[key] = len(edges)
                    edges.append({})
                    fill(child, list(key))
            edges[idx].update(dict.fromkeys(range(a, b), child))

    for s in range(n):
        fill(2 + s, [(seq, t) for lo, hi, t in dfa.trans[s] for seq in _spelled(lo, hi)])
        if dfa.labels[s]:
            edges[2 + s][0x22] = 1
    counts = np.fromiter((len(r) for r in edges), dtype=np.int64, count=len(edges))
    offsets = np.zeros(len(edges) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    byte_list: list[int] = []
    target_list: list[int] = []
    for r in edges:
        keys = sorted(r)
        byte_list.extend(keys)
        target_list.extend(map(r.__getitem__, keys))
    edge_byte = np.array(byte_list, dtype=np.uint8)
    edge_target = np.array(target_list, dtype=np.int32)
    accepting = np.zeros(len(edges), dtype=bool)
    accepting[1] = True
    return SparseDFA(offsets=offsets, edge_byte=edge_byte, edge_target=edge_target, accepting=accepting)


@functools.lru_cache(maxsize=1)
def _any_string_bytes():
    """The byte DFA of every JSON string (:func:`to_byte_dfa` of all code-point strings), each
    state's successor per byte as lists (-1: none), and whether anything enters its start."""
    import numpy as np

    g = to_byte_dfa(length(0, None, Limits()))
    succ = np.full((g.n_states, 256), -1, dtype=np.int64)
    succ[np.repeat(np.arange(g.n_states), np.diff(g.offsets)), g.edge_byte.astype(np.int64)] = g.edge_target
    return g, succ.tolist(), bool((g.edge_target == g.start).any())


def except_names_byte_dfa(names):
    """The quoted JSON strings (one spelling per code point, as :func:`to_byte_dfa`) whose value
    is not in ``names``, as an :class:`~constrain.constraints.sparse_dfa.ExcludingSparseDFA`: the
    automaton of every JSON string and the names' quoted spellings, the automaton of the
    difference (:func:`_except_names_sparse`) built only if something reads it (an eager lexer
    shares the first between such terminals and never does). Pure."""
    from constrain.constraints.sparse_dfa import ExcludingSparseDFA

    names = list(names)
    spelled = set()
    for name in names:
        try:
            spelled.add(('"' + js.spell_string(name) + '"').encode("utf-8"))
        except UnicodeEncodeError:  # a lone surrogate: no JSON string of g spells it
            continue
    return ExcludingSparseDFA(_any_string_bytes()[0], tuple(sorted(spelled)), lambda: _except_names_sparse(names))


def _except_names_sparse(names):
    """The quoted JSON strings (one spelling per code point, as :func:`to_byte_dfa`) whose value
    is not in ``names``: the byte automaton of every JSON string, with a trie of the names'
    spellings laid over its first bytes; the trie states at the end of a name are dropped.

    Built in time linear in the names' bytes plus the trie's edges (a numba kernel), without the
    code-point product, its minimization or a subset construction. Every state is reachable and
    live; not necessarily minimal (names ``"ab"`` and ``"cb"`` leave two equivalent trie states),
    which the lexer's minimization absorbs. Pure."""
    import numpy as np

    from constrain.constraints.sparse_dfa import SparseDFA
    from constrain.schema._kernels import trie_over_dfa_kernel

    g, succ, start_entered = _any_string_bytes()
    tgt_g = g.edge_target
    # the trie, walked alongside g: node -> g state; (parent, byte, child) edges; name ends
    g_of = [g.start]
    children: dict[tuple[int, int], int] = {}
    ends: set[int] = set()
    for name in names:
        try:
            data = ('"' + js.spell_string(name) + '"').encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: no JSON string of g spells it
            continue
        node, gs = 0, g.start
        for b in data:
            gs = succ[gs][b]
            if gs < 0:  # not a spelling g makes: nothing to exclude (the nodes so far stay live)
                break
            child = children.get((node, b))
            if child is None:
                child = children[(node, b)] = len(g_of)
                g_of.append(gs)
            node = child
        else:
            ends.add(node)
    t = len(g_of)
    # children as CSR by parent, bytes ascending (the kernel merges them into the copied rows)
    kids = np.array(sorted((p, b, c) for (p, b), c in children.items()), dtype=np.int64).reshape(-1, 3)
    kid_ptr = np.zeros(t + 1, dtype=np.int64)
    np.cumsum(np.bincount(kids[:, 0], minlength=t), out=kid_ptr[1:])
    dead = np.zeros(t, dtype=np.bool_)
    dead[np.fromiter(ends, dtype=np.int64, count=len(ends))] = True
    offsets, edge_byte, edge_target, accepting = trie_over_dfa_kernel(
        g.offsets, g.edge_byte, tgt_g, np.asarray(g.accepting, dtype=np.bool_), np.asarray(g_of, dtype=np.int64),
        kid_ptr, kids[:, 1].copy(), kids[:, 2].copy(), dead, not start_entered, int(g.start))
    return SparseDFA(offsets=offsets, edge_byte=edge_byte, edge_target=edge_target, accepting=accepting)
