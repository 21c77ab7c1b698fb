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
        self.initial = self._close([(0, 0, None)])

    def _close(self, seed) -> ParserState:
        """The (interned) state from its seed items: prediction and completion to a fixpoint."""
        rule_rhs = self.rule_rhs
        rule_lhs = self.rule_lhs
        rules_of = self.rules_of
        nullable = self.nullable
        items: set = set()
        waiting: dict[int, list] = {}
        todo = list(seed)
        predicted: set[int] = set()
        while todo:
            item = todo.pop()
            if item in items:
                continue
            items.add(item)
            r, dot, origin = item
            rhs = rule_rhs[r]
            if dot < len(rhs):
                sym = rhs[dot]
                waiting.setdefault(sym, []).append(item)
                if sym < 0:
                    if sym not in predicted:
                        predicted.add(sym)
                        for r2 in rules_of.get(sym, ()):
                            todo.append((r2, 0, None))
                    if sym in nullable:
                        todo.append((r, dot + 1, origin))
            else:
                sym = -(rule_lhs[r] + 1)
                if origin is None:
                    # Completed within this column, so sym is nullable and the predictor above
                    # already advanced every item waiting on it (Aycock–Horspool).
                    parents = list(waiting.get(sym, ()))
                else:
                    # a parent's None origin means the state it lives in, i.e. ``origin``
                    for pr, pdot, porigin in origin.waiting.get(sym, ()):
                        todo.append((pr, pdot + 1, origin if porigin is None else porigin))
                    continue
                for pr, pdot, porigin in parents:
                    todo.append((pr, pdot + 1, porigin))
        # Completed items only drive completion inside this closure; dropping them from the state
        # lets lexings that differ only in how the last lexemes were grouped share one state.
        key = frozenset(it for it in items if it[1] < len(rule_rhs[it[0]]))
        finished = any(r == 0 and dot == 1 for r, dot, _ in items)
        key = (key, finished)
        state = self._intern.get(key)
        if state is None:
            expected = 0
            for sym in waiting:
                if sym >= 0:
                    expected |= 1 << sym
            state = ParserState(key[0], {s: tuple(v) for s, v in waiting.items()}, expected, finished)
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
