"""intersect: outputs that satisfy every one of several constraints at once.

Two forms, chosen by :func:`intersect`:

* **Materialized** (all parts DFA-based, i.e. regex / choice / keywords constraints, and their
  reachable product fits ``Limits.max_dfa_states``): one minimized :class:`ByteDFA` whose dead states
  are removed, wrapped in a :class:`~constrain.DFAConstraint`. Masks are exact *and* every allowed
  token keeps a completion reachable (a walk can never be stranded).
* **Lazy** (:class:`IntersectConstraint`, any constraints, e.g. a grammar): the state is the tuple of
  the parts' states, the mask is the AND of the parts' masks (cached per state tuple, bounded by
  ``Limits.max_cached_masks``), accepting iff every part accepts. A token is allowed iff every part
  allows it, so every accepted output satisfies every part; but the parts' *languages* may have no
  common continuation from a reachable state (e.g. ``[a-z]{0,3}`` ∩ "contains 'dog'" after "xy"),
  in which case the mask is empty and EOS is not allowed. Deciding that in general (a grammar ∩ a
  regular language) is not attempted; prefer materialized intersections of DFA parts.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from constrain.compiled import CompiledConstraint, MaskCache
from constrain.constraints.product import is_empty, product_dfa
from constrain.constraints.sparse_dfa import SparseDFAConstraint, is_dfa_based, same_vocab
from constrain.dfa_constraint import DFAConstraint
from constrain.errors import InputError, LimitExceededError
from constrain.limits import DEFAULT_LIMITS, Limits

__all__ = ["intersect", "IntersectConstraint"]


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

    def clear_cache(self) -> None:
        self._mask_cache.clear()
        for p in self.parts:
            if hasattr(p, "clear_cache"):
                p.clear_cache()


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
        "auto": one product DFA when every part is DFA-based and the reachable product has at most
        ``limits.max_dfa_states`` states, else the lazy :class:`IntersectConstraint`. "always":
        the product DFA or an error. "never": always lazy.
    limits : Limits, optional
        Default: the first part's ``limits`` (or ``DEFAULT_LIMITS``).

    Raises
    ------
    ValueError
        The parts do not share one vocabulary.
    InputError
        Materialized and the intersection is empty.
    LimitExceededError
        ``materialize="always"`` and the product is too big.
    UnsupportedFeatureError
        ``materialize="always"`` with a part that is not DFA-based.
    """
    parts = _flatten([a, b, *more])
    vocab = parts[0].vocab
    for p in parts[1:]:
        if not same_vocab(vocab, p.vocab):
            raise ValueError("intersect: all constraints must be compiled for the same vocabulary")
    if limits is None:
        limits = getattr(parts[0], "limits", DEFAULT_LIMITS)
    if materialize not in ("auto", "always", "never"):
        raise ValueError(f"materialize must be 'auto', 'always' or 'never', got {materialize!r}")
    all_dfa = all(is_dfa_based(p) for p in parts)
    if materialize == "always" and not all_dfa:
        from constrain.errors import UnsupportedFeatureError

        raise UnsupportedFeatureError("materializing an intersection with a non-DFA constraint")
    if materialize != "never" and all_dfa:
        fits = all(p.dfa.n_states <= limits.max_dfa_states for p in parts)
        if fits or materialize == "always":
            try:
                dfas = [p.dfa.to_byte_dfa() if isinstance(p, SparseDFAConstraint) else p.dfa for p in parts]
                dfa = product_dfa(dfas, lambda flags: bool(flags.all()), limits=limits,
                                  what=f"intersection of {len(parts)} constraints")
            except LimitExceededError:
                if materialize == "always":
                    raise
            else:
                if is_empty(dfa):
                    raise InputError("the intersection of the constraints is empty")
                source = " & ".join(str(getattr(p, "source", type(p).__name__)) for p in parts)
                return DFAConstraint(dfa, vocab, source=source, limits=limits)
    return IntersectConstraint(parts, limits=limits)
