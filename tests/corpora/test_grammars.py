"""Check the grammar corpus in grammars/ against Lark itself.

Every ``grammars/NAME.lark`` has a ``NAME.samples.json`` with ``valid`` strings that must parse and
``invalid`` strings that must raise a ``lark.exceptions.LarkError``. The first line of each grammar,
``// lexer: basic, dynamic``, names the Lark lexers (always with ``parser="earley"``) under which
the samples hold; each sample is checked under each of them.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest

lark = pytest.importorskip("lark")
from lark.exceptions import LarkError  # noqa: E402

GRAMMARS_DIR = Path(__file__).parents[2] / "grammars"
GRAMMAR_FILES = sorted(GRAMMARS_DIR.glob("*.lark"))
KNOWN_LEXERS = {"basic", "dynamic"}
_LEXER_LINE = re.compile(r"^// lexer: *(.+)$", re.MULTILINE)


def _grammar_text(name: str) -> str:
    return (GRAMMARS_DIR / f"{name}.lark").read_text(encoding="utf-8")


def _lexers(name: str) -> list[str]:
    match = _LEXER_LINE.search(_grammar_text(name))
    assert match, f"{name}.lark: missing '// lexer: ...' header line"
    lexers = [part.strip() for part in match.group(1).split(",")]
    assert lexers and set(lexers) <= KNOWN_LEXERS, f"{name}.lark: bad lexer header {lexers}"
    return lexers


@functools.lru_cache(maxsize=None)
def _samples(name: str) -> dict:
    return json.loads((GRAMMARS_DIR / f"{name}.samples.json").read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=None)
def _parser(name: str, lexer: str) -> "lark.Lark":
    return lark.Lark(_grammar_text(name), parser="earley", lexer=lexer, start=_samples(name)["start"])


def _cases(kind: str):
    for path in GRAMMAR_FILES:
        name = path.stem
        for lexer in _lexers(name):
            for index, text in enumerate(_samples(name)[kind]):
                yield pytest.param(name, lexer, text, id=f"{name}-{lexer}-{kind}{index}")


def test_corpus_is_present():
    names = {path.stem for path in GRAMMAR_FILES}
    expected = {"json", "arithmetic", "sql_select", "python_subset", "csv", "lisp", "lark_ebnf"}
    assert expected <= names


@pytest.mark.parametrize("path", GRAMMAR_FILES, ids=lambda p: p.stem)
def test_samples_file_shape(path: Path):
    samples = _samples(path.stem)
    assert samples["start"] == "start"
    assert len(samples["valid"]) >= 8
    assert len(samples["invalid"]) >= 6
    assert all(isinstance(s, str) for s in samples["valid"] + samples["invalid"])
    assert not set(samples["valid"]) & set(samples["invalid"])


@pytest.mark.parametrize(
    "name,lexer",
    [pytest.param(p.stem, lx, id=f"{p.stem}-{lx}") for p in GRAMMAR_FILES for lx in _lexers(p.stem)],
)
def test_grammar_loads(name: str, lexer: str):
    _parser(name, lexer)


@pytest.mark.parametrize("name", [p.stem for p in GRAMMAR_FILES])
def test_grammar_is_valid_lark_syntax(name: str):
    """The lark_ebnf grammar (Lark's grammar language) accepts every grammar in the corpus."""
    _parser("lark_ebnf", "dynamic").parse(_grammar_text(name))


@pytest.mark.parametrize("name,lexer,text", list(_cases("valid")))
def test_valid_sample_parses(name: str, lexer: str, text: str):
    _parser(name, lexer).parse(text)


@pytest.mark.parametrize("name,lexer,text", list(_cases("invalid")))
def test_invalid_sample_is_rejected(name: str, lexer: str, text: str):
    with pytest.raises(LarkError):
        _parser(name, lexer).parse(text)
