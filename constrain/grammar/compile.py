"""Grammar constraints: the exact context-free language of a Lark grammar, over bytes.

Semantics
---------
``compile_grammar(text, vocab)`` accepts exactly the byte strings (UTF-8 text) that
``lark.Lark(text, parser="earley", lexer="dynamic_complete")`` accepts, up to the differences
listed below:

* Terminals are regular languages: string literals (``"..."``, ``"..."i``) and regex terminals
  (flags ``i`` and ``s``), whatever lark builds from ``%import common.*``, templates, ``~n..m``,
  ``[]``/``?``/``*``/``+`` (lark expands all of these; we read its BNF rules).
* A terminal occurrence is *any* string of its regular language: no maximal munch, no lexer
  priorities, no LALR. Priorities only pick among parse trees, so they are ignored (they never
  change the language). Between any two terminals, and at both ends, any number of ``%ignore``
  terminal strings may appear.
* ``%ignore``d lexemes are *longest-match*, as in lark: its Earley scanner matches each ignored
  terminal once per position with ``re.match`` (greedy) and, unlike real terminals, never tries
  shorter prefixes. So with ``%ignore /--[^\n]*/`` the text ``--select 1`` is one comment, not
  ``--`` followed by a query; a thread that ends an ignored lexeme remembers the lexer state and
  rejects a next byte that would have continued it.
* Whitespace bound: a run of consecutive ignored lexemes whose terminals only match whitespace
  bytes (space, ``\\t``, ``\\n``, ``\\r``, ``\\f``, ``\\v``) may hold at most
  ``limits.max_consecutive_whitespace`` bytes (default 32). This *restricts the language*: outputs
  with a longer run of ignored whitespace are rejected (whitespace that a real terminal matches,
  e.g. inside a string, is not counted). Ignored terminals that can match other bytes (comments)
  are not bounded and reset the count.
* Regex classes ``\\d \\w \\s`` are ASCII here, while lark (Python ``re`` on ``str``) also matches
  non-ASCII digits/letters/spaces with them.
* Lark's dynamic lexer matches a terminal with Python ``re`` (first alternative wins, then it
  tries shorter prefixes), so for a regex whose alternatives are a prefix of one another lark may
  never produce some strings of the language; we accept the whole regular language.

Unsupported (raise, with line and column): ``%declare``d terminals without a pattern
(:class:`UnsupportedFeatureError`), regex flags other than ``i``/``s`` (``m``, ``x``, ``l``),
terminals the regex compiler rejects (lookaround, backreferences), terminals matching the empty
string. Grammars lark rejects raise :class:`GrammarSyntaxError`.

Engine
------
One combined lexer DFA over all terminals (ignored ones included). Every lexeme that starts at a
position starts at the same byte, so a *thread* is ``(parser_state, lexer_state, ws)``: the lexeme
may continue while some terminal the parser expects is live, and may end wherever an expected
terminal accepts; there the thread forks (one keeps extending the lexeme, one scans the terminal
set in the Earley parser and restarts the lexer). ``lexer_state == -1`` marks a thread at a lexeme
boundary. Threads that differ only in their parser state are merged (the union of the Earley
item sets), so a grammar state -- a frozenset of threads, at most ``Limits.max_lexer_threads`` --
has at most one thread per (lexer state, ignored-byte count, blocked set), whatever the ambiguity.

The mask is one numba kernel walk of the token trie with all threads of the state at once
(``grammar_mask_kernel``): per trie depth it keeps the live threads, advances each one's lexer
state per byte, and where a lexeme may end inside a token forks in place, reading the next parser
state from tables indexed by small parser-state ids (``_scan_tab[pid, accepting lexer state]``,
ignored lexemes per lexer state, merges in an open-addressing table). A missing table entry stops
the walk at that node; Python computes the Earley scan (memoized), fills the table and the walk
resumes there. The tables persist, so a later mask over known parser states is a single call.
More than ``max_walk_threads`` threads at one node falls back to ``reference_token_bits`` (one
walk per thread, Python at every boundary: the previous engine). Masks are cached per grammar
state (bounded by ``limits.max_cached_masks``).
"""

from __future__ import annotations

from array import array
from dataclasses import replace
from pathlib import Path

import numpy as np

from constrain._nogc import without_gc
from constrain.compiled import CompiledConstraint, MaskCache
from constrain.errors import (
    GrammarSyntaxError,
    InputError,
    LimitExceededError,
    RegexSyntaxError,
    UnsupportedFeatureError,
)
from constrain.grammar._kernels import (
    grammar_fork_jobs_kernel,
    grammar_mask_kernel,
    grammar_walk_kernel,
    assign_pid_kernel,
    eset_rehash_kernel,
    lazy_state_rows_kernel,
    reach_depth_kernel,
    safe_depth_kernel,
    safe_reach_kernel,
    merge_insert,
    row_classes_kernel,
)
from constrain.grammar.earley import EarleyParser, ParserState
from constrain.grammar.lark_frontend import GrammarIR, _locate, lark_to_ir, read_grammar_text
from constrain.kernels.bitmask import bitmask_words
from constrain.limits import DEFAULT_LIMITS, Limits
from constrain.regex._kernels import uses_bytes_kernel
from constrain.regex.dfa import LexerDFA, class_columns
from constrain.vocab.slices import SAFE_FIRST, UTF8_NEXT, safe_byte_steps
from constrain.vocab.trie import self_loop_byte_sets, self_loop_byte_sets_of, subtree_byte_sets
from constrain.vocab.vocabulary import Vocabulary

_WS_BYTES = frozenset(b" \t\n\r\f\v")
_NON_WS = np.array([b not in _WS_BYTES for b in range(256)])

Thread = tuple  # (ParserState, lexer state or -1, ignored-whitespace byte count, blocked-set id or -1)

_I32 = "i" if array("i").itemsize == 4 else "l"
"""The ``array`` type code of a 4-byte int (the lexer tables' ``int32``)."""


def _bit_indices(bits: int) -> list[int]:
    """The indices of the set bits of ``bits``, ascending (a terminal set as column numbers)."""
    out = []
    while bits:
        low = bits & -bits
        out.append(low.bit_length() - 1)
        bits ^= low
    return out


class _RowBits(dict):
    """``bits[q]``: row ``q`` of a ``bool[n, k]`` matrix as a Python int (bit ``i`` = column
    ``i``), made on first read and kept (rows never change once a state exists; the matrix may
    grow, so it is fetched through ``matrix_of``). Most lexer states' rows are never read by
    Python: the mask kernels read the arrays. A dict with ``__missing__``, so a row already made
    is a plain dict lookup (the matcher reads them on every step)."""

    __slots__ = ("_matrix_of",)

    def __init__(self, matrix_of):
        super().__init__()
        self._matrix_of = matrix_of

    def __missing__(self, q: int) -> int:
        row = np.packbits(self._matrix_of()[q], bitorder="little")
        b = self[q] = int.from_bytes(row.tobytes(), "little")
        return b


