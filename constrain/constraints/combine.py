"""intersect: outputs that satisfy every one of several constraints at once.

Three forms, chosen by :func:`intersect`:

* **Materialized** (all parts DFA-based, i.e. regex / choice / keywords constraints, and their
  reachable product fits ``Limits.max_dfa_states``): one minimized :class:`ByteDFA` whose dead states
  are removed, wrapped in a :class:`~constrain.DFAConstraint`. Masks are exact *and* every allowed
  token keeps a completion reachable (a walk can never be stranded).
* **Live** (:class:`LiveIntersectConstraint`: one grammar or JSON-schema constraint and DFA-based
  parts, which are materialized into one DFA first): the lazy product below, plus the exact
  emptiness test of the grammar ∩ DFA language from every state (Bar-Hillel style, computed as the
  shortest completion of the grammar state over the product of its lexer and the DFA, see
  :mod:`constrain.grammar.completion`). A token is allowed iff both parts allow it *and* some
  output of both still extends it, so a walk is never stranded either: a JSON object whose text
  must mention "waterproof" cannot close before the word has been written. Bounded by
  ``Limits.max_completion_table_entries`` (lexeme targets x lexer states x DFA states²). One
  documented gap: a grammar's ``%ignore``d whitespace runs are bounded at run time by
  ``Limits.max_consecutive_whitespace``, which the emptiness test does not model, so a DFA part
  that can only be satisfied by a longer run of ignored whitespace (a keyword of 33+ spaces) is
  not detected as dead. JSON schemas write their whitespace into the grammar, so this does not
  arise there.
* **Lazy** (:class:`IntersectConstraint`, any constraints, e.g. two grammars): the state is the tuple
  of the parts' states, the mask is the AND of the parts' masks (cached per state tuple, bounded by
  ``Limits.max_cached_masks``), accepting iff every part accepts. A token is allowed iff every part
  allows it, so every accepted output satisfies every part; but the parts' *languages* may have no
  common continuation from a reachable state (e.g. ``[a-z]{0,3}`` ∩ "contains 'dog'" after "xy"),
  in which case the mask is empty and EOS is not allowed. The intersection of two context-free
  languages is undecidable in general, so nothing better exists for two grammars; when an exact
  form was possible but exceeded a limit, :func:`intersect` warns (:class:`LazyIntersectionWarning`).

Length bounds commute with intersection: ``intersect(max_length(a, ...), b)`` is built as
``max_length(intersect(a, b), ...)``, so the bound's graceful ending also accounts for ``b``.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np

from constrain.compiled import CompiledConstraint, MaskCache
from constrain.constraints.product import is_empty, product_dfa
from constrain.constraints.sparse_dfa import SparseDFAConstraint, is_dfa_based, same_vocab, token_ends
from constrain.dfa_constraint import DFAConstraint
from constrain.errors import InputError, LimitExceededError
from constrain.limits import DEFAULT_LIMITS, Limits

__all__ = ["intersect", "IntersectConstraint", "LiveIntersectConstraint", "LazyIntersectionWarning"]


class LazyIntersectionWarning(UserWarning):
    """An intersection was built lazily (masks ANDed, no liveness): a walk may end with an empty mask."""


class IntersectConstraint(CompiledConstraint):
    """Lazy product of constraints over one vocabulary; the state is the tuple of the parts' states."""

    def __init__(self, parts: list[CompiledConstraint], *, limits: Limits = DEFAULT_LIMITS):
        if len(parts) < 2:
            raise ValueError("an intersection needs at least two constraints")
        self.parts = tuple(parts)
        self.vocab = parts[0].vocab
        self.limits = limits
        self._mask_cache = MaskCache(self.limits.max_cached_masks)

    def __repr__(self) -> str:
        return f"IntersectConstraint({', '.join(type(p).__name__ for p in self.parts)})"

    def initial_state(self) -> tuple:
        return tuple(p.initial_state() for p in self.parts)

    def advance_bytes(self, state: tuple, data: bytes) -> tuple | None:
        out = []
        for p, s in zip(self.parts, state):
            n = p.advance_bytes(s, data)
            if n is None:
                return None
            out.append(n)
        return tuple(out)

    def advance_token(self, state: tuple, token_id: int) -> tuple | None:
        out = []
        for p, s in zip(self.parts, state):
            n = p.advance_token(s, token_id)
            if n is None:
                return None
            out.append(n)
        return tuple(out)

    def is_accepting(self, state: tuple) -> bool:
        return all(p.is_accepting(s) for p, s in zip(self.parts, state))

    def _compute_token_bits(self, state: tuple) -> np.ndarray:
        words = self.parts[0].token_bits(state[0]).copy()
        for p, s in zip(self.parts[1:], state[1:]):
            np.bitwise_and(words, p.token_bits(s), out=words)
        return words

    def token_bits(self, state: tuple) -> np.ndarray:
        return self._mask_cache.get(state, self._compute_token_bits)

    def fill_token_bits(self, state: tuple, words: np.ndarray) -> None:
        np.bitwise_or(words, self.token_bits(state), out=words)

    def forced_bytes(self, state: tuple) -> bytes:
        """The longest part's forced bytes, if the others' are prefixes of it and all parts allow it.

        Each part's forced bytes begin every complete continuation of that part, so they begin every
        complete continuation of the intersection; the longest one therefore does too, provided the
        others agree with it. On disagreement nothing is forced (conservative: the state is then
        dead, and the mask will show it).
        """
        forced = [p.forced_bytes(s) for p, s in zip(self.parts, state)]
        best = max(forced, key=len)
        if not best or any(not best.startswith(f) for f in forced):
            return b""
        if self.advance_bytes(state, best) is None:
            return b""
        return best

    def literals(self) -> tuple[bytes, ...]:
        return tuple(dict.fromkeys(lit for p in self.parts for lit in p.literals()))

    def clear_cache(self) -> None:
        self._mask_cache.clear()
        for p in self.parts:
            if hasattr(p, "clear_cache"):
                p.clear_cache()


