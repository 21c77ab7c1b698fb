"""Earley recognizer over terminal ids, with persistent (immutable, interned) parser states.

Items are ``(rule, dot, origin)``. Nullable nonterminals are handled the Aycock–Horspool way (the
predictor also moves the dot over a nullable symbol), so left recursion, empty rules and ambiguity
need no special cases. Scanning appends one
column and returns a new state, so states are values that a matcher can keep on its rollback stack.

A state is the last column only: each item names its origin as the *state object* it was
predicted in (a persistent, graph-structured chart), not a column index. States are interned by
their item set and compare by identity (O(1) hash), so different lexings of the same text that
leave equivalent charts merge into one object even when they scanned a different number of
lexemes (``-2`` as one number or as ``-`` then ``2``). Without this the number of lexing threads
grows exponentially with such ambiguities.
"""

from __future__ import annotations

from collections.abc import Iterable

from constrain.grammar.lark_frontend import GrammarIR


class ParserState:
    """An immutable Earley chart tip: the last column, whose items point at their origin states.

    Items are ``(rule, dot, origin)`` where ``origin`` is the :class:`ParserState` the rule was
    predicted in, or ``None`` for this state itself; only items with the dot before a symbol are
    kept. Compare by identity (states are interned).
    """

    __slots__ = ("items", "waiting", "expected", "can_finish", "_scan_memo", "__weakref__")

    def __init__(self, items: frozenset, waiting: dict, expected: int, can_finish: bool):
        self.items = items
        self.waiting = waiting  # symbol -> tuple of items with that symbol after the dot
        self.expected = expected  # bitset of the terminal ids the parser can scan next
        self.can_finish = can_finish  # the scanned terminals form a complete sentence
        self._scan_memo: dict[int, ParserState | None] = {}

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
        self._merge_memo: dict[frozenset, ParserState] = {}
        self._predictions: dict[int, tuple[frozenset, frozenset]] = {}
        self.initial = self._close([(0, 0, None)])

    def _prediction(self, sym: int) -> tuple[frozenset, frozenset]:
        """``(symbols, items)`` of predicting nonterminal ``sym`` in a column: every nonterminal
        predicted along the way (``sym`` included) and every item with the dot before a symbol
        that the prediction adds (origin ``None``: this column), dots moved over nullable symbols.
        A function of ``sym`` alone, so computed once per symbol and then added as a whole."""
        got = self._predictions.get(sym)
        if got is not None:
            return got
        rule_rhs = self.rule_rhs
        rules_of = self.rules_of
        nullable = self.nullable
        items: set = set()
        predicted = {sym}
        todo = [(r2, 0, None) for r2 in rules_of.get(sym, ())]
        while todo:
            item = todo.pop()
            if item in items:
                continue
            r, dot, _ = item
            rhs = rule_rhs[r]
            if dot >= len(rhs):
                continue  # completed in this column: nullable, its parents were moved on already
            items.add(item)
            nxt = rhs[dot]
            if nxt < 0:
                if nxt not in predicted:
                    predicted.add(nxt)
                    for r2 in rules_of.get(nxt, ()):
                        todo.append((r2, 0, None))
                if nxt in nullable:
                    todo.append((r, dot + 1, None))
        got = self._predictions[sym] = (frozenset(predicted), frozenset(items))
        return got

    def _close(self, seed) -> ParserState:
        """The (interned) state from its seed items: prediction and completion to a fixpoint.

        Items whose origin is an earlier state (the seed and what completing into those states
        brings) are processed one by one; what predicting a nonterminal adds is the same in every
        column and is taken whole from :meth:`_prediction`. Items completed within this column
        need no completion step: their nonterminal is nullable and the predictor already moved the
        dot of every item waiting on it (Aycock–Horspool)."""
        rule_rhs = self.rule_rhs
        rule_lhs = self.rule_lhs
        nullable = self.nullable
        items: set = set()
        kept: list = []  # items of ``items`` with the dot before a symbol
        predicted: set[int] = set()
        added: list[frozenset] = []
        finished = False
        todo = list(seed)
        while todo:
            item = todo.pop()
            if item in items:
                continue
            items.add(item)
            r, dot, origin = item
            rhs = rule_rhs[r]
            if dot < len(rhs):
                kept.append(item)
                sym = rhs[dot]
                if sym < 0:
                    if sym not in predicted:
                        syms, pitems = self._prediction(sym)
                        predicted |= syms
                        added.append(pitems)
                    if sym in nullable:
                        todo.append((r, dot + 1, origin))
            else:
                if r == 0:
                    finished = True
                if origin is None:
                    continue
                sym = -(rule_lhs[r] + 1)
                # a parent's None origin means the state it lives in, i.e. ``origin``
                for pr, pdot, porigin in origin.waiting.get(sym, ()):
                    todo.append((pr, pdot + 1, origin if porigin is None else porigin))
        # Completed items only drive completion inside this closure; dropping them from the state
        # lets lexings that differ only in how the last lexemes were grouped share one state.
        key_items = frozenset(kept).union(*added) if added else frozenset(kept)
        key = (key_items, finished)
        state = self._intern.get(key)
        if state is None:
            waiting: dict[int, list] = {}
            for it in key_items:
                waiting.setdefault(rule_rhs[it[0]][it[1]], []).append(it)
            expected = 0
            for sym in waiting:
                if sym >= 0:
                    expected |= 1 << sym
            state = ParserState(key_items, {s: tuple(v) for s, v in waiting.items()}, expected, finished)
            self._intern[key] = state
        return state

    def scan(self, state: ParserState, terminals: int) -> ParserState | None:
        """The state after scanning one lexeme that is any of the terminals in bitset ``terminals``."""
        memo = state._scan_memo
        if terminals in memo:
            return memo[terminals]
        hit = terminals & state.expected
        seed = []
        while hit:
            low = hit & -hit
            t = low.bit_length() - 1
            hit ^= low
            for r, dot, origin in state.waiting[t]:
                seed.append((r, dot + 1, state if origin is None else origin))
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
            waiting: dict[int, list] = {}
            expected = 0
            for it in items:
                waiting.setdefault(self.rule_rhs[it[0]][it[1]], []).append(it)
            for sym in waiting:
                if sym >= 0:
                    expected |= 1 << sym
            merged = ParserState(items, {k: tuple(v) for k, v in waiting.items()}, expected, finished)
            self._intern[key] = merged
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
