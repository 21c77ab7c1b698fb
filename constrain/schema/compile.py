"""JSON Schema (draft 2020-12) -> Lark grammar text -> constraint. Exact, or an explicit error.

:func:`schema_to_lark` writes a Lark grammar whose language (under ``lark.Lark(text,
parser="earley", lexer="dynamic_complete")``) is a set of JSON texts that all validate against the
schema, and that contains a spelling of every valid value (see "Spellings"). A keyword we cannot
enforce exactly raises :class:`UnsupportedFeatureError` with the JSON Pointer of the keyword;
an invalid schema raises :class:`SchemaError`; nothing is silently dropped.

Supported keywords
------------------
``type`` (string or list), ``enum``, ``const``, ``properties``, ``required``,
``additionalProperties``, ``patternProperties`` (exact: a declared key satisfies its property schema
and every pattern that matches it; other keys are split into regions by which patterns match them,
product of code-point DFAs in :mod:`.cpdfa`, at most ``Limits.max_schema_key_regions``, each with
the conjunction of its patterns' schemas or ``additionalProperties``; not with ``propertyNames``),
``propertyNames`` (``pattern``/``minLength``/``maxLength``/``format``/
``enum``/``const``, also through ``$ref``/``allOf``), ``minProperties``/``maxProperties``, ``dependentRequired``/``dependentSchemas``
(and both forms of draft-7 ``dependencies``), ``items``, ``prefixItems`` (and draft-7 array
``items`` + ``additionalItems``), ``minItems``/``maxItems``, ``uniqueItems: false``, ``uniqueItems:
true`` (with ``maxItems`` <= 1, or items of a finite domain: enum/const/boolean/null, one rule per
subset of used values, at most ``Limits.max_schema_unique_items_values`` values),
``minLength``/``maxLength`` with patterns/formats and several patterns/formats on one string
(rewritten on the pattern AST where it has one variable-length part, else the product of
code-point DFAs written back as a regex, bounded by ``Limits.max_dfa_states`` and
``Limits.max_schema_regex_chars``; over that bound :func:`compile_json_schema` hands the lexer the
DFA itself as a byte-automaton terminal), ``pattern``,
``format`` (see :mod:`constrain.schema.formats`), ``minimum``/``maximum``/``exclusiveMinimum``/
``exclusiveMaximum`` (and draft-4 boolean exclusives), ``multipleOf`` (integers: finite ranges of at
most ``Limits.max_schema_enum_values`` multiples, or divisors of 10**4 with any bounds; numbers: ``10**-k``),
``anyOf``, ``oneOf`` (a finite branch's values that match another branch are removed from both;
infinite branches provably disjoint: by type, by a required
``const``/``enum`` discriminator, or by a key one branch requires and the other's closed object
forbids), ``allOf`` and ``$ref`` with sibling keywords (merged, see :meth:`_Compiler.normalize`),
``not`` (De Morgan over ``type``, ``enum``/``const``, ``required``, ``properties``, length and
number bounds, ``anyOf``/``allOf``/``not``/``$ref``; see :meth:`_Compiler.negate`),
``if``/``then``/``else`` (``(if and then) or (not if and else)``, so ``if`` must be negatable),
``contains``/``minContains``/``maxContains`` (each element matches C or not-C, counted; C must be
negatable; not together with ``prefixItems``/``minItems``/``maxItems``),
``$ref``/``$defs``/``definitions``/``$anchor`` (local, recursive), boolean schemas.

``enum``/``const`` with any sibling keywords is always exact: the finite candidate set is filtered
with ``jsonschema`` itself against every schema the node came from (whatever keywords they use).

Unknown keywords (``_format``, ``javaType``, ``self``, ...) are annotations in draft 2020-12: they
assert nothing, validators ignore them, so ignoring them is exact (``unknown_keywords="ignore"``,
the default; ``"error"`` raises on them, to catch typos such as ``maxLenght``). Draft-03 keywords
that did assert something (``divisibleBy``, ``disallow``, ``extends``) always raise.

``uniqueItems: true`` over a finite item domain is a grammar (a rule per used subset); over
strings, :func:`compile_json_schema` leaves it to :mod:`constrain.schema.unique`, which checks it
as the items are written (the array must be reached through ``properties``/``items``/``allOf``/
``$ref`` only, its items one string schema).

Raise ``UnsupportedFeatureError``: other ``uniqueItems: true``, ``unevaluated*`` (unless
``true``), ``$dynamicRef``/``$recursiveRef``, non-local ``$ref``, formats a draft defines that
:mod:`.formats` lacks (unknown format names are annotations: ``unknown_formats="ignore"``, the
default, or ``"error"``), and
the combinations named above (``oneOf`` with overlapping branches, ``uniqueItems`` over an infinite item domain,
``not`` of a pattern/format/array keyword, ``minProperties`` >= 2 next to additional properties
(duplicate keys) -- except in :func:`compile_json_schema` when the additional keys are infinitely
many: there repeated keys are refused at run time (:mod:`.distinct_keys`) and the count is exact --,
...).

Ignored (annotations): ``title``, ``description``, ``default``, ``examples``, ``$comment``,
``deprecated``, ``readOnly``, ``writeOnly``, ``$schema``, ``$id``, ``$anchor``,
``$dynamicAnchor``, ``$defs``, ``definitions``, ``$vocabulary``, ``contentEncoding``,
``contentMediaType``, ``contentSchema`` (annotations in 2020-12), draft-4 ``id``, keywords starting
with ``x-``, and the editor annotations ``markdownDescription``, ``enumDescriptions``,
``markdownEnumDescriptions``, ``deprecationMessage``, ``defaultSnippets``. Every other keyword raises.

Spellings
---------
The grammar accepts one spelling per value where JSON has several (it restricts spellings, never
values): strings use the ``json.dumps(ensure_ascii=False)`` escapes (:mod:`.json_string`);
numbers as in :mod:`.numbers`; ``const``/``enum`` numbers are spelled as ``json.dumps`` does, plus
``N``/``N.0``/``N.00``... for integral values; object ``const``/``enum`` values accept their keys
in any order when they have at most ``Limits.max_schema_any_order_properties`` keys, else in the given order.
Whitespace: ``"flexible"`` allows at most ``max_whitespace`` characters of ``[ \\t\\n\\r]`` around
``,`` ``:`` and inside brackets (none before the first or after the last token of the document);
``"compact"`` allows none; any other string is a regex for one run of whitespace (written as
``(?:R)`` at the same places). Properties come in schema order (``property_order="schema"``) with
optional ones skippable -- where a schema's own ``properties`` meet new members a ``$ref``, ``allOf``
or ``anyOf`` next to them brings in, those come first (a base type's fields before what the schema
adds; ``oneOf`` and ``if``/``then`` variants come after; see :func:`_composed_first`); additional
properties may come anywhere between them (after them all when ``minProperties``/``maxProperties``
count members); keys outside ``properties`` may repeat (a CFG
cannot forbid duplicate keys; ``json.loads`` keeps the last value). Numbers under a bound use plain
decimals, plus the exponent forms ``json.dumps`` writes (``1e-07``, ``1e+16``) where every number of
that form lies inside the bounds. The document has no whitespace before or after the top value.
``format`` is enforced (as with a ``FormatChecker``), although 2020-12 makes it an annotation.
A ``$ref`` with siblings is merged with them (2019-09 on); under a ``$schema`` of drafts 4-7 the
siblings are ignored, as those drafts' validators do, and so are keywords a draft does not have
(``const`` under draft 4); draft 4 types "integer" by spelling (``1.0`` is not one). See
``_Compiler.as_declared``. ``property_order="any"`` lets
the declared properties come in any order, each at most once: in Lark text as 2**n subsets (at most
``Limits.max_schema_any_order_properties`` properties); in :func:`compile_json_schema` as a grammar
that counts members (linear; only properties a ``dependentRequired`` names are tracked as a subset)
while :class:`~constrain.schema.distinct_keys.DistinctKeysConstraint` refuses repeated keys at run
time -- where the additional keys' language is every other string (or there are none); otherwise
the subset form.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from constrain._nogc import without_gc
from constrain.errors import LimitExceededError, SchemaError, UnsupportedFeatureError
from constrain.limits import DEFAULT_LIMITS, Limits
from constrain.schema import cpdfa
from constrain.schema import json_string as js
from constrain.schema import numbers as nm
from constrain.schema.formats import FORMATS, KNOWN_FORMATS

__all__ = ["compile_json_schema", "schema_to_lark", "CATALOG_MIN_VALUES"]

# An enum of more strings than this compiles (in compile_json_schema) as one catalog automaton.
CATALOG_MIN_VALUES = 256
# A string language whose code-point DFA has more states compiles (in compile_json_schema) as a
# byte automaton without trying its regex (state elimination is slow there: 257 states took
# 0.3 s, and their regexes are long), and so does one whose regex has more characters (141
# states gave 139k characters, a second to parse and build).
_REGEX_DFA_STATES = 64
_REGEX_AUTOMATON_CHARS = 4_096


ANNOTATIONS = frozenset({
    "title", "description", "default", "examples", "$comment", "deprecated", "readOnly", "writeOnly",
    "$schema", "$id", "$anchor", "$dynamicAnchor", "$defs", "definitions", "$vocabulary",
    "contentEncoding", "contentMediaType", "contentSchema",
    "markdownDescription", "enumDescriptions", "markdownEnumDescriptions", "deprecationMessage",
    "defaultSnippets",
})
VALIDATION = frozenset({
    "type", "enum", "const", "minLength", "maxLength", "pattern", "format", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "items", "prefixItems", "additionalItems",
    "minItems", "maxItems", "uniqueItems", "contains", "minContains", "maxContains", "unevaluatedItems",
    "properties", "required", "additionalProperties", "patternProperties", "propertyNames",
    "minProperties", "maxProperties", "dependentRequired", "dependentSchemas", "dependencies",
    "unevaluatedProperties", "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "$ref",
    "$dynamicRef", "$recursiveRef", "$recursiveAnchor",
})
_DRAFTS = {"Draft3Validator": 3, "Draft4Validator": 4, "Draft6Validator": 6, "Draft7Validator": 7,
           "Draft201909Validator": 2019, "Draft202012Validator": 2020}
"""The draft of a ``jsonschema`` validator class (the one ``validator_for`` picks for ``$schema``)."""
_INTRODUCED = {
    "const": 6, "contains": 6, "propertyNames": 6, "if": 7, "then": 7, "else": 7,
    "dependentRequired": 2019, "dependentSchemas": 2019, "minContains": 2019, "maxContains": 2019,
    "unevaluatedItems": 2019, "unevaluatedProperties": 2019, "$recursiveRef": 2019, "$recursiveAnchor": 2019,
    "prefixItems": 2020, "$dynamicRef": 2020,
}
"""The draft that introduced each assertion keyword; an older draft's validator ignores it.
(``dependencies``, ``additionalItems`` and the array form of ``items`` are kept in every draft:
schemas without ``$schema`` use them as draft 7 meant them.)"""
LEGACY_ASSERTIONS = frozenset({"divisibleBy", "disallow", "extends"})
"""Draft-03 keywords with validation semantics: never ignored, always raised."""
# keywords that combine subschemas (normalize() expands them; a finite enum next to them short-cuts)
_COMBINATORS = frozenset({"allOf", "anyOf", "oneOf", "not", "if", "$ref", "dependentSchemas", "dependencies"})
_ALL_TYPES = frozenset({"null", "boolean", "object", "array", "string", "int", "frac"})
_TYPE_SETS = {
    "null": {"null"}, "boolean": {"boolean"}, "object": {"object"}, "array": {"array"},
    "string": {"string"}, "integer": {"int"}, "number": {"int", "frac"},
}
_WS_CLASS = "[\\x20\\t\\n\\r]"


def _esc_ptr(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _dec(x) -> Decimal:
    return Decimal(x) if isinstance(x, int) else Decimal(repr(float(x)))


def _limit(field_name: str, limit: int, msg: str) -> LimitExceededError:
    return LimitExceededError(field_name, limit, msg)


@dataclass
class _Flat:
    """One conjunction of keyword occurrences (a node after ``allOf``/``$ref`` merging)."""

    ptr: str
    types: frozenset = _ALL_TYPES
    type_ptr: str | None = None
    enum: list | None = None  # candidate values (filtered by the sources at emission)
    sources: list = field(default_factory=list)  # (schema, ptr) the node came from
    kws: dict = field(default_factory=dict)  # keyword -> [(value, ptr, owning schema dict)]
    nots: list = field(default_factory=list)
    variant_props: frozenset = frozenset()
    """Identities of the ``properties`` entries that a ``oneOf``, ``if``/``then``/``else``,
    ``dependencies`` or ``not`` brought in, at any depth (see :func:`_composed_first`)."""

    def add(self, kw, value, ptr, owner):
        self.kws.setdefault(kw, []).append((value, ptr, owner))

    def merged(self, other: _Flat) -> _Flat:
        out = _Flat(self.ptr, self.types & other.types, self.type_ptr or other.type_ptr)
        if self.enum is None:
            out.enum = other.enum
        elif other.enum is None or len(self.enum) <= len(other.enum):
            out.enum = self.enum
        else:
            out.enum = other.enum
        out.sources = self.sources + other.sources
        out.kws = {k: list(v) for k, v in self.kws.items()}
        for k, v in other.kws.items():
            out.kws.setdefault(k, []).extend(v)
        out.nots = self.nots + other.nots
        out.variant_props = self.variant_props | other.variant_props
        return out


def _property_entries(flats: list[_Flat]) -> set[int]:
    """Identities of the ``properties`` entries of ``flats`` (merging copies lists, not entries)."""
    return {id(e) for fl in flats for e in fl.kws.get("properties", ())}


def _composed_first(fl: _Flat, schema: dict, composed: set[int]) -> _Flat:
    """``fl`` with the ``properties`` entries that ``schema``'s ``allOf``/``anyOf`` members brought
    in (identities in ``composed``) moved before the schema's own ``properties`` when they name none
    of its members: a base type that adds fields (``{"allOf": [{"$ref": Base}], "properties":
    {"extra": ...}}``, the draft-7 way of writing a ``$ref`` with siblings) has them written first,
    as with a plain ``$ref`` (whose members come first already): a derived type's own fields after
    its parent's. Entries that refine the schema's own members, and what ``oneOf``, ``if``/``then``,
    ``dependencies`` and ``not`` bring in (discriminated variants, conditional members), stay after
    them. Only schema-order objects read this order; the constraints are unchanged. ``fl`` is not
    mutated."""
    props = fl.kws.get("properties")
    if not props or len(props) < 2:
        return fl
    at = next((i for i, e in enumerate(props) if e[2] is schema), None)
    if at is None or not isinstance(props[at][0], dict):
        return fl
    own = props[at][0]
    lead = [e for e in props[at + 1:]
            if id(e) in composed and id(e) not in fl.variant_props and isinstance(e[0], dict) and e[0]
            and own.keys().isdisjoint(e[0])]
    if not lead:
        return fl
    moved = {id(e) for e in lead}
    out = _Flat(fl.ptr, fl.types, fl.type_ptr, fl.enum, fl.sources, dict(fl.kws), fl.nots, fl.variant_props)
    out.kws["properties"] = props[:at] + lead + [e for e in props[at:] if id(e) not in moved]
    return out


class _Complement:
    """The strings *outside* a search language (``branches``: parsed pattern branches), as an entry
    of a string's languages (from ``not`` of a pattern or an enforced format)."""

    __slots__ = ("branches",)

    def __init__(self, branches):
        self.branches = branches


def _conj_key(schema, ptr: str) -> str:
    """A conjunct's memo key: its pointer, marked when an odd number of 'not's wrap the schema
    there (``not not S`` is S: the 'contains' of a negated ``items`` conjoins both)."""
    depth = 0
    while isinstance(schema, _Negated):
        depth += 1
        schema = schema.schema
    return ("!not:" + ptr) if depth % 2 else ptr


class _Negated:
    """A subschema that stands for the values *not* valid against ``schema`` (built by 'not')."""

    __slots__ = ("schema",)

    def __init__(self, schema):
        self.schema = schema


class _NoFiniteDomain(UnsupportedFeatureError):
    """uniqueItems whose items have no finite domain (the caller may enforce it at run time)."""


_LONG_LENGTH = re.compile(r'"m(?:ax|in)Length": *(\d{3,})')
_LONG_QUANTIFIER = re.compile(r"\{(\d+)(?:,(\d*))?\}")


def _long_repetitions(root) -> bool:
    """Whether the schema's text asks for a repetition an eager lexer does not expand: a
    ``maxLength`` / ``minLength`` or a ``{n}`` / ``{n,m}`` quantifier (in a pattern; text elsewhere
    only costs the fusion) past ``_EAGER_LEXER_MAX_REPEAT``. A cheap guess, checked after."""
    from constrain.grammar.compile import _EAGER_LEXER_MAX_REPEAT

    if not isinstance(root, (dict, list)):
        return False
    text = json.dumps(root)
    if any(int(m.group(1)) > _EAGER_LEXER_MAX_REPEAT for m in _LONG_LENGTH.finditer(text)):
        return True
    return any(int(m.group(2) or m.group(1)) > _EAGER_LEXER_MAX_REPEAT for m in _LONG_QUANTIFIER.finditer(text))


def _lexer_counts(c: "_Compiler", limits: Limits) -> bool:
    """Whether the lexer of ``c``'s terminals will count a repetition (built lazily: some bound
    past what an eager lexer expands, see ``constrain.grammar.compile._EAGER_LEXER_MAX_REPEAT``)."""
    from constrain.grammar.compile import _EAGER_LEXER_MAX_REPEAT, eager_lexer_limits
    from constrain.regex.dfa import repetition_bound

    eager = eager_lexer_limits(limits)  # the lexer's own parses: cached for it
    return any(repetition_bound(rx, eager) > _EAGER_LEXER_MAX_REPEAT for _name, rx in c.term_defs)


@lru_cache(maxsize=65536)
def _terminal_base(hint: str) -> str:
    """A terminal name's stem from a hint: upper-case letters, digits and ``_`` (kept per hint)."""
    base = _NON_UPPER_WORD.sub("_", hint.upper()).strip("_")[:40] or "T"
    return base if base[0].isalpha() else "T_" + base


@lru_cache(maxsize=65536)
def _rule_base(hint: str) -> str:
    """A rule name's stem from a hint: lower-case letters, digits and ``_`` (kept per hint)."""
    base = _NON_LOWER_WORD.sub("_", hint.lower()).strip("_")[:48] or "root"
    return base if base[0].isalpha() else "n_" + base


_NON_UPPER_WORD = re.compile(r"[^A-Z0-9]+")
_NON_LOWER_WORD = re.compile(r"[^a-z0-9]+")


def _check_depth(root, max_depth: int) -> None:
    """Raise ``LimitExceededError`` (``max_schema_depth``, with the pointer of the first object
    or array too deep) when ``root`` nests objects and arrays more than ``max_depth`` deep;
    iterative, so a hostile document cannot exhaust the stack here."""
    stack = [(root, 1, None)]  # (node, depth, trail): trail = (parent's trail, key), spelled on failure only
    while stack:
        x, d, trail = stack.pop()
        if d > max_depth:
            keys = []
            while trail is not None:
                trail, key = trail
                keys.append(_esc_ptr(str(key)))
            ptr = "/" + "/".join(reversed(keys))
            raise _limit("max_schema_depth", max_depth, f"schema at {ptr}: objects and arrays nested {d} deep")
        if isinstance(x, dict):
            stack.extend((v, d + 1, (trail, k)) for k, v in x.items() if isinstance(v, (dict, list)))
        elif isinstance(x, list):
            stack.extend((v, d + 1, (trail, i)) for i, v in enumerate(x) if isinstance(v, (dict, list)))


