"""JSON Schema -> Lark grammar -> constraint (exact, or an explicit error). See :mod:`.compile`."""

from constrain.schema.compile import compile_json_schema, schema_to_lark

__all__ = ["compile_json_schema", "schema_to_lark"]
