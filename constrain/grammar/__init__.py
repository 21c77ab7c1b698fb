"""Context-free grammar constraints (Lark grammars, Earley parser, exact lexing)."""

from constrain.grammar.compile import GrammarConstraint, compile_grammar

__all__ = ["GrammarConstraint", "compile_grammar"]
