"""Constraint combinators: choices among many strings, keyword containment, intersection, length.

    compile_choice(phrases, vocab)                 exactly one of the phrases (100k+ entries)
    compile_keywords(include=..., exclude=..., vocab=vocab)   contains / avoids substrings
    intersect(a, b, ...)                           every part's language at once (exact for DFA
                                                   parts and one grammar / JSON schema)
    max_length(c, max_tokens=..., ...), min_length(c, ...)   length budgets that end gracefully
"""

from constrain.constraints.choice import compile_choice
from constrain.constraints.combine import (
    IntersectConstraint,
    LazyIntersectionWarning,
    LiveIntersectConstraint,
    intersect,
)
from constrain.constraints.keywords import compile_keywords
from constrain.constraints.length import LengthBounds, LengthConstraint, length_bounds, max_length, min_length
from constrain.constraints.sparse_dfa import SparseDFA, SparseDFAConstraint

__all__ = [
    "IntersectConstraint",
    "LazyIntersectionWarning",
    "LengthBounds",
    "LengthConstraint",
    "LiveIntersectConstraint",
    "SparseDFA",
    "SparseDFAConstraint",
    "compile_choice",
    "compile_keywords",
    "intersect",
    "length_bounds",
    "max_length",
    "min_length",
]
