"""The exception hierarchy of constrain.

Every error a user can cause by the grammar, schema, regex or tokenizer they pass in is an
``InputError`` (also a ``ValueError``); errors carry their location first::

    ConstrainError
    ├── InputError(ConstrainError, ValueError)        the grammar / schema / regex given by the user
    │   ├── RegexSyntaxError       .pattern, .position -> "regex at 4: ..."
    │   ├── GrammarSyntaxError     .line, .column     -> "grammar.lark:12:7: ..."
    │   ├── SchemaError            .pointer           -> "schema at /properties/age: ..."
    │   └── UnsupportedFeatureError  valid input we do not support (carries position or pointer)
    ├── VocabularyError(ConstrainError, ValueError)   tokenizer cannot be mapped to bytes
    ├── LimitExceededError(ConstrainError)            a named ``Limits`` field was exceeded
    └── InternalError(ConstrainError)                 a bug: please report it with the input

API misuse (wrong dtype, wrong shape) raises the builtin ``TypeError`` / ``ValueError``.
"""

from __future__ import annotations


class ConstrainError(Exception):
    """Base class of every error raised by constrain."""


class InputError(ConstrainError, ValueError):
    """The grammar, schema or regex given by the user is invalid or unsupported."""


def _regex_location(pattern: str | None, position: int | None) -> str:
    if position is None:
        return "regex"
    excerpt = ""
    if pattern is not None:
        excerpt = f" (in {pattern!r}, here: {pattern[position:position + 12]!r})"
    return f"regex at {position}{excerpt}"


class RegexSyntaxError(InputError):
    """A regular expression could not be parsed.

    ``position`` is the 0-based character index in ``pattern`` where the problem starts.
    """

    def __init__(self, message: str, *, pattern: str | None = None, position: int | None = None):
        self.message = message
        self.pattern = pattern
        self.position = position
        super().__init__(f"{_regex_location(pattern, position)}: {message}")


class GrammarSyntaxError(InputError):
    """A grammar could not be read; ``line`` and ``column`` are 1-based."""

    def __init__(
        self,
        message: str,
        *,
        source: str = "grammar",
        line: int | None = None,
        column: int | None = None,
    ):
        self.message = message
        self.source = source
        self.line = line
        self.column = column
        where = source
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        super().__init__(f"{where}: {message}")


class SchemaError(InputError):
    """A JSON schema is invalid; ``pointer`` is the JSON Pointer of the offending keyword."""

    def __init__(self, message: str, *, pointer: str = ""):
        self.message = message
        self.pointer = pointer
        super().__init__(f"schema at {pointer or '/'}: {message}")


class UnsupportedFeatureError(InputError):
    """Valid input that constrain does not support (never silently ignored).

    Exactly one of ``pointer`` (JSON Schema), ``position`` (regex) or ``line`` (grammar) is usually set.
    """

    def __init__(
        self,
        message: str,
        *,
        pointer: str | None = None,
        pattern: str | None = None,
        position: int | None = None,
        source: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ):
        self.message = message
        self.pointer = pointer
        self.pattern = pattern
        self.position = position
        self.line = line
        self.column = column
        if pointer is not None:
            where = f"schema at {pointer or '/'}"
        elif position is not None or pattern is not None:
            where = _regex_location(pattern, position)
        elif line is not None:
            where = f"{source or 'grammar'}:{line}" + (f":{column}" if column is not None else "")
        else:
            where = source or "input"
        super().__init__(f"{where}: {message} is not supported")


class VocabularyError(ConstrainError, ValueError):
    """A tokenizer's tokens cannot be mapped to bytes, or a vocabulary is inconsistent."""


class LimitExceededError(ConstrainError):
    """A bound from :class:`constrain.Limits` was exceeded; ``field`` names it."""

    def __init__(self, field: str, limit: int, message: str):
        self.field = field
        self.limit = limit
        super().__init__(f"{message} (limit Limits.{field}={limit}; raise it to allow more)")


class InternalError(ConstrainError):
    """A bug in constrain; please report it with the input that triggered it."""
