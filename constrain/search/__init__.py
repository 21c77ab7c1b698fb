"""Decoding-time search (DeAL-style lookahead, docs algorithms.md §3) inside hard constraints."""

from constrain.search.lookahead import Lookahead, SearchResult, generate_with_search
from constrain.search.rewards import combine, concept_present, keyword_coverage, length_reward, word_count

__all__ = [
    "Lookahead",
    "SearchResult",
    "combine",
    "concept_present",
    "generate_with_search",
    "keyword_coverage",
    "length_reward",
    "word_count",
]