class LiveIntersectConstraint(IntersectConstraint):
    """One grammar constraint ∩ one DFA constraint, exact: no reachable state is a dead end.

    The state is ``(grammar_state, dfa_state)``. On top of the lazy product, a state is *live* iff
    some byte string takes the grammar to acceptance and the DFA to an accepting state
    (:class:`~constrain.grammar.completion.GrammarCompletion` over the product of the grammar's
    lexer and the DFA). The mask keeps the tokens whose next state is live; ``advance_*`` return
    ``None`` for a dead next state. The tables are built once here; per mask, one vectorized trie
    walk per lexing thread (cached per state like every mask).

    Raises
    ------
    InputError
        The two languages are disjoint.
    LimitExceededError
        The completion tables exceed ``limits.max_completion_table_entries``.
    """

    def __init__(self, grammar: CompiledConstraint, automaton: CompiledConstraint, *, limits: Limits = DEFAULT_LIMITS):
        from constrain.grammar.completion import GrammarCompletion

        super().__init__([grammar, automaton], limits=limits)
        self.grammar, self.automaton = grammar, automaton
        self.completion = GrammarCompletion(grammar, "bytes", dfa=automaton.dfa, limits=limits)
        if not self.is_live(self.initial_state()):
            raise InputError(f"the intersection of {grammar!r} and {getattr(automaton, 'source', automaton)!r} is empty")

    def __repr__(self) -> str:
        return f"LiveIntersectConstraint({self.grammar!r}, {type(self.automaton).__name__})"

    def shortest_completion(self, state: tuple) -> int:
        """Least number of bytes that take ``state`` to acceptance (``INF`` = dead)."""
        return self.completion.cost(state[0], self.completion.flag(state[1]))

    def is_live(self, state: tuple) -> bool:
        from constrain.grammar.completion import INF

        return self.shortest_completion(state) < INF

    def advance_bytes(self, state: tuple, data: bytes) -> tuple | None:
        nxt = super().advance_bytes(state, data)
        return nxt if nxt is not None and self.is_live(nxt) else None

    def advance_token(self, state: tuple, token_id: int) -> tuple | None:
        nxt = super().advance_token(state, token_id)
        return nxt if nxt is not None and self.is_live(nxt) else None

    def _compute_token_bits(self, state: tuple) -> np.ndarray:
        from constrain.grammar.completion import INF

        words = super()._compute_token_bits(state)
        n = self.vocab.size
        allowed = np.flatnonzero(np.unpackbits(words.view(np.uint8), bitorder="little")[:n])
        ends = token_ends(self.automaton, state[1])[allowed]
        text = ends >= 0  # EOS and other special tokens have no bytes: their bits stay as the parts say
        allowed, ends = allowed[text], ends[text]
        if allowed.size:
            cost = self.completion.token_costs(state[0], allowed, ends.astype(np.int64) * self.completion.k_unit)
            dead = allowed[cost >= INF]
            if dead.size:
                flat = np.unpackbits(words.view(np.uint8), bitorder="little")
                flat[dead] = 0
                words = np.packbits(flat, bitorder="little").view("<u4").astype(words.dtype)
        return words


def _flatten(parts) -> list[CompiledConstraint]:
    out = []
    for p in parts:
        if isinstance(p, IntersectConstraint):
            out.extend(p.parts)
        elif isinstance(p, CompiledConstraint):
            out.append(p)
        else:
            raise TypeError(f"intersect takes compiled constraints, got {type(p).__name__}")
    return out


