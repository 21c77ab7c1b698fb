"""Shortest completion of a grammar state: how many bytes (code points, words) until acceptance.

``GrammarCompletion(gc, unit)`` answers, for a :class:`~constrain.grammar.compile.GrammarConstraint`
state, the least cost of any byte string that takes the state to acceptance (``unit``: ``"bytes"``,
``"chars"`` = code points, i.e. UTF-8 bytes outside 0x80-0xBF, or ``"words"`` = runs of non-ASCII-
whitespace bytes, which depends on whether the text so far ends inside a word), a witness string
(bytes unit), and the cost after every token of the vocabulary at once (for length bounds).

``GrammarCompletion(gc, unit, dfa=D)`` takes the product with a byte DFA ``D`` (a keywords or regex
constraint): the unit automaton becomes ``D`` x unit, a completion must also take ``D`` to an
accepting state, and a state's cost is finite iff grammar ∩ ``D`` still has an output extending it
(the emptiness test that :class:`~constrain.constraints.combine.LiveIntersectConstraint` uses).
Matrices are then k x k with k = (D's states) x (the unit's flags), multiplied with numpy; the
lexer tables hold k x k entries per (target, relevant lexer state), bounded by
``Limits.max_completion_table_entries``.

How (exact, no search over bytes)
---------------------------------
Costs are min-plus products. For words a cost is a 2x2 matrix ``M[f_in][f_out]`` (f = "the last
byte was a non-space byte"); for bytes and chars a 1x1 one.

1. **Lexer.** One backward 0-1 search per target and final unit state over the combined lexer DFA
   x unit automaton (numba, :func:`~constrain.grammar._kernels.lexer_distances_kernel`) gives, per
   *target* and lexer state ``q``, the least cost from ``q`` to a state where the target's lexeme
   may end (only for the ``q`` that can reach such a state at all): targets are the
   real terminals, and the pairs (ignored terminal, class of the bytes that may not follow it --
   lark's longest-match rule for ``%ignore``). Byte columns with the same transitions and weight are
   relaxed together.
2. **Grammar.** Per nonterminal the least cost of a string it derives (fixpoint over the rules,
   terminals cost their shortest lexeme); per rule suffix ``beta`` the product of its symbols.
3. **Chart.** Parser states are immutable Earley columns whose items point at their origin states.
   ``G(A, O)`` = least cost to acceptance once ``A`` completes with origin ``O``: the minimum over the
   items of ``O`` waiting on ``A`` of ``minlen(rest of the rule)`` times ``G(lhs, origin)`` (the
   augmented start rule gives 0). Origins form a DAG; items predicted in ``O`` itself refer back to
   ``O``, solved by a fixpoint per state. ``C(S, t)`` = least cost after scanning terminal ``t``.
4. **Threads.** A thread at a lexeme boundary costs ``Hb(S, blocked class)``: 0 if ``S`` can finish,
   else the best first lexeme (real terminal ``t``: its cheapest lexeme whose first byte is not
   blocked, then ``C(S, t)``; or an ignored lexeme, then ``Hb`` of the class it leaves). A thread in
   the middle of a lexeme at lexer state ``q`` costs ``V_S[q]`` = min over targets of the cost from
   ``q`` to the end of that target's lexeme, then ``C(S, t)`` or ``Hb``. A state costs the min over
   its threads. Tables are memoized per parser state.

Exactness: equal to a breadth-first search over bytes (tests/grammar/test_completion.py), except
that the whitespace bound ``Limits.max_consecutive_whitespace`` on runs of ignored whitespace is not
modelled (a shortest completion never adds ignored whitespace unless longest-match blocking forces
one byte of it, e.g. a newline to end a ``--`` comment; a thread already at the bound is costed as
if it were not).

GrammarConstraint internals read here: ``parser`` (rules, ``scan``), ``lexer`` (tables; of a lazy
lexer -- ``expand``/``expanded``/``start`` -- a private copy is expanded completely and the grammar's
lexer state ids are mapped to it through the lexer's private ``_sets``/``_index``; the analysis
turns the grammar's ``restrict_steps`` off, since restricted states are not reached from the start), ``ir``
(terminals, ``ignore``), the thread layout ``(parser_state, lexer_state or -1, ws, blocked id)``
and ``_blocked[id]`` (bool[256] of the bytes that may not follow an ignored lexeme). A public
``blocked_bytes(id)`` accessor on GrammarConstraint would remove the one private read.
"""