def _json_copy(x):
    """A deep copy of a JSON document (dicts, lists and scalars copied by hand, several times
    faster than ``copy.deepcopy``; anything else through ``copy.deepcopy``). Pure."""
    if isinstance(x, dict):
        return {k: _json_copy(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_copy(v) for v in x]
    if x is None or isinstance(x, (str, int, float, bool)):
        return x
    return copy.deepcopy(x)


class _Compiler:
    def __init__(self, root, whitespace, max_whitespace, property_order, limits, unknown_keywords="ignore",
                 unknown_formats="ignore", catalogs=False, runtime_unique=False):
        self.root = root
        self.limits = limits
        self.catalogs = catalogs  # large string enums as %declare'd automata (compile_json_schema only)
        # uniqueItems over strings left to constrain.schema.unique (compile_json_schema only):
        # the pointers of the keywords handed over, and those every path reaches unconditionally.
        self.runtime_unique = runtime_unique
        # property_order="any" with duplicate keys refused at run time (constrain.schema.distinct_keys):
        # linear counting grammars instead of 2**n subsets; distinct_keys: whether one was emitted
        self.runtime_keys = runtime_unique
        self.distinct_keys = False
        self.comma_checks = False  # some such object has finitely many additional keys
        self.unique_sites: dict[str, Any] = {}  # uniqueItems pointer -> constrain.schema.unique.UniqueSite
        self._unconditional_unique: set[str] | None = None
        self.external: dict[str, object] = {}  # %declare'd catalog terminals: name -> byte DFA
        self._valid_memo: dict[tuple[int, str], tuple] = {}  # (id(schema), JSON text) -> (schema, verdict)
        self._resolved: dict[str, tuple] = {}  # $ref -> (node, pointer), resolve's memo
        self._finite: dict[int, tuple] = {}  # id(schema) -> (schema, finite_candidates' answer)
        self._enum_cache: dict[int, tuple] = {}  # id(schema) -> (schema, enum hash keys, schema without enum)
        if unknown_keywords not in ("ignore", "error"):
            raise ValueError("unknown_keywords must be 'ignore' or 'error'")
        self.unknown_keywords = unknown_keywords
        self.ignored_keywords: list[str] = []  # pointers of the unknown keywords that were ignored
        self._ignored_seen: set[str] = set()
        self._string_dfas: dict = {}  # string_dfa's memo
        self._dfa_terminals: dict[int, tuple] = {}  # id(code-point DFA) -> (it, its terminal name)
        self._except_terminals: dict[tuple, str] = {}  # excluded names -> terminal name
        if unknown_formats not in ("ignore", "error"):
            raise ValueError("unknown_formats must be 'ignore' or 'error'")
        self.unknown_formats = unknown_formats
        self.ignored_formats: list[str] = []  # pointers of the unknown formats that were ignored
        if property_order not in ("schema", "any"):
            raise ValueError("property_order must be 'schema' or 'any'")
        self.property_order = property_order
        if whitespace == "flexible":
            if not _is_int(max_whitespace) or max_whitespace < 0:
                raise ValueError("max_whitespace must be a non-negative int")
            ws = "" if max_whitespace == 0 else js.repeat(_WS_CLASS, 0, max_whitespace)
        elif whitespace == "compact":
            ws = ""
        elif isinstance(whitespace, str):
            try:
                re.compile(whitespace)
            except re.error as exc:
                raise ValueError(f"whitespace regex {whitespace!r}: {exc}") from None
            ws = "(?:" + re.sub(r"(?<!\\)/", r"\\/", whitespace) + ")"
        else:
            raise ValueError("whitespace must be 'flexible', 'compact' or a regex string")
        self.ws = ws
        # key and value as one terminal where the value is one (see pair); off when the lexer
        # will be built lazily (see _schema_grammar)
        self.fuse_pairs = True
        self.fused = 0  # pairs fused so far
        self.rules: dict[str, list[str]] = {}
        self.rule_order: list[str] = []
        self._name_next: dict[str, int] = {}  # per rule-name base: the next number to try
        self.terminals: dict[str, str] = {}  # regex -> name
        self.term_names: set[str] = set()
        self.term_defs: list[tuple[str, str]] = []
        self.term_regex: dict[str, str] = {}
        self.memo: dict[str, str | None] = {}
        self.anchors: dict[str, str] = {}
        self._validator = None
        # Drafts 3 and 4 (read off the validator class ``jsonschema`` picks for ``$schema``): they
        # type "integer" by the JSON text (``1.0`` is a number there, from draft 6 on an integer)
        # and their exclusiveMinimum/Maximum are booleans.
        self.draft4 = not self.validator().TYPE_CHECKER.is_type(1.0, "integer")
        self.draft = _DRAFTS.get(type(self.validator()).__name__, 2020)
        if self.draft == 3:
            raise UnsupportedFeatureError("draft-03 schemas ('$schema' draft-03): required, type and "
                                          "extends mean other things there", pointer="/$schema")
        # keywords the declared draft's validator does not read (drafts 4-7), and whether a $ref
        # hides its siblings (drafts up to 7): as_declared() drops them
        self.foreign = frozenset(k for k, since in _INTRODUCED.items() if self.draft < since)
        self.ref_alone = self.draft <= 7
        self._scan_anchors(root, "")

    # ----------------------------------------------------------------------------- grammar output
    def terminal(self, regex: str, hint: str) -> str:
        if regex in self.terminals:
            return self.terminals[regex]
        base = _terminal_base(hint)
        name = base
        k = 1
        while name in self.term_names:
            k += 1
            name = f"{base}_{k}"
        self.term_names.add(name)
        self.terminals[regex] = name
        self.term_defs.append((name, regex))
        self.term_regex[name] = regex
        return name

    def regex_of(self, expr: str | None) -> str | None:
        """The regex of an expression that is one terminal, an alternation of terminals, or a rule
        whose only alternative is one of those; else None."""
        if expr is None:
            return None
        if expr in self.term_regex:
            return self.term_regex[expr]
        if expr in self.rules and len(self.rules[expr]) == 1 and self.rules[expr][0] != expr:
            return self.regex_of(self.rules[expr][0])
        m = re.fullmatch(r"\(([A-Z][A-Z0-9_]*(?: \| [A-Z][A-Z0-9_]*)+)\)", expr)
        if m:
            rxs = [self.term_regex.get(t) for t in m.group(1).split(" | ")]
            if all(rxs):
                return "|".join(js.group(r) for r in rxs)
        return None

    def pair(self, key_rx: str, val_expr: str, hint: str) -> str:
        """``key : value``. A value that is a single terminal (or terminal alternation) is fused
        with its key into one terminal: the lexer DFA is one product over all terminals, so value
        terminals that all start with ``"`` would multiply; behind distinct keys they do not.
        Not when ``fuse_pairs`` is off (a lazily built lexer: there each fused terminal has its
        own copy of its value's automaton, built state by state in the masks of every key)."""
        val_rx = self.regex_of(val_expr)
        colon = self.ws + js.lit(":") + self.ws
        if val_rx is not None and self.fuse_pairs:
            self.fused += 1
            return self.terminal(key_rx + colon + js.group(val_rx), "PAIR_" + hint)
        return f"{self.terminal(key_rx, 'KEY_' + hint)} {self.struct(':')} {val_expr}"

    def lit_terminal(self, text: str, hint: str) -> str:
        return self.terminal(js.lit(text), hint)

    def struct(self, ch: str) -> str:
        names = {"{": "LBRACE", "}": "RBRACE", "[": "LSQB", "]": "RSQB", ",": "COMMA", ":": "COLON"}
        c = js.lit(ch)
        ws = self.ws
        if ch in "{[":
            rx = c + ws
        elif ch in "}]":
            rx = ws + c
        else:
            rx = ws + c + ws
        return self.terminal(rx, names[ch])

    def empty_container(self, open_ch: str, close_ch: str) -> str:
        return self.terminal(js.lit(open_ch) + self.ws + js.lit(close_ch), "EMPTY_OBJ" if open_ch == "{" else "EMPTY_ARR")

    def new_rule(self, hint: str) -> str:
        if len(self.rules) >= self.limits.max_schema_rules:
            raise _limit("max_schema_rules", self.limits.max_schema_rules, f"the schema needs more than {self.limits.max_schema_rules} grammar rules")
        base = _rule_base(hint)
        name = base
        k = self._name_next.get(base, 1)  # (numbered from where the last rule of this base stopped)
        if k > 1:
            name = f"{base}_{k}"
        while name in self.rules or name == "start":
            k += 1
            name = f"{base}_{k}"
        self._name_next[base] = k
        self.rules[name] = []
        self.rule_order.append(name)
        return name

    def rule(self, hint: str, alts: list[str | None]) -> str | None:
        """A rule for the alternatives (None: impossible, "": empty); returns an expression."""
        alts = [a for a in dict.fromkeys(a for a in alts if a is not None)]
        if not alts:
            return None
        if alts == [""]:
            return ""
        if len(alts) == 1 and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", alts[0]):
            return alts[0]
        name = self.new_rule(hint)
        self.rules[name] = alts
        return name

    def text(self, start_expr: str) -> str:
        lines = [f"start: {start_expr}", ""]
        for name in self.rule_order:
            alts = self.rules[name]
            if not alts:
                continue
            nonempty = [a for a in alts if a != ""]
            if len(nonempty) < len(alts):
                lines.append(f"{name}: ({' | '.join(nonempty)})?")
            else:
                lines.append(f"{name}: " + "\n    | ".join(nonempty))
        lines.append("")
        for name, rx in self.term_defs:
            lines.append(f"{name}: /{rx}/")
        for name in self.external:
            lines.append(f"%declare {name}")
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------------------- references
    def _scan_anchors(self, node, ptr):
        if isinstance(node, dict):
            a = node.get("$anchor")
            if isinstance(a, str):
                self.anchors[a] = ptr
            for k, v in node.items():
                if k in ("enum", "const", "default", "examples"):
                    continue
                self._scan_anchors(v, f"{ptr}/{_esc_ptr(k)}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                self._scan_anchors(v, f"{ptr}/{i}")

    def resolve(self, ref, ptr):
        """``(node, pointer)`` of a local ``$ref``; kept per reference (the compiler resolves the
        same ones thousands of times in a large schema; a failure is raised anew each time, with
        the caller's pointer)."""
        if not isinstance(ref, str):
            raise SchemaError("'$ref' must be a string", pointer=ptr)
        hit = self._resolved.get(ref)
        if hit is None:
            hit = self._resolved[ref] = self._resolve(ref, ptr)
        return hit

    def _resolve(self, ref: str, ptr: str):
        frag = None
        if ref.startswith("#"):
            frag = ref[1:]
        else:
            root_id = self.root.get("$id") if isinstance(self.root, dict) else None
            if isinstance(root_id, str) and "#" in ref and ref.split("#", 1)[0] == root_id.split("#", 1)[0]:
                frag = ref.split("#", 1)[1]
            elif isinstance(root_id, str) and ref == root_id.split("#", 1)[0]:
                frag = ""
        if frag is None:
            raise UnsupportedFeatureError(f"non-local '$ref' {ref!r}", pointer=ptr)
        frag = unquote(frag)
        if frag == "" or frag.startswith("/"):
            node = self.root
            target = ""
            for part in frag.split("/")[1:] if frag else []:
                key = part.replace("~1", "/").replace("~0", "~")
                if isinstance(node, dict) and key in node:
                    node = node[key]
                elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                    node = node[int(key)]
                else:
                    raise SchemaError(f"'$ref' {ref!r} points to nothing", pointer=ptr)
                target += "/" + _esc_ptr(key)
            return node, target
        if frag in self.anchors:
            target = self.anchors[frag]
            node = self.root
            for part in target.split("/")[1:]:
                key = part.replace("~1", "/").replace("~0", "~")
                node = node[int(key)] if isinstance(node, list) else node[key]
            return node, target
        raise SchemaError(f"'$ref' {ref!r}: no such anchor", pointer=ptr)

    # ------------------------------------------------------------------------------ validation
    def validator(self):
        if self._validator is None:
            import jsonschema

            root = self.root if isinstance(self.root, (dict, bool)) else {}
            cls = jsonschema.validators.validator_for(root, default=jsonschema.Draft202012Validator)
            self._validator = cls(root, format_checker=cls.FORMAT_CHECKER)
        return self._validator

    def valid_against(self, value, sources) -> bool:
        """Whether ``value`` is valid against every source schema (``jsonschema``). A source's
        ``enum`` is checked by hashing (jsonschema scans it: quadratic over a 100k-value enum).
        Verdicts are memoized per (source schema, value as spelled): a property that is an
        ``anyOf`` of n one-value enums, intersected with each of n object branches, asks the same
        n x n questions n times (Azure Pipelines' service-schema: 13M jsonschema descents)."""
        v = self.validator()
        try:
            spelled = json.dumps(value, sort_keys=True)  # 1 and 1.0 differ under draft 4
        except (TypeError, ValueError):
            spelled = None
        memo = self._valid_memo
        for schema, _ptr in sources:
            if isinstance(schema, dict) and isinstance(schema.get("enum"), list):
                keys, schema = self._enum_split(schema)
                if _json_key(value) not in keys:
                    return False
            if spelled is None:
                ok = v.evolve(schema=schema).is_valid(value)
            else:
                hit = memo.get((id(schema), spelled))
                if hit is None or hit[0] is not schema:
                    hit = memo[(id(schema), spelled)] = (schema, v.evolve(schema=schema).is_valid(value))
                ok = hit[1]
            if not ok:
                return False
        return True

    def _enum_split(self, schema: dict) -> tuple[set, dict]:
        """(hash keys of ``schema['enum']``, ``schema`` without ``enum``), cached per schema object."""
        hit = self._enum_cache.get(id(schema))
        if hit is None or hit[0] is not schema:
            hit = self._enum_cache[id(schema)] = (schema, {_json_key(x) for x in schema["enum"]},
                                       {k: x for k, x in schema.items() if k != "enum"})
        return hit[1], hit[2]

    # ---------------------------------------------------------------------------------- nodes
    def node(self, schema, ptr: str) -> str | None:
        """Grammar expression for the values valid against ``schema`` (None: no value)."""
        if isinstance(schema, _Negated) and isinstance(schema.schema, _Negated):
            return self.node(schema.schema.schema, ptr)  # not (not S) = S, at S's own pointer
        if isinstance(schema, _Negated):
            key = "!not:" + ptr
            if key in self.memo:
                return self.memo[key]
            name = self.new_rule(ptr + "_not")
            self.memo[key] = name
            alts = [a for a in dict.fromkeys(self.emit_flat(f) for f in self.negate(schema.schema, ptr, 1)) if a is not None]
            if not alts:
                self.rules[name] = [self.empty_language_expr()]
            else:
                self.rules[name] = alts
            return name
        if ptr in self.memo:
            return self.memo[ptr]
        if schema is True or schema == {}:
            return self.any_value()
        if schema is False:
            return None
        if not isinstance(schema, dict):
            raise SchemaError(f"a schema must be an object or a boolean, not {type(schema).__name__}", pointer=ptr)
        schema = self.as_declared(schema, ptr)
        self.check_keywords(schema, ptr)
        # pure $ref: a named rule of the target (recursion-safe)
        if "$ref" in schema and not (set(schema) & VALIDATION - {"$ref"}):
            target_schema, target = self.resolve(schema["$ref"], ptr + "/$ref")
            expr = self.ref_rule(target_schema, target)
            self.memo[ptr] = expr
            return expr
        name = self.new_rule(ptr or "root")
        self.memo[ptr] = name
        keys = set(schema) & VALIDATION
        if keys <= {"anyOf"} and isinstance(schema.get("anyOf"), list) and schema["anyOf"]:
            alts = [self.node(b, f"{ptr}/anyOf/{i}") for i, b in enumerate(schema["anyOf"])]
        else:
            flats = self.normalize(schema, ptr, 0)
            alts = [self.emit_flat(f) for f in flats]
        alts = [a for a in dict.fromkeys(a for a in alts if a is not None)]
        if not alts:
            self.rules.pop(name)
            self.rule_order.remove(name)
            self.memo[ptr] = None
            return None
        self.rules[name] = alts
        return name

    def ref_rule(self, schema, target: str) -> str | None:
        key = "ref:" + target
        if key in self.memo:
            return self.memo[key]
        if schema is True or schema == {}:
            return self.any_value()
        if schema is False:
            return None
        name = self.new_rule("ref" + target if target else "ref_root")
        self.memo[key] = name
        expr = self.node(schema, target)
        if expr is None:
            # an impossible recursive rule: lark needs every rule to have an alternative; the
            # frontend drops underivable rules, so give it one that can never match
            self.rules[name] = [self.empty_language_expr()]
            return name
        self.rules[name] = [expr]
        return name

    def empty_language_expr(self) -> str:
        # a rule that derives nothing: it refers to itself only
        name = self.new_rule("never")
        self.rules[name] = [f"{name} {self.struct(',')}"]
        return name

    def as_declared(self, schema: dict, ptr: str) -> dict:
        """``schema`` as the validator of its declared draft (``$schema``) reads it: up to draft 7
        a ``$ref`` hides its siblings, and a draft ignores keywords introduced after it (``const``
        under draft 4, ``if`` under draft 6, ``dependentRequired`` under draft 7). What is dropped
        is recorded in ``ignored_keywords`` (``unknown_keywords="error"`` raises instead), so the
        grammar accepts what that validator accepts -- merging a ``required`` next to a draft-7
        ``$ref`` would refuse documents it calls valid."""
        if self.ref_alone and "$ref" in schema and len(schema) > 1:
            dropped = [k for k in schema if k != "$ref" and (k in VALIDATION or k in LEGACY_ASSERTIONS)]
            why = f"next to '$ref' under draft {self.draft}"
            view = {k: v for k, v in schema.items() if k == "$ref" or k not in dropped}
        elif self.foreign and not self.foreign.isdisjoint(schema):
            dropped = [k for k in schema if k in self.foreign]
            why = f"under draft {self.draft}, which has no such keyword"
            view = {k: v for k, v in schema.items() if k not in self.foreign}
        else:
            return schema
        for k in dropped:
            kp = f"{ptr}/{_esc_ptr(k)}"
            if self.unknown_keywords == "error":
                raise UnsupportedFeatureError(f"{k!r} {why} (its validator ignores it; unknown_keywords='error')",
                                              pointer=kp)
            if kp not in self._ignored_seen:
                self._ignored_seen.add(kp)
                self.ignored_keywords.append(kp)
        return view

    def check_keywords(self, schema: dict, ptr: str):
        for k in schema:
            if k in VALIDATION or k in ANNOTATIONS or k.startswith("x-"):
                continue
            if k == "id" and isinstance(schema[k], str):
                continue
            if k in LEGACY_ASSERTIONS:
                raise UnsupportedFeatureError(f"draft-03 keyword {k!r}", pointer=f"{ptr}/{_esc_ptr(k)}")
            if self.unknown_keywords == "error":
                raise UnsupportedFeatureError(f"unknown keyword {k!r}", pointer=f"{ptr}/{_esc_ptr(k)}")
            self.ignored_keywords.append(f"{ptr}/{_esc_ptr(k)}")
        for k in ("$dynamicRef", "$recursiveRef", "unevaluatedItems", "unevaluatedProperties",
                  "$recursiveAnchor"):
            if k in schema:
                if k in ("unevaluatedItems", "unevaluatedProperties") and schema[k] is True:
                    continue
                raise UnsupportedFeatureError(repr(k), pointer=f"{ptr}/{_esc_ptr(k)}")
        for k in ("exclusiveMinimum", "exclusiveMaximum"):
            # (checked on the schema as written: 'not' of a bound synthesizes numeric exclusives)
            v = schema.get(k)
            if v is None:
                continue
            if self.draft4 and not isinstance(v, bool):
                raise SchemaError(f"{k!r} must be a boolean in drafts 3 and 4 (numeric from draft 6 on)",
                                  pointer=f"{ptr}/{k}")
            if isinstance(v, bool) and not self.draft4:  # a draft 6+ validator compares with True == 1
                raise SchemaError(f"boolean {k!r} is draft 4 syntax: from draft 6 on it is a number "
                                  "(declare '$schema' draft-04, or give the bound)", pointer=f"{ptr}/{k}")
        if "uniqueItems" in schema:
            u = schema["uniqueItems"]
            if not isinstance(u, bool):
                raise SchemaError("'uniqueItems' must be a boolean", pointer=ptr + "/uniqueItems")
            # true: enforced in array_expr (finite item domains) or raised there

    # --------------------------------------------------------------------------- normalization
    def normalize(self, schema, ptr: str, depth: int) -> list[_Flat]:
        """DNF of ``schema``: a list of flat conjunctions (``allOf``/``$ref`` merged, ``anyOf`` distributed)."""
        if depth > self.limits.max_schema_ref_depth:
            raise _limit("max_schema_ref_depth", self.limits.max_schema_ref_depth, f"schema at {ptr or '/'}: $ref/allOf nesting is deeper than {self.limits.max_schema_ref_depth}")
        if isinstance(schema, _Negated):
            return self.negate(schema.schema, ptr, depth + 1)
        if schema is True:
            return [_Flat(ptr, sources=[(True, ptr)])]
        if schema is False:
            return []
        if not isinstance(schema, dict):
            raise SchemaError("a schema must be an object or a boolean", pointer=ptr)
        schema = self.as_declared(schema, ptr)
        self.check_keywords(schema, ptr)
        if set(schema) & _COMBINATORS:
            finite = self.finite_candidates(schema, ptr, depth)
            if finite is not None:
                # A finite value set (an enum/const here or in an allOf member) next to combinators:
                # the candidates filtered by jsonschema against this whole schema, whatever the
                # combinators say ('not' of a 'oneOf', a 'multipleOf', ...): exact, nothing to negate.
                f = _Flat(ptr, sources=[(schema, ptr)])
                f.enum = finite
                return [f]
        base = self.flat_of(schema, ptr)
        result = [base]
        if "$ref" in schema:
            t_schema, t_ptr = self.resolve(schema["$ref"], ptr + "/$ref")
            # The referenced schema's properties come before the siblings' (a base type first,
            # then what the referring schema adds), the order instances are written in; allOf and
            # anyOf members' new ones come first too (_composed_first, at the end).
            result = self.product(self.normalize(t_schema, t_ptr, depth + 1), result, ptr)
        # the properties allOf / anyOf members bring in may come before the schema's own (see the end)
        composing = "allOf" in schema or "anyOf" in schema
        before = _property_entries(result) if composing else None
        if "allOf" in schema:
            items = schema["allOf"]
            if not isinstance(items, list) or not items:
                raise SchemaError("'allOf' must be a non-empty array", pointer=ptr + "/allOf")
            for i, sub in enumerate(items):
                result = self.product(result, self.normalize(sub, f"{ptr}/allOf/{i}", depth + 1), ptr)
        if "anyOf" in schema:
            items = schema["anyOf"]
            if not isinstance(items, list) or not items:
                raise SchemaError("'anyOf' must be a non-empty array", pointer=ptr + "/anyOf")
            branches = []
            for i, sub in enumerate(items):
                branches.extend(self.normalize(sub, f"{ptr}/anyOf/{i}", depth + 1))
            result = self.product(result, branches, ptr)
        composed = _property_entries(result) - before if composing else None
        varying = bool(set(schema) & {"if", "dependentSchemas", "dependencies", "not", "oneOf"})
        before_variants = _property_entries(result) if varying else None
        if "if" in schema and schema["if"] is not True:
            # (if and then) or (not if and else); both branches are exact when 'if' is negatable
            i_s, t_s, e_s = schema["if"], schema.get("then", True), schema.get("else", True)
            pos = self.product(self.normalize(i_s, ptr + "/if", depth + 1), self.normalize(t_s, ptr + "/then", depth + 1), ptr)
            neg = self.product(self.negate(i_s, ptr + "/if", depth + 1), self.normalize(e_s, ptr + "/else", depth + 1), ptr)
            result = self.product(result, pos + neg, ptr)
        elif "if" in schema and "then" in schema:
            result = self.product(result, self.normalize(schema["then"], ptr + "/then", depth + 1), ptr)
        deps = []
        if "dependentSchemas" in schema:
            if not isinstance(schema["dependentSchemas"], dict):
                raise SchemaError("'dependentSchemas' must be an object", pointer=ptr + "/dependentSchemas")
            deps += [(k, v, f"{ptr}/dependentSchemas/{_esc_ptr(k)}") for k, v in schema["dependentSchemas"].items()]
        if isinstance(schema.get("dependencies"), dict):
            deps += [(k, v, f"{ptr}/dependencies/{_esc_ptr(k)}") for k, v in schema["dependencies"].items()
                     if not isinstance(v, list)]
        for key, dep, dptr in deps:
            # key absent (or not an object), or key present and dep holds
            absent = _Flat(dptr, sources=[({"properties": {key: False}}, dptr)])
            absent.add("properties", {key: False}, dptr + "/properties", {"properties": {key: False}})
            present = _Flat(dptr, sources=[({"required": [key]}, dptr)])
            present.add("required", [key], dptr + "/required", {"required": [key]})
            result = self.product(result, [absent] + self.product([present], self.normalize(dep, dptr, depth + 1), dptr), ptr)
        if "not" in schema and "enum" not in schema and "const" not in schema:
            # (with enum/const the candidates are filtered by jsonschema, 'not' included)
            result = self.product(result, self.negate(schema["not"], ptr + "/not", depth + 1), ptr)
        if "oneOf" in schema:
            items = schema["oneOf"]
            if not isinstance(items, list) or not items:
                raise SchemaError("'oneOf' must be a non-empty array", pointer=ptr + "/oneOf")
            per_branch = [self.normalize(sub, f"{ptr}/oneOf/{i}", depth + 1) for i, sub in enumerate(items)]
            per_branch = self.split_finite_overlaps(items, per_branch, ptr + "/oneOf")
            # disjointness of the branches on their own (their sources exclude this schema, whose
            # oneOf would make the enum filtering of the signatures circular) implies it after merging
            try:
                self.check_disjoint(per_branch, ptr + "/oneOf")
            except UnsupportedFeatureError:
                # The siblings may make them disjoint: a discriminator the branches pin with 'const'
                # but only this schema 'required's. Every (sibling alternative x branch i) against
                # every (sibling alternative x branch j), so an instance matched through branch i
                # fails every other branch j. Not when a merged alternative is an enum: its values
                # would be filtered by this very oneOf (the circularity noted above).
                merged = [[r.merged(b) for r in result for b in br] for br in per_branch]
                try:
                    if any(fl.enum is not None for br in merged for fl in br):
                        raise
                    self.check_disjoint(merged, ptr + "/oneOf")
                except UnsupportedFeatureError as overlap:
                    # Branches that may overlap: exactly one holds, i.e. the union over i of
                    # (branch i and not every other branch), exact where the others are negatable.
                    per_branch = self.exclusive_branches(items, per_branch, ptr + "/oneOf", depth, overlap)
            new = []
            for r in result:
                for br in per_branch:
                    new.extend(r.merged(b) for b in br)
            if len(new) > self.limits.max_schema_alternatives:
                raise _limit("max_schema_alternatives", self.limits.max_schema_alternatives, f"schema at {ptr or '/'}: too many alternatives")
            result = new
        if varying:
            variants = _property_entries(result) - before_variants
            if variants:
                for fl in result:  # (new flats: every step above that adds entries merges)
                    fl.variant_props = fl.variant_props | (variants & _property_entries([fl]))
        if composed:
            result = [_composed_first(fl, schema, composed) for fl in result]
        return result

    def exclusive_branches(self, items: list, per_branch: list[list[_Flat]], ptr: str, depth: int,
                           overlap: UnsupportedFeatureError) -> list[list[_Flat]]:
        """``oneOf`` branches made disjoint by negation: branch i becomes branch i and ``not`` every
        other branch (:meth:`negate`). Raises ``overlap`` (the error naming the overlapping branches)
        when a branch is not negatable, noting why."""
        out = []
        for i, br in enumerate(per_branch):
            # merged in branch order, so the properties the branches declare keep the oneOf's order
            acc = [_Flat(ptr)]
            for j, other in enumerate(items):
                if not acc:
                    break
                if j == i:
                    acc = self.product(acc, br, ptr)
                    continue
                try:
                    neg = self.negate(other, f"{ptr}/{j}", depth + 1)
                except UnsupportedFeatureError as e:
                    raise UnsupportedFeatureError(
                        f"{overlap.message.rstrip('.')}; excluding branch {j} from the others needs its negation: "
                        f"{e.message} (at {e.pointer})", pointer=overlap.pointer) from None
                acc = self.product(acc, neg, ptr)
            out.append(acc)
        return out

    def finite_candidates(self, schema: dict, ptr: str, depth: int) -> list | None:
        """A finite superset of the values valid against ``schema``: the smallest ``enum``/``const``
        of the schema itself or of an ``allOf`` member (through ``allOf`` and ``$ref``); None if none.
        Kept per schema node (a function of the node: the compiler asks for the same ones again
        and again; one that raised is not kept)."""
        key = id(schema)
        hit = self._finite.get(key, self._finite)
        if hit is self._finite:
            hit = self._finite[key] = (schema, self._finite_candidates(schema, ptr, depth))  # (holds the node)
        return None if hit[1] is None else list(hit[1])

    def _finite_candidates(self, schema: dict, ptr: str, depth: int) -> list | None:
        best = None
        todo = [(schema, ptr, depth)]
        seen = set()
        while todo:
            node, p, d = todo.pop()
            if not isinstance(node, dict) or id(node) in seen:
                continue
            seen.add(id(node))
            if d > self.limits.max_schema_ref_depth:
                raise _limit("max_schema_ref_depth", self.limits.max_schema_ref_depth,
                             f"schema at {p or '/'}: $ref/allOf nesting is deeper than {self.limits.max_schema_ref_depth}")
            if "enum" in node or "const" in node:
                vals = self.flat_of({k: node[k] for k in ("enum", "const") if k in node}, p).enum
                if best is None or len(vals) < len(best):
                    best = vals
            if isinstance(node.get("allOf"), list):
                todo.extend((sub, f"{p}/allOf/{i}", d + 1) for i, sub in enumerate(node["allOf"]))
            if isinstance(node.get("$ref"), str):
                t_schema, t_ptr = self.resolve(node["$ref"], p + "/$ref")
                todo.append((t_schema, t_ptr, d + 1))
        return best

    def split_finite_overlaps(self, items: list, per_branch: list[list[_Flat]], ptr: str) -> list[list[_Flat]]:
        """``oneOf`` branches made disjoint where one side is finite, exactly.

        A value of a finite alternative (enum/const) that is also valid against another branch
        (``jsonschema`` on that branch's schema) matches two branches, so no branch may produce it:
        it is dropped from the finite alternative and excluded from the other branch's infinite
        alternatives. Afterwards every finite alternative is disjoint from the other branches; the
        flats given are not changed (new ones are returned)."""
        out = [list(br) for br in per_branch]
        extra: dict[int, list] = {}
        for i, br in enumerate(per_branch):
            for a, fl in enumerate(br):
                if fl.enum is None:
                    continue
                excluded = [x for vals, _p in fl.nots for x in vals]
                keep = []
                for v in fl.enum:
                    v = self.admitted(v, fl.sources) if _type_of(v) in fl.types else _NOT_ADMITTED
                    if v is _NOT_ADMITTED or any(_json_eq(v, x) for x in excluded):
                        continue
                    hits = [j for j, sub in enumerate(items)
                            if j != i and self.valid_against(v, [(sub, f"{ptr}/{j}")])]
                    if not hits:
                        keep.append(v)
                    for j in hits:
                        extra.setdefault(j, []).append(v)
                new = fl.merged(_Flat(fl.ptr))
                new.enum = keep
                out[i][a] = new
        for j, vals in extra.items():
            fresh = []
            for g in out[j]:
                if g.enum is None:
                    g = g.merged(_Flat(g.ptr))
                    g.nots.append((vals, f"{ptr}/{j}"))
                fresh.append(g)
            out[j] = fresh
        return out

    def negate(self, sub, ptr: str, depth: int) -> list[_Flat]:
        """DNF of the values *not* valid against ``sub`` (De Morgan over keyword groups).

        Negatable: ``type``, ``enum``/``const`` (an exclusion applied at emission), ``required``,
        ``properties`` (without ``additionalProperties``/``patternProperties``), ``items`` (a schema:
        an array containing a non-matching element), ``pattern``/``format`` (a string outside the
        language: a complemented DFA), ``additionalProperties: false`` next to
        ``properties`` (an object with an undeclared key), ``minProperties``/``maxProperties``/
        ``minItems``/``maxItems``, ``minLength``/
        ``maxLength``, ``minimum``/``maximum``/``exclusiveMinimum``/``exclusiveMaximum``,
        ``anyOf``/``allOf``/``oneOf``/``not``/``$ref`` of negatable schemas. Anything else raises.
        """
        if depth > self.limits.max_schema_ref_depth:
            raise _limit("max_schema_ref_depth", self.limits.max_schema_ref_depth, f"schema at {ptr or '/'}: 'not' nesting is deeper than {self.limits.max_schema_ref_depth}")
        if isinstance(sub, _Negated):  # not (not S) = S
            return self.normalize(sub.schema, ptr, depth + 1)
        if sub is True:
            return []
        if sub is False:
            return [_Flat(ptr)]
        if not isinstance(sub, dict):
            raise SchemaError("'not' must be a schema", pointer=ptr)
        sub = self.as_declared(sub, ptr)
        self.check_keywords(sub, ptr)
        keys = [k for k in sub if k in VALIDATION]
        if not keys:
            return []
        out: list[_Flat] = []

        def flat(types, kp, **kws) -> _Flat:
            # kws are placed at the real keyword pointer kp (so errors and rule names point into the schema)
            f = _Flat(ptr, types=frozenset(types))
            owner = dict(kws)
            for k, v in kws.items():
                f.add(k, v, kp, owner)
            return f

        for k in keys:
            v = sub[k]
            kp = f"{ptr}/{_esc_ptr(k)}"
            if k == "type":
                out.append(_Flat(ptr, types=_ALL_TYPES - self.flat_of({"type": v}, ptr).types))
            elif k in ("enum", "const"):
                vals = v if k == "enum" else [v]
                if not isinstance(vals, list):
                    raise SchemaError("'enum' must be an array", pointer=kp)
                f = _Flat(ptr)
                f.nots.append((list(vals), kp))
                out.append(f)
            elif k == "required":
                if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    raise SchemaError("'required' must be an array of strings", pointer=kp)
                for name in v:
                    out.append(flat({"object"}, f"{ptr}/properties", properties={name: False}))
            elif k == "properties":
                if not isinstance(v, dict):
                    raise SchemaError("'properties' must be an object", pointer=kp)
                if "patternProperties" in sub:
                    raise UnsupportedFeatureError("'not' with 'properties' next to 'patternProperties'", pointer=kp)
                for name, psub in v.items():
                    if psub is True or psub == {}:
                        continue
                    f = flat({"object"}, kp, properties={name: _Negated(psub)})
                    f.add("required", [name], f"{ptr}/required", {"required": [name]})
                    out.append(f)
            elif k == "additionalProperties" and v is False and "patternProperties" not in sub:
                # an object with a key the schema does not declare: one member outside `properties`
                declared = sub.get("properties") if isinstance(sub.get("properties"), dict) else {}
                f = flat({"object"}, f"{ptr}/properties", properties={name: True for name in declared})
                f.add("_outside", frozenset(declared), kp, {})
                out.append(f)
            elif k == "additionalProperties" and (v is True or v == {}):
                pass  # never fails
            elif k == "items" and not isinstance(v, list) and "prefixItems" not in sub:
                # an array with an element that is not valid against the items schema
                if v is not True and v != {}:
                    out.append(flat({"array"}, kp, contains=_Negated(v)))
            elif k in ("pattern", "format"):
                if k == "format" and v not in FORMATS:
                    if v in KNOWN_FORMATS or self.unknown_formats == "error":
                        raise UnsupportedFeatureError(f"format {v!r}", pointer=kp)
                    continue  # an annotation: every value passes it, so none fails it
                out.append(flat({"string"}, kp, **{"_not_" + k: v}))
            elif k in ("minProperties", "maxProperties", "minItems", "maxItems"):
                n = _nonneg_int(v, kp, k)
                kind = "object" if k.endswith("Properties") else "array"
                if k.startswith("min"):
                    if n > 0:
                        out.append(flat({kind}, kp, **{"max" + k[3:]: n - 1}))
                else:
                    out.append(flat({kind}, kp, **{"min" + k[3:]: n + 1}))
            elif k in ("minLength", "maxLength"):
                n = _nonneg_int(v, kp, k)
                if k == "minLength":
                    if n > 0:
                        out.append(flat({"string"}, kp, maxLength=n - 1))
                else:
                    out.append(flat({"string"}, kp, minLength=n + 1))
            elif k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                if not _is_num(v):
                    raise UnsupportedFeatureError(f"'not' with draft-4 boolean {k!r}", pointer=kp)
                if k in ("minimum", "maximum") and sub.get("exclusive" + k[0].upper() + k[1:]) is True:
                    raise UnsupportedFeatureError(f"'not' with draft-4 boolean exclusive {k!r}", pointer=kp)
                opposite = {"minimum": "exclusiveMaximum", "exclusiveMinimum": "maximum",
                            "maximum": "exclusiveMinimum", "exclusiveMaximum": "minimum"}[k]
                out.append(flat({"int", "frac"}, kp, **{opposite: v}))
            elif k in ("anyOf", "oneOf"):
                # none of the branches; for oneOf (not exactly one) also two of them (or more) at once
                if not isinstance(v, list) or not v:
                    raise SchemaError(f"{k!r} must be a non-empty array", pointer=kp)
                acc = [_Flat(ptr)]
                for i, b in enumerate(v):
                    acc = self.product(acc, self.negate(b, f"{kp}/{i}", depth + 1), kp)
                out.extend(acc)
                if k == "oneOf":
                    pos = [self.normalize(b, f"{kp}/{i}", depth + 1) for i, b in enumerate(v)]
                    for i in range(len(v)):
                        for j in range(i + 1, len(v)):
                            out.extend(self.product(pos[i], pos[j], kp))
            elif k == "allOf":
                if not isinstance(v, list) or not v:
                    raise SchemaError("'allOf' must be a non-empty array", pointer=kp)
                for i, b in enumerate(v):
                    out.extend(self.negate(b, f"{kp}/{i}", depth + 1))
            elif k == "not":
                out.extend(self.normalize(v, kp, depth + 1))
            elif k == "$ref":
                t_schema, t_ptr = self.resolve(v, kp)
                out.extend(self.negate(t_schema, t_ptr, depth + 1))
            else:
                raise UnsupportedFeatureError(f"'not' containing {k!r}", pointer=kp)
        if len(out) > self.limits.max_schema_alternatives:
            raise _limit("max_schema_alternatives", self.limits.max_schema_alternatives, f"schema at {ptr}: 'not' expands to too many alternatives")
        # each disjunct lies inside 'not sub'; as the jsonschema source of enum filtering that is exact
        # for the union (see emit_flat)
        for f in out:
            f.sources = f.sources + [({"not": sub}, ptr)]
        return out

    def product(self, a: list[_Flat], b: list[_Flat], ptr: str) -> list[_Flat]:
        out = [x.merged(y) for x in a for y in b]
        if len(out) > self.limits.max_schema_alternatives:
            raise _limit("max_schema_alternatives", self.limits.max_schema_alternatives,
                         f"schema at {ptr or '/'}: allOf/anyOf distribution gives more than {self.limits.max_schema_alternatives} alternatives")
        return out

    def flat_of(self, schema: dict, ptr: str) -> _Flat:
        f = _Flat(ptr, sources=[(schema, ptr)])
        if "type" in schema:
            t = schema["type"]
            names = [t] if isinstance(t, str) else t
            if not isinstance(names, list) or not names or not all(isinstance(x, str) for x in names):
                raise SchemaError("'type' must be a string or a non-empty array of strings", pointer=ptr + "/type")
            s = set()
            for x in names:
                if x not in _TYPE_SETS:
                    raise SchemaError(f"unknown type {x!r}", pointer=ptr + "/type")
                s |= _TYPE_SETS[x]
            f.types = frozenset(s)
            f.type_ptr = ptr + "/type"
        if "enum" in schema:
            if not isinstance(schema["enum"], list):
                raise SchemaError("'enum' must be an array", pointer=ptr + "/enum")
            if len(schema["enum"]) > self.limits.max_schema_enum_values:
                all_str = all(isinstance(v, str) for v in schema["enum"])
                if not (all_str and self.catalogs):
                    hint = (" (compile_json_schema compiles an enum of strings of any size as a catalog "
                            "automaton; schema_to_lark cannot)" if all_str else "")
                    raise _limit("max_schema_enum_values", self.limits.max_schema_enum_values,
                                 f"schema at {ptr}/enum: more than {self.limits.max_schema_enum_values} values{hint}")
            f.enum = list(schema["enum"])
        if "const" in schema:
            f.enum = [schema["const"]] if f.enum is None else [v for v in f.enum if _json_eq(v, schema["const"])]
        for k, v in schema.items():
            if k in ("type", "enum", "const", "allOf", "anyOf", "oneOf", "$ref", "if", "then", "else",
                     "dependentSchemas") or k not in VALIDATION:
                continue  # combinators: expanded by normalize()
            if k == "not":
                continue  # expanded by normalize()
            f.add(k, v, f"{ptr}/{_esc_ptr(k)}", schema)
        return f

    def check_disjoint(self, branches: list[list[_Flat]], ptr: str):
        sigs = []
        for i, br in enumerate(branches):
            sigs.extend((i, fl, self.signature(fl)) for fl in br if fl.enum is None)
        for a in range(len(sigs)):
            for b in range(a + 1, len(sigs)):
                i, fa, sa = sigs[a]
                j, fb, sb = sigs[b]
                if i == j:  # (finite alternatives are left out: split_finite_overlaps made them disjoint)
                    continue
                if not self.sig_disjoint(sa, sb):
                    raise UnsupportedFeatureError(
                        f"'oneOf' whose branches {i} and {j} may both match (only provably disjoint branches are exact)",
                        pointer=ptr)

    def signature(self, fl: _Flat):
        types = set(fl.types)  # (an infinite alternative: finite ones are split_finite_overlaps')
        discr = {}
        if "object" in types:
            required = set()
            for req, _p, _o in fl.kws.get("required", []):
                if isinstance(req, list):
                    required |= set(r for r in req if isinstance(r, str))
            for props, _p, _o in fl.kws.get("properties", []):
                if not isinstance(props, dict):
                    continue
                for k, sub in props.items():
                    if k in required and isinstance(sub, dict):
                        vals = None
                        if "const" in sub:
                            vals = [sub["const"]]
                        elif isinstance(sub.get("enum"), list):
                            vals = sub["enum"]
                        if vals is not None:
                            prev = discr.get(k)
                            discr[k] = vals if prev is None else [v for v in prev if any(_json_eq(v, w) for w in vals)]
        required, closed = set(), None
        if "object" in types:
            for req, _p, _o in fl.kws.get("required", []):
                if isinstance(req, list):
                    required |= {r for r in req if isinstance(r, str)}
            # closed: one (names, patterns, pointer) group per schema without additional properties;
            # a key is allowed when every group allows it (declared, or matched by one of its patterns)
            for _v, optr, o in fl.kws.get("additionalProperties", []):
                if o.get("additionalProperties") is False:
                    names = set(o.get("properties", {})) if isinstance(o.get("properties"), dict) else set()
                    pats = tuple(o["patternProperties"]) if isinstance(o.get("patternProperties"), dict) else ()
                    closed = (closed or []) + [(names, pats, optr)]
        return types, discr, required, closed

    @staticmethod
    def closed_refuses(closed, keys) -> bool:
        """Whether an object with every key of ``keys`` is impossible under ``closed`` groups."""
        if not closed:
            return False
        for k in keys:
            for names, pats, optr in closed:
                if k not in names and not any(_pattern_matches(pt, k, optr) for pt in pats):
                    return True
        return False

    @staticmethod
    def sig_disjoint(sa, sb) -> bool:
        ta, da, ra, ca = sa
        tb, db, rb, cb = sb
        common = ta & tb
        if not common:
            return True
        if common == {"object"}:
            for k in set(da) & set(db):
                if not any(_json_eq(x, y) for x in da[k] for y in db[k]):
                    return True
            # a property one side requires that the other side's closed object cannot have
            if _Compiler.closed_refuses(cb, ra) or _Compiler.closed_refuses(ca, rb):
                return True
        return False

    # -------------------------------------------------------------------------------- emission
    def emit_flat(self, fl: _Flat) -> str | None:
        hint = fl.ptr or "root"
        if fl.enum is not None:  # finite: jsonschema filters by every source, 'not' included
            excluded = [x for vals, _p in fl.nots for x in vals]
            values = [w for w in (self.admitted(v, fl.sources) for v in fl.enum if _type_of(v) in fl.types)
                      if w is not _NOT_ADMITTED and not any(_json_eq(w, x) for x in excluded)]
            return self.enum_expr(values, hint, fl.sources)
        types = set(fl.types)
        excluded = [v for vals, _p in fl.nots for v in vals]
        ex_ptr = fl.nots[0][1] if fl.nots else fl.ptr
        if any(isinstance(v, (list, dict)) for v in excluded) and types & {"array", "object"}:
            raise UnsupportedFeatureError("'not' excluding array or object values", pointer=ex_ptr)
        alts = []
        if "object" in types:
            alts.append(self.object_expr(fl, hint))
        if "array" in types:
            alts.append(self.array_expr(fl, hint))
        if "string" in types:
            alts.append(self.string_expr(fl, hint, [v for v in excluded if isinstance(v, str)], ex_ptr))
        if "int" in types or "frac" in types:
            alts.append(self.number_expr(fl, hint, integer="frac" not in types, nonint="int" not in types,
                                         exclude=[_dec(v) for v in excluded if _is_num(v)], ex_ptr=ex_ptr))
        if "boolean" in types:
            if not any(v is True for v in excluded):
                alts.append(self.lit_terminal("true", "TRUE"))
            if not any(v is False for v in excluded):
                alts.append(self.lit_terminal("false", "FALSE"))
        if "null" in types and not any(v is None for v in excluded):
            alts.append(self.lit_terminal("null", "NULL"))
        alts = [a for a in alts if a is not None]
        if not alts:
            return None
        return alts[0] if len(alts) == 1 else "(" + " | ".join(alts) + ")"

    # enum / const
    def admitted(self, v, sources):
        """The enum value ``v`` as it may be written under ``sources``, or ``_NOT_ADMITTED``: ``v``
        if valid; under drafts 3/4 an integral float that is only valid as an integer (``2.0``
        where "integer" goes by spelling; ``2`` equals it) comes back with its floats as ints."""
        if self.valid_against(v, sources):
            return v
        if self.draft4 and _has_int(v):
            w = _intify(v)
            if self.valid_against(w, sources):
                return w
        return _NOT_ADMITTED

    def float_forms_ok(self, v, sources) -> bool:
        """Whether ``v`` may be written with its integral numbers as floats (``5.0``) and stay valid
        against ``sources``: always from draft 6 on; under drafts 3/4 ``5.0`` is not an integer,
        so the validator decides (``sources`` None: the value is not typed further)."""
        if not self.draft4 or sources is None or not _has_int(v):
            return True
        return self.valid_against(_floatify(v), sources)

    def enum_expr(self, values: list, hint: str, sources=None) -> str | None:
        strings, nums, others = [], [], []
        for v in values:
            if isinstance(v, str):
                strings.append(v)
            elif _is_num(v):
                nums.append(v)
            else:
                others.append(v)
        alts = []
        if self.catalogs and len(strings) > CATALOG_MIN_VALUES:
            alts.append(self.catalog_terminal(strings, hint))
            strings = []
        if strings:
            body = "|".join(dict.fromkeys(js.literal_body_regex(s) for s in strings))
            alts.append(self.terminal('"' + js.group(body) + '"' if len(strings) > 1 else '"' + body + '"', hint + "_str"))
        if nums:
            spellings = []
            for v in nums:
                spellings.extend(_number_spellings(v, self.float_forms_ok(v, sources)))
            alts.append(self.terminal(js.group("|".join(_longest_first(spellings))), hint + "_num"))
        for v in others:
            alts.append(self.const_expr(v, hint, self.float_forms_ok(v, sources)))
        alts = [a for a in dict.fromkeys(alts) if a is not None]
        if not alts:
            return None
        return alts[0] if len(alts) == 1 else "(" + " | ".join(alts) + ")"

    def catalog_terminal(self, strings: list[str], hint: str) -> str:
        """A ``%declare``d terminal matching each string in the spelling every string here gets
        (:func:`.json_string.spell_string`), built as one minimal automaton (mutates ``external``)."""
        from constrain.constraints.choice import choice_dfa

        name = f"CATALOG{len(self.external)}_{re.sub(r'[^A-Za-z0-9_]', '_', hint).upper()}"[:60]
        self.external[name] = choice_dfa('"' + js.spell_string(v) + '"' for v in dict.fromkeys(strings))
        return name

    def const_expr(self, v, hint: str, float_forms: bool = True) -> str:
        if v is None:
            return self.lit_terminal("null", "NULL")
        if v is True:
            return self.lit_terminal("true", "TRUE")
        if v is False:
            return self.lit_terminal("false", "FALSE")
        if isinstance(v, str):
            return self.terminal('"' + js.literal_body_regex(v) + '"', hint + "_str")
        if _is_num(v):
            return self.terminal(js.group("|".join(_longest_first(_number_spellings(v, float_forms)))),
                                 hint + ("_num" if float_forms else "_int"))
        if isinstance(v, list):
            if not v:
                return self.empty_container("[", "]")
            parts = [self.struct("[")]
            for i, x in enumerate(v):
                if i:
                    parts.append(self.struct(","))
                parts.append(self.const_expr(x, hint, float_forms))
            parts.append(self.struct("]"))
            return "(" + " ".join(parts) + ")"
        if isinstance(v, dict):
            if not v:
                return self.empty_container("{", "}")
            if 1 < len(v) <= self.limits.max_schema_any_order_properties:
                # JSON objects are unordered: every key order, each key exactly once
                entries = [(k, self.pair(_key_rx(k), self.const_expr(x, hint, float_forms), k), True)
                           for k, x in v.items()]
                return self._subset_object(entries, None, 0, None, hint + "_const", None, any_order=True)
            parts = [self.struct("{")]
            for i, (k, x) in enumerate(v.items()):
                if i:
                    parts.append(self.struct(","))
                parts.append(self.pair(_key_rx(k), self.const_expr(x, hint, float_forms), k))
            parts.append(self.struct("}"))
            return "(" + " ".join(parts) + ")"
        raise SchemaError(f"not a JSON value: {v!r}")

    # any value
    def any_value(self) -> str:
        key = "any:"
        if key in self.memo:
            return self.memo[key]
        name = self.new_rule("any_value")
        self.memo[key] = name
        s = self.terminal('"' + js.ANY_CHAR + '*"', "STRING")
        num = self.terminal(nm.NUMBER_ANY, "NUMBER")
        pair = self.new_rule("any_pair")
        self.rules[pair] = [f"{s} {self.struct(':')} {name}"]
        comma = self.struct(",")
        obj = self.new_rule("any_object")
        self.rules[obj] = [self.empty_container("{", "}"),
                           f"{self.struct('{')} {pair} ({comma} {pair})* {self.struct('}')}"]
        arr = self.new_rule("any_array")
        self.rules[arr] = [self.empty_container("[", "]"),
                           f"{self.struct('[')} {name} ({comma} {name})* {self.struct(']')}"]
        self.rules[name] = [obj, arr, s, num, self.lit_terminal("true", "TRUE"),
                            self.lit_terminal("false", "FALSE"), self.lit_terminal("null", "NULL")]
        return name

    # conjunction of subschemas
    def conj(self, schemas: list, hint: str) -> str | None:
        """Expression for values valid against all ``(schema, ptr)`` in ``schemas``."""
        real = [(s, p) for s, p in schemas if not (s is True or s == {})]
        if any(s is False for s, _ in real):
            return None
        if not real:
            return self.any_value()
        if len(real) == 1:
            return self.node(*real[0])
        key = "conj:" + "&".join(_conj_key(sc, p) for sc, p in real)
        if key in self.memo:
            return self.memo[key]
        name = self.new_rule(real[0][1] + "_and")
        self.memo[key] = name
        flats = [_Flat(real[0][1])]
        for s, p in real:
            flats = self.product(flats, self.normalize(s, p, 1), p)
        alts = [a for a in dict.fromkeys(self.emit_flat(f) for f in flats) if a is not None]
        if not alts:
            self.rules.pop(name)
            self.rule_order.remove(name)
            self.memo[key] = None
            return None
        self.rules[name] = alts
        return name

    # ------------------------------------------------------------------------------- numbers
    def number_expr(self, fl: _Flat, hint: str, integer: bool, nonint: bool = False, exclude=(),
                    ex_ptr: str = "") -> str | None:
        """Integers (``integer``), non-integers (``nonint``: only reachable through 'not') or all numbers.

        Under drafts 3/4 (``draft4``) type "integer" is spelled without fraction or exponent:
        ``1.0`` and ``1e+16`` are numbers there, not integers."""
        if nonint and self.draft4:
            # under draft 4 a "non-integer" is a number spelled with a fraction or an exponent
            if fl.kws.get("multipleOf") or exclude:
                raise UnsupportedFeatureError("'not' of type 'integer' next to 'multipleOf' or excluded values "
                                              "under draft 4 (integers by spelling)", pointer=ex_ptr or fl.ptr)
            if not any(fl.kws.get(k) for k in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")):
                return self.terminal(nm.NON_INTEGER_SPELLED, hint + "_frac")
        syntactic = integer and self.draft4
        suffix = "" if syntactic else nm.INTEGRAL_SUFFIX
        lo, ls, hi, hs = None, False, None, False
        lo_ptr = hi_ptr = None
        for kw in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
            for v, p, owner in fl.kws.get(kw, []):
                if isinstance(v, bool) and kw.startswith("exclusive"):
                    base = "minimum" if kw == "exclusiveMinimum" else "maximum"
                    if base not in owner:
                        raise SchemaError(f"boolean {kw!r} without {base!r}", pointer=p)
                    continue
                if not _is_num(v):
                    raise SchemaError(f"{kw!r} must be a number", pointer=p)
                d = _dec(v)
                strict = kw.startswith("exclusive") or (owner.get("exclusive" + kw[0].upper() + kw[1:]) is True)
                if kw in ("minimum", "exclusiveMinimum"):
                    if lo is None or d > lo or (d == lo and strict):
                        lo, ls, lo_ptr = d, strict, p
                else:
                    if hi is None or d < hi or (d == hi and strict):
                        hi, hs, hi_ptr = d, strict, p
        mult = None
        for v, p, _o in fl.kws.get("multipleOf", []):
            if not _is_num(v) or v <= 0:
                raise SchemaError("'multipleOf' must be a number > 0", pointer=p)
            d = _dec(v)
            if mult is not None and mult[0] != d:
                raise UnsupportedFeatureError("several different 'multipleOf' values", pointer=p)
            mult = (d, p)
        if nonint and self.draft4:
            # between the bounds: the non-integral values, the integral ones spelled with ".0",
            # and every exponent spelling (a float, so not an "integer" under draft 4)
            ilo = None if lo is None else int(lo.to_integral_value(rounding="ROUND_CEILING"))
            if lo is not None and ls and lo == ilo:
                ilo += 1
            ihi = None if hi is None else int(hi.to_integral_value(rounding="ROUND_FLOOR"))
            if hi is not None and hs and hi == ihi:
                ihi -= 1
            ints = nm.int_range(ilo, ihi)
            parts = nm.exponent_forms(lo, hi) + [p for p in (
                nm.decimal_range(lo, ls, hi, hs, None, True), None if ints is None else ints + r"\.0+") if p is not None]
            if not parts:
                self.maybe_empty(fl, "number", lo_ptr or hi_ptr or fl.ptr, lo, hi)
                return None
            return self.terminal(js.group("|".join(parts)), hint + "_frac")
        if mult is not None and mult[0] == mult[0].to_integral_value():
            if nonint:
                return None  # multiples of an integer are integers
            integer = True
        if integer:
            ilo = None if lo is None else (int(lo.to_integral_value(rounding="ROUND_FLOOR")) + 1 if ls or lo != lo.to_integral_value() else int(lo))
            if lo is not None and not ls and lo != lo.to_integral_value():
                ilo = int(lo.to_integral_value(rounding="ROUND_CEILING"))
            ihi = None if hi is None else (int(hi.to_integral_value(rounding="ROUND_CEILING")) - 1 if hs or hi != hi.to_integral_value() else int(hi))
            if hi is not None and not hs and hi != hi.to_integral_value():
                ihi = int(hi.to_integral_value(rounding="ROUND_FLOOR"))
            if mult is not None and mult[0] != mult[0].to_integral_value():
                exp = mult[0].normalize().as_tuple()
                if not (exp.digits == (1,) and exp.exponent < 0):
                    raise UnsupportedFeatureError(f"'multipleOf' {mult[0]} on integers", pointer=mult[1])
                mult = None  # every integer is a multiple of 10**-k
            holes = sorted({int(x) for x in exclude if x == x.to_integral_value()
                            and (ilo is None or x >= ilo) and (ihi is None or x <= ihi)})
            if holes and mult is not None:
                raise UnsupportedFeatureError("'not' excluding values next to 'multipleOf'", pointer=ex_ptr)
            if holes:
                segs, start = [], ilo
                for h in holes:
                    segs.append((start, h - 1))
                    start = h + 1
                segs.append((start, ihi))
                r = nm.int_ranges(segs)
                rx = None if r is None else r + suffix
            elif mult is not None:
                k = int(mult[0])
                rx = self.int_multiple(k, ilo, ihi, mult[1], suffix)
            elif lo is None and hi is None:
                rx = nm.INTEGER_ANY if not syntactic else nm.INTEGER_SPELLED
            else:
                r = nm.int_range(ilo, ihi)
                rx = None if r is None else r + suffix
            if rx is None:
                self.maybe_empty(fl, "integer", lo_ptr or hi_ptr or (mult[1] if mult else fl.ptr), lo, hi)
                return None
            if mult is None and not syntactic and all(abs(h) < 10 ** 16 for h in holes):
                # floats from 1e16 on are integers, and json.dumps writes them as 1e+16 (holes are
                # excluded values: the exponent spellings are all >= 1e16 in magnitude)
                exps = nm.exponent_forms(lo, hi, allow_small=False)
                if exps:
                    rx = js.group("|".join(exps + [rx]))
            return self.terminal(rx, hint + "_int")
        maxd = None
        if mult is not None:
            d = mult[0]
            exp = d.normalize().as_tuple()
            if exp.digits == (1,) and exp.exponent < 0:
                maxd = -exp.exponent
            else:
                raise UnsupportedFeatureError(f"'multipleOf' {mult[0]} on numbers (only integers and 10**-k)", pointer=mult[1])
        inside = [x for x in exclude
                  if (lo is None or x > lo or (x == lo and not ls)) and (hi is None or x < hi or (x == hi and not hs))]
        if inside:
            if maxd is not None or nonint or any(x != x.to_integral_value() for x in inside):
                raise UnsupportedFeatureError("'not' excluding a non-integer value from a number range", pointer=ex_ptr)
            # numbers minus integers = non-integers | integers with holes (non-integers first: see _longest_first)
            return self.terminal(self.numbers_without(lo, ls, hi, hs, sorted({int(x) for x in inside})), hint + "_num")
        if lo is None and hi is None and maxd is None and not nonint:
            return self.terminal(nm.NUMBER_ANY, "NUMBER")
        rx = nm.decimal_range(lo, ls, hi, hs, maxd, nonint)
        if rx is None:
            self.maybe_empty(fl, "number", lo_ptr or hi_ptr or fl.ptr, lo, hi)
            return None
        if maxd is None:
            # exponent spellings first: lark extends only prefixes of Python's first match
            exps = nm.exponent_forms(lo, hi, allow_large=not nonint)
            if exps:
                rx = js.group("|".join(exps + [rx]))
        return self.terminal(rx, hint + "_num")

    def numbers_without(self, lo, ls, hi, hs, holes: list[int]) -> str:
        """Numbers between the bounds except the integers ``holes`` (all inside the bounds)."""
        ilo = None if lo is None else int(lo.to_integral_value(rounding="ROUND_FLOOR")) + 1 \
            if (ls or lo != lo.to_integral_value()) else int(lo)
        ihi = None if hi is None else int(hi.to_integral_value(rounding="ROUND_CEILING")) - 1 \
            if (hs or hi != hi.to_integral_value()) else int(hi)
        segs, start = [], ilo
        for h in holes:
            segs.append((start, h - 1))
            start = h + 1
        segs.append((start, ihi))
        ints = nm.int_ranges(segs)
        parts = nm.exponent_forms(lo, hi, allow_large=all(abs(h) < 10 ** 16 for h in holes))
        fractional = nm.decimal_range(lo, ls, hi, hs, None, nonint=True)
        parts += [p for p in (fractional, None if ints is None else ints + nm.INTEGRAL_SUFFIX) if p is not None]
        return js.group("|".join(parts))

    def int_multiple(self, k: int, lo, hi, ptr, suffix: str = nm.INTEGRAL_SUFFIX) -> str | None:
        """Integers in [lo, hi] (None: unbounded) that are multiples of ``k``, each followed by
        ``suffix`` (the ``.0`` spellings; empty where "integer" goes by spelling).

        Exact when the range is finite (at most self.limits.max_schema_enum_values multiples, enumerated) or ``k``
        divides 10**j for j <= 4 (the last j digits decide; the part of the range below 10**m is
        enumerated). Other moduli over unbounded ranges raise."""
        if k == 1:
            if lo is None and hi is None:
                return nm.INTEGER_SPELLED + suffix
            r = nm.int_range(lo, hi)
            return None if r is None else r + suffix

        def positive(a: int, b: int | None) -> list[str]:
            """Regexes (longest first) of the multiples of k in [a, b], a >= 0."""
            if b is not None:
                first = -(-a // k) * k
                if first > b:
                    return []
                if (b - first) // k + 1 > self.limits.max_schema_enum_values:
                    raise UnsupportedFeatureError(f"'multipleOf' {k} over more than {self.limits.max_schema_enum_values} values", pointer=ptr)
                return _longest_first([str(v) for v in range(first, b + 1, k)])
            suffixes = nm.multiple_of_suffix(k)
            if suffixes is None:
                raise UnsupportedFeatureError(f"'multipleOf' {k} (not a divisor of 10**4) over an unbounded range", pointer=ptr)
            j = len(suffixes[0])
            m = max(len(str(a)), j)
            big = f"[1-9][0-9]{{{m - j},}}{js.group('|'.join(suffixes))}"  # m+1 digits or more
            return [big] + positive(a, 10 ** m - 1)

        pos = positive(0 if lo is None else max(lo, 0), hi) if hi is None or hi >= 0 else []
        neg = positive(max(1, -hi) if hi is not None and hi < 0 else 1, None if lo is None else -lo) \
            if lo is None or lo < 0 else []
        parts = []
        if pos:
            parts.append(js.group("|".join(pos)))
        if neg:
            parts.append(r"\-" + js.group("|".join(neg)))
        if not parts:
            return None
        return (parts[0] if len(parts) == 1 else js.group("|".join(parts))) + suffix

    def maybe_empty(self, fl: _Flat, what: str, ptr: str, lo, hi):
        """Raise when contradictory keywords leave a node that only allows this type empty."""
        others = set(fl.types) - {"int", "frac"}
        if not others and len(fl.sources) == 1:  # merged alternatives may be empty legitimately
            raise SchemaError(f"no value can satisfy the {what} bounds (minimum {lo}, maximum {hi})", pointer=ptr)

    # ------------------------------------------------------------------------------- strings
    def string_expr(self, fl: _Flat, hint: str, exclude=(), ex_ptr: str = "") -> str | None:
        only = set(fl.types) == {"string"} and len(fl.sources) == 1
        try:
            body = self.string_body(fl.kws, ex_ptr or fl.ptr, only_string=only, exclude=list(exclude) or None,
                                    automaton_ok=self.catalogs)
        except LimitExceededError as e:
            if not (self.catalogs and e.field == "max_schema_regex_chars"):
                raise
            # a pattern x length language whose regex is too long: its automaton is the terminal
            return self.string_automaton(fl.kws, ex_ptr or fl.ptr, only, list(exclude), hint)
        if body is None:
            return None
        if self.catalogs and _too_deep(body):
            return self.string_automaton(fl.kws, ex_ptr or fl.ptr, only, list(exclude), hint)
        return self.terminal('"' + body + '"', hint + "_str")

    def string_automaton(self, kws: dict, ptr: str, only_string: bool, exclude: list, hint: str) -> str | None:
        """A ``%declare``d terminal for the strings of ``kws`` (minus ``exclude``), given as the byte
        automaton of their code-point DFA (:func:`.cpdfa.to_byte_dfa`; mutates ``external``)."""
        parsed = self.string_keywords(kws, only_string)
        if parsed is None:
            return None
        min_len, max_len, min_ptr, max_ptr, langs = parsed
        where = max_ptr or min_ptr or (langs[-1][1] if langs else ptr)
        dfa = self.string_dfa(langs, min_len, max_len, [x for x in exclude if isinstance(x, str)] or None, where)
        if dfa is None:
            if only_string and not exclude:
                raise SchemaError("no string can satisfy these patterns/formats and lengths", pointer=where)
            return None
        return self.dfa_terminal(dfa, hint)

    def dfa_terminal(self, dfa, hint: str) -> str:
        """A ``%declare``d terminal: the quoted JSON strings a code-point DFA accepts, as a byte
        automaton (:func:`.cpdfa.to_byte_dfa`; mutates ``external``)."""
        hit = self._dfa_terminals.get(id(dfa))
        if hit is not None and hit[0] is dfa:
            return hit[1]  # the same (memoized) language: one terminal, one copy in the lexer
        name = f"STRING{len(self.external)}_{re.sub(r'[^A-Za-z0-9_]', '_', hint).upper()}"[:60]
        self.external[name] = cpdfa.to_byte_dfa(dfa)
        self._dfa_terminals[id(dfa)] = (dfa, name)
        return name

    def except_names_terminal(self, names: list, hint: str) -> str:
        """A ``%declare``d terminal for the quoted JSON strings not in ``names`` (built directly
        as bytes: :func:`.cpdfa.except_names_byte_dfa`); one terminal per name set (mutates
        ``external``)."""
        key = tuple(names)
        name = self._except_terminals.get(key)
        if name is None:
            name = f"STRING{len(self.external)}_{re.sub(r'[^A-Za-z0-9_]', '_', hint).upper()}"[:60]
            self.external[name] = cpdfa.except_names_byte_dfa(names)
            self._except_terminals[key] = name
        return name

    def string_keywords(self, kws: dict, only_string: bool):
        """``(min_len, max_len, min_ptr, max_ptr, langs)`` of a string's keywords, ``langs`` the
        search languages of its patterns and enforced formats (unknown formats are recorded as
        annotations); None when the lengths contradict each other (raises if only strings remain)."""
        min_len, max_len = 0, None
        min_ptr = max_ptr = None
        for v, p, _o in kws.get("minLength", []):
            if not _is_int(v) or v < 0:
                if not (isinstance(v, float) and v.is_integer() and v >= 0):
                    raise SchemaError("'minLength' must be a non-negative integer", pointer=p)
                v = int(v)
            if v > min_len:
                min_len, min_ptr = v, p
        for v, p, _o in kws.get("maxLength", []):
            if not _is_int(v) or v < 0:
                if not (isinstance(v, float) and v.is_integer() and v >= 0):
                    raise SchemaError("'maxLength' must be a non-negative integer", pointer=p)
                v = int(v)
            if max_len is None or v < max_len:
                max_len, max_ptr = v, p
        if max_len is not None and min_len > max_len:
            if only_string:
                raise SchemaError(f"no value can satisfy minLength {min_len} and maxLength {max_len}", pointer=min_ptr)
            return None
        langs = []  # (branches, ptr, source)
        for v, p, _o in kws.get("pattern", []):
            if not isinstance(v, str):
                raise SchemaError("'pattern' must be a string", pointer=p)
            langs.append((js.search_branches(js.parse_pattern(v, p), p, v), p, v))
        for v, p, _o in kws.get("format", []):
            if not isinstance(v, str):
                raise SchemaError("'format' must be a string", pointer=p)
            if v not in FORMATS:
                if v in KNOWN_FORMATS or self.unknown_formats == "error":
                    raise UnsupportedFeatureError(f"format {v!r}", pointer=p)
                self.ignored_formats.append(p)  # an annotation (format-annotation vocabulary)
                continue
            ast = js.parse_pattern("^(?:" + FORMATS[v] + ")$", p)
            langs.append((js.search_branches(ast, p, v), p, "format:" + v))
        # from 'not': strings outside a pattern's search language / an enforced format
        for kw in ("_not_pattern", "_not_format"):
            for v, p, _o in kws.get(kw, []):
                if not isinstance(v, str):
                    raise SchemaError(f"'{kw[5:]}' must be a string", pointer=p)
                if kw == "_not_format":  # (an enforced one: negate() drops annotations)
                    ast = js.parse_pattern("^(?:" + FORMATS[v] + ")$", p)
                else:
                    ast = js.parse_pattern(v, p)
                langs.append((_Complement(js.search_branches(ast, p, v)), p, f"not-{kw[5:]}:{v}"))
        uniq = {}
        for br, p, src in langs:
            uniq.setdefault(src, (br, p))
        langs = list(uniq.values())
        return min_len, max_len, min_ptr, max_ptr, langs

    def string_body(self, kws: dict, ptr: str, only_string: bool, exclude=None, automaton_ok: bool = False) -> str | None:
        """The regex of a string's body under ``kws`` (minus ``exclude``). ``automaton_ok``: the
        caller falls back to :meth:`string_automaton` on ``max_schema_regex_chars``, raised here
        early for a DFA over ``_REGEX_DFA_STATES`` states (its regex would be slow and huge)."""
        parsed = self.string_keywords(kws, only_string)
        if parsed is None:
            return None
        min_len, max_len, min_ptr, max_ptr, langs = parsed
        if exclude:
            body = self.string_body(kws, ptr, only_string)
            if body is None:
                return None
            compiled = re.compile(body)
            exclude = [x for x in exclude if compiled.fullmatch(js.spell_string(x))]
            if not exclude:
                return body
            if not langs and not min_len and max_len is None:
                return js.except_strings_regex(exclude)
            return self.string_dfa_regex(langs, min_len, max_len, exclude, ptr, only_string, automaton_ok)
        if not langs:
            # A large maxLength becomes a counter of the (lazily built) lexer, not copies.
            bound = max(min_len, max_len or 0)
            if bound > self.limits.max_counted_repeat:
                raise _limit("max_counted_repeat", self.limits.max_counted_repeat,
                             f"schema at {max_ptr or min_ptr}: length bound {bound}")
            return js.repeat(js.ANY_CHAR, min_len, max_len)
        if len(langs) == 1 and not isinstance(langs[0][0], _Complement):
            branches, p = langs[0]
            try:
                if min_len or max_len is not None:
                    branches = js.restrict_length(branches, min_len, max_len)
            except ValueError:
                pass  # not an AST rewrite: intersect the DFAs below
            else:
                rx = js.branches_regex(branches, p)
                if rx is None and only_string:
                    raise SchemaError("no string can satisfy this pattern/format and length", pointer=p)
                return rx
        return self.string_dfa_regex(langs, min_len, max_len, None, max_ptr or min_ptr or langs[-1][1], only_string,
                                     automaton_ok)

    def string_dfa_regex(self, langs, min_len: int, max_len, exclude, ptr: str, only_string: bool,
                         automaton_ok: bool = False) -> str | None:
        """Strings in every pattern/format search language, of ``min_len..max_len`` code points and
        not in ``exclude``: the product of the code-point DFAs (:mod:`.cpdfa`) written back as a
        regex (bounded by ``Limits.max_dfa_states`` and ``Limits.max_schema_regex_chars``)."""
        dfa = self.string_dfa(langs, min_len, max_len, exclude, ptr)
        if dfa is None:
            if only_string and not exclude:
                raise SchemaError("no string can satisfy these patterns/formats and lengths", pointer=ptr)
            return None
        if automaton_ok and dfa.n_states > _REGEX_DFA_STATES:
            raise _limit("max_schema_regex_chars", self.limits.max_schema_regex_chars,
                         f"string at {ptr}: a {dfa.n_states}-state automaton is compiled as one")
        rx = cpdfa.to_regex(dfa, self.limits, f"string at {ptr}")
        if automaton_ok and rx is not None and len(rx) > _REGEX_AUTOMATON_CHARS:
            raise _limit("max_schema_regex_chars", self.limits.max_schema_regex_chars,
                         f"string at {ptr}: a {len(rx)}-character regex is compiled as its automaton")
        return rx

    def string_dfa(self, langs, min_len: int, max_len, exclude, ptr: str):
        """The minimized code-point DFA (:mod:`.cpdfa`) of the strings in every search language of
        ``langs``, of ``min_len..max_len`` code points and not in ``exclude``; None when empty.
        Memoized by the languages' parsed patterns (array items / properties repeating one
        pattern x length pair share one DFA, and through :meth:`dfa_terminal` one terminal)."""
        # (by value: a _Complement's own repr is its address, which a later object may reuse)
        key = (tuple((repr(br.branches), True) if isinstance(br, _Complement) else (repr(br), False)
                     for br, _p in langs), min_len, max_len, tuple(exclude or ()))
        if key in self._string_dfas:
            return self._string_dfas[key]
        dfa = self._string_dfas[key] = self._string_dfa(langs, min_len, max_len, exclude, ptr)
        return dfa

    def _string_dfa(self, langs, min_len: int, max_len, exclude, ptr: str):
        comps = [cpdfa.from_branches(br.branches if isinstance(br, _Complement) else br, self.limits)
                 for br, _p in langs]
        wanted = [not isinstance(br, _Complement) for br, _p in langs]  # False: outside that language
        if min_len or max_len is not None or not comps:
            comps.append(cpdfa.length(min_len, max_len, self.limits))
            wanted.append(True)
        k = len(comps)
        if exclude:
            comps.append(cpdfa.names(exclude))
        prod = cpdfa.product(
            comps, lambda bits: all((b is True) == w for b, w in zip(bits[:k], wanted))
            and not (exclude and bits[k] is True), self.limits, f"string at {ptr}")
        return cpdfa.minimize(prod, bool)

    # --------------------------------------------------------------------------------- arrays
    def array_expr(self, fl: _Flat, hint: str) -> str | None:
        kws = fl.kws
        min_items, max_items = 0, None
        for v, p, _o in kws.get("minItems", []):
            v = _nonneg_int(v, p, "minItems")
            min_items = max(min_items, v)
        for v, p, _o in kws.get("maxItems", []):
            v = _nonneg_int(v, p, "maxItems")
            max_items = v if max_items is None else min(max_items, v)
        groups = []  # (prefix [(schema, ptr)], rest (schema, ptr) or None=true)
        owners = {}
        for kw in ("prefixItems", "items", "additionalItems"):
            for v, p, owner in kws.get(kw, []):
                owners.setdefault(id(owner), (owner, p.rsplit("/", 1)[0]))
        for owner, optr in owners.values():
            prefix, rest = [], None
            if "prefixItems" in owner:
                pi = owner["prefixItems"]
                if not isinstance(pi, list):
                    raise SchemaError("'prefixItems' must be an array of schemas", pointer=optr + "/prefixItems")
                prefix = [(s, f"{optr}/prefixItems/{i}") for i, s in enumerate(pi)]
            if "items" in owner:
                it = owner["items"]
                if isinstance(it, list):  # draft 4-2019 tuple form
                    if "prefixItems" in owner:
                        raise SchemaError("array 'items' next to 'prefixItems'", pointer=optr + "/items")
                    prefix = [(s, f"{optr}/items/{i}") for i, s in enumerate(it)]
                    if "additionalItems" in owner:
                        rest = (owner["additionalItems"], optr + "/additionalItems")
                else:
                    rest = (it, optr + "/items")
            elif "additionalItems" in owner and not isinstance(owner.get("items"), list):
                pass  # additionalItems without array items: no effect
            groups.append((prefix, rest))
        unique = [p for v, p, _o in kws.get("uniqueItems", []) if v is True]
        if unique and not (max_items is not None and max_items <= 1):  # 0 or 1 items: always unique
            try:
                return self.array_unique(fl, hint, groups, min_items, max_items, unique[0])
            except _NoFiniteDomain as exc:
                if not self.unique_at_runtime(unique, groups, min_items):
                    raise UnsupportedFeatureError(exc.message, pointer=exc.pointer) from None
                # compiled without uniqueItems: constrain.schema.unique enforces it as items are written
        if "contains" in kws:
            return self.array_contains(fl, hint, groups, min_items, max_items)
        if max_items is not None and min_items > max_items:
            if set(fl.types) == {"array"} and len(fl.sources) == 1:
                raise SchemaError(f"no value can satisfy minItems {min_items} and maxItems {max_items}",
                                  pointer=kws["minItems"][0][1])
            return None
        k = max((len(p) for p, _ in groups), default=0)

        def position(i):
            conj = []
            for prefix, rest in groups:
                if i < len(prefix):
                    conj.append(prefix[i])
                elif rest is not None:
                    conj.append(rest)
            return conj

        pos_exprs = [self.conj(position(i), f"{hint}_item{i}") for i in range(k)]
        rest_conj = []
        for prefix, rest in groups:
            if rest is not None:
                rest_conj.append(rest)
        rest_expr = self.conj(rest_conj, hint + "_items")
        # the longest possible array
        longest = None
        for i, e in enumerate(pos_exprs):
            if e is None:
                longest = i
                break
        if longest is None and rest_expr is None:
            longest = k
        if longest is not None:
            max_items = longest if max_items is None else min(max_items, longest)
        if max_items is not None and min_items > max_items:
            return None
        if max_items is not None and max_items > self.limits.max_repeat_count:
            raise _limit("max_repeat_count", self.limits.max_repeat_count, f"schema at {hint}: maxItems {max_items}")
        comma = self.struct(",")
        alts = []
        if min_items == 0:
            alts.append(self.empty_container("[", "]"))
        if max_items is None or max_items >= 1:
            # tail(i): elements from index i (i >= 1 already emitted)
            tails: dict[int, str] = {}

            def tail(i: int) -> str | None:
                if i in tails:
                    return tails[i]
                if i >= k:
                    lo = max(0, min_items - i)
                    hi = None if max_items is None else max_items - i
                    r = self.repeat_seq(f"{comma} {rest_expr}" if rest_expr is not None else None, lo, hi, hint + "_tail")
                    tails[i] = r
                    return r
                opts = []
                if i >= min_items:
                    opts.append("")
                if max_items is None or i < max_items:
                    nxt = tail(i + 1)
                    if nxt is not None:
                        opts.append(f"{comma} {pos_exprs[i]} {nxt}".strip())
                r = self.rule(f"{hint}_after{i}", opts)
                tails[i] = r
                return r

            first = pos_exprs[0] if k > 0 else rest_expr
            try:
                after = tail(1)
            finally:
                tail = None  # recursive through its cell: unlinked so that refcounting frees it
            if first is not None and after is not None:
                alts.append(f"{self.struct('[')} {first} {after} {self.struct(']')}".replace("  ", " "))
        return self.rule(hint + "_array", alts)

    def unique_at_runtime(self, u_ptrs: list[str], groups, min_items: int) -> bool:
        """Whether ``uniqueItems`` (at ``u_ptrs``) can be left to the run-time check of
        :mod:`constrain.schema.unique`: compile_json_schema only, every path to the keywords
        unconditional, items given by ``items`` alone, every item a string (one code-point DFA,
        whose completion counts tell at run time whether a prefix can still end in a value not
        written yet), at least ``min_items`` distinct strings. Records the sites when it can."""
        from constrain.schema.unique import UniqueSite, unconditional_unique_pointers

        if not self.runtime_unique or any(prefix for prefix, _rest in groups):
            return False
        if self._unconditional_unique is None:
            self._unconditional_unique = unconditional_unique_pointers(self.root, self.resolve)
        if not set(u_ptrs) <= self._unconditional_unique:
            return False
        rest = [r for _prefix, r in groups if r is not None]
        if not rest:
            return False
        flats = [_Flat(rest[0][1])]
        for s_, p in rest:
            flats = self.product(flats, self.normalize(s_, p, 1), p)
        if len(flats) != 1 or set(flats[0].types) != {"string"} or flats[0].enum is not None or flats[0].nots:
            return False
        dfa = self.string_language(flats[0].kws, flats[0].ptr)
        if dfa is None:
            return False
        site = UniqueSite(dfa)
        if site.count0 != cpdfa.INFINITE and site.count0 < min_items:
            return False  # fewer distinct strings than minItems: left to the compile-time error
        for p in u_ptrs:
            old = self.unique_sites.get(p)
            if old is not None and (old.dfa.trans, old.dfa.labels) != (dfa.trans, dfa.labels):
                return False  # one keyword over two item languages: the scanner could not tell which
        for p in u_ptrs:
            self.unique_sites.setdefault(p, site)
        return True

    def string_language(self, kws: dict, ptr: str):
        """The minimized code-point DFA of the strings ``kws`` allows (lengths, patterns, enforced
        formats), or None when it is empty."""
        parsed = self.string_keywords(kws, only_string=False)
        if parsed is None:
            return None
        min_len, max_len, _min_ptr, _max_ptr, langs = parsed
        return self.string_dfa(langs, min_len, max_len, None, ptr)

    def array_unique(self, fl: _Flat, hint: str, groups, min_items: int, max_items, u_ptr: str) -> str | None:
        """``uniqueItems: true`` over a finite item domain (enum/const/boolean/null items).

        Arrays of pairwise distinct values from a set V form a regular language: the state is the
        subset of V used so far (``2**len(V)`` rules, bounded by
        ``Limits.max_schema_unique_items_values``). Values are compared as JSON Schema does
        (``1 == 1.0``, objects unordered); each value keeps all its spellings."""
        why = ("'uniqueItems' over items without a finite domain (supported: an 'items' schema whose "
               "values are an enum/const, booleans or null, without prefixItems/contains; or, with "
               "compile_json_schema, strings of one item schema with at least minItems values, in an "
               "array reached through properties/patternProperties/additionalProperties/items/allOf/$ref "
               "and type-determined anyOf/oneOf branches only)")
        if "contains" in fl.kws or any(prefix for prefix, _rest in groups):
            raise _NoFiniteDomain(why, pointer=u_ptr)
        rest = [r for _prefix, r in groups if r is not None]
        if not rest:
            raise _NoFiniteDomain(why, pointer=u_ptr)
        flats = [_Flat(rest[0][1])]
        for s_, p in rest:
            flats = self.product(flats, self.normalize(s_, p, 1), p)
        values: list = []
        value_sources: list = []
        for f in flats:
            if f.enum is not None:
                cands = f.enum
            elif set(f.types) <= {"boolean", "null"}:
                cands = [v for v, t in ((True, "boolean"), (False, "boolean"), (None, "null")) if t in f.types]
            else:
                raise _NoFiniteDomain(why, pointer=u_ptr)
            excluded = [x for vals, _p in f.nots for x in vals]
            for v in cands:
                v = self.admitted(v, f.sources) if _type_of(v) in f.types else _NOT_ADMITTED
                if (v is not _NOT_ADMITTED
                        and not any(_json_eq(v, x) for x in excluded) and not any(_json_eq(v, w) for w in values)):
                    values.append(v)
                    value_sources.append(f.sources)
        n = len(values)
        lim = self.limits.max_schema_unique_items_values
        if n > lim:
            raise _limit("max_schema_unique_items_values", lim,
                         f"schema at {u_ptr}: 'uniqueItems' over {n} item values (2**n states)")
        hi = n if max_items is None else min(max_items, n)
        if min_items > hi:
            return None
        exprs = [self.const_expr(v, f"{hint}_u{i}", self.float_forms_ok(v, src))
                 for i, (v, src) in enumerate(zip(values, value_sources))]
        comma = self.struct(",")
        memo: dict = {}

        def after(mask: int) -> str | None:
            """The rest of the array once the values in ``mask`` (at least one) are used."""
            if mask in memo:
                return memo[mask]
            cnt = bin(mask).count("1")
            opts = [""] if cnt >= min_items else []
            if cnt < hi:
                for i in range(n):
                    if not mask >> i & 1:
                        nxt = after(mask | 1 << i)
                        if nxt is not None:
                            opts.append(f"{comma} {exprs[i]} {nxt}".strip())
            r = self.rule(f"{hint}_uniq{mask}", opts)
            memo[mask] = r
            return r

        alts = []
        if min_items == 0:
            alts.append(self.empty_container("[", "]"))
        if hi >= 1:
            for i in range(n):
                nxt = after(1 << i)
                if nxt is not None:
                    alts.append(f"{self.struct('[')} {exprs[i]} {nxt} {self.struct(']')}".replace("  ", " "))
        return self.rule(hint + "_unique_array", alts)

    def array_contains(self, fl: _Flat, hint: str, groups, min_items: int, max_items) -> str | None:
        """``contains`` with ``minContains``/``maxContains``: every element either matches the
        contained schema C or its negation (so C must be negatable), counted up to the bound."""
        occ = fl.kws["contains"]
        c_schema, c_ptr, owner = occ[0]
        if len(occ) > 1:
            raise UnsupportedFeatureError("several 'contains' merged into one array", pointer=occ[1][1])
        if any(prefix for prefix, _rest in groups):
            raise UnsupportedFeatureError("'contains' next to 'prefixItems'", pointer=c_ptr)
        if min_items or max_items is not None:
            raise UnsupportedFeatureError("'contains' next to 'minItems'/'maxItems'", pointer=c_ptr)
        base = c_ptr.rsplit("/", 1)[0]
        lo = _nonneg_int(owner.get("minContains", 1), base + "/minContains", "minContains")
        hi = owner.get("maxContains")
        hi = None if hi is None else _nonneg_int(hi, base + "/maxContains", "maxContains")
        for kw in ("minContains", "maxContains"):
            if any(o is not owner for _v, _p, o in fl.kws.get(kw, [])):
                raise UnsupportedFeatureError(f"{kw!r} merged from another schema", pointer=fl.kws[kw][0][1])
        if hi is not None and lo > hi:
            return None
        if max(lo, hi or 0) > self.limits.max_repeat_count:
            raise _limit("max_repeat_count", self.limits.max_repeat_count, f"schema at {base}: min/maxContains")
        items = [rest for _prefix, rest in groups if rest is not None]
        match = self.conj(items + [(c_schema, c_ptr)], hint + "_contains")
        other = self.conj(items + [(_Negated(c_schema), c_ptr)], hint + "_not_contains")
        cap = hi if hi is not None else lo
        comma = self.struct(",")
        memo: dict = {}

        def after(c: int) -> str | None:
            """The rest of the array after at least one element, c matches so far (capped)."""
            if c in memo:
                return memo[c]
            name = self.new_rule(f"{hint}_contains_{c}")
            memo[c] = name
            opts = [""] if c >= lo else []
            if match is not None and (hi is None or c + 1 <= hi):
                opts.append(f"{comma} {match} {after(min(c + 1, cap))}")
            if other is not None:
                opts.append(f"{comma} {other} {name}")
            self.rules[name] = [o for o in opts] or [self.empty_language_expr()]
            return name

        alts = []
        if lo == 0:
            alts.append(self.empty_container("[", "]"))
        firsts = []
        if match is not None and (hi is None or hi >= 1):
            firsts.append(f"{match} {after(min(1, cap))}")
        if other is not None:
            firsts.append(f"{other} {after(0)}")
        after = None  # recursive through its cell: unlinked so that refcounting frees it
        for f in firsts:
            alts.append(f"{self.struct('[')} {f} {self.struct(']')}")
        return self.rule(hint + "_array", alts)

    def power_seq(self, item: str, n: int, hint: str) -> str:
        """Exactly ``n`` copies of ``item`` as a few symbols: rules for ``item`` repeated 1, 2, 4,
        ... times (each the previous one twice) and one of them per set bit of ``n`` (adds rules).
        Plain BNF, so the grammar stays inside what :func:`~constrain.grammar.ebnf.rules_to_ir`
        reads (Lark's ``item ~ n`` sent the whole schema through Lark's grammar loader)."""
        power = self.new_rule(f"{hint}_rep1")
        self.rules[power] = [item]
        parts = []
        k = 1
        while True:
            if n & k:
                parts.append(power)
            k <<= 1
            if k > n:
                break
            twice = self.new_rule(f"{hint}_rep{k}")
            self.rules[twice] = [f"{power} {power}"]
            power = twice
        return " ".join(parts)

    def repeat_seq(self, item: str | None, lo: int, hi: int | None, hint: str) -> str | None:
        """Expression for ``item`` repeated lo..hi times (item None: only 0 times)."""
        if hi is not None and lo > hi:
            return None
        if item is None:
            return "" if lo == 0 else None
        req = " ".join([f"({item})"] * lo) if lo <= 8 else self.power_seq(item, lo, hint)
        if hi is None:
            opt = f"({item})*"
        elif hi == lo:
            opt = ""
        else:
            # nested optional chain, one rule per level (lark expands sequences of ? exponentially)
            nxt = ""
            for j in range(hi - lo):
                name = self.new_rule(f"{hint}_opt")
                self.rules[name] = [f"{item} {nxt}".strip(), ""]
                nxt = name
            opt = nxt
        return f"{req} {opt}".strip()

    # -------------------------------------------------------------------------------- objects
    def object_expr(self, fl: _Flat, hint: str) -> str | None:
        kws = fl.kws
        owners = {}
        for kw in ("properties", "additionalProperties", "patternProperties"):
            for v, p, owner in kws.get(kw, []):
                if kw in ("properties", "patternProperties") and not isinstance(v, dict):
                    raise SchemaError(f"{kw!r} must be an object", pointer=p)
                owners.setdefault(id(owner), (owner, p.rsplit("/", 1)[0]))
        groups = []
        for owner, optr in owners.values():
            props = owner.get("properties", {})
            pats = owner.get("patternProperties", {})
            addl = owner.get("additionalProperties", True)
            groups.append((props, pats, addl, optr))
        required: list[str] = []
        for v, p, _o in kws.get("required", []):
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise SchemaError("'required' must be an array of strings", pointer=p)
            for x in v:
                if x not in required:
                    required.append(x)
        dep_req = {}
        for kw in ("dependentRequired", "dependencies"):
            for v, p, _o in kws.get(kw, []):
                if not isinstance(v, dict):
                    raise SchemaError(f"{kw!r} must be an object", pointer=p)
                for key, deps in v.items():
                    if kw == "dependencies" and (isinstance(deps, (dict, bool))):
                        continue  # schema form: expanded by normalize()
                    if not isinstance(deps, list) or not all(isinstance(x, str) for x in deps):
                        raise SchemaError("'dependentRequired' values must be arrays of strings", pointer=f"{p}/{_esc_ptr(key)}")
                    dep_req.setdefault(key, set()).update(deps)
        min_p, max_p = 0, None
        min_p_ptr = None
        for v, p, _o in kws.get("minProperties", []):
            if _nonneg_int(v, p, "minProperties") > min_p:
                min_p, min_p_ptr = _nonneg_int(v, p, "minProperties"), p
        for v, p, _o in kws.get("maxProperties", []):
            v = _nonneg_int(v, p, "maxProperties")
            max_p = v if max_p is None else min(max_p, v)
        # property names, in schema order
        names: list[str] = []
        for props, _pats, _addl, _optr in groups:
            for k in props:
                if k not in names:
                    names.append(k)
        for r in required:
            if r not in names:
                names.append(r)
        for key, deps in dep_req.items():
            for d in [key, *sorted(deps)]:
                if d not in names:
                    names.append(d)

        def schema_for(name):
            conj = []
            for props, pats, addl, optr in groups:
                matched = False
                if name in props:
                    conj.append((props[name], f"{optr}/properties/{_esc_ptr(name)}"))
                    matched = True
                for pat, sub in pats.items():
                    if _pattern_matches(pat, name, f"{optr}/patternProperties/{_esc_ptr(pat)}"):
                        conj.append((sub, f"{optr}/patternProperties/{_esc_ptr(pat)}"))
                        matched = True
                if not matched:
                    conj.append((addl, f"{optr}/additionalProperties"))
            return conj

        # property names constraint
        pn_kws = {}
        # (the keywords of each propertyNames schema, $ref targets and allOf members included: a conjunction)
        pn_todo = [(v, p, 0) for v, p, _o in kws.get("propertyNames", [])]
        while pn_todo:
            v, p, d = pn_todo.pop(0)
            if v is True or v == {}:
                continue
            if v is False:
                pn_kws.setdefault("false", []).append(p)
                continue
            if not isinstance(v, dict):
                raise SchemaError("'propertyNames' must be a schema", pointer=p)
            if d > self.limits.max_schema_ref_depth:
                raise _limit("max_schema_ref_depth", self.limits.max_schema_ref_depth,
                             f"schema at {p}: $ref/allOf nesting in 'propertyNames' deeper than {self.limits.max_schema_ref_depth}")
            for k2, v2 in v.items():
                if k2 in ANNOTATIONS or k2.startswith("x-") or k2 == "type" and v2 == "string":
                    continue
                if k2 == "$ref":
                    t_schema, t_ptr = self.resolve(v2, f"{p}/$ref")
                    pn_todo.append((t_schema, t_ptr, d + 1))
                    continue
                if k2 == "allOf" and isinstance(v2, list) and v2:
                    pn_todo.extend((sub, f"{p}/allOf/{i}", d + 1) for i, sub in enumerate(v2))
                    continue
                if k2 in ("pattern", "minLength", "maxLength", "format"):
                    pn_kws.setdefault(k2, []).append((v2, f"{p}/{k2}", v))
                elif k2 in ("enum", "const"):
                    vals = v2 if k2 == "enum" else [v2]
                    if not isinstance(vals, list):
                        raise SchemaError("'enum' must be an array", pointer=f"{p}/{k2}")
                    pn_kws.setdefault("enum", []).append(([x for x in vals if isinstance(x, str)], f"{p}/{k2}"))
                else:
                    raise UnsupportedFeatureError(f"{k2!r} in 'propertyNames'", pointer=f"{p}/{_esc_ptr(k2)}")
        allowed_names = None
        if "enum" in pn_kws:
            for vals, _p in pn_kws.pop("enum"):
                allowed_names = set(vals) if allowed_names is None else allowed_names & set(vals)
        pn_false = "false" in pn_kws
        pn_kws.pop("false", None)

        def name_ok(name):
            if pn_false:
                return False
            if allowed_names is not None and name not in allowed_names:
                return False
            # the other propertyNames keywords, checked by jsonschema on the declared name
            return all(self.valid_against(name, [(src, p)]) for kw in pn_kws for (_x, p, src) in pn_kws[kw])

        # declared properties: expressions
        entries = []  # (name, pair expr or None, required)
        for name in names:
            req = name in required
            if not name_ok(name):
                if req:
                    return None
                continue
            val = self.conj(schema_for(name), f"{hint}_{name}")
            if val is None:
                if req:
                    return None
                continue
            entries.append((name, self.pair(_key_rx(name), val, name), req))
        # additional keys (addl_infinite: infinitely many keys, so a fresh one can always follow a comma)
        addl_pair = None
        addl_infinite = False
        if not pn_false:
            extra_names = [e for e in names]
            addl_conj = []
            has_patterns = False
            for props, pats, addl, optr in groups:
                if pats:
                    has_patterns = True
                addl_conj.append((addl, f"{optr}/additionalProperties"))
            if allowed_names is not None:
                extra = [n for n in sorted(allowed_names) if n not in names]
                addl_key_alts = []
                for n in extra:
                    c = self.conj(schema_for(n), f"{hint}_{n}")
                    if c is not None:
                        addl_key_alts.append(self.pair(_key_rx(n), c, n))
                addl_pair = self.rule(hint + "_extra_pair", addl_key_alts) if addl_key_alts else None
            elif has_patterns:
                addl_pair, addl_infinite = self.pattern_pairs(groups, names, pn_kws, hint)
            else:
                val = self.conj(addl_conj, hint + "_additional")
                if val is not None and self.catalogs and extra_names and not pn_kws:
                    # "any key but the declared names" as the names' complement automaton: its regex
                    # repeats the string body once per trie node of the names, and the lexer's
                    # subset construction multiplies those copies (thousands of states, merged
                    # again only by minimization)
                    key = self.except_names_terminal(extra_names, hint + "_additional_key")
                    addl_pair = self.rule(hint + "_additional_pair", [f"{key} {self.struct(':')} {val}"])
                    addl_infinite = True
                elif val is not None:
                    key_rx = self.string_body(pn_kws, hint, True, exclude=extra_names or None) if (pn_kws or extra_names) else js.ANY_CHAR + "*"
                    if key_rx is not None:
                        addl_pair = self.rule(hint + "_additional_pair", [self.pair('"' + key_rx + '"', val, hint + "_additional")])
                        addl_infinite = not pn_kws
        # 'not' of an object without additional properties: a member whose key is not in P must be there
        # (several: one member each, or one for all; "a key not in P" follows from "a key not in Q" for P <= Q)
        outside = kws.get("_outside", [])
        sets = list(dict.fromkeys(p for p, _ptr, _o in outside))
        sets = [p for p in sets if not any(p < q for q in sets)]
        if len(sets) > 3:
            raise _limit("max_schema_alternatives", 3, f"schema at {outside[0][1]}: 'not' of more than 3 objects "
                         "without additional properties, merged")
        inside = tuple(sets) or None
        if self.property_order == "any" and self.runtime_keys:
            # duplicate keys are refused at run time (constrain.schema.distinct_keys): counting is
            # exact; with finitely many additional keys a comma is checked there too (a fresh key
            # must be left to follow it)
            self.distinct_keys = True
            self.comma_checks = self.comma_checks or (addl_pair is not None and not addl_infinite)
            return self.object_any_counted(entries, addl_pair, min_p, max_p, dep_req, hint, inside)
        if addl_pair is not None and min_p >= 2 and self.runtime_keys and addl_infinite:
            # the count is exact once repeated keys are refused at run time, and a fresh additional
            # key can always follow a comma
            self.distinct_keys = True
        elif addl_pair is not None and min_p >= 2:
            # {"x": 1, "x": 2} would count twice but has one property after parsing
            raise UnsupportedFeatureError("'minProperties' >= 2 together with additional properties (a grammar "
                                          "cannot rule out duplicate keys)", pointer=min_p_ptr)
        if inside is not None and (dep_req or self.property_order == "any" and len(entries) > 1):
            raise UnsupportedFeatureError("'not' of an object without additional properties, next to "
                                          "'dependentRequired' or with property_order='any' in Lark text", pointer=outside[0][1])
        if self.property_order == "any" and len(entries) > 1:
            return self.object_any_order(entries, addl_pair, min_p, max_p, hint, dep_req)
        if dep_req:
            return self.object_with_dependencies(entries, addl_pair, min_p, max_p, dep_req, hint)
        return self.object_schema_order(entries, addl_pair, min_p, max_p, hint, inside)

    def pattern_pairs(self, groups, names, pn_kws, hint) -> tuple[str | None, bool]:
        """Pairs for the keys not in ``names`` when some object schema has ``patternProperties``,
        and whether their keys are infinitely many (then a fresh one can always follow a comma).

        Such a key must satisfy, for every merged object schema, the schemas of all its patterns
        that match the key (unanchored ECMA search), or its ``additionalProperties`` when none
        does. The key space minus ``names`` is split into regions by which patterns match: the
        product of the pattern DFAs and the declared-name trie (:mod:`.cpdfa`), one key regex and
        one conjunction of schemas per realized region (at most
        ``Limits.max_schema_key_regions``)."""
        if pn_kws:
            raise UnsupportedFeatureError("'propertyNames' together with 'patternProperties'", pointer=groups[0][3])
        comps = [cpdfa.names(names)]
        slots = []  # (group index, pattern, schema, pointer) per component after the first
        for gi, (props, pats, addl, optr) in enumerate(groups):
            for pat, sub in pats.items():
                pptr = f"{optr}/patternProperties/{_esc_ptr(pat)}"
                if not isinstance(pat, str):
                    raise SchemaError("pattern must be a string", pointer=pptr)
                branches = js.search_branches(js.parse_pattern(pat, pptr), pptr, pat)
                comps.append(cpdfa.from_branches(branches, self.limits))
                slots.append((gi, pat, sub, pptr))

        def label(bits):
            if bits[0] is True:
                return None  # a declared name: emitted as an entry of its own
            return tuple(b is True for b in bits[1:])

        prod = cpdfa.product(comps, label, self.limits, f"keys of {groups[0][3]}")
        regions = [r for r in dict.fromkeys(prod.labels) if r is not None]
        lim = self.limits.max_schema_key_regions
        if len(regions) > lim:
            raise _limit("max_schema_key_regions", lim,
                         f"schema at {groups[0][3]}: patternProperties split the keys into {len(regions)} regions")
        alts = []
        infinite = False
        for region in regions:
            conj = []
            for gi, (props, pats, addl, optr) in enumerate(groups):
                matched = [(sub, pptr) for (g, _pat, sub, pptr), hit in zip(slots, region) if g == gi and hit]
                conj.extend(matched if matched else [(addl, f"{optr}/additionalProperties")])
            val = self.conj(conj, f"{hint}_keys")
            if val is None:
                continue
            dfa = cpdfa.minimize(prod, lambda lab, region=region: lab == region)
            if dfa is None:
                continue
            infinite = infinite or cpdfa.completion_counts(dfa)[0] == cpdfa.INFINITE
            try:
                rx = cpdfa.to_regex(dfa, self.limits, f"key region of {groups[0][3]}/patternProperties")
            except LimitExceededError as e:
                if not (self.catalogs and e.field == "max_schema_regex_chars"):
                    raise
                rx = ""  # (the automaton below)
            if rx is None:
                continue
            if self.catalogs and (rx == "" or _too_deep(rx)):
                # a regex too long or too deeply nested for the lexer's parser (the complement of
                # a long counted chain): the key region's automaton is the key terminal
                key = self.dfa_terminal(dfa, hint + "_key")
                alts.append(f"{key} {self.struct(':')} {val}")
                continue
            alts.append(self.pair('"' + rx + '"', val, hint + "_pattern"))
        return (self.rule(hint + "_pattern_pair", alts), infinite) if alts else (None, False)

    def object_schema_order(self, entries, addl_pair, min_p, max_p, hint, inside=None) -> str | None:
        """Declared properties in schema order, additional ones between them (see the module
        docstring). ``inside`` (name sets, from the negation of objects without additional
        properties): for each set, at least one member's key must not be in it -- an entry named
        outside it, or an additional pair (whose key is undeclared, and every name of the sets is
        declared). f below: a bit per set, set once such a member was written."""
        n = len(entries)
        if max_p is not None and min_p > max_p:
            return None
        counting = min_p > 0 or max_p is not None
        cap = (max_p + 1 if max_p is not None else max(min_p, 1)) if counting else 1
        comma = self.struct(",")
        memo: dict = {}
        if counting and n * (cap + 1) > self.limits.max_schema_rules:
            raise _limit("max_schema_rules", self.limits.max_schema_rules, f"schema at {hint}: min/maxProperties with {n} properties")
        # Without min/maxProperties, additional properties may come anywhere between the declared
        # ones (which keep schema order): a gap of ", addl" pairs before each declared pair. The
        # gap belongs to the next pair written, and a first additional pair only starts NE(0),
        # so every text has one derivation.
        gap = gap_plus = None
        if addl_pair and not counting and n:
            gap = self.rule(hint + "_gap", [self.repeat_seq(f"{comma} {addl_pair}", 0, None, hint + "_gap")])
            if inside is not None:
                gap_plus = self.rule(hint + "_gap1", [self.repeat_seq(f"{comma} {addl_pair}", 1, None, hint + "_gap1")])

        full = (1 << len(inside)) - 1 if inside else 0

        def out_of(name) -> int:
            return sum(1 << j for j, names in enumerate(inside or ()) if name not in names)

        def S(i: int, c: int, f: int) -> str | None:
            """Members from entry i on, c (>=1, capped) already emitted; f: the sets of ``inside``
            a member outside of which was emitted (bits; ``full`` when all)."""
            key = (i, c, f)
            if key in memo:
                return memo[key]
            memo[key] = None
            if i == n:
                lo = max(0, min_p - c) if counting else 0
                hi = (max_p - c if max_p is not None else None)
                if f != full:
                    lo = max(lo, 1)
                if hi is not None and hi < lo:
                    return None
                r = self.repeat_seq(f"{comma} {addl_pair}" if addl_pair else None, lo, hi, hint + "_more")
                memo[key] = r
                return r
            name, pair, req = entries[i]
            opts = []
            nc = min(c + 1, cap) if counting else 1
            if max_p is None or c + 1 <= max_p:
                if f == full or gap is None:
                    nxt = S(i + 1, nc, f | out_of(name))
                    if nxt is not None:
                        opts.append(f"{gap or ''} {comma} {pair} {nxt}".strip())
                else:  # the gap before this pair is what makes f: empty or not
                    nxt = S(i + 1, nc, f | out_of(name))
                    if nxt is not None:
                        opts.append(f"{comma} {pair} {nxt}".strip())
                    nxt = S(i + 1, nc, full)
                    if nxt is not None:
                        opts.append(f"{gap_plus} {comma} {pair} {nxt}".strip())
            if not req:
                nxt = S(i + 1, c, f)
                if nxt is not None:
                    opts.append(nxt)
            suffix = "" if f == full else f"_f{f}"
            r = self.rule((f"{hint}_p{i}_{c}" if counting else f"{hint}_p{i}") + suffix, opts)
            memo[key] = r
            return r

        ne_memo: dict = {}

        def NE(i: int) -> str | None:
            """Non-empty member lists from entry i on, nothing emitted yet."""
            if i in ne_memo:
                return ne_memo[i]
            if i == n:
                lo = max(1, min_p) if counting else 1
                r = None
                if addl_pair and gap is None and (max_p is None or max_p >= lo):
                    rest = self.repeat_seq(f"{comma} {addl_pair}", lo - 1, None if max_p is None else max_p - 1, hint + "_more")
                    r = None if rest is None else f"{addl_pair} {rest}".strip()
                ne_memo[i] = r
                return r
            name, pair, req = entries[i]
            opts = []
            if max_p is None or max_p >= 1:
                nxt = S(i + 1, 1, out_of(name))
                if nxt is not None:
                    opts.append(f"{pair} {nxt}".strip())
            if not req:
                nxt = NE(i + 1)
                if nxt is not None:
                    opts.append(nxt)
            if i == 0 and gap is not None:  # an additional pair first, then everything from entry 0
                nxt = S(0, 1, full)
                if nxt is not None:
                    opts.append(f"{addl_pair} {nxt}".strip())
            r = self.rule(f"{hint}_first{i}", opts)
            ne_memo[i] = r
            return r

        alts = []
        if min_p == 0 and not any(req for _, _, req in entries) and inside is None:
            alts.append(self.empty_container("{", "}"))
        try:
            body = NE(0)
        finally:  # S and NE call themselves through their cells: unlink them so that refcounting,
            S = NE = None  # not the cyclic collector, frees them (and what they hold) on return
        if body is not None:
            alts.append(f"{self.struct('{')} {body} {self.struct('}')}")
        return self.rule(hint + "_object", alts)

    def object_any_order(self, entries, addl_pair, min_p, max_p, hint, dep_req=None) -> str | None:
        """Declared properties in any order as subsets (2**n states; the Lark-text form, and where
        duplicate keys cannot be refused at run time), dependencies checked at the end."""
        n = len(entries)
        if n > self.limits.max_schema_any_order_properties:
            raise _limit("max_schema_any_order_properties", self.limits.max_schema_any_order_properties,
                         f"schema at {hint}: property_order='any' with {n} properties")
        return self._subset_object(entries, addl_pair, min_p, max_p, hint, dep_req, any_order=True)

    def object_any_counted(self, entries, addl_pair, min_p, max_p, dep_req, hint, inside=None) -> str | None:
        """Declared properties in any order, each at most once, in a grammar linear in their
        number: the grammar counts members (optional ones, additional ones, and required ones when
        there are many) and tracks as a subset the properties a dependency names (and the required
        ones while that stays under ``_ANY_ORDER_TRACKED_STATES`` states), and the duplicate keys a
        counting grammar would allow are refused at run time by
        :class:`~constrain.schema.distinct_keys.DistinctKeysConstraint`, which makes the counts
        exact. A comma is allowed only where a fresh member can follow (a required or optional
        property not written yet, or an additional one: their key language is infinite here).
        ``inside``: as for :meth:`object_schema_order` (bits in the state: the sets a member
        outside of which was written)."""
        comma = self.struct(",")
        dep_req = dep_req or {}
        names = {e[0] for e in entries}
        rel_names = {k for k in dep_req if k in names} | {d for k, ds in dep_req.items() if k in names for d in ds}
        if len(rel_names & names) > self.limits.max_schema_any_order_properties + 4:
            raise _limit("max_schema_any_order_properties", self.limits.max_schema_any_order_properties + 4,
                         f"schema at {hint}: 'dependentRequired' over {len(rel_names & names)} properties")
        # Required properties are tracked one by one too while the states stay few (then the
        # grammar itself knows which are missing, and a length bound plans with the right ones);
        # past that they are counted like the optional ones.
        n_req = sum(1 for e in entries if e[2] and e[0] not in rel_names)
        n_opt = sum(1 for e in entries if not e[2] and e[0] not in rel_names)
        counted_cap = ((max_p + 2) if max_p is not None else (min_p + 1)) if (min_p > 0 or max_p is not None) else 1
        if 2 ** (len(rel_names & names) + n_req) * (n_opt + 1) * counted_cap <= _ANY_ORDER_TRACKED_STATES:
            rel_names = rel_names | {e[0] for e in entries if e[2]}
        rel = [e for e in entries if e[0] in rel_names]
        req = [e for e in entries if e[2] and e[0] not in rel_names]
        opt = [e for e in entries if not e[2] and e[0] not in rel_names]
        if max_p is not None and min_p > max_p:
            return None
        if any(d not in names for k, ds in dep_req.items() if k in names for d in ds):
            # a dependency on a property that cannot be present: its key cannot be either
            missing = {k for k, ds in dep_req.items() if k in names and any(d not in names for d in ds)}
            if any(e[2] for e in entries if e[0] in missing):
                return None
            entries = [e for e in entries if e[0] not in missing]
            return self.object_any_counted(entries, addl_pair, min_p, max_p,
                                           {k: ds for k, ds in dep_req.items() if k not in missing}, hint, inside)
        r, n_o = len(req), len(opt)
        req_rule = self.rule(hint + "_req", [e[1] for e in req]) if req else None
        opt_rule = self.rule(hint + "_opt", [e[1] for e in opt]) if opt else None

        full = (1 << len(inside)) - 1 if inside else 0

        def out_of(name) -> int:
            return sum(1 << j for j, names in enumerate(inside or ()) if name not in names)

        def split(group, tag):
            """[(rule, bits)]: the group's members by the sets of ``inside`` they are outside of."""
            by: dict[int, list] = {}
            for e in group:
                by.setdefault(out_of(e[0]), []).append(e[1])
            return [(self.rule(f"{hint}_{tag}_o{m}", pairs), m) for m, pairs in sorted(by.items())]

        req_split = split(req, "req") if inside else None
        opt_split = split(opt, "opt") if inside else None
        counting = min_p > 0 or max_p is not None
        cap = (max_p + 1 if max_p is not None else min_p) if counting else 0
        memo: dict = {}

        def final(mask: int, i: int) -> bool:
            if i < r or any(e[2] and not mask >> j & 1 for j, e in enumerate(rel)):
                return False
            present = {e[0] for j, e in enumerate(rel) if mask >> j & 1}
            return all(set(dep_req[k]) <= present for k in present if k in dep_req)

        def state(mask: int, i: int, o: int, c: int, f: int) -> str | None:
            """Members after the first: mask of the tracked ones, i required, o optional, c (capped)
            in all; f: the sets of ``inside`` a member outside of which was written (``full``: all)."""
            key = (mask, i, o, c, f)
            if key in memo:
                return memo[key]
            memo[key] = None
            if len(memo) > self.limits.max_schema_rules:
                raise _limit("max_schema_rules", self.limits.max_schema_rules,
                             f"schema at {hint}: property_order='any' counting states")
            alts = []
            if final(mask, i) and c >= min_p and f == full:
                alts.append("")
            if max_p is None or c < max_p:
                c1 = min(c + 1, cap) if counting else 0
                for j, e in enumerate(rel):
                    if not mask >> j & 1:
                        nxt = state(mask | 1 << j, i, o, c1, f | out_of(e[0]))
                        if nxt is not None:
                            alts.append(f"{comma} {e[1]} {nxt}".strip())
                for count_ok, group_rule, halves, step in ((i < r, req_rule, req_split, (1, 0)),
                                                           (o < n_o, opt_rule, opt_split, (0, 1))):
                    if not count_ok:
                        continue
                    heads = [(group_rule, full)] if f == full else [(h, f | m) for h, m in halves]
                    for head, f2 in heads:
                        nxt = state(mask, i + step[0], o + step[1], c1, f2) if head is not None else None
                        if nxt is not None:
                            alts.append(f"{comma} {head} {nxt}".strip())
                if addl_pair is not None:
                    if (counting and c1 != c) or f != full:
                        nxt = state(mask, i, o, c1, full)
                        if nxt is not None:
                            alts.append(f"{comma} {addl_pair} {nxt}".strip())
                    else:  # the count no longer matters (or is not kept): a loop
                        loop = self.new_rule(f"{hint}_any_{mask}_{i}_{o}_{c}")
                        memo[key] = loop
                        alts.append(f"{comma} {addl_pair} {loop}")
                        self.rules[loop] = alts
                        return loop
            res = self.rule(f"{hint}_any_{mask}_{i}_{o}_{c}" + ("" if f == full else f"_f{f}"), alts)
            memo[key] = res
            return res

        first = []
        c1 = min(1, cap) if counting else 0
        for j, e in enumerate(rel):
            first.append((e[1], state(1 << j, 0, 0, c1, out_of(e[0]))))
        for count_ok, group_rule, halves, start in ((r > 0, req_rule, req_split, (1, 0)),
                                                    (n_o > 0, opt_rule, opt_split, (0, 1))):
            if not count_ok:
                continue
            heads = [(group_rule, full)] if not inside else halves
            for head, f2 in heads:
                if head is not None:
                    first.append((head, state(0, start[0], start[1], c1, f2)))
        if addl_pair is not None and (max_p is None or max_p >= 1):
            first.append((addl_pair, state(0, 0, 0, c1, full)))
        state = None  # recursive through its cell: unlinked so that refcounting frees it (an error
        alts = []     # on the way leaves it to the cyclic collector)
        if final(0, 0) and min_p == 0 and not inside:
            alts.append(self.empty_container("{", "}"))
        body = [f"{head} {rest}".strip() for head, rest in first if rest is not None]
        if body:
            inner = self.rule(hint + "_members", body)
            alts.append(f"{self.struct('{')} {inner} {self.struct('}')}")
        return self.rule(hint + "_object", alts)

    def object_with_dependencies(self, entries, addl_pair, min_p, max_p, dep_req, hint) -> str | None:
        names = {e[0] for e in entries}
        relevant = {k for k in dep_req if k in names} | {d for k, deps in dep_req.items() if k in names for d in deps}
        if len(relevant) > self.limits.max_schema_any_order_properties + 4:
            raise _limit("max_schema_any_order_properties", self.limits.max_schema_any_order_properties + 4,
                         f"schema at {hint}: 'dependentRequired' over {len(relevant)} properties")
        return self._subset_object(entries, addl_pair, min_p, max_p, hint, dep_req, any_order=False)

    def _subset_object(self, entries, addl_pair, min_p, max_p, hint, dep_req, any_order: bool) -> str | None:
        """Objects whose declared properties are tracked as a subset (any order, or dependencies).

        ``any_order``: every property tracked (2**n states); otherwise the declared properties stay
        in schema order (walk i = next index) and only the properties a dependency in ``dep_req``
        names are tracked. Additional pairs may come anywhere: before the first declared pair,
        between two, after the last (each run of them belongs to the declared pair it precedes,
        or to the end, so every text has one derivation); while ``minProperties`` is unmet or a
        ``maxProperties`` bounds them, each counts (one state per count).
        """
        n = len(entries)
        comma = self.struct(",")
        names = [e[0] for e in entries]
        required = frozenset(i for i, e in enumerate(entries) if e[2])
        if max_p is not None and min_p > max_p:
            return None
        if any_order:
            tracked = frozenset(range(n))
        else:
            rel = set(dep_req) | {d for deps in dep_req.values() for d in deps}
            tracked = frozenset(i for i, nm in enumerate(names) if nm in rel)
        counting = min_p > 0 or max_p is not None
        cap = (max_p + 1 if max_p is not None else min_p) if counting else 0
        memo: dict = {}
        gap_rule: list = []

        def gap() -> str:
            """``(, additional)*``: a run of additional pairs (empty without them)."""
            if addl_pair is None:
                return ""
            if not gap_rule:
                gap_rule.append(self.rule(hint + "_gap", [self.repeat_seq(f"{comma} {addl_pair}", 0, None, hint + "_gap")]))
            return gap_rule[0]

        def ok_final(mask: int, i: int) -> bool:
            if any_order:
                if not required <= {j for j in range(n) if mask >> j & 1}:
                    return False
            elif any(j in required for j in range(i, n)):  # (skipped ones were refused on the way)
                return False
            if dep_req:
                present = {names[j] for j in range(n) if mask >> j & 1}
                for key, deps in dep_req.items():
                    if key in present and not deps <= present:
                        return False
            return True

        def state(mask: int, i: int, started: bool, cnt: int) -> str | None:
            """Members after ``cnt`` (capped) were written, ``mask`` the tracked ones, ``i`` the next
            schema-order index; ``started``: something was written (then a comma leads)."""
            key = (mask, i, started, cnt)
            if key in memo:
                return memo[key]
            memo[key] = None
            if len(memo) > self.limits.max_schema_rules:
                raise _limit("max_schema_rules", self.limits.max_schema_rules,
                             f"schema at {hint}: objects tracked by subsets of their properties")
            # counts no longer matter once minProperties is met and nothing bounds them: then
            # additional pairs run in gaps (no state per count)
            free = not counting or (max_p is None and cnt >= min_p)
            opts = []
            lead = ""
            if started:
                if free:
                    g = gap()
                    if ok_final(mask, i):
                        opts.append(g)
                    lead = f"{g} {comma}".strip()
                else:
                    if ok_final(mask, i) and cnt >= min_p:
                        opts.append("")
                    if addl_pair is not None and (max_p is None or cnt + 1 <= max_p):
                        nxt = state(mask, i, True, min(cnt + 1, cap))
                        if nxt is not None:
                            opts.append(f"{comma} {addl_pair} {nxt}")
                    lead = comma
            elif addl_pair is not None and (max_p is None or max_p >= 1):
                nxt = state(mask, i, True, min(1, cap) if counting else 0)
                if nxt is not None:
                    opts.append(f"{addl_pair} {nxt}")
            cand = [j for j in range(n) if not mask >> j & 1] if any_order else list(range(i, n))
            for j in cand:
                if max_p is not None and cnt + 1 > max_p:
                    break
                if not any_order:
                    # skipping entries i..j-1: skipped required ones make it impossible
                    if any(s in required for s in range(i, j)):
                        break
                nxt = state(mask | (1 << j if j in tracked else 0), j + 1, True, min(cnt + 1, cap) if counting else 0)
                if nxt is not None:
                    opts.append(f"{lead} {entries[j][1]} {nxt}".strip())
            if not opts:
                return None
            r = self.rule(f"{hint}_s{mask}_{i}_{int(started)}_{cnt}", opts)
            memo[key] = r
            return r

        alts = []
        if min_p == 0 and not required:
            alts.append(self.empty_container("{", "}"))
        try:
            body = state(0, 0, False, 0)
        finally:
            state = None  # recursive through its cell: unlinked so that refcounting frees it
        if body:
            alts.append(f"{self.struct('{')} {body} {self.struct('}')}")
        return self.rule(hint + "_object", alts)


# ------------------------------------------------------------------------------------- helpers
def _key_rx(k: str) -> str:
    return '"' + js.literal_body_regex(k) + '"'


def _nonneg_int(v, p, kw) -> int:
    if isinstance(v, float) and v.is_integer() and v >= 0:
        return int(v)
    if not _is_int(v) or v < 0:
        raise SchemaError(f"{kw!r} must be a non-negative integer", pointer=p)
    return v


# property_order="any" (compile_json_schema): required properties are tracked one by one (a
# subset per state) while subsets x optional counts x member counts stay at most this many states.
_ANY_ORDER_TRACKED_STATES = 4096

# Group nesting past which a regex goes to the lexer as an automaton instead (the regex parser
# recurses per group level; DFA-to-regex output of a complemented counted chain nests per position).
_MAX_REGEX_DEPTH = 48


def _too_deep(rx: str) -> bool:
    """Whether ``rx`` nests groups deeper than ``_MAX_REGEX_DEPTH``; a regex with no more ``(``
    than that cannot (the common case, answered without a scan)."""
    return rx.count("(") > _MAX_REGEX_DEPTH and _regex_depth(rx) > _MAX_REGEX_DEPTH


def _regex_depth(rx: str) -> int:
    """The deepest group nesting of a regex (escapes and character classes skipped)."""
    depth = best = 0
    i, n = 0, len(rx)
    in_class = False
    while i < n:
        c = rx[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            if rx.startswith("]", i + 1) or rx.startswith("^]", i + 1):
                i += 2 if rx[i + 1] == "]" else 3
                continue
        elif c == "(":
            depth += 1
            best = max(best, depth)
        elif c == ")":
            depth -= 1
        i += 1
    return best


_PATTERN_CACHE: dict = {}


def _pattern_matches(pattern: str, name: str, ptr: str) -> bool:
    """Whether the ECMA ``pattern`` finds a match in ``name`` (via our own translation)."""
    key = pattern
    if key not in _PATTERN_CACHE:
        rx = js.pattern_search_regex(pattern, ptr)
        _PATTERN_CACHE[key] = None if rx is None else re.compile(rx)
    c = _PATTERN_CACHE[key]
    return bool(c and c.fullmatch(js.spell_string(name)))


def _type_of(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "int" if v.is_integer() else "frac"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _json_key(v):
    """A hashable key with ``_json_key(a) == _json_key(b)`` iff ``_json_eq(a, b)``."""
    if isinstance(v, bool):
        return ("b", v)
    if _is_num(v):
        return ("n", v)  # Python's 1 == 1.0 and hash(1) == hash(1.0): JSON Schema's number equality
    if isinstance(v, str):
        return ("s", v)
    if isinstance(v, list):
        return ("l", tuple(_json_key(x) for x in v))
    if isinstance(v, dict):
        return ("d", frozenset((k, _json_key(x)) for k, x in v.items()))
    return ("z", v)


def _json_eq(a, b) -> bool:
    """JSON Schema equality (1 == 1.0, true != 1, objects unordered)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_num(a) and _is_num(b):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_eq(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_eq(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _longest_first(spellings: list[str]) -> list[str]:
    """Unique regexes, longest text first: lark's dynamic lexer only tries prefixes of Python's
    first match, so ``1|10`` would never lex ``10`` (regex text length is a proxy that holds for
    the digit-only spellings used here)."""
    return sorted(dict.fromkeys(spellings), key=lambda s: -len(s))


def _has_int(v) -> bool:
    """Whether the JSON value ``v`` holds an integral number (which ``5.0`` could also spell)."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return False
    if isinstance(v, (int, float)):
        return isinstance(v, int) or v.is_integer()
    if isinstance(v, list):
        return any(_has_int(x) for x in v)
    return any(_has_int(x) for x in v.values())


def _intify(v):
    """``v`` with every integral float as an int: the value the plain ``5`` spelling parses to."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, float):
        return int(v) if v.is_integer() else v
    if isinstance(v, int):
        return v
    if isinstance(v, list):
        return [_intify(x) for x in v]
    return {k: _intify(x) for k, x in v.items()}


_NOT_ADMITTED = object()  # Compiler.admitted: no spelling of the value is valid


def _floatify(v):
    """``v`` with every integral number as a float: the value ``5.0`` spellings parse to."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, list):
        return [_floatify(x) for x in v]
    return {k: _floatify(x) for k, x in v.items()}


def _number_spellings(v, float_forms: bool = True) -> list[str]:
    """Regexes of the JSON texts of the number ``v``: an integral value also as ``5.0``, ``5.00``
    (and ``json.dumps`` of a float) unless ``float_forms`` is False (drafts 3/4, where such a text
    is not of type "integer")."""
    out = []
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        raise SchemaError(f"{v!r} is not a JSON number")
    if _is_int(v) or (isinstance(v, float) and v.is_integer()):
        iv = int(v)
        s = str(iv) if iv != 0 else "0"
        out.append(js.lit(s) + (nm.INTEGRAL_SUFFIX if float_forms else ""))
        if isinstance(v, float) and float_forms:
            out.append(js.lit(json.dumps(v)))
    else:
        out.append(js.lit(json.dumps(v)))
    return out


def load_schema(schema) -> Any:
    """Accept a dict, a bool, a JSON string, a path to a .json file, or a pydantic model class."""
    if isinstance(schema, (dict, bool)):
        return schema
    if isinstance(schema, type) and hasattr(schema, "model_json_schema"):
        return schema.model_json_schema()
    if isinstance(schema, Path):
        return json.loads(schema.read_text(encoding="utf-8"))
    if isinstance(schema, str):
        s = schema.strip()
        if s.startswith(("{", "[")) or s in ("true", "false"):
            try:
                return json.loads(s)
            except json.JSONDecodeError as exc:
                raise SchemaError(f"schema is not valid JSON: {exc}") from None
        p = Path(schema)
        if p.exists():
            return json.loads(p.read_text(encoding="utf-8"))
        raise SchemaError(f"schema string is neither JSON nor an existing file: {schema[:60]!r}")
    raise TypeError(f"schema must be a dict, bool, JSON string, path or pydantic model, not {type(schema).__name__}")


def _schema_grammar(
    schema,
    *,
    whitespace: str = "flexible",
    max_whitespace: int = 2,
    property_order: str = "schema",
    unknown_keywords: str = "ignore",
    unknown_formats: str = "ignore",
    limits: Limits = DEFAULT_LIMITS,
    catalogs: bool = False,
    text: bool = True,
) -> tuple[str | None, dict, "_Compiler"]:
    """(Lark text, {declared catalog terminal: byte DFA}, the compiler) of ``schema``; see
    :func:`schema_to_lark`. ``catalogs`` (compile_json_schema): large string enums as automata and
    uniqueItems over strings left to the run-time check (``compiler.unique_sites``). ``text=False``:
    None for the text (``compiler.text(compiler.start_expr)`` makes it when needed)."""
    root = load_schema(schema)
    try:
        if isinstance(root, dict):
            _check_depth(root, limits.max_schema_depth)
            root = _json_copy(root)
        # Where the lexer will be built lazily (a repetition too long to expand), a key fused with
        # its value is a terminal of its own whose value automaton every key rebuilds, state by
        # state, in the masks (MaskBench's lazy files spent most of their slow masks on it); keys
        # and values apart, a value terminal is shared by every key. Told from the schema's text
        # first (a second translation of a large schema costs tens of ms), by the terminals after
        # (the text can be wrong both ways: a bound in an unused subschema or a description, a
        # long repetition it does not spell out) and translated again when it was.
        fuse = not _long_repetitions(root)
        for _attempt in range(2):
            c = _Compiler(root, whitespace, max_whitespace, property_order, limits, unknown_keywords,
                          unknown_formats, catalogs, runtime_unique=catalogs)
            c.fuse_pairs = fuse
            expr = c.node(root, "")
            if fuse and not c.fused:
                break  # nothing to fuse: the same grammar either way
            if fuse == (not _lexer_counts(c, limits)):
                break
            fuse = not fuse
    except RecursionError:  # within max_schema_depth, but $refs and keywords stacked past Python's limit
        raise _limit("max_schema_depth", limits.max_schema_depth,
                     "the schema's subschemas nest too deeply for the compiler (Python's recursion limit)") from None
    if expr is None or expr == "":
        raise SchemaError("no value can satisfy this schema", pointer="")
    c.start_expr = expr
    return (c.text(expr) if text else None), c.external, c


def schema_to_lark(schema, **options) -> str:
    """Lark grammar text for the JSON texts valid against ``schema`` (see the module docstring).

    Options (keyword-only): ``whitespace="flexible"`` (with ``max_whitespace=2`` bytes between
    tokens), ``"compact"`` or a regex; ``property_order="schema"`` or ``"any"``;
    ``unknown_keywords="ignore"`` (default) treats keywords JSON Schema does not define as the
    annotations the spec says they are, ``"error"`` raises ``UnsupportedFeatureError`` on them;
    ``unknown_formats="ignore"`` (default) treats a ``format`` no draft defines (``"bar"``) as an
    annotation, as 2020-12's format-annotation vocabulary does, ``"error"`` raises on it (formats
    a draft defines are enforced or raise either way); ``limits``.

    An ``enum`` has at most ``Limits.max_schema_enum_values`` values here; :func:`compile_json_schema`
    compiles an enum of more than ``CATALOG_MIN_VALUES`` strings (of any number) as a catalog
    automaton instead, which has no Lark text.

    Raises
    ------
    SchemaError
        Invalid schema (wrong keyword types, broken ``$ref``), or no value can satisfy it.
    UnsupportedFeatureError
        A keyword (or combination) that cannot be enforced exactly; ``.pointer`` names it.
    LimitExceededError
        A ``Limits.max_schema_*`` bound or ``limits.max_repeat_count``.
    """
    return _schema_grammar(schema, **options)[0]


@without_gc
def compile_json_schema(schema, vocab, *, limits: Limits = DEFAULT_LIMITS, **options):
    """``compile_grammar(schema_to_lark(schema, **options), vocab)``: a constraint for ``schema``,
    except that an ``enum`` of more than ``CATALOG_MIN_VALUES`` strings is one catalog automaton
    (:func:`~constrain.constraints.choice.choice_dfa` over the values' spellings; 100k values
    compile in seconds) and is not bounded by ``Limits.max_schema_enum_values``.

    The constraint's ``ignored_keywords`` / ``ignored_formats`` list the JSON Pointers of what was
    read as an annotation because the declared draft's validator does not read it either."""
    from constrain.grammar import compile_grammar
    from constrain.grammar.compile import external_terminals, grammar_from_ir
    from constrain.grammar.ebnf import EBNFSubsetError, rules_to_ir

    _, external, compiler = _schema_grammar(schema, limits=limits, catalogs=True, text=False, **options)

    def text() -> str:  # the Lark text: for the fallback below, or to locate a terminal's error
        return compiler.text(compiler.start_expr)

    try:  # the compiler's rules straight to BNF (Lark's reading of the same text is the fallback)
        rules = {name: compiler.rules[name] for name in compiler.rule_order if compiler.rules[name]}
        ir = rules_to_ir(compiler.start_expr, rules, compiler.term_defs, external_terminals(external, limits),
                         max_expansions=limits.max_grammar_rules)
    except EBNFSubsetError:
        g = compile_grammar(text(), vocab, limits=limits, terminals=external)
    else:
        g = grammar_from_ir(ir, text, vocab, limits)
    g.literal_hints = schema_literals(load_schema(schema))
    out = g
    if compiler.unique_sites:
        from constrain.schema.unique import SchemaNavigator, UniqueItemsConstraint

        out = UniqueItemsConstraint(out, SchemaNavigator(compiler.root, compiler.resolve, compiler.unique_sites))
    if compiler.distinct_keys:
        from constrain.schema.distinct_keys import DistinctKeysConstraint

        out = DistinctKeysConstraint(out, check_commas=compiler.comma_checks)
    # what the schema says that no validator of its draft reads, by JSON Pointer: unknown keywords,
    # keywords of later drafts, siblings of a draft <= 7 $ref; and unknown formats (annotations)
    out.ignored_keywords = tuple(compiler.ignored_keywords)
    out.ignored_formats = tuple(compiler.ignored_formats)
    return out


def schema_literals(schema, max_count: int = 2000, max_bytes: int = 65536) -> tuple[bytes, ...]:
    """JSON-quoted property names and string ``enum``/``const`` values of ``schema``, in document
    order, deduplicated and capped (a lookup corpus for speculative drafters; no semantics)."""
    out: dict[bytes, None] = {}
    size = 0
    stack = [schema]
    while stack and len(out) < max_count and size < max_bytes:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(reversed(node))
            continue
        if not isinstance(node, dict):
            continue
        found = list(node["properties"]) if isinstance(node.get("properties"), dict) else []
        for v in ([node["const"]] if "const" in node else []) + (node["enum"] if isinstance(node.get("enum"), list) else []):
            if isinstance(v, str):
                found.append(v)
        for s in found:
            b = json.dumps(s, ensure_ascii=False).encode("utf-8", errors="replace")
            if b not in out:
                out[b] = None
                size += len(b)
        for k, v in node.items():
            if k not in ("enum", "const", "default", "examples") and isinstance(v, (dict, list)):
                stack.append(v)
    return tuple(out)
