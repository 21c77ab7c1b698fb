"""``uniqueItems: true`` over arrays of strings, enforced at run time.

Arrays of pairwise distinct strings are not a context-free language, so the grammar cannot say
it. :func:`~constrain.schema.compile.compile_json_schema` compiles such an array without the
keyword and wraps the grammar in :class:`UniqueItemsConstraint`, which follows the JSON text as it
is written (a small scanner whose state is part of the constraint state), keeps the decoded values
of the items written so far in each such array, and refuses any token that would close an item
equal to an earlier one. Values are compared decoded (``"\\u0041"`` equals ``"A"``), as JSON
Schema does.

Exactness needs two things:

* every way the schema reaches the array's ``uniqueItems`` is *unconditional*: through
  ``properties``, ``patternProperties`` (the scanner matches the key it read against the
  pattern's code-point DFA), ``additionalProperties`` (a key matching no declared name and no
  pattern), ``items``/``prefixItems``/``additionalItems``, ``allOf`` and ``$ref``, and the one
  ``anyOf``/``oneOf`` branch that admits arrays (or objects, on the way to a property) when every
  other branch's ``type`` excludes them -- so the scanner knows, from the keys, indices and
  container kinds on the way, that the keyword applies there -- not through
  ``if``/``not``/``dependentSchemas``/... (:func:`unconditional_unique_pointers`); otherwise the
  compiler raises ``UnsupportedFeatureError`` naming the keyword, as before;
* no output is stranded: a token is allowed only if the item being written can still end in a
  value not written yet. The item strings' code-point DFA gives, per state, how many strings
  complete it (:class:`UniqueSite`); a prefix ``p`` is live iff that count exceeds the number of
  earlier items starting with ``p`` (a prefix ending inside a character, ``\\u00`` or a partial
  UTF-8 sequence, is checked over the characters it can still become), and after a comma the
  next item must have a fresh value at all. Where every count is infinite (no ``maxLength``, a
  pattern that can always be extended) only the duplicate-closing tokens are ever refused.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import numpy as np

from constrain.compiled import CompiledConstraint
from constrain.schema.runtime_check import RuntimeCheckConstraint, per_vocabulary, tokens_spelling_prefixes
from constrain.schema import cpdfa

__all__ = ["SchemaNavigator", "UniqueItemsConstraint", "UniqueSite", "key_matches",
           "unconditional_unique_pointers"]

# Keywords whose subschemas apply to the same instance, or to a child chosen by key / index alone.
_UNCONDITIONAL = ("properties", "items", "prefixItems", "additionalItems", "allOf", "$ref")


def _esc(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


_TYPE_NAMES = {"array": {"array"}, "object": {"object"}, "string": {"string"}, "boolean": {"boolean"},
               "null": {"null"}, "number": {"number"}, "integer": {"number"}}
_ALL = frozenset({"array", "object", "string", "boolean", "null", "number"})


def _value_type(v) -> str:
    """The JSON type of a value, numbers as "number" (the compiler's ``_type_of`` splits them)."""
    from constrain.schema.compile import _type_of

    t = _type_of(v)
    return "number" if t in ("int", "frac") else t


def _types(node: Any, ptr: str, resolve: Callable, depth: int = 0) -> frozenset:
    """A superset of the JSON types of the values valid against ``node``, read from ``type``,
    ``enum``/``const`` and what ``$ref``/``allOf`` add (a narrowing keyword is definitive)."""
    if node is False:
        return frozenset()
    if not isinstance(node, dict) or depth > 32:
        return _ALL
    out = set(_ALL)
    t = node.get("type")
    names = [t] if isinstance(t, str) else t if isinstance(t, list) else None
    if names is not None:
        out &= set().union(*(_TYPE_NAMES.get(x, _ALL) for x in names)) if names else set()
    if "const" in node:
        out &= {_value_type(node["const"])}
    if isinstance(node.get("enum"), list):
        out &= {_value_type(v) for v in node["enum"]}
    if isinstance(node.get("$ref"), str):
        try:
            target, tptr = resolve(node["$ref"], ptr + "/$ref")
        except Exception:  # the compiler reports bad references itself
            target = None
        if target is not None:
            out &= _types(target, tptr, resolve, depth + 1)
    if isinstance(node.get("allOf"), list):
        for i, sub in enumerate(node["allOf"]):
            out &= _types(sub, f"{ptr}/allOf/{i}", resolve, depth + 1)
    return frozenset(out)


def _determined_branches(node: dict, ptr: str, resolve: Callable):
    """``(branch, pointer, kind)`` for each ``anyOf``/``oneOf`` branch that is the only one admitting
    ``kind`` ("array" or "object"): an instance of that kind here is valid only through it."""
    for kw in ("anyOf", "oneOf"):
        branches = node.get(kw)
        if not isinstance(branches, list):
            continue
        types = [_types(b, f"{ptr}/{kw}/{i}", resolve) for i, b in enumerate(branches)]
        for kind in ("array", "object"):
            hits = [i for i, t in enumerate(types) if kind in t]
            if len(hits) == 1:
                yield branches[hits[0]], f"{ptr}/{kw}/{hits[0]}", kind


_KEY_DFA_MEMO: dict[str, Any] = {}


def key_pattern_dfa(pattern: Any):
    """The minimized code-point DFA of the keys the ECMA ``pattern`` matches (unanchored search,
    as ``patternProperties`` uses it), or None when the pattern is not a string or not supported
    (the compiler reports that itself; a key's match is then unknown here). Memoized."""
    if not isinstance(pattern, str):
        return None
    if pattern not in _KEY_DFA_MEMO:
        from constrain.limits import DEFAULT_LIMITS
        from constrain.schema import json_string as js

        try:
            dfa = cpdfa.from_branches(js.search_branches(js.parse_pattern(pattern), "", pattern), DEFAULT_LIMITS)
            dfa = cpdfa.minimize(dfa, bool)
        except Exception:  # unsupported or too large
            dfa = None
        _KEY_DFA_MEMO[pattern] = dfa
    return _KEY_DFA_MEMO[pattern]


def key_matches(pattern: str, key: str) -> bool | None:
    """Whether ``pattern`` matches ``key`` (``patternProperties`` semantics); None if unknown."""
    dfa = key_pattern_dfa(pattern)
    return None if dfa is None else bool(dfa.run(key))


def _subschemas(node: dict, ptr: str):
    """``(subschema, pointer, unconditional)`` of every subschema keyword of ``node`` (not ``$ref``)."""
    for k, v in node.items():
        if k in ("enum", "const", "default", "examples", "$defs", "definitions"):
            continue
        if k in ("properties", "patternProperties", "dependentSchemas") and isinstance(v, dict):
            for name, sub in v.items():
                yield sub, f"{ptr}/{k}/{_esc(name)}", k == "properties"
        elif k in ("items", "prefixItems", "allOf", "anyOf", "oneOf") and isinstance(v, list):
            for i, sub in enumerate(v):
                yield sub, f"{ptr}/{k}/{i}", k in _UNCONDITIONAL
        elif isinstance(v, (dict, bool)) and k in (
            "items", "additionalItems", "additionalProperties", "not", "if", "then", "else", "contains",
            "propertyNames", "unevaluatedItems", "unevaluatedProperties",
        ):
            yield v, f"{ptr}/{k}", k in _UNCONDITIONAL


def unconditional_unique_pointers(root: Any, resolve: Callable[[Any, str], tuple[Any, str]]) -> set[str]:
    """Pointers of the ``uniqueItems`` keywords that every path from the root reaches through
    unconditional keywords only (``resolve(ref, ptr) -> (schema, pointer)`` follows ``$ref``)."""
    # A visit is (node, pointer, plain, kind): plain while every keyword on the way is followed
    # by SchemaNavigator too; kind "array"/"object" when the node applies only to instances of
    # that kind (a determined anyOf/oneOf branch), None when it applies whatever the instance.
    reached: dict[str, bool] = {}
    seen: set[tuple] = set()
    stack: list[tuple[Any, str, bool, str | None]] = [(root, "", True, None)]
    while stack:
        node, ptr, plain, kind = stack.pop()
        if (ptr, plain, kind) in seen or not isinstance(node, dict):
            continue
        seen.add((ptr, plain, kind))
        if node.get("uniqueItems") is True and kind != "object":  # (on an object: no effect)
            key = ptr + "/uniqueItems"
            reached[key] = reached.get(key, True) and plain
        if "$ref" in node:
            try:
                target, tptr = resolve(node["$ref"], ptr + "/$ref")
            except Exception:  # the compiler reports bad references itself
                target = None
            if target is not None:
                stack.append((target, tptr, plain, kind))
        determined = {}
        if plain:
            for sub, sptr, k in _determined_branches(node, ptr, resolve):
                if kind in (None, k):
                    determined.setdefault(sptr, []).append((sub, k))
        for sptr, subs in determined.items():
            for sub, k in subs:
                stack.append((sub, sptr, True, k))
        pats = node.get("patternProperties") if isinstance(node.get("patternProperties"), dict) else {}
        for sub, sptr, unconditional in _subschemas(node, ptr):
            if sptr in determined:
                continue
            keyword = sptr[len(ptr):].split("/")[1]
            if keyword == "properties":
                unconditional = kind in (None, "object")
            elif keyword in ("items", "prefixItems", "additionalItems"):
                unconditional = kind in (None, "array")
            elif keyword == "patternProperties":
                # the scanner decides from the key written whether the pattern matches it
                name = sptr[len(ptr) + len("/patternProperties/"):].replace("~1", "/").replace("~0", "~")
                unconditional = kind in (None, "object") and name in pats and key_pattern_dfa(name) is not None
            elif keyword == "additionalProperties":
                # applies to a key matching no declared name and no pattern: decidable from the key
                # when every pattern of the node is
                unconditional = kind in (None, "object") and all(key_pattern_dfa(p) is not None for p in pats)
            # a child value applies whatever it is; an allOf member applies where its parent does
            stack.append((sub, sptr, plain and unconditional, kind if keyword == "allOf" else None))
    return {p for p, ok in reached.items() if ok}


class SchemaNavigator:
    """Which schema nodes (by pointer) apply at a JSON location, following unconditional keywords.

    A location's node set holds ``(pointer, kind)`` pairs, closed under ``allOf``, ``$ref`` and the
    determined ``anyOf``/``oneOf`` branches (kind "array"/"object": the branch applies only to an
    instance of that kind); a child's set is read off the parent's ``properties``, the
    ``patternProperties`` whose pattern matches the key and otherwise ``additionalProperties``
    (by key), or ``prefixItems``/``items``/``additionalItems`` (by index).
    Results are memoized (the navigator is shared by every state of a constraint)."""

    def __init__(self, root: Any, resolve: Callable[[Any, str], tuple[Any, str]], sites: dict):
        self.root = root
        self._resolve = resolve
        self.sites = dict(sites)  # uniqueItems pointer -> UniqueSite, the arrays enforced here
        self.unique = frozenset(sites)
        self._nodes: dict[str, Any] = {"": root}
        self._closure_memo: dict[frozenset, frozenset] = {}
        self._key_memo: dict[tuple[frozenset, str], frozenset] = {}
        self._index_memo: dict[tuple[frozenset, int], frozenset] = {}

    def _add(self, out: set, node: Any, ptr: str, kind: str | None = None) -> None:
        """Add ``(pointer, kind)`` for ``node`` and what applies with it (allOf, $ref, determined
        anyOf/oneOf branches): kind None applies to any instance, "array"/"object" only to one."""
        stack = [(node, ptr, kind)]
        while stack:
            node, ptr, kind = stack.pop()
            if (ptr, kind) in out or not isinstance(node, dict):
                continue
            out.add((ptr, kind))
            self._nodes[ptr] = node
            for i, sub in enumerate(node.get("allOf") or [] if isinstance(node.get("allOf"), list) else []):
                stack.append((sub, f"{ptr}/allOf/{i}", kind))
            for sub, sptr, k in _determined_branches(node, ptr, self._resolve):
                if kind in (None, k):
                    stack.append((sub, sptr, k))
            if "$ref" in node:
                try:
                    target, tptr = self._resolve(node["$ref"], ptr + "/$ref")
                except Exception:
                    continue
                stack.append((target, tptr, kind))

    def start(self) -> frozenset:
        out: set = set()
        self._add(out, self.root, "")
        return frozenset(out)

    def child_key(self, nodes: frozenset, key: str) -> frozenset:
        memo = self._key_memo.get((nodes, key))
        if memo is not None:
            return memo
        out: set = set()
        for p, kind in nodes:
            if kind == "array":
                continue
            node = self._nodes[p]
            props = node.get("properties")
            declared = isinstance(props, dict) and key in props
            if declared:
                self._add(out, props[key], f"{p}/properties/{_esc(key)}")
            pats = node.get("patternProperties")
            unknown = False  # some pattern's match is undecidable here: additionalProperties too
            if isinstance(pats, dict):
                for pat, sub in pats.items():
                    hit = key_matches(pat, key)
                    if hit:
                        declared = True
                        self._add(out, sub, f"{p}/patternProperties/{_esc(pat)}")
                    elif hit is None:
                        unknown = True
            extra = node.get("additionalProperties")
            if not declared and not unknown and isinstance(extra, dict):
                self._add(out, extra, f"{p}/additionalProperties")
        res = self._key_memo[(nodes, key)] = frozenset(out)
        return res

    def child_index(self, nodes: frozenset, index: int) -> frozenset:
        memo = self._index_memo.get((nodes, index))
        if memo is not None:
            return memo
        out: set = set()
        for p, kind in nodes:
            if kind == "object":
                continue
            node = self._nodes[p]
            prefix, prefix_key = node.get("prefixItems"), "prefixItems"
            if not isinstance(prefix, list) and isinstance(node.get("items"), list):
                prefix, prefix_key = node["items"], "items"
            if isinstance(prefix, list) and index < len(prefix):
                self._add(out, prefix[index], f"{p}/{prefix_key}/{index}")
            elif prefix_key == "items" and isinstance(prefix, list):
                if isinstance(node.get("additionalItems"), dict):
                    self._add(out, node["additionalItems"], f"{p}/additionalItems")
            elif isinstance(node.get("items"), dict):
                self._add(out, node["items"], f"{p}/items")
        res = self._index_memo[(nodes, index)] = frozenset(out)
        return res

    def site(self, nodes: frozenset):
        """The :class:`UniqueSite` of an array at a location with these nodes, or None."""
        for p, kind in nodes:
            got = self.sites.get(p + "/uniqueItems") if kind != "object" else None
            if got is not None:
                return got
        return None


class UniqueSite:
    """The item language of one enforced array: its code-point DFA, the number of strings that
    complete each state (``cpdfa.INFINITE``: infinitely many) and the fewest code points to a state
    with finitely many (``-1``: never). Compared by identity (part of scanner states)."""

    def __init__(self, dfa):
        self.dfa = dfa
        self.counts = cpdfa.completion_counts(dfa)
        self.to_finite = cpdfa.distance_to_finite(dfa, self.counts)
        self.count0 = self.counts[0]
        self.all_infinite = all(c == cpdfa.INFINITE for c in self.counts)

    def state_of(self, text: str) -> int:
        q = 0
        for ch in text:
            q = self.dfa.step(q, ord(ch))
            if q < 0:
                return -1
        return q

    def more_than(self, q: int, n: int) -> bool:
        c = self.counts[q]
        return c == cpdfa.INFINITE or c > n

    def live_prefix(self, raw: bytes, seen: frozenset) -> bool:
        """Whether an item whose raw (JSON-escaped) text so far is ``raw`` can still end in a value
        of the language that is not in ``seen``."""
        text, ranges = _split_partial(raw)
        q = self.state_of(text)
        if q < 0:
            return False
        after = [v for v in seen if len(v) > len(text) and v.startswith(text)]
        if ranges is None:
            return self.more_than(q, len(after) + (text in seen))
        taken: dict[str, int] = {}
        for v in after:
            taken[v[len(text)]] = taken.get(v[len(text)], 0) + 1
        for lo, hi, t in self.dfa.trans[q]:
            for rlo, rhi in ranges:
                a, b = max(lo, rlo), min(hi, rhi)
                if a > b:
                    continue
                if self.counts[t] == cpdfa.INFINITE:
                    return True
                used = [c for c in taken if a <= ord(c) <= b]
                if b - a + 1 > len(used):
                    return True  # a character of the range starts no earlier item
                if any(self.counts[t] > taken[c] for c in used):
                    return True
        return False


_HEX = b"0123456789abcdefABCDEF"


def _split_partial(raw: bytes) -> tuple[str, list[tuple[int, int]] | None]:
    """Decode the complete characters of a JSON string body prefix; return them and, when the
    prefix ends inside a character (a partial escape, a high surrogate waiting for its pair, a
    partial UTF-8 sequence), the code-point ranges that character can still become (else None)."""
    cut = len(raw)
    tail_ranges = None
    # a partial escape: '\', '\u', '\u' + 1..3 hex digits (never a complete one)
    k = raw.rfind(b"\\")
    if k >= 0 and (len(raw) - k) <= 5:
        run = len(raw[:k]) - len(raw[:k].rstrip(b"\\"))
        if run % 2 == 0:  # this backslash starts an escape
            esc = raw[k + 1 :]
            if esc == b"":
                cut, tail_ranges = k, [(0, 0x10FFFF)]
            elif esc[:1] == b"u" and len(esc) < 5 and all(c in _HEX for c in esc[1:]):
                digits = esc[1:].decode()
                span = 16 ** (4 - len(digits))
                lo = int(digits, 16) * span if digits else 0
                cut, tail_ranges = k, _bmp_ranges(lo, lo + span - 1)
    if tail_ranges is None:
        # a partial UTF-8 sequence: a lead byte and fewer continuation bytes than it announces
        for back in (1, 2, 3):
            if len(raw) < back:
                break
            b0 = raw[-back]
            need = 2 if 0xC0 <= b0 < 0xE0 else 3 if 0xE0 <= b0 < 0xF0 else 4 if b0 >= 0xF0 else 0
            if need and back < need:
                head = raw[-back:]
                value = head[0] & (0x7F >> need)
                for c in head[1:]:
                    value = (value << 6) | (c & 0x3F)
                free = 6 * (need - back)
                lo, hi = value << free, (value << free) | ((1 << free) - 1)
                lo = max(lo, (0x80, 0x800, 0x10000)[need - 2])
                hi = min(hi, 0x10FFFF)
                cut, tail_ranges = len(raw) - back, [(lo, hi)] if lo <= hi else []
                break
            if b0 < 0x80 or b0 >= 0xC0:
                break
    text = json.loads(b'"' + raw[:cut] + b'"')
    if text and 0xD800 <= ord(text[-1]) <= 0xDBFF:  # a high surrogate: the pair is not complete yet
        high = ord(text[-1]) - 0xD800
        low = (0, 0x3FF)
        rest = raw[cut:]
        if rest[:2] == b"\\u":  # the low surrogate's escape has begun: its digits narrow the range
            digits = rest[2:].decode()
            span = 16 ** (4 - len(digits))
            a = int(digits, 16) * span if digits else 0
            a, b = max(a, 0xDC00), min(a + span - 1, 0xDFFF)
            low = (a - 0xDC00, b - 0xDC00) if a <= b else (1, 0)
        base = 0x10000 + high * 0x400
        return text[:-1], [(base + low[0], base + low[1])] if low[0] <= low[1] else []
    return text, tail_ranges


def _bmp_ranges(lo: int, hi: int) -> list[tuple[int, int]]:
    """Code points a ``\\uXXXX`` escape in ``lo..hi`` can spell: BMP values outside the surrogates,
    and, through a high surrogate and its pair, the supplementary planes."""
    out = []
    if lo < 0xD800:
        out.append((lo, min(hi, 0xD7FF)))
    if hi > 0xDFFF:
        out.append((max(lo, 0xE000), hi))
    a, b = max(lo, 0xD800), min(hi, 0xDBFF)
    if a <= b:
        out.append((0x10000 + (a - 0xD800) * 0x400, 0x10000 + (b - 0xD800) * 0x400 + 0x3FF))
    return out


# Scanner state: (stack, mode, buf). stack: tuple of frames
#   object frame: ("o", nodes, key, after_colon)
#   array frame:  ("a", nodes, index, site, seen, need_item)   site: UniqueSite or None;
#                 seen: frozenset of the items' values; need_item: after a comma, before the item
# mode: 0 outside strings; 1 in a key; 2 in a value; 3 / 4: the same after a backslash.
# buf: the raw bytes of the current key, or of the current item of a unique array (else None).
_START = ((), 0, None)


class _Duplicate(Exception):
    pass


def _scan(nav: SchemaNavigator, state: tuple, data: bytes) -> tuple:
    """The scanner state after ``data`` (raises _Duplicate when an item of a unique array closes
    equal to an earlier one). The grammar guarantees the text is JSON, so the scanner only tracks
    structure: containers, keys, indices and strings."""
    stack, mode, buf = state
    for b in data:
        if mode:
            if mode >= 3:  # the byte after a backslash: part of the string, whatever it is
                mode -= 2
                if buf is not None:
                    buf += bytes((b,))
                continue
            if b == 0x5C:  # backslash
                mode += 2
                if buf is not None:
                    buf += b"\\"
                continue
            if b != 0x22:  # '"'
                if buf is not None:
                    buf += bytes((b,))
                continue
            # a string closes
            if mode == 1:  # a key: remember it for the value that follows
                top = stack[-1]
                stack = stack[:-1] + (("o", top[1], json.loads(b'"' + buf + b'"'), False),)
            elif buf is not None:  # an item of a unique array
                top = stack[-1]
                value = json.loads(b'"' + buf + b'"')
                if value in top[4]:
                    raise _Duplicate
                stack = stack[:-1] + (("a", top[1], top[2], top[3], top[4] | {value}, False),)
            mode, buf = 0, None
            continue
        if b in b" \t\r\n":
            continue
        top = stack[-1] if stack else None
        if b == 0x22:  # a string opens
            if top is not None and top[0] == "o" and not top[3]:
                mode, buf = 1, b""
            elif top is not None and top[0] == "a" and top[3] is not None:
                mode, buf = 2, b""
                if top[5]:
                    stack = stack[:-1] + (top[:5] + (False,),)
            else:
                mode, buf = 2, None
        elif b == 0x7B or b == 0x5B:  # '{' or '['
            nodes = _child_nodes(nav, top) if stack else nav.start()
            if b == 0x7B:
                stack = stack + (("o", nodes, None, False),)
            else:
                stack = stack + (("a", nodes, 0, nav.site(nodes), frozenset(), False),)
        elif b == 0x7D or b == 0x5D:  # '}' or ']'
            stack = stack[:-1]
        elif b == 0x3A and top is not None and top[0] == "o":  # ':'
            stack = stack[:-1] + (("o", top[1], top[2], True),)
        elif b == 0x2C and top is not None:  # ','
            if top[0] == "o":
                stack = stack[:-1] + (("o", top[1], None, False),)
            else:
                stack = stack[:-1] + (("a", top[1], top[2] + 1, top[3], top[4], top[3] is not None),)
    return stack, mode, buf


def _live(state: tuple) -> bool:
    """Whether the unique array being written (if any) can still be completed: the current item
    can end in a fresh value, or, after a comma, a fresh value exists at all."""
    stack, mode, buf = state
    if not stack:
        return True
    top = stack[-1]
    if top[0] != "a" or top[3] is None:
        return True
    site = top[3]
    if site.all_infinite:
        return True
    if mode and buf is not None:
        return site.live_prefix(buf, top[4])
    if top[5]:
        return site.more_than(0, len(top[4]))
    return True


def _child_nodes(nav: SchemaNavigator, top: tuple) -> frozenset:
    if top[0] == "o":
        return nav.child_key(top[1], top[2]) if top[2] is not None else frozenset()
    return nav.child_index(top[1], top[2])


class _TokenSets:
    """The vocabulary's tokens as :meth:`UniqueItemsConstraint._candidates` reads them (built once
    per vocabulary, :func:`~constrain.schema.runtime_check.per_vocabulary`): outside a unique
    array a token must open one and write an item to matter; inside an item, only a token that
    closes it, asks for another (a comma), escapes, ends inside a character, or continues the item
    along an earlier item can be refused."""

    def __init__(self, vocab):
        quotes = np.zeros(vocab.size, dtype=np.int64)
        brackets = np.zeros(vocab.size, dtype=bool)
        commas = np.zeros(vocab.size, dtype=bool)
        awkward = np.zeros(vocab.size, dtype=bool)  # a backslash, or an incomplete UTF-8 sequence
        lengths = np.zeros(vocab.size, dtype=np.int64)
        for t in range(vocab.size):
            data = vocab.token_bytes(t)
            if data:
                quotes[t] = data.count(b'"')
                brackets[t] = b"[" in data
                commas[t] = b"," in data
                lengths[t] = len(data)
                try:
                    data.decode("utf-8")
                    awkward[t] = b"\\" in data
                except UnicodeDecodeError:
                    awkward[t] = True
        self.quotes = np.flatnonzero(quotes > 0)
        self.quotes_or_commas = np.flatnonzero((quotes > 0) | commas)
        self.always_in_item = np.flatnonzero((quotes > 0) | commas | awkward)
        self.all = np.flatnonzero(lengths > 0)
        self.max_bytes = int(lengths.max())
        self.multi_item = np.flatnonzero((quotes >= 1) & brackets)


class UniqueItemsConstraint(RuntimeCheckConstraint):
    """A JSON-schema grammar constraint plus run-time ``uniqueItems`` over arrays of strings.

    The state is ``(grammar state, scanner state)``; both are immutable values. The mask is the
    grammar's, minus the tokens that would close an item equal to an earlier item of the same
    array (only tokens containing a quote can close a string; they are simulated on the scanner).
    Outside such arrays the grammar's cached mask is returned as is.
    """

    _scan_start = _START

    def __init__(self, inner: CompiledConstraint, navigator: SchemaNavigator):
        super().__init__(inner)
        self.nav = navigator
        self._tokens = per_vocabulary(self.vocab, _TokenSets)

    def __repr__(self) -> str:
        return f"UniqueItemsConstraint({self.inner!r}, {len(self.nav.unique)} arrays)"

    def rewrap(self, inner: CompiledConstraint) -> UniqueItemsConstraint:
        """The same check over another inner constraint (e.g. the grammar under length bounds)."""
        return UniqueItemsConstraint(inner, self.nav)

    # -- CompiledConstraint
    def _step(self, inner_state, scan_state: tuple, data: bytes, inner_after=None):
        """The scanner state after ``data``, or None when it closes a repeated item or leaves an
        item (or a pending one) that can no longer end in a value not written yet."""
        try:
            out = _scan(self.nav, scan_state, data)
        except _Duplicate:
            return None
        return out if _live(out) else None

    def token_bits(self, state) -> np.ndarray:
        words = self.inner.token_bits(state[0])
        candidates = self._candidates(state[1])
        if candidates is None or not len(candidates):
            return words
        return self._mask_cache.get(state, lambda st: self._filtered(st, words, candidates))

    def _candidates(self, scan_state: tuple):
        """Token ids that may be refused in this scanner state (None: the grammar's mask stands).
        Only a quote can close an item and only a comma can ask for another one; any token can
        reach a prefix with too few completions, but only within a token's length of one."""
        stack, mode, buf = scan_state
        tokens = self._tokens
        top = stack[-1] if stack else None
        if top is None or top[0] != "a" or top[3] is None:
            return tokens.multi_item
        site = top[3]
        if site.all_infinite:
            return tokens.quotes
        if mode and buf is not None:
            text, _ranges = _split_partial(buf)
            q = site.state_of(text)
            if q >= 0 and 0 <= site.to_finite[q] <= tokens.max_bytes:
                return self._in_item_candidates(buf, top[4])
        return tokens.quotes_or_commas

    def _in_item_candidates(self, buf: bytes, seen: frozenset) -> np.ndarray:
        """Inside an item near its finite region: an item prefix is refused only when it is a
        prefix of earlier items (else some completion is new: every state of the item DFA is
        live), so besides the quote / comma / escape / partial-character tokens the candidates
        are the tokens that spell a piece of an earlier item's rest. Raw ``buf`` with a backslash
        (the item's spelling no longer is its UTF-8 text): every token."""
        tokens = self._tokens
        if b"\\" in buf:
            return tokens.all
        extra: list[int] = []
        for v in seen:
            raw = v.encode("utf-8")
            if raw.startswith(buf):
                extra.extend(tokens_spelling_prefixes(self.vocab, raw[len(buf):len(buf) + tokens.max_bytes]))
        if not extra:
            return tokens.always_in_item
        return np.union1d(tokens.always_in_item, np.asarray(extra, dtype=np.int64))

    def _filtered(self, state, words: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """``words`` without the candidate tokens whose text closes a duplicate item (a copy)."""
        allowed = candidates[(words[candidates >> 5] >> (candidates & 31).astype(np.uint32)) & 1 == 1]
        out = words.copy()
        for t in allowed.tolist():
            if self._step(state[0], state[1], self.vocab.token_bytes(t)) is None:
                out[t >> 5] &= ~np.uint32(1 << (t & 31))
        return out