class GrammarConstraint(CompiledConstraint):
    """A compiled Lark grammar over ``vocab``; states are frozensets of lexing threads."""

    def __init__(self, ir: GrammarIR, lexer, ws_terminals: int, vocab: Vocabulary, *, limits: Limits = DEFAULT_LIMITS):
        self.ir = ir
        self.vocab = vocab
        self.limits = limits
        self.source = ir.source
        self.parser = EarleyParser(ir)
        self.lexer = lexer
        self._lazy = not isinstance(lexer, LexerDFA)
        self._ignore_bits = sum(1 << i for i in ir.ignore)
        if self._lazy:
            # states within one token's length of the lexer start, and the rows ignored lexemes need
            self._depth_ok = np.zeros(0, dtype=np.int64)  # per state: rows known built this many bytes ahead
            self._dirty: list[int] = []
            self._ignore_cols = np.flatnonzero([(self._ignore_bits >> i) & 1 for i in range(lexer.n_terminals)])
            self._ign_seen = 0  # lazy states below this one were checked for ignored lexeme ends
            self._class_reps = np.unique(lexer.class_of, return_index=True)[1].astype(np.int64)  # a byte per class
            self._lazy_ensure(0, self._LAZY_AHEAD)
        self._transitions = np.ascontiguousarray(lexer.transitions, dtype=np.int32)
        # transition rows for _step, copied out of the array when first stepped (None: not yet;
        # most states never are: the mask kernels read the array). array('i'), not lists: a list
        # of 256 ints is a container the cyclic collector walks in every collection it survives
        # (these rows were 85% of what a young collection inside a mask traversed)
        self._rows: list[array | None] = [None] * self._transitions.shape[0]
        # (the lexer, not self: a closure over self would make the constraint a reference cycle,
        # freed only by a full garbage collection)
        self._acc_bits = _RowBits(lambda: lexer.accepting_terminals)
        self._live_bits = _RowBits(lambda: lexer.live_terminals)
        self._ignore_bits = sum(1 << i for i in ir.ignore)
        self._ws_bits = ws_terminals & self._ignore_bits
        self._bound = int(limits.max_consecutive_whitespace)
        self._arrays: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._end_memo: dict[tuple, tuple[Thread, ...]] = {}
        self._mask_cache = MaskCache(limits.max_cached_masks)
        self._forced_cache: dict[frozenset, bytes] = {}
        self._cand_cache: dict[frozenset, list[int]] = {}  # state -> candidate_bytes (read-only lists)
        trie = vocab.trie
        self._trie = trie
        self._sub_bytes = subtree_byte_sets(trie)
        # lexeme walks run over the sliced forest: text slices a state provably allows are OR-ed
        # in, only the rest is walked (see constrain.vocab.slices)
        self._slices = vocab.slices
        self._forest_sub_bytes = self._slices.sub_bytes
        self._depth_stamp = np.zeros(1, dtype=np.int64)
        self._search_budget = self._SAFE_DEPTH_MAX_NEW_STATES  # see _SAFE_DEPTH_SHRINK
        classes = lexer.class_of if self._lazy else lexer.byte_class
        self._safe_steps = safe_byte_steps(classes)
        self._depth_scratch = self._new_depth_scratch(self._transitions.shape[0])
        # what safe-text searches from eager lexer states read, with their answer's cap, where that
        # answer did not depend on the expected set (see _safe_depth)
        self._safe_reach: dict[int, tuple[np.ndarray, np.ndarray, int]] = {}
        # lazy lexer: safe-text depth per (expected set, horizon representative, blocked set)
        self._lazy_depths: dict[tuple[int, int, int], int] = {}
        self._restrict_memo: dict[tuple[int, int], int] = {}  # (expected set id, lexer state) -> restricted state
        self._eset_masks: dict[int, np.ndarray] = {}  # expected set id -> bool per terminal
        self._reach_buf = (np.empty(32768, np.int32), np.zeros(2, np.int64))
        self._reach_first = np.full(0, -1, np.int64)  # scratch of safe_reach_kernel (all -1)
        self._self_loop = self_loop_byte_sets(self._transitions)
        cap = max(16, trie.n_nodes)
        self._bnd = (np.empty(cap, np.int32), np.empty(cap, np.int32), np.empty(cap, np.int32))
        self._root0 = np.zeros(1, dtype=np.int32)
        self._initial = frozenset({(self.parser.initial, -1, 0, -1)})
        self.restrict_steps = True
        """Lazy lexer: a thread that reads a byte inside a lexeme moves to the state of its
        expected (and ignored) terminals' configurations only (:meth:`LazyLexerDFA.restricted`;
        the same masks and acceptance, fewer states to build). Off for analyses that map this
        lexer's states onto a copy expanded from its start (``GrammarCompletion``)."""
        # maximal munch of ignored lexemes: blocked[i][b] = byte b would continue the ignored
        # terminal that just ended (so it may not follow); id -1 = nothing blocked
        self._blocked_ids: dict[tuple[int, int], int] = {}
        self._blocked: list[np.ndarray] = []
        self._no_block = np.zeros(256, dtype=bool)
        self._init_walk_tables()

    def __repr__(self) -> str:
        return (
            f"GrammarConstraint({self.source!r}, terminals={len(self.ir.terminals)}, "
            f"rules={len(self.ir.rules)}, lexer_states={self.lexer.n_states}, vocab={self.vocab.size})"
        )

    # ------------------------------------------------------------------ lazy lexer DFA
    def _lazy_ensure(self, q: int, depth: int) -> None:
        """Expand every lexer state less than ``depth`` bytes from ``q`` (lazy lexer only; mutates
        the lexer, not the tables: call :meth:`_lazy_sync` after). Also expands new states where
        an ignored terminal ends (their blocked-byte sets read the row)."""
        self._lazy_ensure_all(np.array([q], dtype=np.int64), depth)

    def _lazy_ensure_all(self, qs: np.ndarray, depth: int, max_new: int | None = None) -> None:
        """:meth:`_lazy_ensure` from each state of ``qs``, in one kernel pass (stopping once
        ``max_new`` states were created, if given: see :meth:`LazyLexerDFA.expand_ahead`)."""
        built, self._depth_ok = self.lexer.expand_ahead(qs, depth, self._class_reps, self._depth_ok, max_new)
        if built.shape[0]:
            self._dirty.extend(built.tolist())
        self._lazy_expand_ignored_ends()

    def _lazy_expand_along(self, eid: int, q: int, roots: np.ndarray) -> None:
        """Expand every lexer state the lexeme walk of expected set ``eid`` from ``q`` over the
        forest subtrees below ``roots`` can read a byte in (lazy lexer; one numba pass instead of a
        walk per few bytes of depth), then sync the tables."""
        cols = self._eset_cols[self._eset_ptr[eid] : self._eset_ptr[eid + 1]]
        built = self.lexer.expand_along(q, roots, self._slices.forest, self._forest_sub_bytes, cols)
        self._dirty.extend(built.tolist())
        self._lazy_expand_ignored_ends()
        self._lazy_sync()

    def _lazy_expand_ignored_ends(self) -> None:
        """Expand the new lexer states where an ignored terminal ends (their blocked-byte sets read
        the row); states below ``_ign_seen`` were looked at before."""
        lexer = self.lexer
        if self._ignore_bits:
            # states created since the last look (older ones where an ignored lexeme ends were
            # expanded then); expanding may create more
            ign = self._ignore_cols
            while self._ign_seen < lexer.n_states:
                lo = self._ign_seen
                self._ign_seen = lexer.n_states
                hits = np.flatnonzero(lexer.accepting_terminals[lo:, ign].any(axis=1)) + lo
                for t in hits.tolist():
                    if not lexer.expanded[t]:
                        lexer.expand(t)
                        self._dirty.append(t)

    def _lazy_sync(self) -> None:
        """Bring every per-lexer-state table up to date with the lazy lexer (new states, new rows).

        The tables have a capacity (``_q_cap`` states, doubled when exceeded): a sync writes only
        the rows of the states built since the last one, so a lexer that grows to n states costs
        O(n) in all, not O(n) per sync (a long string value syncs thousands of times)."""
        lexer = self.lexer
        n_old = len(self._rows)
        n = lexer.n_states
        if n == n_old and not self._dirty:
            return
        self._transitions = lexer.transitions
        trans = self._transitions
        dirty = [q for q in self._dirty if q < n_old]
        for q in dirty:
            self._rows[q] = None  # copied again when _step reads it
        self._dirty = []
        if n > self._q_cap:
            self._grow_state_tables(n)
        # self-loop sets: rows built since, and the new states (read by the walk kernel by state id)
        loops = self._self_loop
        if dirty:
            rows = np.asarray(dirty, dtype=np.int64)
            loops[rows] = self_loop_byte_sets_of(trans[rows], rows)
        if n == n_old:
            return
        loops[n_old:n] = self_loop_byte_sets_of(trans[n_old:n], np.arange(n_old, n))
        acc = lexer.accepting_terminals
        new_acc = acc[n_old:n]
        new_live = lexer.live_terminals[n_old:n]
        self._rows.extend([None] * (n - n_old))  # most lazily built states are never stepped by _step
        # per new state: whitespace-live, scan-table column, and the rows of every expected set
        # seen so far (one kernel pass over the new rows and the sets' terminals)
        n_e = int(self._pcounts[1])
        self._n_acc_cols = int(lazy_state_rows_kernel(
            np.ascontiguousarray(new_acc), np.ascontiguousarray(new_live), self._ws_mask, self._eset_ptr,
            self._eset_cols, self._eset_words, n_e, n_old, self._live_tab, self._acc_tab, self._wsonly_tab,
            self._ws_live, self._acc_col, self._n_acc_cols, self._term_words))
        if self._n_acc_cols > self._scan_tab.shape[1]:
            width = max(self._n_acc_cols, 2 * self._scan_tab.shape[1])
            grown = np.full((self._scan_tab.shape[0], width), -2, dtype=np.int32)
            grown[:, : self._scan_tab.shape[1]] = self._scan_tab
            self._scan_tab = grown
        # ignored lexemes ending in the new states: appended to the CSR table (only the states
        # where one ends are visited in Python; most new states of a long string have none)
        ignore = self._ignore_cols
        bids: list[int] = []
        isws: list[bool] = []
        starts = self._ign_start
        k0 = int(starts[n_old])
        if ignore.shape[0]:
            ends = new_acc[:, ignore]
            per_state = ends.sum(axis=1)
            starts[n_old + 1 : n + 1] = k0 + np.cumsum(per_state)
            for i, j in zip(*map(np.ndarray.tolist, np.nonzero(ends))):  # row-major: by state, then terminal
                t = int(ignore[j])
                bids.append(self._blocked_id(n_old + i, t))
                isws.append(bool((self._ws_bits >> t) & 1))
        else:
            starts[n_old + 1 : n + 1] = k0
        if bids:
            need = k0 + len(bids)
            if need > self._ign_bid.shape[0]:
                cap = max(need, 2 * self._ign_bid.shape[0])
                self._ign_bid = np.concatenate([self._ign_bid, np.zeros(cap - self._ign_bid.shape[0], np.int32)])
                self._ign_isws = np.concatenate([self._ign_isws, np.zeros(cap - self._ign_isws.shape[0], bool)])
            self._ign_bid[k0:need] = bids
            self._ign_isws[k0:need] = isws
        self._sync_blocked_tab()
        self._arrays.clear()

    def _grow_state_tables(self, n: int) -> None:
        """Give every per-lexer-state table room for at least ``n`` states (lazy lexer; doubles)."""
        old = self._q_cap
        cap = max(n, 2 * old)

        def grown(a: np.ndarray, fill, axis: int = 0) -> np.ndarray:
            shape = list(a.shape)
            shape[axis] = cap + (a.shape[axis] - old)
            # np.full touches every page here, in the fill that grows: calloc'd zeros would spread
            # the page faults over later syncs and masks (measured on the scan table: more fills
            # over the p99 line)
            out = np.full(shape, fill, dtype=a.dtype)
            if axis == 0:
                out[: a.shape[0]] = a
            else:
                out[:, : a.shape[1]] = a
            return out

        self._self_loop = grown(self._self_loop, 0)
        self._ws_live = grown(self._ws_live, False)
        self._acc_col = grown(self._acc_col, -1)
        self._ign_start = grown(self._ign_start, 0)  # cap + 1 entries
        self._live_tab = grown(self._live_tab, False, axis=1)
        self._acc_tab = grown(self._acc_tab, False, axis=1)
        self._wsonly_tab = grown(self._wsonly_tab, False, axis=1)
        self._term_words = grown(self._term_words, 0)
        self._q_cap = cap

    def _sync_blocked_tab(self) -> None:
        """Copy the blocked-byte rows created since the last call into ``_blocked_tab`` (grows)."""
        nb = len(self._blocked)
        if nb <= self._n_blocked_tab:
            return
        if nb > self._blocked_tab.shape[0]:
            cap = max(nb, 2 * self._blocked_tab.shape[0])
            tab = np.zeros((cap, 256), dtype=bool)
            tab[: self._n_blocked_tab] = self._blocked_tab[: self._n_blocked_tab]
            self._blocked_tab = tab
        self._blocked_tab[self._n_blocked_tab : nb] = np.stack(self._blocked[self._n_blocked_tab : nb])
        self._n_blocked_tab = nb

    _LAZY_AHEAD = 2
    """Bytes of lookahead expanded around a lexer state whose row a walk asked for (fewer walk
    restarts for the price of a few states that may never be visited)."""

    _LAZY_DEPTH_AHEAD = 6
    """Bytes of lookahead expanded around the states a safe-text search met without a row: the
    search goes on level by level (a character is 1-4 bytes), and each stop costs a search from
    the start and a table sync (on MaskBench's lazy Github schemas, 2 -> 6 bytes: a quarter fewer
    searches, a tenth more states, a tenth fewer masks over 167 µs)."""
    _LAZY_DEPTH_AHEAD_STATES = 64
    """Most states one such expansion creates before it stops (a lexer that blows up on arbitrary
    text creates thousands within 6 bytes; the search then meets the rest and its own bound,
    ``_SAFE_DEPTH_MAX_NEW_STATES``, ends it)."""

    def _lazy_expand_rows(self, coded: np.ndarray, ahead: int | None = None, max_new: int | None = None) -> None:
        """Expand the rows a kernel reported missing (``-2 - state`` codes) and those less than
        ``ahead`` bytes past them (default ``_LAZY_AHEAD``; stopping once ``max_new`` states were
        created, if given), then sync the tables."""
        self._lazy_ensure_all(np.unique(-2 - np.asarray(coded)), ahead or self._LAZY_AHEAD, max_new)
        self._lazy_sync()

    # ------------------------------------------------------------------ single-walk tables
    def _init_walk_tables(self) -> None:
        """Tables of the one-walk mask kernel (see :meth:`compute_token_bits`).

        Parser states get small integer ids on first use; per id its expected-set id (``_p_eset``);
        per expected set the rows ``live`` / ``accept`` / ``ws_only`` over lexer states; per
        (parser id, accepting lexer state) the parser id after scanning the real terminals ending
        there (``_scan_tab``: -1 none, -2 not computed yet). Ignored lexemes only depend on the
        lexer state, so they are a fixed CSR table. All of it persists across masks. The fork
        kernel fills unknown scan-table entries itself (new parser ids and expected sets
        included, :func:`assign_pid_kernel`); Python grows the tables when it cannot.
        """
        lexer = self.lexer
        n_q = lexer.n_states
        acc = lexer.accepting_terminals
        ws_mask = self._ws_mask = np.array([(self._ws_bits >> i) & 1 for i in range(len(self.ir.terminals))], dtype=bool)
        self._ws_live = np.ascontiguousarray((lexer.live_terminals & ws_mask).any(axis=1))
        acc_any = acc.any(axis=1)
        self._acc_col = np.full(n_q, -1, dtype=np.int32)
        self._acc_col[acc_any] = np.arange(int(acc_any.sum()), dtype=np.int32)
        starts, bids, isws = [0], [], []
        ignore = sorted(self.ir.ignore)
        if not ignore:
            starts = [0] * (n_q + 1)
        for q in range(n_q) if ignore else ():
            for t in ignore:
                if acc[q, t]:
                    bids.append(self._blocked_id(q, t))
                    isws.append(bool((self._ws_bits >> t) & 1))
            starts.append(len(bids))
        self._ign_start = np.asarray(starts, dtype=np.int32)
        self._ign_bid = np.asarray(bids, dtype=np.int32)
        self._ign_isws = np.asarray(isws, dtype=bool)
        self._blocked_tab = np.zeros((max(1, len(self._blocked)), 256), dtype=bool)
        self._n_blocked_tab = 0
        self._sync_blocked_tab()
        self._n_acc_cols = int(acc_any.sum())
        self._q_cap = n_q  # rows allocated in the per-state tables (grows with a lazy lexer)
        # parser ids: per chart state of the parser its id (-1 none) and back; [ids, expected sets]
        # so far. Kept in arrays (not dicts of objects) so the fork kernel can give the states it
        # scans ids itself (assign_pid_kernel, shared with _parser_id)
        self._sid_pid = np.full(64, -1, dtype=np.int32)
        self._pid_sid = np.zeros(64, dtype=np.int32)
        self._pcounts = np.zeros(2, dtype=np.int64)
        self._p_eset = np.zeros(64, dtype=np.int32)
        self._scan_tab = np.full((64, max(1, int(acc_any.sum()))), -2, dtype=np.int32)
        # expected sets interned by their terminal words (eset_words[e, 0]): hash -> set id
        self._eh_keys = np.full(16, -1, dtype=np.int64)
        self._eh_eid = np.zeros(16, dtype=np.int32)
        # expected terminals per eset id e: _eset_cols[_eset_ptr[e]:_eset_ptr[e + 1]]
        self._eset_ptr = np.zeros(9, dtype=np.int64)
        self._eset_cols = np.zeros(64, dtype=np.int64)
        self._live_tab = np.zeros((8, n_q), dtype=bool)
        self._acc_tab = np.zeros((8, n_q), dtype=bool)
        self._wsonly_tab = np.zeros((8, n_q), dtype=bool)
        # expected sets as uint64 bit words ([e, 0] its terminals, [e, 1] the non-whitespace ones),
        # and the lexer states' live / accepting terminals as words too (_term_words, [q, 0] /
        # [q, 1]): a new set's table rows then cost a few word ANDs per state (or per class of
        # states) instead of a loop over its terminals' columns, and the fork kernel reads a
        # state's accepting terminals there
        n_words = max(1, (len(self.ir.terminals) + 63) // 64)
        self._eset_words = np.zeros((8, 2, n_words), dtype=np.uint64)
        self._ign_words = np.frombuffer(self._ignore_bits.to_bytes(8 * n_words, "little"), dtype="<u8").copy()
        # eager lexer of _PACK_MIN_STATES or more: the class of each state's rows and each class's
        # rows as words (empty: rows by state)
        self._row_class = np.zeros(0, dtype=np.int32)
        self._class_words = np.zeros((0, 2, n_words), dtype=np.uint64)
        self._pack_term_words(n_q)
        self._merges: dict[tuple[int, int], int] = {}
        self._mkeys = np.full(1024, -1, dtype=np.int64)
        self._mvals = np.zeros(1024, dtype=np.int64)
        self._req_p = np.empty(256, dtype=np.int32)
        self._req_q = np.empty(256, dtype=np.int32)
        self._scratch = None
        self.max_walk_threads = 256
        """Most threads the one-walk kernel keeps per trie depth (beyond, threads that differ only
        in their parser state are merged); if still over, the mask falls back to
        :meth:`reference_token_bits` (exact, slower)."""
        self.walk_stats = {"walks": 0, "rounds": 0, "fallbacks": 0, "lexeme_walks": 0}
        self._lexeme_cache: dict[tuple[int, int, int, int], tuple] = {}
        self._resume2 = np.zeros(2, dtype=np.int64)
        self.split_walks = True
        """Masks per thread = cached lexeme walk (keyed by expected set, lexer state, whitespace
        count, blocked set) + walks of the subtrees past each lexeme end (:meth:`_split_walk_bits`);
        ``False``: one walk of the whole trie with all threads (:meth:`_single_walk_bits`)."""

    def _parser_id(self, ps: ParserState) -> int:
        sid = ps.sid
        if sid < self._sid_pid.shape[0]:
            pid = self._sid_pid[sid]
            if pid >= 0:
                return int(pid)
        while True:
            pid = assign_pid_kernel(sid, self.parser._chart.exp, self._p_eset, self._live_tab, self._acc_tab,
                                    self._wsonly_tab, self._pid_context())
            if pid >= 0:
                return int(pid)
            if pid == -2:
                raise LimitExceededError(
                    "max_parser_states",
                    self.limits.max_parser_states,
                    f"grammar {self.source}: the masks created {int(self._pcounts[0])} distinct parser states",
                )
            self._grow_pid_tables(sid)

    def _pid_context(self) -> tuple:
        """The parser-id tables as :func:`assign_pid_kernel` reads them (its ``pk``)."""
        return (
            self._ign_words, self._ws_mask, self._sid_pid, self._pid_sid, self._scan_tab.shape[0], self._eh_keys,
            self._eh_eid, self._eset_words, self._eset_ptr, self._eset_cols, self._row_class, self._class_words,
            self._term_words, min(self.lexer.n_states, self._q_cap),  # states past the capacity: the next sync's
            self._pcounts, self.limits.max_parser_states,
        )

    def _grow_pid_tables(self, sid: int) -> None:
        """Make room (doubling) for chart state ``sid``'s entry, one more parser id and one more
        expected set (see :func:`assign_pid_kernel`)."""
        if sid >= self._sid_pid.shape[0]:
            grown = np.full(max(2 * self._sid_pid.shape[0], sid + 1), -1, dtype=np.int32)
            grown[: self._sid_pid.shape[0]] = self._sid_pid
            self._sid_pid = grown
        n_p, n_e = int(self._pcounts[0]), int(self._pcounts[1])
        if n_p >= self._p_eset.shape[0] or n_p >= self._scan_tab.shape[0] or n_p >= self._pid_sid.shape[0]:
            self._p_eset = np.concatenate([self._p_eset, np.zeros_like(self._p_eset)])
            self._pid_sid = np.concatenate([self._pid_sid, np.zeros_like(self._pid_sid)])
            self._scan_tab = np.concatenate([self._scan_tab, np.full_like(self._scan_tab, -2)])
        if n_e >= self._live_tab.shape[0]:
            grow = lambda a: np.concatenate([a, np.zeros_like(a)])  # noqa: E731
            self._live_tab, self._acc_tab, self._wsonly_tab, self._eset_words = map(
                grow, (self._live_tab, self._acc_tab, self._wsonly_tab, self._eset_words))
        if n_e + 2 > self._eset_ptr.shape[0]:
            self._eset_ptr = np.concatenate([self._eset_ptr, np.zeros(self._eset_ptr.shape[0], np.int64)])
        need = int(self._eset_ptr[n_e]) + len(self.ir.terminals)
        if need > self._eset_cols.shape[0]:
            self._eset_cols = np.concatenate([self._eset_cols, np.zeros(max(need, self._eset_cols.shape[0]), np.int64)])
        if 2 * (n_e + 1) > self._eh_keys.shape[0]:
            self._eh_keys = np.full(4 * self._eh_keys.shape[0], -1, dtype=np.int64)
            self._eh_eid = np.zeros(self._eh_keys.shape[0], dtype=np.int32)
            eset_rehash_kernel(self._eset_words, n_e, self._eh_keys, self._eh_eid)

    def _scan_context(self) -> tuple[tuple, tuple, tuple]:
        """The fork kernel's means to scan the parser itself (``ek, ch, pk`` of
        :func:`grammar_fork_jobs_kernel`): the parser's closure tables and chart, and the
        parser-id tables (:meth:`_pid_context`)."""
        ek, ch = self.parser.kernel_context()
        return ek, ch, self._pid_context()

    def _pstate(self, pid: int) -> ParserState:
        """The parser state of parser id ``pid``."""
        return self.parser.state(int(self._pid_sid[pid]))

    @property
    def _eset_ids(self) -> dict[int, int]:
        """Expected set (terminal bits, ignored ones included) -> its id (a new dict)."""
        words = self._eset_words[: int(self._pcounts[1]), 0]
        return {int.from_bytes(w.astype("<u8").tobytes(), "little"): e for e, w in enumerate(words)}

    _PACK_MIN_STATES = 256
    """An eager lexer of at least this many states groups its states by their terminal rows when
    the constraint is built (every lexer packs the rows into words). A new expected set's table
    rows then cost a pass over the classes of states and one over the states: the column loop
    they replace read the terminal matrix state by state, ~11 ns a state for ~3 columns (~30 µs
    a new set on MaskBench's slowest eager lexers, a tenth of a first visit, and a file meets
    hundreds of sets), while packing and grouping cost once, at compile: ~0.1 ms for 256-1,000
    states, ~0.3 ms for 1,000-3,000, ~1.4 ms for 3,000-10,000 (those lexers' compile takes tens
    of ms)."""

    def _pack_term_words(self, n: int) -> None:
        """``_term_words`` for lexer states ``0 .. n - 1`` (rows up to ``_q_cap``; later states are
        written by :func:`lazy_state_rows_kernel` as a lazy lexer syncs)."""
        n_words = self._eset_words.shape[2]
        n_bytes = (len(self.ir.terminals) + 7) // 8
        packed = np.zeros((self._q_cap, 2, 8 * n_words), dtype=np.uint8)
        packed[:n, 0, :n_bytes] = np.packbits(self.lexer.live_terminals[:n], axis=1, bitorder="little")
        packed[:n, 1, :n_bytes] = np.packbits(self.lexer.accepting_terminals[:n], axis=1, bitorder="little")
        words = packed.view("<u8")  # byte k of a word holds terminals 8k .. 8k + 7
        self._term_words = words if words.dtype == np.uint64 else words.astype(np.uint64)
        if not self._lazy and n >= self._PACK_MIN_STATES:
            # an eager lexer's states are all here: group them by their rows (a JSON-schema lexer
            # has ~5x fewer distinct rows than states), so wide sets' rows cost a pass per class
            self._row_class, reps = row_classes_kernel(self._term_words, n)
            self._class_words = np.ascontiguousarray(self._term_words[reps])

    def _fill_scan(self, pid: int, q: int) -> None:
        col = self._acc_col[q]
        if self._scan_tab[pid, col] != -2:
            return
        ps = self._pstate(pid)
        real = self._acc_bits[q] & ps.expected
        r = -1
        if real:
            ps2 = self.parser.scan(ps, real)
            if ps2 is not None:
                r = self._parser_id(ps2)  # may grow (replace) _scan_tab
        self._scan_tab[pid, col] = r

    def _fill_merge(self, p1: int, p2: int) -> None:
        if (p1, p2) in self._merges:
            return
        merged = self.parser.merge([self._pstate(p1), self._pstate(p2)])
        r = self._parser_id(merged)
        self._merges[(p1, p2)] = r
        if 2 * len(self._merges) > self._mkeys.shape[0]:
            self._mkeys = np.full(4 * self._mkeys.shape[0], -1, dtype=np.int64)
            self._mvals = np.zeros(self._mkeys.shape[0], dtype=np.int64)
            for (a, b), v in self._merges.items():
                merge_insert(self._mkeys, self._mvals, a, b, v)
        else:
            merge_insert(self._mkeys, self._mvals, p1, p2, r)

    def _single_walk_bits(self, state: frozenset) -> np.ndarray | None:
        """The mask from one trie walk with all threads at once, or ``None`` (thread capacity hit)."""
        cap = int(self.max_walk_threads)
        if len(state) > cap:
            return None
        threads = list(state)
        init_p = np.array([self._parser_id(th[0]) for th in threads], dtype=np.int32)
        init_q = np.array([th[1] for th in threads], dtype=np.int32)
        init_ws = np.array([th[2] for th in threads], dtype=np.int32)
        init_b = np.array([th[3] for th in threads], dtype=np.int32)
        trie = self._trie
        tp, tq, tw, tb, cnt = self._walk_scratch(cap)
        resume = np.zeros(1, dtype=np.int64)
        words = np.zeros(bitmask_words(self.vocab.size), dtype=np.uint32)
        req_p, req_q = self._req_p, self._req_q
        self.walk_stats["walks"] += 1
        while True:
            self.walk_stats["rounds"] += 1
            nreq = grammar_mask_kernel(
                self._transitions, self._p_eset, self._live_tab, self._acc_tab, self._wsonly_tab,
                self._ws_live, self._acc_col, self._scan_tab, self._mkeys, self._mvals, self._ign_start, self._ign_bid,
                self._ign_isws, self._blocked_tab, self._bound, init_p, init_q, init_ws, init_b,
                tp, tq, tw, tb, cnt, resume,
                trie.node_byte, trie.node_depth, trie.subtree_end, trie.node_token_start,
                trie.token_ids, words, req_p, req_q,
            )
            if nreq < 0:
                return None
            if nreq == 0:
                return words
            # unknown parser transitions at one node: compute them, then resume at that node
            self._serve_kernel_requests(nreq)

    def _walk_scratch(self, cap: int) -> tuple:
        """Thread arrays (parser, lexer, whitespace, blocked: ``[trie depth + 1, cap]``) and per-depth
        counts shared by the walk kernels; reallocated in ``_scratch`` only when ``cap`` changes."""
        scratch = self._scratch
        if scratch is None or scratch[0].shape[1] != cap:
            shape = (self._trie.max_depth + 1, cap)
            scratch = self._scratch = (
                np.empty(shape, np.int32), np.empty(shape, np.int32), np.empty(shape, np.int32),
                np.empty(shape, np.int32), np.zeros(self._trie.max_depth + 1, np.int32),
            )
        return scratch

    def _serve_kernel_requests(self, nreq: int) -> None:
        """Fill the table entries a kernel stopped on (``nreq`` requests in ``_req_p``/``_req_q``):
        lazy-lexer rows (parser id -1), parser scans (lexer state >= 0) and merges (encoded < 0).
        Grows ``_transitions`` / the scan and merge tables; the kernel then resumes where it stopped."""
        req_p, req_q = self._req_p, self._req_q
        k = min(nreq, req_p.shape[0])
        reqs = set(zip(req_p[:k].tolist(), req_q[:k].tolist()))
        if self._lazy:
            rows = [q for pid, q in reqs if pid == -1]
            if rows:
                self._lazy_expand_rows(-2 - np.asarray(rows))
            reqs = {(pid, q) for pid, q in reqs if pid != -1}
        for pid, q in reqs:
            if q >= 0:
                self._fill_scan(pid, q)
            else:
                self._fill_merge(pid, -2 - q)

    def _lexeme_entry(self, eid: int, q: int, ws: int, b: int) -> tuple:
        """The lexeme walk of one thread context, cached: ``(words, nodes, states, ws)``.

        ``words``: tokens whose bytes all continue the current lexeme (some expected terminal stays
        live). ``nodes/states/ws``: the points where an expected terminal (or an ignored one) ends
        inside a longer token. None of it depends on the parser state beyond its expected-terminal
        set, so e.g. every JSON string body shares one entry per lexer state.
        """
        key = (eid, q, ws, b)
        hit = self._lexeme_cache.get(key)
        if hit is not None:
            return hit
        if self._lazy and q >= 0:
            # The lexer is one automaton over every terminal: inside a string value it tracks the
            # position of every string terminal that still matches (a hex id, a length-bounded name,
            # a pattern...) and their product is the state, though the parser expects one of them.
            # The walk only asks about the expected (and ignored) terminals, so it goes from the
            # state of those alone: far fewer states to build, shared by every context that expects
            # the same terminals. Its lexeme ends are restricted states too; their accepting
            # terminals among the expected ones, and the ignored ones' blocked bytes, are the same.
            # (Not at a lexeme start: a restricted start per expected set cost more first visits
            # than the product states it saved, measured on the whole folder.)
            qr = self._restricted_state(eid, q)
            if qr != q:
                self._lazy_sync()
                entry = self._lexeme_entry(eid, qr, ws, b)
                self._keep(self._lexeme_cache, key, entry)
                return entry
        if self._lazy and q >= 0:
            # Inside a counted loop (a string with a large maxLength) every position is a new
            # lexer state, and each would cost a walk of most of the vocabulary. States whose
            # counts read the next token's bytes alike share one walk, as long as the walk's
            # lexeme ends lie outside the loop (then they are the same states, whatever the count).
            q0 = self.lexer.horizon_representative(q, int(self._trie.max_depth))
            # a lazy state reads the next horizon's bytes as its representative does (same live /
            # accepting sets on the way), so both have one safe-text depth: searched from the
            # representative once (its rows built once) and kept
            search_q, depth_key = q0, (eid, q0, b)
            if q0 != q:
                self._lazy_sync()
                entry = self._lexeme_entry(eid, q0, ws, b)
                if not any(self.lexer.in_counted_loop(int(s_)) for s_ in entry[2].tolist() if s_ >= 0):
                    self._keep(self._lexeme_cache, key, entry)
                    return entry
        else:
            search_q, depth_key = (q if q >= 0 else 0), None
        self.walk_stats["lexeme_walks"] += 1
        sliced = self._slices
        forest = sliced.forest
        first_blocked = self._no_block if b < 0 else self._blocked[b]
        along = False  # whether the rows along the walk were built
        while True:
            depth = self._lazy_depths.get(depth_key) if depth_key is not None else None
            if depth is None:
                depth = self._safe_depth(eid, search_q, first_blocked)
                if depth_key is not None:
                    self._keep(self._lazy_depths, depth_key, depth)
            words = sliced.covered_words[depth].copy()
            bn, bs, bw = self._bnd
            nb = grammar_walk_kernel(
                self._transitions, self._live_tab[eid], self._acc_tab[eid], self._wsonly_tab[eid], ws, self._bound,
                q if q >= 0 else 0, first_blocked, sliced.walk_roots[depth],
                forest.node_byte, forest.node_depth, forest.subtree_end, forest.node_token_start,
                forest.token_ids, forest.max_depth, words, bn, bs, bw, self._forest_sub_bytes, self._self_loop,
            )
            if nb > bn.shape[0]:
                self._bnd = tuple(np.empty(2 * nb, np.int32) for _ in range(3))
                continue
            if self._lazy and nb and (bs[:nb] < 0).any():
                if not along:
                    # every row the walk can need, built at once (the walk may stop at the first
                    # missing row of each subtree: walking again a few bytes deeper each time
                    # cost a walk and a table sync per round)
                    along = True
                    self._lazy_expand_along(eid, q if q >= 0 else 0, sliced.walk_roots[depth])
                else:
                    self._lazy_expand_rows(bs[:nb][bs[:nb] < 0])
                continue
            break
        entry = (words, bn[:nb].copy(), bs[:nb].copy(), bw[:nb].copy())
        self._keep(self._lexeme_cache, key, entry)
        return entry

    def _keep(self, table: dict, key, value):
        """Store ``value`` under ``key`` in one of the per-constraint memo tables (the lexeme walks,
        depths, restrictions, candidate and forced bytes), dropping the oldest entry past
        ``limits.max_cached_masks``; returns ``value``."""
        if len(table) >= self.limits.max_cached_masks:
            table.pop(next(iter(table)))
        table[key] = value
        return value

    def _restricted_state(self, eid: int, q: int) -> int:
        """The lazy lexer state of ``q``'s configurations of expected set ``eid``'s terminals only
        (see :meth:`LazyLexerDFA.restricted`); ``q`` when that is all of them or none. Memoized
        per (set, state); may create a lexer state (not synced)."""
        got = self._restrict_memo.get((eid, q))
        if got is None:
            mask = self._eset_masks.get(eid)
            if mask is None:
                mask = self._eset_masks[eid] = np.zeros(len(self.ir.terminals), dtype=bool)
                mask[self._eset_cols[self._eset_ptr[eid]:self._eset_ptr[eid + 1]]] = True
            got = self.lexer.restricted(q, mask)
            if got < 0:
                got = q
            self._keep(self._restrict_memo, (eid, q), got)
        return got

    _SAFE_DEPTH_MAX_SET = 256
    """Most lexer states one level of a lazy lexer's safe-text search may hold (beyond, it stops
    there)."""
    _SAFE_DEPTH_MAX_SET_EAGER = 1024
    """The same bound for an eager lexer. Larger: what its search reads is kept per lexer state and
    answers every later expected set (:meth:`_keep_safe_reach`), so a deeper search is paid once.
    The opening quote of a key in JsonSchemaStore detekt (541 terminals: keys in schema order,
    plus "any other key") reads 4,076 states in 16 characters: at 256 the search stopped at 7
    characters and every key position (a new expected set) walked the tokens of 8-16 characters
    through those states, ~200 µs a time; at 1,024 one search of ~0.7 ms reaches 16 and the walks
    skip them (that file and Github_ultra o80235, three alternated runs: fills over 132 µs
    2,976 -> 1,122; 4,096 measured no better)."""
    _SAFE_DEPTH_MAX_NEW_STATES = 512
    """Most lazy lexer states one safe-text search may create (beyond, it answers 0), until a
    search of the constraint has gone past it: see ``_SAFE_DEPTH_SHRINK``."""
    _SAFE_DEPTH_SHRINK = 4
    """Each search that goes past its bound divides the constraint's bound by this, down to
    ``_SAFE_DEPTH_MIN_NEW_STATES``. A lexer that blows up on arbitrary text does so from most of
    its states: on MaskBench's Snowplow sp_338-sp_345, ~40 searches each created 512+ states
    (~6 ms apiece) and every one answered 0 (the 30 lazy files with the most slow fills,
    alternated in process, two runs: fill time 5.7-5.8 -> 4.7-4.9 s, fills over 132 µs -2%)."""
    _SAFE_DEPTH_MIN_NEW_STATES = 64

    def _new_depth_scratch(self, n_q: int) -> tuple[np.ndarray, ...]:
        """Scratch arrays of :func:`safe_depth_kernel` for lexers of up to ``n_q`` states."""
        return (np.zeros(8 * n_q, np.int64), np.empty(n_q, np.int32), np.empty(n_q, np.int32),
                np.empty(8 * n_q, np.int32), np.empty(8 * n_q, np.int32), np.empty(9 * n_q, np.int32))

    def _safe_depth(self, eid: int, q: int, first_blocked: np.ndarray) -> int:
        """Characters of any safe text lexer state ``q`` reads while some terminal of expected set
        ``eid`` stays live (at most the slices' ``max_chars``; 0 if a safe first byte is blocked;
        builds lazy rows as needed)."""
        if first_blocked is not self._no_block and (first_blocked & SAFE_FIRST).any():
            return 0
        max_chars = self._slices.max_chars
        reach = self._safe_reach.get(q)
        if reach is not None:
            # the states safe text reads from q, level by level, are the same for every expected
            # set: the depth is the first level holding one that fails this set, else the cap
            return int(reach_depth_kernel(self._live_tab[eid], self._wsonly_tab[eid], *reach))
        step_b, step_u, cont_ptr, cont_b = self._safe_steps
        built = self.lexer.n_states
        while True:
            n_q = self._transitions.shape[0]
            if self._depth_scratch[1].shape[0] < n_q:
                self._depth_scratch = self._new_depth_scratch(max(n_q, 2 * self._depth_scratch[1].shape[0]))
            mark, cur, nxt, stk_x, stk_u, missing = self._depth_scratch
            reached, n_reached = self._reach_buf
            max_set = self._SAFE_DEPTH_MAX_SET if self._lazy else self._SAFE_DEPTH_MAX_SET_EAGER
            depth = safe_depth_kernel(
                self._transitions, self._live_tab[eid], self._wsonly_tab[eid], q, max_chars, max_set,
                step_b, step_u, cont_ptr, cont_b, UTF8_NEXT, mark, self._depth_stamp,
                cur, nxt, stk_x, stk_u, missing, reached, n_reached,
            )
            if n_reached[1] >= 0 and not self._lazy and n_reached[0] >= 0:
                # the answer did not depend on the expected set (full depth, or the search was cut
                # short where a level grew past _SAFE_DEPTH_MAX_SET: the value strings of large
                # lexers, where one search costs ~200 µs and each new expected set asked again)
                self._keep_safe_reach(q, reached[: n_reached[0]], int(n_reached[1]))
            if depth >= 0:
                return depth
            if self.lexer.n_states - built > self._search_budget:
                # a lazy lexer that blows up on arbitrary text: let the walk go by the tokens, and
                # spend less on the next search
                budget = self._search_budget
                shrunk = max(self._SAFE_DEPTH_MIN_NEW_STATES, budget // self._SAFE_DEPTH_SHRINK)
                self._search_budget = min(budget, shrunk)
                return 0
            # every row the level needs, built at once (one table sync, not one per row)
            self._lazy_expand_rows(-2 - missing[: -2 - depth], self._LAZY_DEPTH_AHEAD, self._LAZY_DEPTH_AHEAD_STATES)

    def _keep_safe_reach(self, q: int, reached: np.ndarray, cap: int) -> None:
        """Keep what a safe-text search from eager lexer state ``q`` read (the kernel's ``reached``
        list; its answer ``cap`` did not depend on the expected set): each state once, with the
        first level it was read at, and the cap."""
        n_q = self._transitions.shape[0]
        if self._reach_first.shape[0] < n_q:
            self._reach_first = np.full(n_q, -1, np.int64)
        states, levels = safe_reach_kernel(reached, reached.shape[0], self._reach_first)
        self._keep(self._safe_reach, q, (states, levels, cap))

    def _split_walk_bits(self, state: frozenset) -> np.ndarray | None:
        """The mask as the union over threads of (cached lexeme walk) + (walks past lexeme ends).

        Exact: a state's language is the union of its threads' languages, and a thread's tokens
        either stay inside the current lexeme (the cached walk) or pass a lexeme end at some trie
        node, after which the forked threads walk that node's subtree
        (:func:`grammar_fork_jobs_kernel`). ``None``: thread capacity hit (caller falls back).
        """
        words = None
        # Lexeme walks already OR-ed in (threads often share one), by identity; the dict keeps each
        # array alive, so an id cannot be reused by an entry the cache evicts during this loop.
        seen: dict[int, np.ndarray] = {}
        job_n, job_pid, job_len, job_q, job_w = [], [], [], [], []
        parser_id, entry_of = self._parser_id, self._lexeme_entry
        for ps, q, ws, b in state:
            pid = parser_id(ps)  # may grow (replace) _p_eset
            lw, nodes, qs, wss = entry_of(int(self._p_eset[pid]), q, ws, b)
            if id(lw) not in seen:
                seen[id(lw)] = lw
                if words is None:
                    words = lw.copy()
                else:
                    np.bitwise_or(words, lw, out=words)
            if nodes.shape[0]:
                job_n.append(nodes)
                job_pid.append(pid)
                job_len.append(nodes.shape[0])
                job_q.append(qs)
                job_w.append(wss)
        if words is None:
            words = np.zeros(bitmask_words(self.vocab.size), dtype=np.uint32)
        if not job_n:
            return words
        if len(job_n) == 1:  # one thread with lexeme ends (most first visits): its entry's arrays
            jn, jq, jw = job_n[0], job_q[0], job_w[0]
            jp = np.full(job_len[0], job_pid[0], dtype=np.int32)
        else:
            jn = np.concatenate(job_n)
            jp = np.repeat(np.asarray(job_pid, dtype=np.int32), job_len)
            jq = np.concatenate(job_q)
            jw = np.concatenate(job_w)
        cap = int(self.max_walk_threads)
        trie = self._slices.forest  # the lexeme walks' boundary nodes are forest nodes
        tp, tq, tw, tb, cnt = self._walk_scratch(cap)
        resume = self._resume2
        resume[:] = 0
        req_p, req_q = self._req_p, self._req_q
        self.walk_stats["walks"] += 1
        while True:
            self.walk_stats["rounds"] += 1
            nreq = grammar_fork_jobs_kernel(
                self._transitions, self._p_eset, self._live_tab, self._acc_tab, self._wsonly_tab,
                self._ws_live, self._acc_col, self._scan_tab, self._mkeys, self._mvals, self._ign_start, self._ign_bid,
                self._ign_isws, self._blocked_tab, self._bound, jn, jp, jq, jw,
                tp, tq, tw, tb, cnt, resume,
                trie.node_byte, trie.node_depth, trie.subtree_end, trie.node_token_start,
                trie.token_ids, words, req_p, req_q, *self._scan_context(),
            )
            if nreq < 0:
                return None
            if nreq == 0:
                return words
            self._serve_kernel_requests(nreq)

    # ------------------------------------------------------------------ thread logic
    def _expected(self, ps: ParserState) -> int:
        return ps.expected | self._ignore_bits

    def _state_arrays(self, expected: int):
        arrs = self._arrays.get(expected)
        if arrs is None:
            # only the expected terminals' columns are read (usually a handful of the lexer's)
            cols = _bit_indices(expected)
            not_ws = [i for i in cols if not (self._ws_bits >> i) & 1]
            live = self.lexer.live_terminals
            live_ok = live[:, cols].any(axis=1)
            accept_ok = self.lexer.accepting_terminals[:, cols].any(axis=1)
            ws_only = live_ok & ~live[:, not_ws].any(axis=1)
            arrs = (np.ascontiguousarray(live_ok), np.ascontiguousarray(accept_ok), np.ascontiguousarray(ws_only))
            self._arrays[expected] = arrs
        return arrs

    def _blocked_id(self, q: int, t: int) -> int:
        key = (q, t)
        bid = self._blocked_ids.get(key)
        if bid is None:
            row = self._transitions[q]
            live_t = self.lexer.live_terminals[:, t]
            blocked = (row >= 0) & live_t[np.maximum(row, 0)]
            bid = len(self._blocked)
            self._blocked.append(np.ascontiguousarray(blocked))
            self._blocked_ids[key] = bid
        return bid

    def _end_lexeme(self, ps: ParserState, q: int, ws: int) -> tuple[Thread, ...]:
        """Threads at the boundary after a lexeme ending in lexer state ``q`` (``ws``: ignored bytes)."""
        acc = self._acc_bits[q]
        ign_ws = acc & self._ws_bits
        if not ign_ws:
            ws = 0  # the count is irrelevant: normalise for the memo
        key = (ps, q, ws)
        out = self._end_memo.get(key)
        if out is not None:
            return out
        res = []
        if acc & ps.expected:
            # through the scan table: the fork kernel fills it without filling the parser's memo
            if q >= len(self._rows):
                self._lazy_sync()  # a lazy state's scan-table column is written by the sync
            pid = self._parser_id(ps)
            self._fill_scan(pid, q)
            r = int(self._scan_tab[pid, self._acc_col[q]])
            if r >= 0:
                res.append((self._pstate(r), -1, 0, -1))
        ign = acc & self._ignore_bits
        while ign:
            low = ign & -ign
            ign ^= low
            t = low.bit_length() - 1
            if low & self._ws_bits:
                if ws <= self._bound:
                    res.append((ps, -1, ws, self._blocked_id(q, t)))
            else:
                res.append((ps, -1, 0, self._blocked_id(q, t)))
        out = tuple(res)
        self._end_memo[key] = out
        return out

    def _step(self, thread: Thread, byte: int, out: set) -> None:
        ps, q, ws, after = thread
        if after >= 0 and self._blocked[after][byte]:
            return
        q0 = q if q >= 0 else 0
        row = self._rows[q0]
        if row is None:  # a state's row is copied out when first stepped
            row = self._rows[q0] = array(_I32, self._transitions[q0].tobytes())
        q2 = row[byte]
        if q2 == -2:  # lazy lexer: row not built yet
            self._lazy_ensure(q0, 1)
            self._lazy_sync()
            row = self._rows[q0] = array(_I32, self._transitions[q0].tobytes())
            q2 = row[byte]
        if q2 < 0:
            return
        expected = self._expected(ps)
        live = self._live_bits[q2] & expected
        if not live:
            return
        if live & self._ws_bits:
            ws2 = min(ws + 1, self._bound + 1)
            if ws2 > self._bound and not (live & ~self._ws_bits):
                return
        else:
            ws2 = 0  # no ignored-whitespace terminal can end this lexeme: the count is irrelevant
        if q < 0 and self._lazy and self.restrict_steps:
            # the thread goes on in the state of its expected (and ignored) terminals only: the rest
            # can never end its lexeme, and their configurations multiplied the states a lexeme
            # builds (every string terminal that still matches, at its own position). Once, at the
            # lexeme's first byte: a restricted state's successors hold those terminals' alone
            pid = self._parser_id(ps)  # may grow (replace) _p_eset: read it after
            q3 = self._restricted_state(int(self._p_eset[pid]), q2)
            if q3 != q2:
                self._lazy_sync()
                q2 = q3
        out.add((ps, q2, ws2, -1))
        if self._acc_bits[q2] & expected:
            out.update(self._end_lexeme(ps, q2, ws2))

    def _merge_threads(self, threads: set) -> set:
        """Threads that differ only in their parser state become one thread (item-set union)."""
        if len(threads) < 2:
            return threads
        groups: dict[tuple, list] = {}
        for ps, q, ws, after in threads:
            groups.setdefault((q, ws, after), []).append(ps)
        if len(groups) == len(threads):
            return threads
        merge = self.parser.merge
        return {(merge(pss), q, ws, after) for (q, ws, after), pss in groups.items()}

    # ------------------------------------------------------------------ CompiledConstraint
    def initial_state(self) -> frozenset:
        return self._initial

    def advance_bytes(self, state: frozenset, data: bytes) -> frozenset | None:
        threads = state
        for byte in data:
            nxt: set = set()
            for th in threads:
                self._step(th, byte, nxt)
            if not nxt:
                return None
            nxt = self._merge_threads(nxt)
            if len(nxt) > self.limits.max_lexer_threads:
                raise LimitExceededError(
                    "max_lexer_threads",
                    self.limits.max_lexer_threads,
                    f"grammar {self.source}: {len(nxt)} simultaneous lexing threads",
                )
            threads = nxt
        return threads if isinstance(threads, frozenset) else frozenset(threads)

    def literals(self) -> tuple[bytes, ...]:
        """The grammar's literal terminals (case-sensitive ones, 2+ bytes), then ``literal_hints``
        (set by the JSON-schema compiler: property names and string enum values, JSON-quoted)."""
        own = [t.literal.encode("utf-8") for t in self.ir.terminals
               if t.literal and not t.ignore_case and len(t.literal.encode("utf-8")) >= 2]
        return tuple(dict.fromkeys(own + list(getattr(self, "literal_hints", ()))))

    def candidate_bytes(self, state: frozenset) -> list[int]:
        """Bytes on which some thread of ``state`` keeps a terminal its parser state expects live
        and is not blocked by the ignored lexeme before it: a superset of the next bytes (the
        whitespace bound and the parser's scan at a lexeme end are left to :meth:`advance_bytes`).
        Not every byte of the lexer row: inside a key the JSON string terminal's row is nearly all
        bytes, which the distinct-keys search would probe one by one."""
        hit = self._cand_cache.get(state)
        if hit is not None:
            return hit
        if self._lazy:
            for _, q, _, _ in state:
                self._lazy_ensure(q if q >= 0 else 0, 1)
            self._lazy_sync()
        ok = np.zeros(256, dtype=bool)
        for ps, q, _ws, after in state:
            row = self._transitions[q if q >= 0 else 0]
            pid = self._parser_id(ps)  # first: a new parser state may grow the tables read below
            live = self._live_tab[self._p_eset[pid]]
            hit = (row >= 0) & live[np.maximum(row, 0)]
            if after >= 0:
                hit &= ~self._blocked[after]
            ok |= hit
        return self._keep(self._cand_cache, state, np.flatnonzero(ok).tolist())

    def next_bytes(self, state: frozenset, exclude: bytes = b"", stop_after: int = 256) -> list[int]:
        """The byte values (not in ``exclude``) that can continue ``state``; at most ``stop_after``."""
        out = []
        for byte in self.candidate_bytes(state):
            if byte not in exclude and self.advance_bytes(state, bytes((byte,))) is not None:
                out.append(byte)
                if len(out) >= stop_after:
                    break
        return out

    def _next_byte(self, state: frozenset) -> tuple[int, frozenset] | None:
        """The only byte that can continue ``state`` and the state after it; None if zero or several."""
        found: tuple[int, frozenset] | None = None
        for byte in self.candidate_bytes(state):
            nxt = self.advance_bytes(state, bytes((byte,)))
            if nxt is not None:
                if found is not None:
                    return None  # a second byte continues: nothing is forced
                found = (byte, nxt)
        return found

    def forced_bytes(self, state: frozenset) -> bytes:
        """Bytes every continuation of ``state`` starts with (up to 64; cached per state).

        A byte is forced when the output cannot end here and exactly one byte value keeps some
        thread alive. Candidates are the bytes with a lexer transition from some thread; each is
        checked with :meth:`advance_bytes`, stopping at the second survivor.
        """
        hit = self._forced_cache.get(state)
        if hit is not None:
            return hit
        out = bytearray()
        cur = state
        while len(out) < 64 and not self.is_accepting(cur):
            step = self._next_byte(cur)
            if step is None:
                break
            out.append(step[0])
            cur = step[1]
        return self._keep(self._forced_cache, state, bytes(out))

    def is_accepting(self, state: frozenset) -> bool:
        for ps, q, ws, _ in state:
            if q < 0:
                if ps.can_finish:
                    return True
            elif self._acc_bits[q] & self._expected(ps):
                if any(t[0].can_finish for t in self._end_lexeme(ps, q, ws)):
                    return True
        return False

    def compute_token_bits(self, state: frozenset) -> np.ndarray:
        """The mask of ``state`` (uncached): one kernel walk of the trie with all threads at once;
        :meth:`reference_token_bits` when more than ``max_walk_threads`` threads meet at a node."""
        words = self._split_walk_bits(state) if self.split_walks else self._single_walk_bits(state)
        if words is None:
            self.walk_stats["fallbacks"] += 1
            words = self.reference_token_bits(state)
        return words

    def reference_token_bits(self, state: frozenset) -> np.ndarray:
        """Run the trie walk per thread, returning to Python at every boundary point (uncached).
        It walks every node (the kernel's self-loop subtree shortcut is off): the slow reference
        the tests hold the cached split walk to."""
        trie = self._trie
        words = np.zeros(bitmask_words(self.vocab.size), dtype=np.uint32)
        work: dict[Thread, list[np.ndarray]] = {th: [self._root0] for th in state}
        node_depth = trie.node_depth
        while work:
            ctx, root_list = work.popitem()
            roots = root_list[0] if len(root_list) == 1 else np.unique(np.concatenate(root_list))
            ps, q, ws, after = ctx
            first_blocked = self._no_block if after < 0 else self._blocked[after]
            live_ok, accept_ok, ws_only = self._state_arrays(self._expected(ps))
            while True:
                bn, bs, bw = self._bnd
                nb = grammar_walk_kernel(
                    self._transitions, live_ok, accept_ok, ws_only, ws, self._bound,
                    q if q >= 0 else 0, first_blocked, roots,
                    trie.node_byte, node_depth, trie.subtree_end, trie.node_token_start,
                    trie.token_ids, trie.max_depth, words, bn, bs, bw, self._sub_bytes,
                    np.zeros((self._transitions.shape[0], 4), dtype=np.uint64),  # no subtree shortcut here
                )
                if nb > bn.shape[0]:
                    self._bnd = tuple(np.empty(2 * nb, np.int32) for _ in range(3))
                    continue
                if self._lazy and nb and (bs[:nb] < 0).any():
                    # rows missing: build them and walk again (bits already set are still right)
                    self._lazy_expand_rows(bs[:nb][bs[:nb] < 0])
                    first_blocked = self._no_block if after < 0 else self._blocked[after]
                    live_ok, accept_ok, ws_only = self._state_arrays(self._expected(ps))
                    continue
                break
            if nb == 0:
                continue
            nodes = bn[:nb].copy()
            qs = bs[:nb]
            wss = bw[:nb]
            uq, inv = np.unique(qs, return_inverse=True)
            for k, q2 in enumerate(uq.tolist()):
                sel = inv == k
                sel_nodes = nodes[sel]
                if self._acc_bits[q2] & self._ws_bits:
                    sel_ws = wss[sel]
                    for w in np.unique(sel_ws).tolist():
                        sub = sel_nodes[sel_ws == w]
                        for th in self._end_lexeme(ps, q2, w):
                            work.setdefault(th, []).append(sub)
                else:
                    for th in self._end_lexeme(ps, q2, 0):
                        work.setdefault(th, []).append(sel_nodes)
        return words

    def token_bits(self, state: frozenset) -> np.ndarray:
        """Cached, read-only uint32 words of the non-EOS tokens allowed in ``state``."""
        return self._mask_cache.get(state, self.compute_token_bits)

    def fill_token_bits(self, state: frozenset, words: np.ndarray) -> None:
        np.bitwise_or(words, self.token_bits(state), out=words)

    def clear_cache(self) -> None:
        """Drop cached masks (results are unchanged)."""
        self._mask_cache.clear()
        self._cand_cache.clear()


_EAGER_LEXER_STATES = 50_000
_EAGER_LEXER_NFA_STATES = 150_000
"""Lexers whose eager DFA exceeds this many states (or ``Limits.max_dfa_states`` if lower), or
whose NFA exceeds ``_EAGER_LEXER_NFA_STATES``, are built lazily (:class:`~constrain.regex.LazyLexerDFA`).
The eager minimized DFA gives the fastest masks (a lazy lexer builds rows in Python during the
first masks), so only lexers that do not fit go lazy."""
_EAGER_LEXER_WORK = 1_500_000
"""The eager subset construction gives up (and the lexer is built lazily) once its subsets hold
this many NFA states in all: on MaskBench's sample the lexers built eagerly need at most about a
million, and one that blows up past 50,000 states (Github_easy o5195: 2,095 NFA states) spent
0.84 s reaching that bound."""
_EAGER_LEXER_MAX_REPEAT = 128
"""A lexer with a repetition bound above this is built lazily, with the repetition as a counter:
minimizing the expanded DFA takes one refinement round per repeated position (a JSON string's
``maxLength: 1024`` cost ~20 s of compile), while the lazy lexer builds only visited states."""


def _check_terminal(ir: GrammarIR, text, name: str, no_string: bool, empty: bool) -> None:
    if no_string:
        line, col = _locate(text, name)
        raise GrammarSyntaxError(f"terminal {name} matches no string", source=ir.source, line=line or 1, column=col or 1)
    if empty:
        line, col = _locate(text, name)
        raise UnsupportedFeatureError(
            f"terminal {name} matching the empty string", source=ir.source, line=line or 1, column=col
        )


def _check_terminals_alone(ir: GrammarIR, text, limits: Limits) -> None:
    """Compile each terminal alone and raise the located error of the first bad one (slow path)."""
    from constrain.regex import regex_to_dfa

    for t in ir.terminals:
        if t.dfa is not None:
            continue
        try:
            regex_to_dfa(t.regex, limits=limits, ignore_case=t.ignore_case, dotall=t.dotall)
        except (RegexSyntaxError, UnsupportedFeatureError) as exc:
            line, col = _locate(text, t.name)
            raise UnsupportedFeatureError(
                f"terminal {t.name} /{t.regex}/: {exc}", source=ir.source, line=line or 1, column=col
            ) from None


def eager_lexer_limits(limits: Limits) -> Limits:
    """The limits the eager lexer is attempted under (its patterns are parsed, and cached, under
    them: a caller that parses them beforehand with these shares the parses)."""
    return replace(limits, max_dfa_states=min(limits.max_dfa_states, _EAGER_LEXER_STATES))


def _compile_terminals(ir: GrammarIR, text, limits: Limits):
    """The combined lexer DFA of all terminals, and the bit set of whitespace-only terminals.

    The per-terminal checks (matches nothing, matches the empty string, only whitespace bytes) are
    read off the combined DFA: a state live for terminal ``i`` is reached only by prefixes of
    ``i``'s strings, so ``i`` uses a non-whitespace byte iff some edge on such a byte joins two
    states live for ``i``. A regex error is located by compiling the terminals one by one.
    """
    from constrain.regex import terminals_to_lazy_dfa
    from constrain.regex.dfa import _lexer_dfa, lazy_terminal_info

    patterns = [(t.pattern, {"ignore_case": t.ignore_case, "dotall": t.dotall}) for t in ir.terminals]
    eager_limits = eager_lexer_limits(limits)
    try:
        entries = [(t.pattern, t.ignore_case, t.dotall) for t in ir.terminals]
        lexer = _lexer_dfa(entries, eager_limits, max_work=_EAGER_LEXER_WORK,
                           max_nfa_states=_EAGER_LEXER_NFA_STATES, max_repeat=_EAGER_LEXER_MAX_REPEAT)
    except (RegexSyntaxError, UnsupportedFeatureError):
        _check_terminals_alone(ir, text, limits)
        raise
    except LimitExceededError as exc:
        # Too big to build eagerly: states on demand, large repetitions as counters.
        if exc.field not in ("max_dfa_states", "max_nfa_states", "max_repeat_count"):
            raise
        lexer = terminals_to_lazy_dfa(patterns, limits=limits)
        no_string, empty, non_ws_use = lazy_terminal_info(lexer)
        ws_bits = 0
        for i, t in enumerate(ir.terminals):
            _check_terminal(ir, text, t.name, no_string[i], empty[i])
            if not non_ws_use[i]:
                ws_bits |= 1 << i
        return lexer, ws_bits
    acc = lexer.accepting_terminals
    no_string = ~acc.any(axis=0)
    empty = acc[lexer.start]
    if lexer.byte_class is None:
        uses_non_ws = uses_bytes_kernel(lexer.transitions, lexer.live_terminals, _NON_WS)
    else:  # one column per byte class; a class is non-whitespace if one of its bytes is
        cls = lexer.byte_class
        non_ws_cls = np.zeros(int(cls.max()) + 1, dtype=bool)
        np.logical_or.at(non_ws_cls, cls, _NON_WS)
        uses_non_ws = uses_bytes_kernel(class_columns(lexer.transitions, cls), lexer.live_terminals, non_ws_cls)
    ws_bits = 0
    for i, t in enumerate(ir.terminals):
        _check_terminal(ir, text, t.name, bool(no_string[i]), bool(empty[i]))
        if not uses_non_ws[i]:
            ws_bits |= 1 << i
    return lexer, ws_bits


def _external_terminal(name: str, value, limits: Limits):
    """The byte DFA of a ``terminals=`` entry: strings (one of them, exactly), a regex, or an automaton."""
    from constrain.constraints.choice import choice_dfa
    from constrain.regex import regex_to_dfa

    if isinstance(value, str):
        return regex_to_dfa(value, limits=limits)
    if getattr(value, "excluded", None) is not None:  # an ExcludingSparseDFA: a lexer may never build its automaton
        return value
    dfa = getattr(value, "dfa", value)  # a DFAConstraint / SparseDFAConstraint, or the DFA itself
    if hasattr(dfa, "n_states") and hasattr(dfa, "accepting"):
        return dfa
    try:
        phrases = list(value)
    except TypeError:
        raise TypeError(f"terminals[{name!r}]: expected strings, a regex, or a byte DFA, got {type(value).__name__}") from None
    if any(p in ("", b"") for p in phrases):
        raise InputError(f"terminals[{name!r}]: a terminal cannot match the empty string")
    return choice_dfa(phrases)


@without_gc
def compile_grammar(
    grammar: str | Path,
    vocab: Vocabulary,
    start: str = "start",
    limits: Limits = DEFAULT_LIMITS,
    terminals: dict | None = None,
) -> GrammarConstraint:
    """Compile a Lark grammar (text, or a path to a ``.lark`` file) into a constraint over ``vocab``.

    See the module docstring for the exact language.

    ``terminals`` gives the language of terminals the grammar ``%declare``s, by name: an iterable
    of strings (the terminal matches exactly one of them: a catalog of 100k+ entries compiles in
    about a second, through :func:`~constrain.constraints.choice.choice_dfa`), a regex string, or a
    byte DFA / DFA-based constraint (e.g. ``compile_choice(...)``). Example::

        compile_grammar('start: "Buy " PRODUCT "."\n%declare PRODUCT', vocab,
                        terminals={"PRODUCT": catalog})

    Raises
    ------
    GrammarSyntaxError
        Lark rejects the grammar (message has ``source:line:column``).
    UnsupportedFeatureError
        A feature whose language we cannot reproduce exactly (see module docstring).
    LimitExceededError
        The lexer DFA is over ``limits.max_dfa_states`` (or another regex bound).
    """
    if not isinstance(vocab, Vocabulary):
        raise TypeError(f"vocab must be a constrain.Vocabulary, got {type(vocab).__name__}")
    text, source = read_grammar_text(grammar)
    external = external_terminals(terminals, limits)
    ir = lark_to_ir(text, start=start, source=source, external=external)
    return grammar_from_ir(ir, text, vocab, limits)


def external_terminals(terminals: dict | None, limits: Limits = DEFAULT_LIMITS) -> dict:
    """``compile_grammar``'s ``terminals=`` entries as byte DFAs, by name."""
    return {name: _external_terminal(name, v, limits) for name, v in (terminals or {}).items()}


def grammar_from_ir(ir: GrammarIR, text, vocab: Vocabulary, limits: Limits = DEFAULT_LIMITS) -> GrammarConstraint:
    """The constraint of a grammar already in IR form (``text``: its Lark text, or a function that
    makes it, read only to locate an error); what :func:`compile_grammar` does after reading the text."""
    if not isinstance(vocab, Vocabulary):
        raise TypeError(f"vocab must be a constrain.Vocabulary, got {type(vocab).__name__}")
    source = ir.source
    if len(ir.rules) > limits.max_grammar_rules:
        raise LimitExceededError(
            "max_grammar_rules", limits.max_grammar_rules, f"{source}: {len(ir.rules)} rules after EBNF expansion"
        )
    if not ir.terminals:
        raise InputError(f"{source}: the grammar has no terminals (it only matches the empty string)")
    lexer, ws_bits = _compile_terminals(ir, text, limits)
    return GrammarConstraint(ir, lexer, ws_bits, vocab, limits=limits)
