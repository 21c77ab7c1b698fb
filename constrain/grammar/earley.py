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

An item is one Python int, ``origin << b | lr``: ``lr`` numbers the (rule, dot) pairs (a rule's
dots are consecutive, so ``item + 1`` moves the dot; ``b`` bits hold them all), ``origin`` is the
origin state's id (``0``: the state the item lives in), so most items stay below 2**30, CPython's
one-digit ints. Ints are not tracked by the cyclic garbage collector, while
``(rule, dot, state)`` tuples were: a new parser state's closure allocated thousands of tracked
objects, half of what a mask fill allocated, and young collections inside fills are a large part
of the mask-time tail. :meth:`EarleyParser.item_parts` spells an item out.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from itertools import chain

from constrain.grammar.lark_frontend import GrammarIR


class ParserState:
    """An immutable Earley chart tip: the last column, whose items point at their origin states.

    ``items``: a frozenset of item ints (see the module docstring) with the dot before a symbol;
    :meth:`waiting_on` ``(symbol)``: those items with that symbol after the dot; ``sid``: this
    state's id in its parser (origins refer to it). Compare by identity (states are interned).

    The items come grouped by their next symbol in a few parts (the seed's items, each prediction's
    cached grouping): a symbol's tuple is merged from them on first use and kept (most states only
    ever scan one or two terminals, so merging every symbol up front was wasted work).
    """

    __slots__ = ("items", "_parts", "_waiting", "expected", "can_finish", "sid", "_scan_memo", "__weakref__")

    def __init__(self, items: frozenset, parts: tuple, expected: int, can_finish: bool, sid: int):
        self.items = items
        self._parts = parts  # dicts symbol -> tuple of items with that symbol after the dot
        self._waiting: dict[int, tuple] = {}  # merged from the parts on first use
        self.expected = expected  # bitset of the terminal ids the parser can scan next
        self.can_finish = can_finish  # the scanned terminals form a complete sentence
        self.sid = sid
        self._scan_memo: dict[int, ParserState | None] = {}

    def waiting_on(self, sym: int) -> tuple:
        """The items with ``sym`` after the dot, each once (cached in the state on first use)."""
        got = self._waiting.get(sym)
        if got is None:
            its = [g[sym] for g in self._parts if sym in g]
            got = its[0] if len(its) == 1 else tuple(dict.fromkeys(chain.from_iterable(its))) if its else ()
            self._waiting[sym] = got
        return got

    @property
    def waiting(self) -> dict[int, tuple]:
        """Every symbol after a dot -> :meth:`waiting_on` that symbol (a new dict)."""
        return {sym: self.waiting_on(sym) for sym in dict.fromkeys(chain.from_iterable(self._parts))}

    def __repr__(self) -> str:
        return f"ParserState(items={len(self.items)}, expected={self.expected:#x})"


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
        self._intern: dict[tuple, ParserState] = {}
        self._states: list[ParserState | None] = [None]  # by id; 0 is "the item's own state"
        self._merge_memo: dict[frozenset, ParserState] = {}
        self._predictions: dict[int, tuple[frozenset, frozenset, tuple]] = {}
        self.initial = self._close([0])  # rule 0, dot 0, origin: its own state

    def item_parts(self, item: int) -> tuple[int, int, ParserState | None]:
        """``(rule, dot, origin state)`` of an item (origin None: the state the item lives in)."""
        lr = item & self.lr_mask
        oid = item >> self.lr_bits
        r = bisect_right(self.lr_base, lr) - 1
        return r, lr - self.lr_base[r], (self._states[oid] if oid else None)

    def _group(self, items) -> tuple[dict[int, tuple], int]:
        """``(symbol -> tuple of the items with the dot before it, expected terminal bits)``."""
        lr_next, mask = self.lr_next, self.lr_mask
        waiting: dict[int, list] = {}
        for it in items:
            waiting.setdefault(lr_next[it & mask], []).append(it)
        expected = 0
        for sym in waiting:
            if sym >= 0:
                expected |= 1 << sym
        return {k: tuple(v) for k, v in waiting.items()}, expected

    _MAX_PARTS = 16
    """Most groupings a merged state keeps (a merge of merges regroups its items beyond; a
    closure keeps one per prediction, as many as the distinct nonterminals it predicts)."""

    def _new_state(self, key, items: frozenset, finished: bool, parts=None) -> ParserState:
        """Intern a state for ``items`` (mutates the intern tables). ``parts``: groupings
        (:meth:`_group`) whose items together are ``items`` (overlaps allowed), kept as they are
        (:meth:`ParserState.waiting_on` merges a symbol's on first use) instead of grouping every
        item again (a closure's predictions are grouped once); None: group ``items``."""
        if parts is None:
            group, expected = self._group(items)
            groups = (group,)
        else:
            expected = 0
            for _, exp in parts:
                expected |= exp
            groups = tuple(g for g, _ in parts)
        state = ParserState(items, groups, expected, finished, len(self._states))
        self._states.append(state)
        self._intern[key] = state
        return state

    def _prediction(self, sym: int) -> tuple[frozenset, frozenset, tuple]:
        """``(symbols, items, grouped)`` of predicting nonterminal ``sym`` in a column: every
        nonterminal predicted along the way (``sym`` included), every item with the dot before a
        symbol that the prediction adds (origin 0: this column), dots moved over nullable symbols,
        and those items grouped by that symbol (:meth:`_group`). A function of ``sym`` alone, so
        computed once per symbol and then added as a whole."""
        got = self._predictions.get(sym)
        if got is not None:
            return got
        lr_next, lr_base = self.lr_next, self.lr_base
        rules_of = self.rules_of
        nullable = self.nullable
        items: set = set()
        predicted = {sym}
        todo = [lr_base[r2] for r2 in rules_of.get(sym, ())]
        while todo:
            item = todo.pop()
            if item in items:
                continue
            nxt = lr_next[item]  # (origin 0: the item is its lr)
            if nxt is None:
                continue  # completed in this column: nullable, its parents were moved on already
            items.add(item)
            if nxt < 0:
                if nxt not in predicted:
                    predicted.add(nxt)
                    for r2 in rules_of.get(nxt, ()):
                        todo.append(lr_base[r2])
                if nxt in nullable:
                    todo.append(item + 1)
        got = self._predictions[sym] = (frozenset(predicted), frozenset(items), self._group(items))
        return got

    def _close(self, seed) -> ParserState:
        """The (interned) state from its seed items: prediction and completion to a fixpoint.

        Items whose origin is an earlier state (the seed and what completing into those states
        brings) are processed one by one; what predicting a nonterminal adds is the same in every
        column and is taken whole from :meth:`_prediction`. Items completed within this column
        need no completion step: their nonterminal is nullable and the predictor already moved the
        dot of every item waiting on it (Aycock–Horspool)."""
        lr_next, lr_end_rule = self.lr_next, self.lr_end_rule
        rule_lhs = self.rule_lhs
        nullable = self.nullable
        states = self._states
        mask, bits = self.lr_mask, self.lr_bits
        items: set = set()
        kept: list = []  # items of ``items`` with the dot before a symbol
        predicted: set[int] = set()
        added: list[frozenset] = []
        groups: list[tuple[dict, int]] = []  # the predictions' items grouped (see _new_state)
        finished = False
        todo = list(seed)
        while todo:
            item = todo.pop()
            if item in items:
                continue
            items.add(item)
            lr = item & mask
            sym = lr_next[lr]
            if sym is not None:
                kept.append(item)
                if sym < 0:
                    if sym not in predicted:
                        syms, pitems, pgroup = self._prediction(sym)
                        predicted |= syms
                        added.append(pitems)
                        groups.append(pgroup)
                    if sym in nullable:
                        todo.append(item + 1)
            else:
                r = lr_end_rule[lr]
                if r == 0:
                    finished = True
                oid = item >> bits
                if not oid:
                    continue
                # a parent's origin 0 means the state it lives in, i.e. the completed item's origin
                own = (oid << bits) + 1
                for p in states[oid].waiting_on(-(rule_lhs[r] + 1)):
                    todo.append(p + 1 if p > mask else p + own)
        # Completed items only drive completion inside this closure; dropping them from the state
        # lets lexings that differ only in how the last lexemes were grouped share one state.
        key_items = frozenset(kept).union(*added) if added else frozenset(kept)
        key = (key_items, finished)
        state = self._intern.get(key)
        if state is None:
            state = self._new_state(key, key_items, finished, [self._group(kept), *groups] if groups else None)
        return state

    def scan(self, state: ParserState, terminals: int) -> ParserState | None:
        """The state after scanning one lexeme that is any of the terminals in bitset ``terminals``."""
        memo = state._scan_memo
        if terminals in memo:
            return memo[terminals]
        hit = terminals & state.expected
        seed = []
        mask = self.lr_mask
        own = (state.sid << self.lr_bits) + 1
        while hit:
            low = hit & -hit
            t = low.bit_length() - 1
            hit ^= low
            for it in state.waiting_on(t):
                seed.append(it + 1 if it > mask else it + own)
        result = self._close(seed) if seed else None
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
        items = frozenset().union(*(s.items for s in states))
        finished = any(s.can_finish for s in states)
        key = (items, finished)
        merged = self._intern.get(key)
        if merged is None:
            parts = [(g, s.expected) for s in states for g in s._parts]
            merged = self._new_state(key, items, finished, parts if len(parts) <= self._MAX_PARTS else None)
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
