"""JSON-schema-constrained generation with the real model: outputs validate with jsonschema. Slow."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

import constrain

pytestmark = pytest.mark.slow

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


@pytest.mark.parametrize(
    ("name", "prompt"),
    [("person", "Describe Ada Lovelace as a person record."), ("date_range", "The 2024 summer holidays.")],
)
@pytest.mark.parametrize("whitespace", ["flexible", "compact"])
def test_generated_json_validates(default_model, name, prompt, whitespace):
    model, tokenizer = default_model
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    text = constrain.generate(
        model, tokenizer, prompt, schema=schema, schema_options={"whitespace": whitespace},
        max_new_tokens=120, fast_forward=True,
    )
    jsonschema.validate(json.loads(text), schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    if whitespace == "compact":
        assert text == json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)


def test_cli_schema(default_model, capsys):
    from constrain.cli import main

    path = SCHEMAS / "person.json"
    assert main(["generate", "--schema", str(path), "--max-new-tokens", "120", "Describe Alan Turing."]) == 0
    instance = json.loads(capsys.readouterr().out)
    jsonschema.validate(instance, json.loads(path.read_text()))


def test_unsupported_keyword_is_reported_by_the_cli(default_model, capsys):
    from constrain.cli import main

    # Unknown keywords and unknown formats are annotations (draft 2020-12); uniqueItems over an
    # unbounded item domain is not supported and must be reported with its location.
    schema = json.dumps({"type": "object", "properties": {"a": {
        "type": "array", "items": {"type": "string", "x-unknown-but-ok": 1, "format": "no-such-format"},
        "uniqueItems": True,
    }}})
    code = main(["generate", "--schema", schema, "x"])
    err = capsys.readouterr().err
    assert code == 2 and "schema at /properties/a/uniqueItems" in err
