"""Context-free grammar constraints (Lark grammars, Earley parser, exact lexing)."""

from constrain.grammar.compile import MAX_LEXER_THREADS, GrammarConstraint, compile_grammar

__all__ = ["MAX_LEXER_THREADS", "GrammarConstraint", "compile_grammar"]
