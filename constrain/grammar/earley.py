"""Earley recognizer over terminal ids, with persistent (immutable, interned) parser states.

Items are ``(rule, dot, origin)``. Nullable nonterminals are handled the Aycock–Horspool way (the
predictor also moves the dot over a nullable symbol), so left recursion, empty rules and ambiguity
need no special cases. Scanning appends one
column and returns a new state, so states are values that a matcher can keep on its rollback stack.

A state is the last column only: each item names its origin as the *state* it was predicted in (a
persistent, graph-structured chart), not a column index. States are interned by their item set
and compare by identity (O(1) hash), so different lexings of the same text that leave equivalent
charts merge into one object even when they scanned a different number of lexemes (``-2`` as one
number or as ``-`` then ``2``). Without this the number of lexing threads grows exponentially
with such ambiguities.

An item is one int, ``origin << b | lr``: ``lr`` numbers the (rule, dot) pairs (a rule's dots are
consecutive, so ``item + 1`` moves the dot; ``b`` bits hold them all), ``origin`` is the origin
state's id (``0``: the state the item lives in). :meth:`EarleyParser.item_parts` spells an item out.

The chart lives in flat arrays (every state's items sorted by the symbol after the dot, one range
per state) and a column's closure is a numba kernel (:mod:`._earley_kernels`): a first visit of a
mask scans a few new states, and the closure, grouping and interning of each in Python objects cost
more than the rest of such a fill (and allocated what the collector then walked inside fills).
A :class:`ParserState` is the id, the expected terminals and the finish flag; its items and their
grouping are read from the arrays when asked for (:attr:`ParserState.items`,
:meth:`ParserState.waiting_on`). The chart also interns the states (a hash table over their sorted
items) and keeps each state's expected terminals as bit words, so the mask kernels can scan and
add states themselves (``constrain.grammar._kernels._scan_pid``); a state's object is made when
first asked for (:meth:`EarleyParser.state`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable

import numpy as np

from constrain.grammar._earley_kernels import (
    EMPTY,
    END,
    chart_intern_kernel,
    chart_rehash_kernel,
    earley_close_kernel,
    earley_union_kernel,
)
from constrain.grammar.lark_frontend import GrammarIR


class _Chart:
    """The finished states, flat: state ``sid``'s items sorted by (symbol after the dot, item) in
    ``syms`` / ``items[ptr[sid]:ptr[sid + 1]]``, its expected terminals as bit words ``exp[sid]``,
    its finish flag ``fin[sid]`` and hash ``hash[sid]``; ``hkeys`` / ``hsid`` intern the states by
    their items (see :func:`chart_intern_kernel`), ``counts`` = [states, items]. Shared by the
    parser, its states (which do not point back at the parser: no reference cycle) and the mask
    kernels, which may append states too; :meth:`reserve` replaces the arrays when they grow."""

    __slots__ = ("ptr", "syms", "items", "exp", "fin", "hash", "hkeys", "hsid", "counts")

    def __init__(self, n_words: int):
        self.ptr = np.zeros(64, dtype=np.int64)
        self.syms = np.zeros(1024, dtype=np.int32)
        self.items = np.zeros(1024, dtype=np.int64)
        self.exp = np.zeros((64, n_words), dtype=np.uint64)
        self.fin = np.zeros(64, dtype=np.uint8)
        self.hash = np.zeros(64, dtype=np.int64)
        self.hkeys = np.full(128, -1, dtype=np.int64)
        self.hsid = np.zeros(128, dtype=np.int32)
        # state 0 stands for "the state an item lives in": no items
        self.counts = np.array([1, 0], dtype=np.int64)

    @property
    def n_states(self) -> int:
        return int(self.counts[0])

    def reserve(self, n_items: int) -> None:
        """Grow the arrays (doubling) so that one more state of ``n_items`` items fits."""
        s, a = int(self.counts[0]), int(self.counts[1])
        if a + n_items > self.items.shape[0]:
            cap = max(2 * self.items.shape[0], a + n_items)
            self.items = np.concatenate([self.items[:a], np.zeros(cap - a, np.int64)])
            self.syms = np.concatenate([self.syms[:a], np.zeros(cap - a, np.int32)])
        if s + 2 > self.ptr.shape[0]:
            self.ptr = np.concatenate([self.ptr, np.zeros(self.ptr.shape[0], np.int64)])
        if s + 1 > self.exp.shape[0]:
            self.exp = np.concatenate([self.exp, np.zeros_like(self.exp)])
            self.fin = np.concatenate([self.fin, np.zeros_like(self.fin)])
            self.hash = np.concatenate([self.hash, np.zeros_like(self.hash)])
        if 2 * (s + 1) > self.hkeys.shape[0]:
            self.hkeys = np.full(4 * self.hkeys.shape[0], -1, dtype=np.int64)
            self.hsid = np.zeros(self.hkeys.shape[0], dtype=np.int32)
            chart_rehash_kernel(self.hash, s, self.hkeys, self.hsid)

    def intern(self, out_items: np.ndarray, out_syms: np.ndarray, n: int, finished: bool, words: np.ndarray) -> int:
        """The id of the state with sorted items ``out_items[:n]`` and flag ``finished`` (appended,
        with expected-terminal words ``words``, if new)."""
        while True:
            sid = chart_intern_kernel(out_items, out_syms, n, int(finished), words, self.ptr, self.syms, self.items,
                                      self.exp, self.fin, self.hash, self.hkeys, self.hsid, self.counts)
            if sid >= 0:
                return int(sid)
            self.reserve(n)


class ParserState:
    """An immutable Earley chart tip: the last column, whose items point at their origin states.

    ``sid``: this state's id in its parser (origins refer to it); ``expected``: bitset of the
    terminal ids the parser can scan next; ``can_finish``: the scanned terminals form a complete
    sentence. :attr:`items` (a frozenset of item ints, see the module docstring) and
    :meth:`waiting_on` are read from the parser's chart arrays. Compare by identity (states are
    interned).
    """

    __slots__ = ("sid", "expected", "can_finish", "_chart", "_scan_memo", "__weakref__")

    def __init__(self, chart: _Chart, sid: int, expected: int, can_finish: bool):
        self._chart = chart
        self.sid = sid
        self.expected = expected
        self.can_finish = can_finish
        self._scan_memo: dict[int, ParserState | None] = {}

    def __hash__(self) -> int:
        # the id, not the address: sets of threads (tuples holding states) then iterate in the same
        # order in every run, and so do the mask searches that visit them (equality is identity)
        return self.sid

    def _range(self) -> tuple[int, int]:
        ptr = self._chart.ptr
        return int(ptr[self.sid]), int(ptr[self.sid + 1])

    @property
    def items(self) -> frozenset:
        """The items with the dot before a symbol (a new frozenset of ints)."""
        a, b = self._range()
        return frozenset(self._chart.items[a:b].tolist())

    def waiting_on(self, sym: int) -> tuple:
        """The items with ``sym`` after the dot, each once, ascending."""
        a, b = self._range()
        syms = self._chart.syms[a:b]
        lo, hi = np.searchsorted(syms, sym, "left"), np.searchsorted(syms, sym, "right")
        return tuple(self._chart.items[a + lo:a + hi].tolist())

    @property
    def waiting(self) -> dict[int, tuple]:
        """Every symbol after a dot -> :meth:`waiting_on` that symbol (a new dict)."""
        a, b = self._range()
        out: dict[int, list] = {}
        for sym, it in zip(self._chart.syms[a:b].tolist(), self._chart.items[a:b].tolist()):
            out.setdefault(sym, []).append(it)
        return {k: tuple(v) for k, v in out.items()}

    def __repr__(self) -> str:
        a, b = self._range()
        return f"ParserState(items={b - a}, expected={self.expected:#x})"


class EarleyParser:
    """Earley recognizer for a :class:`GrammarIR` (the augmented start rule is added here)."""

    def __init__(self, ir: GrammarIR):
        self.ir = ir
        n_nt = len(ir.nonterminals)
        # rule 0 is the augmented rule S' -> start; S' is nonterminal n_nt and occurs in no rhs
        self.rule_lhs: list[int] = [n_nt] + [lhs for lhs, _ in ir.rules]
        self.rule_rhs: list[tuple[int, ...]] = [(-(ir.start + 1),)] + [rhs for _, rhs in ir.rules]
        self.rules_of: dict[int, list[int]] = {}
        for r, lhs in enumerate(self.rule_lhs):
            self.rules_of.setdefault(-(lhs + 1), []).append(r)
        # (rule, dot) pairs numbered rule by rule: lr_base[r] + dot; per pair the symbol after the
        # dot (None at the end), and per end pair its rule
        self.lr_base: list[int] = []
        self.lr_next: list[int | None] = []
        self.lr_end_rule: dict[int, int] = {}
        lr_next = self.lr_next
        for r, rhs in enumerate(self.rule_rhs):
            self.lr_base.append(len(lr_next))
            lr_next.extend(rhs)
            self.lr_end_rule[len(lr_next)] = r
            lr_next.append(None)
        self.lr_bits = max(1, len(lr_next).bit_length())  # item = origin << lr_bits | lr
        self.lr_mask = (1 << self.lr_bits) - 1
        # nullable nonterminals (as negative symbols), by a worklist: a rule's count is the number of
        # its rhs symbols not known nullable yet (rules with a terminal never count down)
        nullable: set[int] = set()
        left: list[int] = []
        uses: dict[int, list[int]] = {}
        queue: list[int] = []
        for r, rhs in enumerate(self.rule_rhs):
            if any(s >= 0 for s in rhs):
                left.append(-1)
                continue
            left.append(len(rhs))
            for s in rhs:
                uses.setdefault(s, []).append(r)
            if not rhs:
                queue.append(-(self.rule_lhs[r] + 1))
        while queue:
            sym = queue.pop()
            if sym in nullable:
                continue
            nullable.add(sym)
            for r in uses.get(sym, ()):
                left[r] -= 1
                if left[r] == 0:
                    queue.append(-(self.rule_lhs[r] + 1))
        self.nullable = frozenset(nullable)
        self._init_tables(n_nt)
        self._chart = _Chart(self._exp_words.shape[0])
        # by id, made when first asked for (:meth:`state`): the mask kernels add states to the
        # chart without making objects; 0 is "the item's own state"
        self._states: list[ParserState | None] = [None]
        self._merge_memo: dict[frozenset, ParserState] = {}
        self.initial = self._close(np.zeros(1, np.int64), 0, ())  # rule 0, dot 0, origin: its own state

    def _init_tables(self, n_nt: int) -> None:
        """The kernels' grammar tables and scratch (see :mod:`._earley_kernels`)."""
        self._lr_next = np.array([END if s is None else s for s in self.lr_next], dtype=np.int32)
        end_lhs = np.zeros(len(self.lr_next), dtype=np.int32)
        for lr, r in self.lr_end_rule.items():
            end_lhs[lr] = -(self.rule_lhs[r] + 1)
        self._lr_end_lhs = end_lhs
        n_sym = n_nt + 1  # with S'
        counts = np.zeros(n_sym + 1, dtype=np.int64)
        for r, lhs in enumerate(self.rule_lhs):
            counts[lhs + 1] += 1
        self._rules_ptr = np.cumsum(counts)
        self._rules_lr = np.zeros(len(self.rule_lhs), dtype=np.int64)
        fill = self._rules_ptr[:-1].copy()
        for r, lhs in enumerate(self.rule_lhs):
            self._rules_lr[fill[lhs]] = self.lr_base[r]
            fill[lhs] += 1
        self._nullable = np.zeros(n_sym, dtype=np.bool_)
        for sym in self.nullable:
            self._nullable[-sym - 1] = True
        self._pred_stamp = np.zeros(n_sym, dtype=np.int64)
        self._stamp = np.zeros(1, dtype=np.int64)  # last stamp of _pred_stamp (the mask kernels use it too)
        self._exp_words = np.zeros(max(1, (len(self.ir.terminals) + 63) // 64), dtype=np.uint64)
        self._info = np.zeros(1, dtype=np.int64)
        self._no_terms = np.zeros(0, dtype=np.int32)
        self._no_seed = np.zeros(0, dtype=np.int64)
        self._terms_buf = np.zeros(max(1, len(self.ir.terminals)), dtype=np.int32)  # a scan's terminals (kernels)
        self._scratch(256)

    def _scratch(self, cap: int) -> None:
        """(Re)allocate the closure scratch: a hash set of ``cap`` slots (a power of two), its work
        stack, and output arrays of ``cap`` items."""
        self._hkeys = np.full(cap, EMPTY, dtype=np.int64)
        self._hused = np.zeros(cap, dtype=np.int64)
        self._work = np.zeros(cap, dtype=np.int64)
        self._out_items = np.zeros(cap, dtype=np.int64)
        self._out_syms = np.zeros(cap, dtype=np.int32)

    def kernel_context(self) -> tuple[tuple, tuple]:
        """What a kernel needs to scan states itself, as :meth:`scan` does (see
        ``constrain.grammar._kernels._scan_pid``): the closure's tables and scratch, and the
        chart. The arrays are the current ones: build it again after anything may have grown."""
        chart = self._chart
        return (
            (self.lr_bits, self._lr_next, self._lr_end_lhs, self._rules_ptr, self._rules_lr, self._nullable,
             self._pred_stamp, self._stamp, self._hkeys, self._hused, self._work, self._out_items, self._out_syms,
             self._exp_words, self._info, self._no_seed, self._terms_buf),
            (chart.ptr, chart.syms, chart.items, chart.exp, chart.fin, chart.hash, chart.hkeys, chart.hsid,
             chart.counts),
        )

    def item_parts(self, item: int) -> tuple[int, int, ParserState | None]:
        """``(rule, dot, origin state)`` of an item (origin None: the state the item lives in)."""
        lr = item & self.lr_mask
        oid = item >> self.lr_bits
        r = bisect_right(self.lr_base, lr) - 1
        return r, lr - self.lr_base[r], (self.state(oid) if oid else None)

    def state(self, sid: int) -> ParserState:
        """The state of id ``sid`` (>= 1; one object per id, made on first request)."""
        states = self._states
        if sid < len(states):
            st = states[sid]
            if st is not None:
                return st
        else:
            states.extend([None] * (sid + 1 - len(states)))
        chart = self._chart
        st = states[sid] = ParserState(chart, sid, int.from_bytes(chart.exp[sid].tobytes(), "little"),
                                       bool(chart.fin[sid]))
        return st

    def _close(self, seed: np.ndarray, src: int, terms) -> ParserState:
        """The (interned) state of the closure of ``seed``, plus (``src >= 1``) the items of
        state ``src`` waiting on ``terms`` with the dot moved (see :func:`earley_close_kernel`).
        A closure of a non-empty seed is never dead: an item that completes moves its parents on,
        up to the start rule (then the state is finished, maybe with no items). Grows the scratch
        and the chart; interns a new state."""
        chart = self._chart
        terms_arr = np.asarray(terms, dtype=np.int32) if terms else self._no_terms
        while True:
            self._stamp[0] += 1
            n = earley_close_kernel(
                seed, seed.shape[0], src, terms_arr, terms_arr.shape[0], self.lr_bits, self._lr_next,
                self._lr_end_lhs, self._rules_ptr, self._rules_lr, self._nullable, chart.ptr, chart.syms,
                chart.items, self._pred_stamp, int(self._stamp[0]), self._hkeys, self._hused, self._work,
                self._out_items, self._out_syms, self._exp_words, self._info,
            )
            if n >= 0:
                return self._intern_new(n, bool(self._info[0]))
            self._scratch(2 * self._hkeys.shape[0])

    def _intern_new(self, n: int, finished: bool, expected: int | None = None) -> ParserState:
        """The state whose sorted items are ``_out_items[:n]`` (interned; new ones are appended to
        the chart). ``expected``: its terminal bits (default: from ``_exp_words``)."""
        if expected is None:
            words = self._exp_words
        else:
            words = np.frombuffer(expected.to_bytes(8 * self._exp_words.shape[0], "little"), dtype="<u8")
        return self.state(self._chart.intern(self._out_items, self._out_syms, n, finished, words))

    def scan(self, state: ParserState, terminals: int) -> ParserState | None:
        """The state after scanning one lexeme that is any of the terminals in bitset ``terminals``."""
        memo = state._scan_memo
        if terminals in memo:
            return memo[terminals]
        hit = terminals & state.expected
        result = None
        if hit:
            terms = []
            while hit:
                low = hit & -hit
                terms.append(low.bit_length() - 1)
                hit ^= low
            result = self._close(self._no_seed, state.sid, terms)
        memo[terminals] = result
        return result

    def merge(self, states) -> ParserState:
        """One state whose items are the union of ``states``' items (both parses stay possible).

        Item sets are closed, and the union of closed sets is closed, so no closure is needed.
        This is what a byte-indexed Earley column does when lexemes of different lengths end at
        the same position; it keeps the number of threads independent of ambiguity.
        """
        if len(states) == 1:
            return states[0]
        mkey = frozenset(states)
        merged = self._merge_memo.get(mkey)
        if merged is not None:
            return merged
        sids = np.array([s.sid for s in states], dtype=np.int64)
        chart = self._chart
        while True:
            n = earley_union_kernel(sids, chart.ptr, chart.syms, chart.items, self._out_items, self._out_syms)
            if n >= 0:
                break
            self._scratch(2 * self._hkeys.shape[0])
        expected = 0
        for s in states:
            expected |= s.expected
        merged = self._intern_new(n, any(s.can_finish for s in states), expected)
        self._merge_memo[mkey] = merged
        return merged

    def recognize(self, terminal_sets: Iterable[int]) -> bool:
        """Whether the sequence of lexemes (each a terminal bitset) is a sentence (for tests)."""
        state: ParserState | None = self.initial
        for ts in terminal_sets:
            state = self.scan(state, ts)
            if state is None:
                return False
        return state.can_finish
