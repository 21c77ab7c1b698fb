"""Mutated corpus sentences that lark rejects are rejected by the matcher (some token, or at the end)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.grammar._util import compiled, lark_accepts, random_segmentation

GRAMMARS = Path(__file__).resolve().parents[2] / "grammars"
NAMES = sorted(p.stem for p in GRAMMARS.glob("*.lark"))
ALPHABET = list(" \n\t()[]{},.:;\"'+-*/=<>_!?#0123456789abcdefxyzSELECTFROMWHEREif")


def _load(name: str) -> tuple[str, list[str]]:
    text = (GRAMMARS / f"{name}.lark").read_text()
    samples = json.loads((GRAMMARS / f"{name}.samples.json").read_text())["valid"]
    return text, samples


@st.composite
def mutation(draw, sample: str) -> str:
    """Insert, delete, replace or duplicate a few characters of ``sample``."""
    text = sample
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "swap", "truncate"]))
        i = draw(st.integers(0, max(len(text) - 1, 0)))
        c = draw(st.sampled_from(ALPHABET))
        if op == "insert":
            text = text[:i] + c + text[i:]
        elif op == "delete" and text:
            text = text[:i] + text[i + 1 :]
        elif op == "replace" and text:
            text = text[:i] + c + text[i + 1 :]
        elif op == "swap" and len(text) > i + 1:
            text = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
        elif op == "truncate":
            text = text[:i]
    return text


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
@settings(max_examples=40)
def test_mutants_lark_rejects_are_rejected(name, data):
    grammar, samples = _load(name)
    sample = data.draw(st.sampled_from(samples))
    text = data.draw(mutation(sample))
    rnd = data.draw(st.randoms(use_true_random=False))
    constraint = compiled(grammar)
    m = constraint.matcher()
    ids = random_segmentation(text.encode("utf-8"), rnd)
    fully_accepted = m.accept_tokens(ids) == len(ids)
    ends_accepting = fully_accepted and m.is_accepting()
    assert ends_accepting == lark_accepts(grammar, text), (name, text)
