"""A few real MaskBench schemas (copied into data/, small, one per feature): the grammar agrees
with every instance's ``valid`` flag, and jsonschema agrees with the flags too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ._util import grammar, lark_accepts, oracle_valid

FILES = sorted((Path(__file__).resolve().parent / "data").glob("*.json"))


def test_samples_present():
    assert len(FILES) >= 10


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_maskbench_sample(path):
    doc = json.loads(path.read_text())
    text = grammar(doc["schema"])
    for t in doc["tests"]:
        assert oracle_valid(doc["schema"], t["data"]) == t["valid"]
        assert lark_accepts(text, json.dumps(t["data"], ensure_ascii=False)) == t["valid"], t["data"]
