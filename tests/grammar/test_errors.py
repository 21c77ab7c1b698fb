"""Bad or unsupported grammars raise located errors."""

from __future__ import annotations

import pytest

from constrain.errors import GrammarSyntaxError, LimitExceededError, UnsupportedFeatureError
from constrain.grammar import compile_grammar
from constrain.limits import Limits
from tests.grammar._util import toy_vocab


def test_syntax_error_has_line_and_column():
    with pytest.raises(GrammarSyntaxError) as ei:
        compile_grammar('start: "a"\nfoo: +\n', toy_vocab())
    assert (ei.value.line, ei.value.column) == (2, 6)
    assert "grammar:2:6:" in str(ei.value)


def test_undefined_rule_is_located():
    with pytest.raises(GrammarSyntaxError) as ei:
        compile_grammar('start: "a" bar\n', toy_vocab())
    assert ei.value.line == 1 and ei.value.column is not None
    assert "bar" in str(ei.value)


def test_declared_terminal_unsupported():
    with pytest.raises(UnsupportedFeatureError) as ei:
        compile_grammar('start: "a" B\n%declare B\n', toy_vocab())
    assert ei.value.line is not None and "B" in str(ei.value)


def test_lookahead_terminal_unsupported():
    with pytest.raises(UnsupportedFeatureError) as ei:
        compile_grammar('start: A\nA: /a(?=b)/\n', toy_vocab())
    assert ei.value.line == 2


def test_unsupported_flag():
    with pytest.raises(UnsupportedFeatureError):
        compile_grammar('start: A\nA: /a b/x\n', toy_vocab())


def test_zero_width_terminal_rejected():
    with pytest.raises(GrammarSyntaxError):
        compile_grammar('start: A\nA: /a?/\n', toy_vocab())


def test_unproductive_start():
    with pytest.raises(GrammarSyntaxError):
        compile_grammar('start: "a" start\n', toy_vocab())


def test_dfa_limit():
    import random

    # over max_dfa_states the lexer is built lazily: max_lazy_lexer_states then bounds the states built
    grammar = 'start: A\nA: /[ab]*a[ab]{12}/\n'
    rnd = random.Random(0)
    text = bytes(rnd.choice(b"ab") for _ in range(400))
    c = compile_grammar(grammar, toy_vocab(), limits=Limits(max_dfa_states=100, max_lazy_lexer_states=100))
    assert c.advance_bytes(c.initial_state(), b"ab" * 3) is not None
    with pytest.raises(LimitExceededError) as ei:
        c.advance_bytes(c.initial_state(), text)
    assert ei.value.field == "max_lazy_lexer_states"
    # the compile-time bound alone does not stop a lazy lexer: the same text lexes under the default
    c = compile_grammar(grammar, toy_vocab(), limits=Limits(max_dfa_states=100))
    assert c.advance_bytes(c.initial_state(), text) is not None


def test_file_path_source(tmp_path):
    p = tmp_path / "bad.lark"
    p.write_text('start: "a"\nfoo: +\n')
    with pytest.raises(GrammarSyntaxError) as ei:
        compile_grammar(p, toy_vocab())
    assert str(p) in str(ei.value) and ei.value.line is not None


def test_grammar_size_and_parser_state_limits():
    import pytest

    from constrain import Limits, LimitExceededError
    from constrain.grammar import compile_grammar
    from tests.grammar._util import toy_vocab

    big = "start: " + " | ".join(f"r{i}" for i in range(30)) + "\n" + "\n".join(f'r{i}: "x{i}"' for i in range(30))
    with pytest.raises(LimitExceededError, match="max_grammar_rules"):
        compile_grammar(big, toy_vocab(), limits=Limits(max_grammar_rules=10))
    nested = 'start: e\ne: "(" e ")" | "x"'
    c = compile_grammar(nested, toy_vocab(), limits=Limits(max_parser_states=5))
    m = c.matcher()
    with pytest.raises(LimitExceededError, match="max_parser_states"):
        for _ in range(10):
            m.accept_bytes(b"(")
            m.allowed_token_ids()
