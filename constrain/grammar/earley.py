"""Earley recognizer over terminal ids, with persistent (immutable, interned) parser states.

Items are ``(rule, dot, origin)``. Nullable nonterminals are handled the Aycock–Horspool way (the
predictor also moves the dot over a nullable symbol), so left recursion, empty rules and ambiguity
need no special cases. A :class:`ParserState` is the tuple of its columns; scanning appends one
column and returns a new state, so states are values that a matcher can keep on its rollback stack.

States compare by identity (O(1) hash): scanning the same terminal set from the same state is
memoized and returns the same object. Two equal parses reached along different lexings may be
distinct objects; that only costs a mask-cache miss, never a wrong answer.
"""

from __future__ import annotations

from collections.abc import Iterable

from constrain.grammar.lark_frontend import GrammarIR


class Column:
    """One Earley set: its items and indexes of the items waiting on each symbol."""

    __slots__ = ("items", "waiting", "expected", "finished")

    def __init__(self, items: frozenset, waiting: dict[int, tuple], expected: int, finished: bool):
        self.items = items
        self.waiting = waiting  # symbol -> tuple of items with that symbol after the dot
        self.expected = expected  # bitset of terminal ids after a dot
        self.finished = finished  # the augmented start rule is complete from origin 0


class ParserState:
    """An immutable Earley parse of the terminals scanned so far (compare by identity)."""

    __slots__ = ("columns", "_scan_memo", "__weakref__")

    def __init__(self, columns: tuple[Column, ...]):
        self.columns = columns
        self._scan_memo: dict[int, ParserState | None] = {}

    @property
    def expected(self) -> int:
        """Bitset of the terminal ids the parser can scan next."""
        return self.columns[-1].expected

    @property
    def can_finish(self) -> bool:
        """Whether the terminals scanned so far form a complete sentence."""
        return self.columns[-1].finished

    def __len__(self) -> int:
        return len(self.columns) - 1

    def __repr__(self) -> str:
        return f"ParserState(scanned={len(self)}, items={len(self.columns[-1].items)})"


class EarleyParser:
    """Earley recognizer for a :class:`GrammarIR` (the augmented start rule is added here)."""

    def __init__(self, ir: GrammarIR):
        self.ir = ir
        n_nt = len(ir.nonterminals)
        # rule 0 is the augmented rule S' -> start; S' is nonterminal n_nt
        self.rule_lhs: list[int] = [n_nt] + [lhs for lhs, _ in ir.rules]
        self.rule_rhs: list[tuple[int, ...]] = [(-(ir.start + 1),)] + [rhs for _, rhs in ir.rules]
        self.rules_of: dict[int, list[int]] = {}
        for r, lhs in enumerate(self.rule_lhs):
            self.rules_of.setdefault(-(lhs + 1), []).append(r)
        # nullable nonterminals (as negative symbols)
        nullable: set[int] = set()
        changed = True
        while changed:
            changed = False
            for r, rhs in enumerate(self.rule_rhs):
                sym = -(self.rule_lhs[r] + 1)
                if sym not in nullable and all(s < 0 and s in nullable for s in rhs):
                    nullable.add(sym)
                    changed = True
        self.nullable = frozenset(nullable)
        self.initial = ParserState((self._close(0, [(0, 0, 0)], ()),))

    def _close(self, k: int, seed: Iterable[tuple[int, int, int]], prior: tuple[Column, ...]) -> Column:
        """Column ``k`` from its seed items (prediction and completion to a fixpoint)."""
        rule_rhs = self.rule_rhs
        rule_lhs = self.rule_lhs
        rules_of = self.rules_of
        nullable = self.nullable
        items: set[tuple[int, int, int]] = set()
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
                            todo.append((r2, 0, k))
                    if sym in nullable:
                        todo.append((r, dot + 1, origin))
            else:
                sym = -(rule_lhs[r] + 1)
                if origin == k:
                    parents = list(waiting.get(sym, ()))
                else:
                    parents = prior[origin].waiting.get(sym, ())
                for pr, pdot, porigin in parents:
                    todo.append((pr, pdot + 1, porigin))
        # Completions with origin == k can meet parents added later; Aycock–Horspool guarantees
        # the nullable advance above already produced them, so the fixpoint is complete.
        expected = 0
        for sym in waiting:
            if sym >= 0:
                expected |= 1 << sym
        finished = (0, 1, 0) in items
        return Column(frozenset(items), {s: tuple(v) for s, v in waiting.items()}, expected, finished)

    def scan(self, state: ParserState, terminals: int) -> ParserState | None:
        """The state after scanning one lexeme that is any of the terminals in bitset ``terminals``."""
        memo = state._scan_memo
        if terminals in memo:
            return memo[terminals]
        cols = state.columns
        last = cols[-1]
        hit = terminals & last.expected
        seed = []
        while hit:
            low = hit & -hit
            t = low.bit_length() - 1
            hit ^= low
            for r, dot, origin in last.waiting[t]:
                seed.append((r, dot + 1, origin))
        if not seed:
            result = None
        else:
            result = ParserState(cols + (self._close(len(cols), seed, cols),))
        memo[terminals] = result
        return result

    def recognize(self, terminal_sets: Iterable[int]) -> bool:
        """Whether the sequence of lexemes (each a terminal bitset) is a sentence (for tests)."""
        state: ParserState | None = self.initial
        for ts in terminal_sets:
            state = self.scan(state, ts)
            if state is None:
                return False
        return state.can_finish
