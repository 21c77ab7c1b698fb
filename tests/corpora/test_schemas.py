"""Check the JSON Schema corpus in schemas/ with the ``jsonschema`` reference implementation.

Every ``schemas/NAME.json`` must be a valid draft 2020-12 schema; its ``NAME.examples.json`` holds
``valid`` instances that must validate and ``invalid`` ones that must not (formats are asserted).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

jsonschema = pytest.importorskip("jsonschema")
from jsonschema import Draft202012Validator  # noqa: E402

SCHEMAS_DIR = Path(__file__).parents[2] / "schemas"
SCHEMA_FILES = sorted(p for p in SCHEMAS_DIR.glob("*.json") if not p.name.endswith(".examples.json"))
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


@functools.lru_cache(maxsize=None)
def _schema(name: str) -> dict:
    return json.loads((SCHEMAS_DIR / f"{name}.json").read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=None)
def _examples(name: str) -> dict:
    return json.loads((SCHEMAS_DIR / f"{name}.examples.json").read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=None)
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(_schema(name), format_checker=Draft202012Validator.FORMAT_CHECKER)


def _cases(kind: str):
    for path in SCHEMA_FILES:
        for index, instance in enumerate(_examples(path.stem)[kind]):
            yield pytest.param(path.stem, instance, id=f"{path.stem}-{kind}{index}")


def test_corpus_is_present():
    names = {p.stem for p in SCHEMA_FILES}
    expected = {"api_response", "product", "tree", "function_call", "k8s_deployment", "person", "date_range"}
    assert expected <= names


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.stem)
def test_schema_is_valid_draft_2020_12(path: Path):
    schema = _schema(path.stem)
    assert schema.get("$schema") == DRAFT_2020_12
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.stem)
def test_examples_file_shape(path: Path):
    examples = _examples(path.stem)
    assert len(examples["valid"]) >= 5
    assert len(examples["invalid"]) >= 5


@pytest.mark.parametrize("name,instance", list(_cases("valid")))
def test_valid_example_validates(name: str, instance):
    errors = [e.message for e in _validator(name).iter_errors(instance)]
    assert not errors, errors


@pytest.mark.parametrize("name,instance", list(_cases("invalid")))
def test_invalid_example_fails(name: str, instance):
    assert not _validator(name).is_valid(instance)
