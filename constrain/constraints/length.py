"""Length bounds that end gracefully: max/min tokens, characters, words, on DFA and grammar constraints.

``max_length(c, max_tokens=50)`` allows a token only if, after it, the inner constraint can still
reach acceptance within the remaining budget, so a masked walk never overruns the budget and never
strands: it always ends accepting (a JSON document is never cut mid-way by ``max_new_tokens``).
``min_length`` forbids EOS until the counts are reached and masks out tokens after which the minimum
can no longer be reached.

Units
    tokens: non-EOS tokens accepted through ``advance_token`` (raw ``advance_bytes`` counts none);
    EOS itself is not counted, so pass ``max_tokens=N - 1`` to fit EOS into N generated tokens.
    chars: Unicode code points (UTF-8 bytes that are not continuation bytes 0x80-0xBF).
    words: maximal runs of bytes other than ASCII whitespace (space, \\t, \\n, \\r, \\v, \\f).

DFA-based inner constraints (regex, choice, keywords, materialized intersections): exact
    The completion graph is built on *tokens*, not bytes: its nodes are (DFA state, inside-a-word
    flag, counts capped at the min bounds), and its edges are the vocabulary's tokens (one trie walk
    per DFA state gives every token's end state), weighted (1 token, its chars, its new words). A
    reverse Dijkstra from the accepting nodes gives, per node, the lexicographically least
    (tokens, chars, words) to finish, with the bounded dimension first. A token is allowed iff the
    counts after it plus that witness fit every max bound.

    With one max bound this is exact (the shortest completion in that unit). With several max bounds
    at once, a token is allowed when one of the witnesses (one per bounded unit, that unit first)
    fits all bounds: never stranding (the witness's next token is again allowed), but a token whose
    only fitting completions are trade-offs between the units may be refused.

Grammar and JSON-schema inner constraints (:class:`~constrain.grammar.compile.GrammarConstraint`)
    The shortest completion of a grammar state is computed exactly over bytes, code points or words
    (:mod:`constrain.grammar.completion`: per-terminal lexer distances, per-nonterminal minimal
    lengths, a backward pass over the Earley chart). The mask is the grammar's mask restricted to
    the tokens after which ``counts + shortest completion`` fits every max bound; the per-token
    costs come from one vectorized trie walk per lexing thread (tokens that may end a lexeme before
    their last byte are advanced exactly).

    * ``max_chars`` alone / ``max_words`` alone: exact (a token is refused iff no completion after
      it fits).
    * ``max_tokens``: the token count of a completion is bounded by its **byte** count, so a token
      is allowed iff ``tokens used + 1 + shortest completion in bytes <= max_tokens``. Sound, and it
      never strands provided the bytes of the shortest completions have single-byte tokens (check
      ``vocab.single_byte_tokens``; SmolLM2 has every printable ASCII byte). It is conservative: a
      token is refused whenever the shortest *byte* completion after it does not fit even though
      fewer, longer tokens would (``{"a": [[`` then ``]]}`` is 3 bytes, maybe 1 token). In
      practice the budget closes a JSON document about (bytes of the closing)/(1 token) early.
    * Several max units at once: every unit is bounded by the byte count of one shortest byte
      witness (chars, words, tokens <= bytes): sound, never strands, conservative.
    * ``min_*`` bounds: EOS is forbidden until reached; whether the minimum is still *reachable*
      is not checked (a grammar whose remaining language only has short sentences, e.g. a fixed
      JSON schema, can strand a walk under a large ``min_chars``).
    * The whitespace bound ``Limits.max_consecutive_whitespace`` is not modelled in the shortest
      completion (see :mod:`constrain.grammar.completion`).

Grammar x DFA intersections (:class:`~constrain.constraints.combine.LiveIntersectConstraint`,
    e.g. a JSON schema whose text must mention a keyword)
    As for grammars, with the shortest completion taken over the product of the unit and the DFA:
    the completion must also take the DFA to acceptance (``max_chars`` of a JSON object that must
    still write "waterproof" counts those ten characters). ``intersect(max_length(a, ...), b)``
    builds exactly this (the bounds are pulled out of the intersection).

Not supported
    Lazy intersections (:class:`~constrain.constraints.combine.IntersectConstraint`: two grammars,
    or an exact form over the limits) and other constraints raise :class:`UnsupportedFeatureError`.
    For DFA constraints the graph has one node per (DFA state, flag, capped counts); more than
    ``Limits.max_dfa_states`` nodes raise ``LimitExceededError``, and precomputation costs one trie
    walk per DFA state (large choice automata are expensive: about a millisecond per state on a 49k
    vocabulary).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from constrain.compiled import CompiledConstraint, MaskCache
from constrain.constraints.sparse_dfa import is_dfa_based, token_ends
from constrain.errors import InputError, LimitExceededError, UnsupportedFeatureError
from constrain.kernels.bitmask import bitmask_words
from constrain.limits import DEFAULT_LIMITS, Limits

__all__ = ["max_length", "min_length", "length_bounds", "LengthConstraint", "LengthBounds"]

_WS = frozenset(b" \t\n\r\x0b\x0c")
_INF = float("inf")


@dataclass(frozen=True)
class LengthBounds:
    """Inclusive bounds; ``None`` = unbounded."""

    min_tokens: int | None = None
    max_tokens: int | None = None
    min_chars: int | None = None
    max_chars: int | None = None
    min_words: int | None = None
    max_words: int | None = None

    def merged(self, other: LengthBounds) -> LengthBounds:
        """The tighter of both bounds in every field."""
        def pick(a, b, f):
            return b if a is None else a if b is None else f(a, b)

        return LengthBounds(
            pick(self.min_tokens, other.min_tokens, max), pick(self.max_tokens, other.max_tokens, min),
            pick(self.min_chars, other.min_chars, max), pick(self.max_chars, other.max_chars, min),
            pick(self.min_words, other.min_words, max), pick(self.max_words, other.max_words, min),
        )


def _token_stats(vocab):
    """Per token: chars, words started after whitespace / inside a word, and ends-inside-a-word."""
    n = vocab.size
    chars = np.zeros(n, dtype=np.int64)
    w_ws = np.zeros(n, dtype=np.int64)
    w_word = np.zeros(n, dtype=np.int64)
    out = np.zeros(n, dtype=np.int64)
    for t, b in enumerate(vocab.tokens):
        if not b:
            continue
        chars[t] = sum(1 for x in b if not 0x80 <= x <= 0xBF)
        starts = sum(1 for i, x in enumerate(b) if x not in _WS and (i == 0 or b[i - 1] in _WS))
        w_ws[t] = starts
        w_word[t] = starts - (1 if b[0] not in _WS else 0)
        out[t] = 0 if b[-1] in _WS else 1
    return chars, w_ws, w_word, out


def _bytes_counts(data: bytes, in_word: int) -> tuple[int, int, int]:
    chars = sum(1 for x in data if not 0x80 <= x <= 0xBF)
    words = 0
    f = in_word
    for x in data:
        if x in _WS:
            f = 0
        else:
            if not f:
                words += 1
            f = 1
    return chars, words, f


class LengthConstraint(CompiledConstraint):
    """``inner`` under :class:`LengthBounds`; the state is ``(inner_state, in_word, tokens, chars, words)``.

    Counts are capped at ``max(min bound, max bound)`` of their unit (0 when the unit is unbounded),
    so the state space stays finite. Use :func:`max_length`, :func:`min_length` or
    :func:`length_bounds` to build one.
    """

    def __init__(self, inner: CompiledConstraint, bounds: LengthBounds, *, limits: Limits | None = None):
        from constrain.constraints.combine import LiveIntersectConstraint
        from constrain.grammar.compile import GrammarConstraint

        self._live = isinstance(inner, LiveIntersectConstraint)
        self._grammar = isinstance(inner, GrammarConstraint) or self._live
        if not self._grammar and not is_dfa_based(inner):
            raise UnsupportedFeatureError(
                f"length bounds on a {type(inner).__name__} (only DFA-based constraints -- regex, choice, "
                "keywords, materialized intersections --, grammar / JSON-schema constraints, and their "
                "exact intersections with DFA-based ones)",
                source="length",
            )
        for name, v in vars(bounds).items():
            if v is not None and (not isinstance(v, int) or v < 0):
                raise ValueError(f"{name} must be a non-negative int, got {v!r}")
        self.inner = inner
        self.bounds = bounds
        self.vocab = inner.vocab
        self.limits = limits or getattr(inner, "limits", DEFAULT_LIMITS)
        b = bounds
        self._use_words = b.min_words is not None or b.max_words is not None
        self._use_chars = b.min_chars is not None or b.max_chars is not None
        # caps of the counts kept in the state, and of the min counters in graph nodes
        self._maxes = (b.max_tokens, b.max_chars, b.max_words)
        self._mins = (b.min_tokens or 0, b.min_chars or 0, b.min_words or 0)
        self._caps = tuple(max(mn, mx if mx is not None else 0) for mn, mx in zip(self._mins, self._maxes))
        chars, w_ws, w_word, out = _token_stats(self.vocab)
        if not self._use_chars:
            chars = np.zeros_like(chars)
        if not self._use_words:
            w_ws, w_word, out = np.zeros_like(w_ws), np.zeros_like(w_word), np.zeros_like(out)
        self._chars, self._words, self._out = chars, (w_ws, w_word), out
        self._cw = int(chars.max()) + 1
        self._ww = int(max(w_ws.max(), 1)) + 1
        self._mask_cache = MaskCache(self.limits.max_cached_masks)
        self._orders = [o for o, mx in zip(((0, 1, 2), (1, 0, 2), (2, 0, 1)), self._maxes) if mx is not None]
        if not self._orders:
            self._orders = [(0, 1, 2)]  # min bounds only: distances tell liveness
        self._dist: list[dict] = []
        if self._grammar:
            self._init_grammar()
        else:
            self._build()
        init = self.initial_state()
        if not self._feasible(init[0], init[1], (0, 0, 0)):
            if self._grammar and self._completion is not None:
                least = self._grammar_cost(init[0], 0)
                raise InputError(
                    f"no output of {inner!r} satisfies {bounds}: its shortest output has {least} "
                    f"{self._gunit}" + (" (max_tokens is checked against bytes: every byte is at most one token)"
                                        if self._maxes[0] is not None else "")
                )
            raise InputError(f"no output of {inner!r} satisfies {bounds}")

    def __repr__(self) -> str:
        return f"LengthConstraint({self.inner!r}, {self.bounds})"

    # ------------------------------------------------------------------ precomputation
    def _groups(self, s: int, f: int, ends: np.ndarray | None = None):
        """Distinct (next state, chars, words, out flag) of the tokens from (s, f), and per-token index."""
        if ends is None:
            ends = token_ends(self.inner, s)
        tv = np.flatnonzero(ends >= 0)
        code = ((self._chars[tv] * self._ww + self._words[f][tv]) * 2 + self._out[tv])
        keys = ends[tv].astype(np.int64) * (self._cw * self._ww * 2) + code
        uniq, inv = np.unique(keys, return_inverse=True)
        rest = uniq % (self._cw * self._ww * 2)
        nxt = uniq // (self._cw * self._ww * 2)
        outf = rest % 2
        words = (rest // 2) % self._ww
        chars = rest // (2 * self._ww)
        return tv, inv, nxt, chars, words, outf

    def _min_node(self, s: int, f: int, counts) -> tuple:
        mn = self._mins
        return (s, f, min(counts[0], mn[0]), min(counts[1], mn[1]), min(counts[2], mn[2]))

    def _build(self) -> None:
        inner = self.inner
        accepting = np.asarray(inner.dfa.accepting, dtype=bool)
        mn = self._mins
        # every node, not only those reachable by whole tokens: raw advance_bytes may stop anywhere
        flags = (0, 1) if self._use_words else (0,)
        n_nodes = accepting.shape[0] * len(flags) * (mn[0] + 1) * (mn[1] + 1) * (mn[2] + 1)
        max_nodes = self.limits.max_dfa_states
        if n_nodes > max_nodes:
            raise LimitExceededError(
                "max_dfa_states", max_nodes, f"length bounds on {inner!r} need {n_nodes} graph nodes"
            )
        groups: dict[tuple[int, int], tuple] = {}
        ends_cache: dict[int, np.ndarray] = {}
        preds: dict[tuple, list] = {
            (s, f, a, b, c): []
            for s in range(accepting.shape[0]) for f in flags
            for a in range(mn[0] + 1) for b in range(mn[1] + 1) for c in range(mn[2] + 1)
        }
        queue = list(preds)
        for node in queue:
            s, f = node[0], node[1]
            g = groups.get((s, f))
            if g is None:
                e = ends_cache.get(s)
                if e is None:
                    e = ends_cache[s] = token_ends(inner, s)
                _, _, nxt, chars, words, outf = self._groups(s, f, e)
                g = groups[(s, f)] = (nxt.tolist(), chars.tolist(), words.tolist(), outf.tolist())
            for s2, c, w, f2 in zip(*g):
                n2 = (s2, f2, min(node[2] + 1, mn[0]), min(node[3] + c, mn[1]), min(node[4] + w, mn[2]))
                preds[n2].append((node, (1, c, w)))
        del ends_cache
        targets = [n for n in preds if accepting[n[0]] and n[2] >= mn[0] and n[3] >= mn[1] and n[4] >= mn[2]]
        for order in self._orders:
            dist: dict[tuple, tuple] = {}
            heap = [((0, 0, 0), n) for n in targets]
            heapq.heapify(heap)
            while heap:
                d, n = heapq.heappop(heap)
                if n in dist:
                    continue
                dist[n] = d  # d is in `order` coordinates
                for p, wgt in preds[n]:
                    if p not in dist:
                        heapq.heappush(heap, (tuple(d[i] + wgt[order[i]] for i in range(3)), p))
            # store in natural (tokens, chars, words) coordinates
            natural = {}
            for n, d in dist.items():
                v = [0, 0, 0]
                for i in range(3):
                    v[order[i]] = d[i]
                natural[n] = tuple(v)
            self._dist.append(natural)

    # ------------------------------------------------------------------ budget checks
    def _init_grammar(self) -> None:
        """Grammar inner: one shortest-completion table per bounded unit (see the module docstring)."""
        from constrain.grammar.completion import GrammarCompletion

        bounded = [i for i, mx in enumerate(self._maxes) if mx is not None]
        if len(bounded) == 1 and bounded[0] > 0:
            unit = ("bytes", "chars", "words")[bounded[0]]
        else:
            unit = "bytes"  # tokens, or several units: the bytes of one shortest witness bound them all
        if not bounded:
            self._completion = None
        elif self._live and unit == "bytes":  # the live product's own tables answer exactly this
            self._completion = self.inner.completion
        elif self._live:  # the completion must also reach an accepting state of the DFA part
            self._completion = GrammarCompletion(self.inner.grammar, unit, dfa=self.inner.completion.dfa,
                                                 limits=self.limits)
        else:
            self._completion = GrammarCompletion(self.inner, unit, limits=self.limits)
        self._gunit = unit

    def _grammar_cost(self, s, f: int) -> int:
        if self._live:
            return self._completion.cost(s[0], self._completion.flag(s[1], f))
        return self._completion.cost(s, f)

    def _grammar_fits(self, counts, cost) -> bool:
        return all(mx is None or counts[i] + cost <= mx for i, mx in enumerate(self._maxes))

    def _feasible(self, s, f: int, counts) -> bool:
        """Whether some witness completion from (s, f) with ``counts`` used fits every max bound."""
        if self._grammar:
            if self._completion is None:
                return True
            return self._grammar_fits(counts, self._grammar_cost(s, f))
        node = self._min_node(s, f, counts)
        for dist in self._dist:
            d = dist.get(node)
            if d is None:
                continue
            if all(mx is None or counts[i] + d[i] <= mx for i, mx in enumerate(self._maxes)):
                return True
        return False

    def _cap(self, counts) -> tuple[int, int, int]:
        return tuple(min(c, cap) for c, cap in zip(counts, self._caps))

    # ------------------------------------------------------------------ CompiledConstraint
    def initial_state(self) -> tuple:
        return (self.inner.initial_state(), 0, 0, 0, 0)

    def is_accepting(self, state: tuple) -> bool:
        s, _, t, c, w = state
        mn = self._mins
        return self.inner.is_accepting(s) and t >= mn[0] and c >= mn[1] and w >= mn[2]

    def _step(self, state: tuple, s2: int, dt: int, dc: int, dw: int, f2: int) -> tuple | None:
        _, _, t, c, w = state
        counts = (t + dt, c + dc, w + dw)
        if not self._feasible(s2, f2, counts):
            return None
        return (s2, f2, *self._cap(counts))

    def advance_token(self, state: tuple, token_id: int) -> tuple | None:
        s2 = self.inner.advance_token(state[0], token_id)
        if s2 is None:
            return None
        data = self.vocab.token_bytes(token_id)
        dc, dw, f2 = _bytes_counts(data, state[1])
        if not self._use_chars:
            dc = 0
        if not self._use_words:
            dw, f2 = 0, 0
        return self._step(state, s2, 1, dc, dw, f2)

    def advance_bytes(self, state: tuple, data: bytes) -> tuple | None:
        s2 = self.inner.advance_bytes(state[0], data)
        if s2 is None:
            return None
        if not data:
            return state
        dc, dw, f2 = _bytes_counts(data, state[1])
        if not self._use_chars:
            dc = 0
        if not self._use_words:
            dw, f2 = 0, 0
        return self._step(state, s2, 0, dc, dw, f2)

    def compute_token_bits(self, state: tuple) -> np.ndarray:
        """Uncached mask: the inner mask restricted to tokens after which the bounds stay feasible."""
        if self._grammar:
            return self._grammar_token_bits(state)
        s, f, t, c, w = state
        tv, inv, nxt, chars, words, outf = self._groups(s, f)
        ok = np.zeros(len(nxt), dtype=bool)
        for i, (s2, dc, dw, f2) in enumerate(zip(nxt.tolist(), chars.tolist(), words.tolist(), outf.tolist())):
            ok[i] = self._feasible(s2, f2, (t + 1, c + dc, w + dw))
        allowed = np.zeros(bitmask_words(self.vocab.size) * 32, dtype=bool)
        allowed[tv[ok[inv]]] = True
        return np.packbits(allowed, bitorder="little").view("<u4").astype(np.uint32)

    def _grammar_token_bits(self, state: tuple) -> np.ndarray:
        s, f, t, c, w = state
        inner_bits = self.inner.token_bits(s)
        if self._completion is None:
            return np.array(inner_bits, dtype=np.uint32)
        n = self.vocab.size
        allowed = np.flatnonzero(np.unpackbits(inner_bits.view(np.uint8), bitorder="little")[:n])
        if allowed.size == 0:
            return np.array(inner_bits, dtype=np.uint32)
        chars = c + self._chars[allowed]
        words = w + self._words[f][allowed]
        flag_after = self._out[allowed] if self._use_words else np.zeros(allowed.size, dtype=np.int64)
        if self._live:
            ends = token_ends(self.inner.automaton, s[1])[allowed].astype(np.int64)
            cost = np.full(allowed.size, 1 << 40, dtype=np.int64)
            text = ends >= 0  # EOS has no bytes: the matcher allows it from is_accepting
            cost[text] = self._completion.token_costs(
                s[0], allowed[text], ends[text] * self._completion.k_unit + flag_after[text])
        else:
            cost = self._completion.token_costs(s, allowed, flag_after)
        ok = cost < (1 << 40)
        for used, mx in zip((t + 1, chars, words), self._maxes):
            if mx is not None:
                ok &= used + cost <= mx
        keep = np.zeros(bitmask_words(n) * 32, dtype=bool)
        keep[allowed[ok]] = True
        return np.packbits(keep, bitorder="little").view("<u4").astype(np.uint32)

    def token_bits(self, state: tuple) -> np.ndarray:
        return self._mask_cache.get(state, self.compute_token_bits)

    def fill_token_bits(self, state: tuple, words: np.ndarray) -> None:
        np.bitwise_or(words, self.token_bits(state), out=words)

    def forced_bytes(self, state: tuple) -> bytes:
        # the inner constraint's forced bytes begin every complete continuation of the subset too
        return self.inner.forced_bytes(state[0])

    def literals(self) -> tuple[bytes, ...]:
        return self.inner.literals()

    def clear_cache(self) -> None:
        self._mask_cache.clear()


def length_bounds(
    constraint: CompiledConstraint,
    *,
    min_tokens: int | None = None,
    max_tokens: int | None = None,
    min_chars: int | None = None,
    max_chars: int | None = None,
    min_words: int | None = None,
    max_words: int | None = None,
    limits: Limits | None = None,
) -> CompiledConstraint:
    """``constraint`` restricted to outputs within the given bounds (see the module docstring).

    Wrapping a :class:`LengthConstraint` again merges the bounds (the tighter one of each wins).

    Raises
    ------
    UnsupportedFeatureError
        ``constraint`` is neither DFA-based nor a grammar (e.g. a lazy intersection).
    InputError
        No output satisfies the bounds.
    LimitExceededError
        The completion graph exceeds ``limits.max_dfa_states`` nodes.
    """
    rewrap = getattr(constraint, "rewrap", None)
    if rewrap is not None:
        # A run-time check over a grammar (uniqueItems over strings, property_order="any"): the
        # bounds go on the grammar and the check stays on top. Still exact; the shortest
        # completions the bound plans with may include a repeat the check refuses, so an output
        # can need a few tokens more than planned (then it may not close within max_tokens).
        return rewrap(length_bounds(constraint.inner, min_tokens=min_tokens, max_tokens=max_tokens,
                                    min_chars=min_chars, max_chars=max_chars, min_words=min_words,
                                    max_words=max_words, limits=limits))
    bounds = LengthBounds(min_tokens, max_tokens, min_chars, max_chars, min_words, max_words)
    if isinstance(constraint, LengthConstraint):
        bounds = constraint.bounds.merged(bounds)
        constraint = constraint.inner
    return LengthConstraint(constraint, bounds, limits=limits)


def max_length(
    constraint: CompiledConstraint,
    *,
    max_tokens: int | None = None,
    max_chars: int | None = None,
    max_words: int | None = None,
    limits: Limits | None = None,
) -> LengthConstraint:
    """At most ``max_tokens`` tokens / ``max_chars`` characters / ``max_words`` words, ending gracefully."""
    return length_bounds(constraint, max_tokens=max_tokens, max_chars=max_chars, max_words=max_words, limits=limits)


def min_length(
    constraint: CompiledConstraint,
    *,
    min_tokens: int | None = None,
    min_chars: int | None = None,
    min_words: int | None = None,
    limits: Limits | None = None,
) -> LengthConstraint:
    """At least ``min_tokens`` tokens / ``min_chars`` characters / ``min_words`` words before EOS."""
    return length_bounds(constraint, min_tokens=min_tokens, min_chars=min_chars, min_words=min_words, limits=limits)
