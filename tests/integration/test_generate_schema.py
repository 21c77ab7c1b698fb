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

    # Unknown keywords and unknown formats are annotations (draft 2020-12); uniqueItems over
    # strings under an anyOf with two array branches (it would apply only when that branch
    # matches, which is not known while the array is written) is not supported and must be
    # reported with its location.
    schema = json.dumps({"type": "object", "properties": {"a": {"anyOf": [{
        "type": "array", "items": {"type": "string", "x-unknown-but-ok": 1, "format": "no-such-format"},
        "uniqueItems": True,
    }, {"type": "array", "maxItems": 1}]}}})
    code = main(["generate", "--schema", schema, "x"])
    err = capsys.readouterr().err
    assert code == 2 and "schema at /properties/a/anyOf/0/uniqueItems" in err


def test_fit_budget_ends_the_document_inside_max_new_tokens(default_model):
    """person.json's shortest document is 20 bytes; 21 tokens are enough only if the constraint plans the end."""
    model, tokenizer = default_model
    schema = json.loads((SCHEMAS / "person.json").read_text())
    prompt = "Describe Ada Lovelace as a person record with a long biography."
    with pytest.raises(constrain.IncompleteGenerationError):
        constrain.generate(model, tokenizer, prompt, schema=schema, max_new_tokens=21)
    result = constrain.generate_ids(model, tokenizer, prompt, schema=schema, max_new_tokens=21, fit_budget=True)
    assert len(result.token_ids) <= 20 and result.stop_reason != "max_new_tokens"
    jsonschema.validate(json.loads(result.text), schema)
    text = constrain.generate(
        model, tokenizer, prompt, schema=schema, max_new_tokens=40, length={"max_chars": 30}, fit_budget=True,
    )
    assert len(text) <= 30
    jsonschema.validate(json.loads(text), schema)


def test_any_property_order_and_runtime_checks_under_fit_budget(default_model):
    """property_order="any" (counting grammar + run-time distinct keys) and uniqueItems over strings
    (run-time check), both under fit_budget: the output validates and closes inside the budget."""
    model, tokenizer = default_model
    schema = json.loads((SCHEMAS / "product.json").read_text())
    text = constrain.generate(model, tokenizer, "A USB-C cable in the catalog.", schema=schema,
                              schema_options={"property_order": "any"}, max_new_tokens=160, fit_budget=True)
    doc = json.loads(text)
    jsonschema.validate(doc, schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    keys = json.loads(text, object_pairs_hook=lambda kv: [k for k, _v in kv])
    assert len(set(keys)) == len(keys)