def intersect(
    a: CompiledConstraint,
    b: CompiledConstraint,
    *more: CompiledConstraint,
    materialize: Literal["auto", "always", "never"] = "auto",
    limits: Limits | None = None,
) -> CompiledConstraint:
    """Constraint whose outputs satisfy all of ``a``, ``b``, ``*more`` (same vocabulary).

    Parameters
    ----------
    materialize : "auto", "always" or "never"
        "auto": an exact form when one fits the limits -- one product DFA when every part is
        DFA-based (at most ``limits.max_dfa_states`` states), a :class:`LiveIntersectConstraint`
        when one part is a grammar / JSON schema and the others are DFA-based -- else the lazy
        :class:`IntersectConstraint`, with a :class:`LazyIntersectionWarning` when an exact form
        was possible but too big. "always": an exact form or an error. "never": always lazy.
    limits : Limits, optional
        Default: the first part's ``limits`` (or ``DEFAULT_LIMITS``).

    Length-bounded parts (:func:`~constrain.max_length` and friends) are unwrapped: the result is
    the intersection of their inner constraints under the merged bounds, so a max bound ends
    gracefully with respect to every part.

    Raises
    ------
    ValueError
        The parts do not share one vocabulary.
    InputError
        An exact form was built and the intersection is empty.
    LimitExceededError
        ``materialize="always"`` and the exact form is too big.
    UnsupportedFeatureError
        ``materialize="always"`` with two or more parts that are not DFA-based (two grammars).
    """
    from constrain.constraints.length import LengthConstraint, LengthBounds

    parts = _flatten([a, b, *more])
    vocab = parts[0].vocab
    for p in parts[1:]:
        if not same_vocab(vocab, p.vocab):
            raise ValueError("intersect: all constraints must be compiled for the same vocabulary")
    if limits is None:
        limits = getattr(parts[0], "limits", DEFAULT_LIMITS)
    if materialize not in ("auto", "always", "never"):
        raise ValueError(f"materialize must be 'auto', 'always' or 'never', got {materialize!r}")
    if any(isinstance(p, LengthConstraint) for p in parts):
        bounds = LengthBounds()
        inner = []
        for p in parts:
            if isinstance(p, LengthConstraint):
                bounds = bounds.merged(p.bounds)
                inner.append(p.inner)
            else:
                inner.append(p)
        core = inner[0] if len(inner) == 1 else intersect(*inner, materialize=materialize, limits=limits)
        return LengthConstraint(core, bounds, limits=limits)
    from constrain.grammar.compile import GrammarConstraint

    dfa_parts = [p for p in parts if is_dfa_based(p)]
    others = [p for p in parts if not is_dfa_based(p)]
    if materialize == "never":
        return IntersectConstraint(parts, limits=limits)
    exact_possible = len(others) == 0 or (len(others) == 1 and isinstance(others[0], GrammarConstraint))
    if not exact_possible:
        if materialize == "always":
            from constrain.errors import UnsupportedFeatureError

            raise UnsupportedFeatureError(
                "an exact intersection of "
                + ", ".join(type(p).__name__ for p in others)
                + " (exact forms: DFA-based parts, optionally with one grammar / JSON-schema constraint)"
            )
        return IntersectConstraint(parts, limits=limits)
    try:
        automaton = _materialize(dfa_parts, vocab, limits, quick=materialize == "auto") if dfa_parts else None
        if not others:
            return automaton
        if automaton is None:  # one grammar alone (cannot happen: intersect takes two parts)
            return others[0]
        return LiveIntersectConstraint(others[0], automaton, limits=limits)
    except LimitExceededError as e:
        if materialize == "always":
            raise
        warnings.warn(
            f"intersect: the exact intersection exceeds a limit ({e}); built lazily instead: "
            "masks are ANDed and a walk can reach a state where no output satisfies every part",
            LazyIntersectionWarning,
            stacklevel=2,
        )
        return IntersectConstraint(parts, limits=limits)


def _materialize(parts: list[CompiledConstraint], vocab, limits: Limits, quick: bool) -> CompiledConstraint:
    """One DFA-based constraint equal to the intersection of ``parts`` (all DFA-based).

    Raises InputError if it is empty and LimitExceededError if the product is too big (``quick``:
    at once when a part alone has more states than the limit, without trying the product).
    """
    if len(parts) == 1:
        return parts[0]
    if quick and any(p.dfa.n_states > limits.max_dfa_states for p in parts):
        raise LimitExceededError("max_dfa_states", limits.max_dfa_states,
                                 "a part of the intersection has more DFA states than the limit")
    dfas = [p.dfa.to_byte_dfa() if isinstance(p, SparseDFAConstraint) else p.dfa for p in parts]
    dfa = product_dfa(dfas, lambda flags: bool(flags.all()), limits=limits,
                      what=f"intersection of {len(parts)} constraints")
    if is_empty(dfa):
        raise InputError("the intersection of the constraints is empty")
    source = " & ".join(str(getattr(p, "source", type(p).__name__)) for p in parts)
    return DFAConstraint(dfa, vocab, source=source, limits=limits)
