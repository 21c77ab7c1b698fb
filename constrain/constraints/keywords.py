"""compile_keywords: the output must contain every included phrase and none of the excluded ones.

Each phrase ``p`` becomes the minimized search automaton of ``(?s).*p.*`` (the regex compiler's: it
reads valid UTF-8 only, and honours Unicode simple case folding when ``case_sensitive=False``).
Its states are exactly the Aho–Corasick/KMP positions of ``p`` plus one absorbing "seen" state, so
the synchronous product of all phrases' automata, restricted to the reachable states, is the
"Aho–Corasick node × set of included phrases seen so far" automaton: it accepts when every included
phrase has been seen, and a product state where an excluded phrase was seen is dead (pruned). One
more component, ``(?s).*``, keeps the language to valid UTF-8 even with no phrases. The product is
minimized and its dead states removed (:mod:`constrain.constraints.product`), bounded by
``Limits.max_dfa_states`` (k included phrases can need up to 2^k times the phrases' total length).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from constrain.constraints.product import is_empty, product_dfa
from constrain.dfa_constraint import DFAConstraint
from constrain.errors import InputError
from constrain.limits import DEFAULT_LIMITS, Limits
from constrain.regex.dfa import ByteDFA, regex_to_dfa
from constrain.vocab.vocabulary import Vocabulary

__all__ = ["compile_keywords", "keywords_dfa"]


def _phrases(name: str, items: Iterable[str]) -> list[str]:
    out = []
    for p in items:
        if not isinstance(p, str):
            raise TypeError(f"{name} phrases must be str, got {type(p).__name__}")
        if p not in out:
            out.append(p)
    return out


def keywords_dfa(
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    *,
    case_sensitive: bool = True,
    limits: Limits = DEFAULT_LIMITS,
) -> ByteDFA:
    """Minimized DFA of the valid UTF-8 texts containing every ``include`` and no ``exclude``.

    Raises
    ------
    InputError
        No text satisfies the phrases (an empty or included phrase is excluded...).
    LimitExceededError
        The product automaton exceeds ``limits.max_dfa_states``.
    """
    inc = _phrases("include", include)
    exc = _phrases("exclude", exclude)
    icase = not case_sensitive
    comps = [regex_to_dfa(".*" + re.escape(p) + ".*", dotall=True, ignore_case=icase, limits=limits)
             for p in inc + exc]
    comps.append(regex_to_dfa(".*", dotall=True, limits=limits))
    n_inc, n_exc = len(inc), len(exc)
    # an excluded phrase's automaton is absorbing once it accepts (the phrase was seen): doomed
    doomed = [None] * n_inc + [np.asarray(c.accepting, dtype=bool) for c in comps[n_inc:n_inc + n_exc]] + [None]

    def accept(flags: np.ndarray) -> bool:
        return bool(flags[:n_inc].all() and not flags[n_inc:n_inc + n_exc].any() and flags[-1])

    dfa = product_dfa(comps, accept, doomed=doomed, limits=limits,
                      what=f"keywords ({n_inc} included, {n_exc} excluded)")
    if is_empty(dfa):
        raise InputError(f"no text contains all of {inc!r} and none of {exc!r}")
    return dfa


def compile_keywords(
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    *,
    vocab: Vocabulary,
    case_sensitive: bool = True,
    limits: Limits = DEFAULT_LIMITS,
) -> DFAConstraint:
    """Constrain the output (any valid UTF-8 text) to contain every ``include`` and no ``exclude``.

    Phrases are matched as substrings of the text; with ``case_sensitive=False`` with Unicode simple
    case folding (like ``re.IGNORECASE``). See :func:`keywords_dfa` for errors.
    """
    if not isinstance(vocab, Vocabulary):
        raise TypeError(f"vocab must be a constrain.Vocabulary, got {type(vocab).__name__}")
    include, exclude = list(include), list(exclude)
    dfa = keywords_dfa(include, exclude, case_sensitive=case_sensitive, limits=limits)
    return DFAConstraint(dfa, vocab, source=f"keywords(include={include!r}, exclude={exclude!r})", limits=limits)