from __future__ import annotations

import numpy as np

from constrain.errors import LimitExceededError
from constrain.grammar._kernels import lexer_distances_kernel, lexer_relevance_kernel
from constrain.limits import DEFAULT_LIMITS

__all__ = ["GrammarCompletion", "INF", "unit_automaton"]

INF = 1 << 40
_WS = frozenset(b" \t\n\r\x0b\x0c")
UNITS = ("bytes", "chars", "words")


def _byte_weights(unit: str) -> tuple[int, np.ndarray, np.ndarray]:
    """(k, w[f_in, byte], f_out[f_in, byte]) of one unit."""
    if unit == "bytes":
        return 1, np.ones((1, 256), np.int64), np.zeros((1, 256), np.int64)
    if unit == "chars":
        w = np.array([[0 if 0x80 <= b <= 0xBF else 1 for b in range(256)]], np.int64)
        return 1, w, np.zeros((1, 256), np.int64)
    if unit == "words":
        ws = np.array([b in _WS for b in range(256)])
        w = np.stack([np.where(ws, 0, 1), np.zeros(256, np.int64)]).astype(np.int64)
        fo = np.stack([np.where(ws, 0, 1), np.where(ws, 0, 1)]).astype(np.int64)
        return 2, w, fo
    raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")


def unit_automaton(unit: str, dfa=None) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(k, w[f, byte], f_next[f, byte], final[f]) of ``unit``, or of ``unit`` x ``dfa``.

    With a byte DFA (e.g. a keywords constraint's), the state is ``p * k_unit + f`` for DFA state
    ``p`` and unit flag ``f``; a byte the DFA rejects costs ``INF`` (no edge), and only the DFA's
    accepting states are final (``final[f]`` = 0, else ``INF``). Costs are then least costs of a
    completion that both the grammar and the DFA accept.
    """
    k_u, w_u, fo_u = _byte_weights(unit)
    if dfa is None:
        return k_u, w_u, fo_u, np.zeros(k_u, np.int64)
    trans = np.asarray(dfa.transitions, dtype=np.int64)
    n_p = trans.shape[0]
    ok = np.repeat(trans >= 0, k_u, axis=0)  # [n_p * k_u, 256]
    w = np.where(ok, np.tile(w_u, (n_p, 1)), INF)
    fo = np.where(ok, np.repeat(np.maximum(trans, 0), k_u, axis=0) * k_u + np.tile(fo_u, (n_p, 1)), 0)
    final = np.where(np.repeat(np.asarray(dfa.accepting, dtype=bool), k_u), 0, INF).astype(np.int64)
    return n_p * k_u, w.astype(np.int64), fo.astype(np.int64), final


class GrammarCompletion:
    """Least completion costs of the states of one GrammarConstraint in one unit (see module doc)."""

    def __init__(self, gc, unit: str = "bytes", *, dfa=None, limits=None):
        self.gc = gc
        self.unit = unit
        self.dfa = dfa
        self._limits = limits or getattr(gc, "limits", None) or DEFAULT_LIMITS
        self.k_unit = _byte_weights(unit)[0]
        cap = self._limits.max_completion_table_entries
        row = (int(dfa.n_states) * self.k_unit) ** 2 if dfa is not None else 0
        if row > cap:
            # every table row is k x k: refuse before building anything of that size
            raise LimitExceededError(
                "max_completion_table_entries", cap,
                f"shortest-completion tables over a {dfa.n_states}-state DFA need k^2 = {row} entries "
                "per lexer state",
            )
        if dfa is not None and not hasattr(dfa, "transitions"):  # a sparse DFA: densify (small now)
            dfa = self.dfa = dfa.to_byte_dfa()
        self.k, self._w, self._fo, final = unit_automaton(unit, dfa)
        self._final = tuple(int(x) for x in final)
        lexer = gc.lexer
        self._lazy = hasattr(lexer, "expand")
        if self._lazy:
            # a lazily built lexer grows with the grammar's own tables: expand a private copy and
            # map the grammar's state ids to it through the NFA state sets
            import copy

            # (threads restricted to their expected terminals reach states the copy's expansion
            # from the start does not: from now on the grammar's threads keep whole states, and
            # the restricted ones made so far are in the copy)
            gc.restrict_steps = False
            lexer = copy.deepcopy(lexer)
            _expand_all(lexer)
        self._own = lexer
        self._start = int(getattr(lexer, "start", 0))
        self._delta = np.asarray(lexer.transitions, dtype=np.int64)
        self._acc = np.asarray(lexer.accepting_terminals, dtype=bool)
        self._live = np.asarray(lexer.live_terminals, dtype=bool)
        self.n_q = self._delta.shape[0]
        ir = gc.ir
        self.n_terms = len(ir.terminals)
        self._ignore = tuple(sorted(ir.ignore))
        self._ignore_bits = sum(1 << u for u in self._ignore)
        self._classes: dict[bytes, int] = {}
        self._class_rows: list[np.ndarray] = []
        self._class_of(np.zeros(256, dtype=bool))  # class 0: nothing blocked
        # targets: real terminals (index = terminal id), then (ignored terminal, blocked class)
        targets = []
        tsets = []
        for t in range(self.n_terms):
            targets.append(("t", t, -1))
            tsets.append(self._acc[:, t] & (t not in self._ignore))
        ign_targets: dict[tuple[int, int], np.ndarray] = {}
        for u in self._ignore:
            for q in np.flatnonzero(self._acc[:, u]).tolist():
                c = self._class_of(self._blocked_row(q, u))
                ign_targets.setdefault((u, c), np.zeros(self.n_q, dtype=bool))[q] = True
        self._ign_targets = list(ign_targets)
        for (u, c), s in ign_targets.items():
            targets.append(("i", u, c))
            tsets.append(s)
        self._targets = targets
        self._lexer_distances(np.array(tsets, dtype=bool).reshape(len(tsets), self.n_q))
        self._F: dict[int, np.ndarray] = {}
        self._sym_cost = self._symbol_costs()
        self._suffix: dict[tuple[int, int], tuple] = {}
        self._G: dict = {}  # ParserState -> {nonterminal symbol: vec}
        self._C: dict = {}  # ParserState -> {terminal: vec}
        self._Hb: dict = {}  # ParserState -> {class: vec}
        self._V: dict = {}  # ParserState -> ndarray [n_q, k]
        self._inf = tuple([INF] * self.k)

    # ------------------------------------------------------------------ min-plus helpers
    def _mm(self, a: tuple, b: tuple) -> tuple:
        k = self.k
        if k == 1:
            return (min(a[0] + b[0], INF),)
        if k == 2:
            return tuple(min(min(a[i * k + j] + b[j * k + o] for j in range(k)), INF)
                         for i in range(k) for o in range(k))
        A = np.array(a, dtype=np.int64).reshape(k, k)
        B = np.array(b, dtype=np.int64).reshape(k, k)
        return tuple(np.minimum((A[:, :, None] + B[None, :, :]).min(axis=1), INF).ravel().tolist())

    def _mv(self, a: tuple, v: tuple) -> tuple:
        k = self.k
        if k == 1:
            return (min(a[0] + v[0], INF),)
        if k == 2:
            return tuple(min(min(a[i * k + j] + v[j] for j in range(k)), INF) for i in range(k))
        A = np.array(a, dtype=np.int64).reshape(k, k)
        return tuple(np.minimum((A + np.array(v, dtype=np.int64)[None, :]).min(axis=1), INF).tolist())

    @staticmethod
    def _vmin(a: tuple, b: tuple) -> tuple:
        return tuple(x if x <= y else y for x, y in zip(a, b))

    def _ident(self) -> tuple:
        k = self.k
        return tuple(0 if i == o else INF for i in range(k) for o in range(k))

    # ------------------------------------------------------------------ lexer level
    def _blocked_row(self, q: int, u: int) -> np.ndarray:
        row = self._delta[q]
        return (row >= 0) & self._live[np.maximum(row, 0), u]

    def _class_of(self, row: np.ndarray) -> int:
        key = np.asarray(row, dtype=bool).tobytes()
        c = self._classes.get(key)
        if c is None:
            c = self._classes[key] = len(self._class_rows)
            self._class_rows.append(np.asarray(row, dtype=bool).copy())
        return c

    def _lexer_distances(self, tsets: np.ndarray) -> None:
        """Least costs from each lexer state to an end of each target's lexeme, by unit states:
        ``self._Drow[t, q]`` (-1: q cannot reach t's end) indexes ``self._Dblk[row, f_in, f_out]``.

        Raises LimitExceededError when the rows need more than ``max_completion_table_entries``.
        """
        # byte columns with equal transitions, weights and unit moves are one class
        keys: dict[bytes, int] = {}
        for b in range(256):
            key = self._delta[:, b].tobytes() + self._w[:, b].tobytes() + self._fo[:, b].tobytes()
            keys.setdefault(key, b)
        reps = np.array(list(keys.values()), dtype=np.int64)
        delta = np.ascontiguousarray(self._delta)
        tsets = np.ascontiguousarray(tsets)
        row, n_rows = lexer_relevance_kernel(delta, reps, tsets)
        entries = int(n_rows) * self.k * self.k
        cap = self._limits.max_completion_table_entries
        if entries > cap:
            what = f" x a {self.dfa.n_states}-state DFA" if self.dfa is not None else ""
            raise LimitExceededError(
                "max_completion_table_entries", cap,
                f"shortest-completion tables of a grammar with {len(self._targets)} lexeme targets, "
                f"{self.n_q} lexer states{what} need {entries} entries",
            )
        self._Drow = row
        self._Dblk = lexer_distances_kernel(
            delta, reps, np.ascontiguousarray(self._w[:, reps]), np.ascontiguousarray(self._fo[:, reps]),
            tsets, row, int(n_rows), INF,
        )
        self._Dinf = np.full((self.k, self.k), INF, dtype=np.int64)
        # per target: the lexer states with a row, and their rows (for the V tables)
        self._Dby_t = [(np.flatnonzero(r >= 0), r[r >= 0]) for r in row]

    def _d_at(self, q: int) -> np.ndarray:
        """int64[T, k, k]: the distances of every target from lexer state q."""
        r = self._Drow[:, q]
        return np.where((r >= 0)[:, None, None], self._Dblk[np.maximum(r, 0)], INF)

    def _first(self, c: int) -> np.ndarray:
        """F[target, f_in, f_out]: cheapest lexeme of each target from the lexer start whose first
        byte is not in blocked class ``c``."""
        F = self._F.get(c)
        if F is None:
            k = self.k
            F = np.full((len(self._targets), k, k), INF, dtype=np.int64)
            start = self._delta[self._start]
            for b in np.flatnonzero((start >= 0) & ~self._class_rows[c]).tolist():
                d_q2 = self._d_at(start[b])  # [T, k, k]
                # F[:, fin, :] = min(F[:, fin, :], d_q2[:, fo[fin, b], :] + w[fin, b]) for every fin
                F = np.minimum(F, d_q2[:, self._fo[:, b], :] + self._w[:, b][None, :, None])
            F = self._F[c] = np.minimum(F, INF)
        return F

    # ------------------------------------------------------------------ grammar level
    def _symbol_costs(self) -> dict[int, tuple]:
        """Least cost of a string derived from each symbol (terminals: their shortest lexeme)."""
        parser = self.gc.parser
        k = self.k
        cost: dict[int, tuple] = {}
        for t in range(self.n_terms):
            r = self._Drow[t, self._start]
            cost[t] = tuple(int(x) for x in (self._Dblk[r] if r >= 0 else self._Dinf).reshape(-1))
        inf = tuple([INF] * (k * k))
        for r, lhs in enumerate(parser.rule_lhs):
            cost.setdefault(-(lhs + 1), inf)
        changed = True
        while changed:
            changed = False
            for r, rhs in enumerate(parser.rule_rhs):
                acc = self._ident()
                for s in rhs:
                    acc = self._mm(acc, cost.get(s, inf))
                    if all(x >= INF for x in acc):
                        break
                sym = -(parser.rule_lhs[r] + 1)
                new = self._vmin(cost[sym], acc)
                if new != cost[sym]:
                    cost[sym] = new
                    changed = True
        return cost

    def _suffix_cost(self, r: int, dot: int) -> tuple:
        key = (r, dot)
        v = self._suffix.get(key)
        if v is None:
            acc = self._ident()
            for s in self.gc.parser.rule_rhs[r][dot:]:
                acc = self._mm(acc, self._sym_cost[s])
            v = self._suffix[key] = acc
        return v

    def _g_table(self, state) -> dict:
        """{nonterminal symbol: least cost to acceptance after it completes with origin ``state``}."""
        done = self._G.get(state)
        if done is not None:
            return done
        # origins first (iterative post-order over the origin DAG)
        stack = [(state, False)]
        while stack:
            s, expanded = stack.pop()
            if s in self._G:
                continue
            if not expanded:
                stack.append((s, True))
                for _, _, o in map(self.gc.parser.item_parts, s.items):
                    if o is not None and o not in self._G:
                        stack.append((o, False))
                continue
            self._G[s] = self._solve_g(s)
        return self._G[state]

    def _solve_g(self, s) -> dict:
        parser = self.gc.parser
        n_nt_sym = -(len(parser.ir.nonterminals) + 1)  # the augmented start symbol
        table: dict[int, tuple] = {}
        internal: list[tuple[int, tuple, int]] = []  # (A, suffix, lhs symbol) referring to s itself
        for sym, items in s.waiting.items():
            if sym >= 0:
                continue
            best = self._inf
            for pr, pdot, po in map(parser.item_parts, items):
                lhs = -(parser.rule_lhs[pr] + 1)
                suf = self._suffix_cost(pr, pdot + 1)
                if lhs == n_nt_sym:
                    best = self._vmin(best, self._mv(suf, self._final))
                elif po is None:
                    internal.append((sym, suf, lhs))
                else:
                    best = self._vmin(best, self._mv(suf, self._G[po].get(lhs, self._inf)))
            table[sym] = best
        changed = bool(internal)
        while changed:
            changed = False
            for sym, suf, lhs in internal:
                new = self._vmin(table[sym], self._mv(suf, table.get(lhs, self._inf)))
                if new != table[sym]:
                    table[sym] = new
                    changed = True
        return table

    def _c_table(self, state) -> dict:
        """{terminal: least cost to acceptance after scanning it from ``state``} (expected ones)."""
        out = self._C.get(state)
        if out is None:
            out = {}
            for sym, items in state.waiting.items():
                if sym < 0:
                    continue
                best = self._inf
                for r, dot, o in map(self.gc.parser.item_parts, items):
                    g = self._g_table(state if o is None else o)
                    best = self._vmin(best, self._mv(self._suffix_cost(r, dot + 1), g.get(-(self.gc.parser.rule_lhs[r] + 1), self._inf)))
                out[sym] = best
            self._C[state] = out
        return out

    def _hb(self, state, c: int) -> tuple:
        """Cost of a boundary thread of ``state`` whose next byte may not be in class ``c``."""
        tab = self._Hb.get(state)
        if tab is None:
            tab = self._Hb[state] = self._solve_hb(state)
        v = tab.get(c)
        if v is None:
            v = tab[c] = self._hb_step(state, c, tab)
        return v

    def _hb_step(self, state, c: int, tab: dict) -> tuple:
        F = self._first(c)
        best = self._final if state.can_finish else self._inf
        for t, vec in self._c_table(state).items():
            best = self._vmin(best, self._mv(tuple(int(x) for x in F[t].reshape(-1)), vec))
        for i, (u, c2) in enumerate(self._ign_targets):
            h = tab.get(c2)
            if h is not None:
                best = self._vmin(best, self._mv(tuple(int(x) for x in F[self.n_terms + i].reshape(-1)), h))
        return best

    def _solve_hb(self, state) -> dict:
        classes = {0} | {c for _, c in self._ign_targets}
        tab: dict[int, tuple] = {c: self._inf for c in classes}
        changed = True
        while changed:
            changed = False
            for c in classes:
                new = self._vmin(tab[c], self._hb_step(state, c, tab))
                if new != tab[c]:
                    tab[c] = new
                    changed = True
        return tab

    def v_table(self, state) -> np.ndarray:
        """int64[n_q, k]: cost of a thread of parser state ``state`` in the middle of a lexeme at each lexer state."""
        V = self._V.get(state)
        if V is None:
            k = self.k
            exits = np.full((len(self._targets), k), INF, dtype=np.int64)
            for t, vec in self._c_table(state).items():
                if t not in self._ignore:
                    exits[t] = vec
            for i, (u, c2) in enumerate(self._ign_targets):
                exits[self.n_terms + i] = self._hb(state, c2)
            V = np.full((self.n_q, k), INF, dtype=np.int64)
            for t in np.flatnonzero((exits < INF).any(axis=1)).tolist():
                qs, rows = self._Dby_t[t]
                V[qs] = np.minimum(V[qs], (self._Dblk[rows] + exits[t][None, None, :]).min(axis=2))
            V = self._V[state] = np.minimum(V, INF)
        return V

    # ------------------------------------------------------------------ public
    def lexer_state(self, q: int) -> int:
        """This analysis' id of the grammar constraint's lexer state ``q`` (-1: at a boundary)."""
        if q < 0 or not self._lazy:
            return q
        return self._own._index[self.gc.lexer._sets[q]]

    def blocked_class(self, bid: int) -> int:
        """Class of the bytes blocked after an ignored lexeme (GrammarConstraint blocked id; -1 = none)."""
        if bid < 0:
            return 0
        return self._class_of(self.gc._blocked[bid])

    def thread_cost(self, thread) -> tuple:
        """k-vector (by the in-word flag before) of the least completion cost of one thread."""
        ps, q, _, bid = thread
        if q >= 0:
            return tuple(int(x) for x in self.v_table(ps)[self.lexer_state(q)])
        return self._hb(ps, self.blocked_class(bid))

    def cost(self, state, in_word: int = 0) -> int:
        """Least cost (in ``unit``) of a byte string taking ``state`` to acceptance; ``INF`` if none.

        ``in_word``: the unit automaton's state before the completion -- for words, whether the
        text so far ends in a non-space byte; with a DFA, ``dfa_state * k_unit + that flag``
        (:meth:`flag`).
        """
        f = in_word if self.k > 1 else 0
        best = INF
        for th in state:
            best = min(best, self.thread_cost(th)[f])
        return best

    def flag(self, dfa_state: int = 0, in_word: int = 0) -> int:
        """The unit automaton's state for DFA state ``dfa_state`` and the unit's flag ``in_word``."""
        return dfa_state * self.k_unit + (in_word if self.k_unit > 1 else 0)

    def witness(self, state, *, prefer: np.ndarray | None = None, max_len: int = 4096) -> bytes | None:
        """A least-cost completion (bytes unit: a shortest one), ``None`` if the state is dead.

        Deterministic per state: at each step the lowest byte that keeps the cost optimal, among the
        bytes in ``prefer`` (bool[256]) when one of them does. So the witness of the state after a
        prefix of a witness is the rest of that witness.
        """
        if self.unit != "bytes" or self.dfa is not None:
            raise ValueError("witness() is defined for the bytes unit without a DFA")
        gc = self.gc
        c = self.cost(state)
        if c >= INF:
            return None
        out = bytearray()
        cur = state
        while c > 0:
            cands: set[int] = set()
            for _, q, _, _ in cur:
                cands.update(np.flatnonzero(self._delta[self.lexer_state(q) if q >= 0 else self._start] >= 0).tolist())
            chosen = None
            fallback = None
            for b in sorted(cands):
                nxt = gc.advance_bytes(cur, bytes((b,)))
                if nxt is not None and self.cost(nxt) == c - 1:
                    if prefer is None or prefer[b]:
                        chosen = (b, nxt)
                        break
                    if fallback is None:
                        fallback = (b, nxt)
            chosen = chosen or fallback
            if chosen is None or len(out) >= max_len:
                raise AssertionError(f"no optimal byte from a state of cost {c}")  # cost is exact
            out.append(chosen[0])
            cur, c = chosen[1], c - 1
        return bytes(out)

    # ------------------------------------------------------------------ per token
    def token_costs(self, state, tokens: np.ndarray, flag_after: np.ndarray | None = None) -> np.ndarray:
        """int64[len(tokens)]: the cost of the state after each token (``INF`` if the token is not
        allowed). ``flag_after[i]``: the in-word flag after token i (words unit).

        One vectorized walk of the token trie per thread gives each token's lexer state when its
        bytes stay inside one lexeme (then the cost is a table lookup); a token that may end a
        lexeme before its last byte is advanced exactly (``advance_token``).
        """
        gc = self.gc
        walk = _trie_levels(gc.vocab)
        tokens = np.asarray(tokens, dtype=np.int64)
        nodes = walk.token_node[tokens]
        best = np.full(len(tokens), INF, dtype=np.int64)
        exact = np.zeros(len(tokens), dtype=bool)
        fa = np.zeros(len(tokens), dtype=np.int64) if (flag_after is None or self.k == 1) else np.asarray(flag_after, np.int64)
        if self.k > 1 and flag_after is None and self.dfa is not None:
            raise ValueError("token_costs over a DFA product needs flag_after (the unit state after each token)")
        for th in state:
            ps, q, ws, bid = th
            q = self.lexer_state(q)
            live_ok, accept_ok = self._live_accept(ps)
            first_blocked = self._class_rows[self.blocked_class(bid)] if q < 0 else None
            st, inner_cross, end_cross = walk.run(self._delta, q if q >= 0 else self._start, live_ok, accept_ok, first_blocked)
            s_end = st[nodes]
            ok = s_end >= 0
            V = self.v_table(ps)
            cost = np.where(ok, V[np.maximum(s_end, 0), fa], INF)
            exact |= inner_cross[nodes]
            # ending the lexeme at the token's last byte: the boundary threads after it
            ends = ok & end_cross[nodes] & ~inner_cross[nodes]
            if ends.any():
                for qe in np.unique(s_end[ends]).tolist():
                    sel = ends & (s_end == qe)
                    hb = self._end_cost(ps, qe, ws)
                    cost[sel] = np.minimum(cost[sel], np.asarray(hb, dtype=np.int64)[fa[sel]])
            best = np.minimum(best, cost)
        for i in np.flatnonzero(exact).tolist():
            s2 = gc.advance_token(state, int(tokens[i]))
            best[i] = INF if s2 is None else self.cost(s2, int(fa[i]))
        return best

    def _live_accept(self, ps):
        key = ps.expected | self._ignore_bits
        la = self._la.get(key) if hasattr(self, "_la") else None
        if la is None:
            if not hasattr(self, "_la"):
                self._la = {}
            e = np.array([(key >> i) & 1 for i in range(self.n_terms)], dtype=bool)
            la = self._la[key] = ((self._live & e).any(axis=1), (self._acc & e).any(axis=1))
        return la

    def _end_cost(self, ps, q: int, ws: int) -> tuple:
        """Least cost over the boundary threads after a lexeme ending at lexer state q."""
        best = self._inf
        acc = int(sum(1 << t for t in np.flatnonzero(self._acc[q]).tolist()))
        real = acc & ps.expected & ~self._ignore_bits
        if real:
            ps2 = self.gc.parser.scan(ps, real)
            if ps2 is not None:
                best = self._vmin(best, self._hb(ps2, 0))
        for u in self._ignore:
            if (acc >> u) & 1:
                best = self._vmin(best, self._hb(ps, self._class_of(self._blocked_row(q, u))))
        return best


def _expand_all(lexer) -> None:
    """Expand every state of a lazily built lexer DFA (the distances need the whole automaton)."""
    expand = getattr(lexer, "expand", None)
    if expand is None:
        return
    q = 0
    while q < lexer.n_states:
        if not lexer.expanded[q]:
            expand(q)
        q += 1


class _TrieLevels:
    """The vocabulary trie as depth levels with parent pointers, for vectorized DFA walks."""

    def __init__(self, vocab):
        trie = vocab.trie
        n = trie.n_nodes
        depth = np.asarray(trie.node_depth, dtype=np.int64)
        parent = np.zeros(n, dtype=np.int64)
        last_at = np.zeros(int(trie.max_depth) + 2, dtype=np.int64)
        dl = depth.tolist()
        for i in range(1, n):
            d = dl[i]
            parent[i] = last_at[d - 1]
            last_at[d] = i
        self.parent = parent
        self.byte = np.asarray(trie.node_byte, dtype=np.int64)
        self.levels = [np.flatnonzero(depth == d) for d in range(1, int(trie.max_depth) + 1)]
        self.token_node = np.zeros(vocab.size, dtype=np.int64)  # 0 (root) for tokens not in the trie
        starts = np.asarray(trie.node_token_start)
        ids = np.asarray(trie.token_ids)
        counts = np.diff(starts)
        self.token_node[ids] = np.repeat(np.arange(n), counts)
        self.n = n

    def run(self, delta, q0: int, live_ok, accept_ok, first_blocked):
        """Per trie node: lexer state after its bytes from q0 (-1 dead), whether the lexeme could have
        ended strictly before the node's last byte, and whether it can end at the node."""
        st = np.full(self.n, -1, dtype=np.int64)
        inner = np.zeros(self.n, dtype=bool)
        endc = np.zeros(self.n, dtype=bool)
        lv = self.levels[0] if self.levels else np.zeros(0, np.int64)
        s = delta[q0, self.byte[lv]]
        if first_blocked is not None:
            s = np.where(first_blocked[self.byte[lv]], -1, s)
        s = np.where((s >= 0) & live_ok[np.maximum(s, 0)], s, -1)
        st[lv] = s
        endc[lv] = (s >= 0) & accept_ok[np.maximum(s, 0)]
        for lv in self.levels[1:]:
            p = self.parent[lv]
            sp = st[p]
            s = np.where(sp >= 0, delta[np.maximum(sp, 0), self.byte[lv]], -1)
            s = np.where((s >= 0) & live_ok[np.maximum(s, 0)], s, -1)
            st[lv] = s
            inner[lv] = inner[p] | endc[p]
            endc[lv] = (s >= 0) & accept_ok[np.maximum(s, 0)]
        st[0] = -1
        return st, inner, endc


_LEVELS: dict[int, tuple] = {}


def _trie_levels(vocab) -> _TrieLevels:
    hit = _LEVELS.get(id(vocab))
    if hit is None or hit[0] is not vocab:
        hit = _LEVELS[id(vocab)] = (vocab, _TrieLevels(vocab))
    return hit[1]
