"""Grammar-constrained generation with the real default model: outputs parse with lark. Slow."""

from __future__ import annotations

from pathlib import Path

import lark
import pytest

import constrain

pytestmark = pytest.mark.slow

GRAMMARS = Path(__file__).resolve().parents[2] / "grammars"

CASES = [
    ("json", "Give a JSON object describing a cat with name and age."),
    ("sql_select", "Write a SQL query selecting all users older than 30."),
    ("lisp", "Write a Lisp expression adding 1 and 2."),
]


@pytest.mark.parametrize(("name", "prompt"), CASES)
def test_generated_text_parses(default_model, name, prompt):
    model, tokenizer = default_model
    path = GRAMMARS / f"{name}.lark"
    result = constrain.generate_ids(model, tokenizer, prompt, grammar=path, max_new_tokens=120)
    assert result.stop_reason in ("eos", "constraint_complete")
    parser = lark.Lark(path.read_text(), parser="earley", lexer="dynamic_complete")
    parser.parse(result.text)  # raises if the output is not a sentence of the grammar


def test_grammar_and_regex_are_exclusive(default_model):
    model, tokenizer = default_model
    with pytest.raises(TypeError, match="exactly one of"):
        constrain.generate(model, tokenizer, "x", regex="a", grammar='start: "a"')


def test_cli_grammar(default_model, capsys):
    from constrain.cli import main

    grammar = 'start: ANSWER\nANSWER: "yes" | "no"\n'
    assert main(["generate", "--grammar", grammar, "--max-new-tokens", "5", "Is fire hot?"]) == 0
    assert capsys.readouterr().out.strip() in ("yes", "no")
