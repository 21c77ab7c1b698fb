"""Regular expressions compiled to minimized byte-level DFAs over UTF-8."""

from constrain.regex.dfa import (
    ByteDFA,
    LazyLexerDFA,
    LexerDFA,
    literal_to_regex,
    regex_to_dfa,
    terminals_to_dfa,
    terminals_to_lazy_dfa,
)

__all__ = [
    "ByteDFA",
    "LazyLexerDFA",
    "LexerDFA",
    "literal_to_regex",
    "regex_to_dfa",
    "terminals_to_dfa",
    "terminals_to_lazy_dfa",
]
