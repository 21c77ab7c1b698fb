"""JSON string literals as regular expressions over their *escaped* (serialized) form.

JSON Schema string keywords (``pattern``, ``minLength``, ``format``, ``const``) talk about the
*decoded* string, but the grammar sees the bytes of the JSON text. This module maps a constraint
on decoded strings to a regex over the serialized string body (the part between the quotes).

Spelling
--------
Every decoded character has exactly one spelling here, the one ``json.dumps(s,
ensure_ascii=False)`` produces: ``"`` -> ``\\"``, ``\\`` -> ``\\\\``, U+0008/0C/0A/0D/09 ->
``\\b \\f \\n \\r \\t``, other characters below U+0020 -> ``\\u00xx`` (lowercase hex), every
other character (DEL and all non-ASCII included) raw. Surrogate code points (U+D800-U+DFFF) cannot
be encoded in UTF-8 and are never produced. Other spellings (``\\/``, ``\\u0041``) are valid JSON
but are *not* accepted: the constrained language is a subset of the spellings, never of the
values, so the constraint stays exact on values. Because the spelling is unique, a set of decoded
strings maps to a set of spellings one-to-one, which is what makes complements (keys that are not
one of the declared properties) exact.

Patterns
--------
:func:`parse_pattern` reads an ECMA-262 regular expression (the dialect JSON Schema uses, in the
``u`` mode of ajv: code points, not UTF-16 units) into a small AST of code-point sets, sequences,
alternations and repetitions; :func:`pattern_search_regex` builds the regex of the strings in which
the pattern *matches somewhere* (JSON Schema ``pattern`` is unanchored), honouring ``^``/``$`` at
the edges of top-level alternatives. ECMA semantics: ``\\d``, ``\\w`` are ASCII; ``\\s`` is ECMA
WhiteSpace + LineTerminator; ``.`` is any code point but ``\\n \\r \\u2028 \\u2029``; ``$`` is the
end of the input (Python's ``$`` also matches before a final newline). Unsupported (raise):
lookaround, backreferences, ``\\b``/``\\B``, ``\\p{...}``, anchors anywhere but at the edges.

Emitted regexes are Python ``re`` syntax written for a Lark ``/.../`` terminal: lark evaluates
``\\xHH``, ``\\uHHHH``, ``\\UHHHHHHHH`` escapes to raw characters *before* compiling the regex, so
regex-special characters are always escaped with a backslash (never with ``\\x``), and ``/`` is
written ``\\/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from constrain._cache import BoundedCache
from constrain.errors import SchemaError, UnsupportedFeatureError

MAX_CODE_POINT = 0x10FFFF
Ranges = tuple  # tuple[tuple[int, int], ...], sorted, disjoint, non-adjacent, inclusive

ALL: Ranges = ((0, 0xD7FF), (0xE000, MAX_CODE_POINT))
DIGIT: Ranges = ((0x30, 0x39),)
WORD: Ranges = ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A))
SPACE: Ranges = (
    (0x09, 0x0D), (0x20, 0x20), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
    (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000), (0xFEFF, 0xFEFF),
)
LINE_TERMINATORS: Ranges = ((0x0A, 0x0A), (0x0D, 0x0D), (0x2028, 0x2029))

_SHORT_ESCAPES = {0x22: '"', 0x5C: "\\", 0x08: "b", 0x0C: "f", 0x0A: "n", 0x0D: "r", 0x09: "t"}


# ----------------------------------------------------------------------------------- code-point sets
def normalize(ranges) -> Ranges:
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if lo > hi:
            continue
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((a, b) for a, b in out)


def intersect(a: Ranges, b: Ranges) -> Ranges:
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def subtract(a: Ranges, b: Ranges) -> Ranges:
    return intersect(a, complement(b))


def complement(a: Ranges) -> Ranges:
    out = []
    prev = 0
    for lo, hi in a:
        if lo > prev:
            out.append((prev, lo - 1))
        prev = hi + 1
    if prev <= MAX_CODE_POINT:
        out.append((prev, MAX_CODE_POINT))
    return intersect(tuple(out), ALL)


def contains(a: Ranges, cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in a)


# ------------------------------------------------------------------------------ regex text emission
def _cls_char(cp: int) -> str:
    c = chr(cp)
    if c.isascii() and c.isalnum():
        return c
    if 0x21 <= cp <= 0x7E:
        return "\\" + c
    if cp < 0x100:
        return f"\\x{cp:02x}"
    if cp < 0x10000:
        return f"\\u{cp:04x}"
    return f"\\U{cp:08x}"


lit_char = _cls_char  # outside a class the same escaping is safe (specials get a backslash)


@lru_cache(maxsize=65536)
def lit(text: str) -> str:
    """Regex matching exactly ``text`` (safe inside a Lark ``/.../`` terminal). Pure, so kept in
    a process-wide table: schemas spell the same keys and punctuation again and again.

    A backslash is written ``[\\\\]``, not ``\\\\``: lark rewrites ``\\"`` to ``"`` before compiling, which
    would break an escaped backslash followed by a quote (a string literal ending in a backslash)."""
    return "".join("[\\\\]" if c == "\\" else _cls_char(ord(c)) for c in text)


def char_class(ranges: Ranges) -> str:
    """A ``[...]`` class (or a single escaped char) for non-empty ``ranges``."""
    if len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return _cls_char(ranges[0][0])
    parts = []
    for lo, hi in ranges:
        if lo == hi:
            parts.append(_cls_char(lo))
        elif hi == lo + 1:
            parts.append(_cls_char(lo) + _cls_char(hi))
        else:
            parts.append(_cls_char(lo) + "-" + _cls_char(hi))
    return "[" + "".join(parts) + "]"


def spell(cp: int) -> str:
    """The serialized spelling of one decoded code point (see module docstring)."""
    if cp in _SHORT_ESCAPES:
        return "\\" + _SHORT_ESCAPES[cp]
    if cp < 0x20:
        return f"\\u{cp:04x}"
    return chr(cp)


@lru_cache(maxsize=65536)
def spell_string(s: str) -> str:
    """The serialized spelling of ``s`` (:func:`spell` of each code point; kept per string)."""
    return "".join(spell(ord(c)) for c in s)


def escaped_class(ranges: Ranges) -> str | None:
    """Regex over serialized text matching the spelling of exactly one code point of ``ranges``.

    ``None`` when ``ranges`` (minus surrogates) is empty. Memoized by ``ranges`` (a pattern's
    classes and the formats' recur across schemas and compiles).
    """
    return _escaped_class(ranges if isinstance(ranges, tuple) else tuple(ranges))


@lru_cache(maxsize=16384)
def _escaped_class(ranges: Ranges) -> str | None:
    """:func:`escaped_class` of a tuple of ranges (memoized; emptied by ``clear_compile_caches``)."""
    ranges = intersect(normalize(ranges), ALL)
    raw = subtract(ranges, ((0, 0x1F), (0x22, 0x22), (0x5C, 0x5C)))
    alts = []
    if raw:
        alts.append(char_class(raw))
    short = sorted(cp for cp in _SHORT_ESCAPES if contains(ranges, cp))
    if short:
        alts.append("\\\\" + char_class(normalize((ord(_SHORT_ESCAPES[cp]),) * 2 for cp in short)))
    for high in (0, 1):
        lows = [cp & 0xF for cp in range(high * 16, high * 16 + 16)
                if cp not in _SHORT_ESCAPES and contains(ranges, cp)]
        if lows:
            hexes = normalize((ord(f"{x:x}"),) * 2 for x in lows)
            alts.append(f"\\\\u00{high}" + char_class(hexes))
    if not alts:
        return None
    return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"


ANY_CHAR = escaped_class(ALL)


def repeat(x: str, lo: int, hi: int | None) -> str:
    """``x`` repeated lo..hi times (hi None: unbounded); x must be a single regex atom."""
    if hi is not None and hi == lo:
        return "" if lo == 0 else (x if lo == 1 else f"{x}{{{lo}}}")
    if (lo, hi) == (0, None):
        return x + "*"
    if (lo, hi) == (1, None):
        return x + "+"
    if (lo, hi) == (0, 1):
        return x + "?"
    return f"{x}{{{lo},{'' if hi is None else hi}}}"


def group(x: str) -> str:
    return f"(?:{x})"


# ------------------------------------------------------------------------------------ pattern AST
@dataclass(frozen=True)
class Cls:
    ranges: Ranges


@dataclass(frozen=True)
class Seq:
    items: tuple


@dataclass(frozen=True)
class Alt:
    items: tuple


@dataclass(frozen=True)
class Rep:
    item: object
    lo: int
    hi: int | None


@dataclass(frozen=True)
class Anchor:
    kind: str  # "^" or "$"


EMPTY = Seq(())

_ECMA_CATS = {"d": (DIGIT, False), "D": (DIGIT, True), "w": (WORD, False), "W": (WORD, True),
              "s": (SPACE, False), "S": (SPACE, True)}
_ECMA_CHAR_ESCAPES = {"t": 9, "n": 10, "v": 11, "f": 12, "r": 13}
_SYNTAX_CHARS = set("^$\\.*+?()[]{}|/-")
MAX_PATTERN_REPEAT = 10_000


class _PatternParser:
    def __init__(self, pattern: str, pointer: str):
        self.p = pattern
        self.i = 0
        self.ptr = pointer

    def err(self, msg: str) -> SchemaError:
        return SchemaError(f"invalid regular expression {self.p!r} at {self.i}: {msg}", pointer=self.ptr)

    def unsupported(self, what: str) -> UnsupportedFeatureError:
        return UnsupportedFeatureError(f"{what} in pattern {self.p!r}", pointer=self.ptr)

    def peek(self) -> str | None:
        return self.p[self.i] if self.i < len(self.p) else None

    def parse(self):
        node = self.alt()
        if self.i < len(self.p):
            raise self.err("unbalanced ')'")
        return node

    def alt(self):
        branches = [self.seq()]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.seq())
        return branches[0] if len(branches) == 1 else Alt(tuple(branches))

    def seq(self):
        items = []
        while True:
            c = self.peek()
            if c is None or c in "|)":
                break
            atom = self.atom()
            atom = self.quantifier(atom)
            items.append(atom)
        return items[0] if len(items) == 1 else Seq(tuple(items))

    def quantifier(self, atom):
        c = self.peek()
        lo = hi = None
        if c == "*":
            lo, hi = 0, None
            self.i += 1
        elif c == "+":
            lo, hi = 1, None
            self.i += 1
        elif c == "?":
            lo, hi = 0, 1
            self.i += 1
        elif c == "{":
            q = self.braces()
            if q is None:
                return atom
            lo, hi = q
        else:
            return atom
        if isinstance(atom, Anchor):
            raise self.err("nothing to repeat")
        if self.peek() == "?":  # lazy: same language
            self.i += 1
        if self.peek() in ("*", "+", "?", "{") and (self.peek() != "{" or self.braces(peek=True)):
            raise self.err("nothing to repeat")
        if hi is not None and hi < lo:
            raise self.err("numbers out of order in {} quantifier")
        if max(lo, hi or 0) > MAX_PATTERN_REPEAT:
            raise self.unsupported(f"repetition count above {MAX_PATTERN_REPEAT}")
        return Rep(atom, lo, hi)

    def braces(self, peek: bool = False):
        import re

        m = re.compile(r"\{(\d+)(?:(,)(\d*))?\}").match(self.p, self.i)
        if not m:
            return None  # Annex B: a literal '{'
        if not peek:
            self.i = m.end()
        lo = int(m.group(1))
        hi = lo if not m.group(2) else (int(m.group(3)) if m.group(3) else None)
        return lo, hi

    def atom(self):
        p = self.p
        c = p[self.i]
        if c == "(":
            return self.group()
        if c == "[":
            return Cls(self.char_class())
        if c == ".":
            self.i += 1
            return Cls(complement(LINE_TERMINATORS))
        if c in "^$":
            self.i += 1
            return Anchor(c)
        if c == "\\":
            kind, val = self.escape(in_class=False)
            return Cls(val)
        if c in "*+?":
            raise self.err("nothing to repeat")
        if c == "{" and self.braces(peek=True):
            raise self.err("nothing to repeat")
        if c == "]" or c == "}" or c == "{":  # Annex B literal
            self.i += 1
            return Cls(((ord(c), ord(c)),))
        self.i += 1
        cp = ord(c)
        if 0xD800 <= cp <= 0xDFFF:
            raise self.unsupported("lone surrogate")
        return Cls(((cp, cp),))

    def group(self):
        p = self.p
        self.i += 1
        if p.startswith("?:", self.i):
            self.i += 2
        elif p.startswith("?=", self.i) or p.startswith("?!", self.i):
            raise self.unsupported("lookahead")
        elif p.startswith("?<=", self.i) or p.startswith("?<!", self.i):
            raise self.unsupported("lookbehind")
        elif p.startswith("?<", self.i):
            end = p.find(">", self.i)
            if end < 0:
                raise self.err("unterminated group name")
            self.i = end + 1
        elif p.startswith("?", self.i):
            raise self.err("invalid group")
        node = self.alt()
        if self.peek() != ")":
            raise self.err("missing ')'")
        self.i += 1
        return node

    def hex(self, n: int) -> int:
        s = self.p[self.i:self.i + n]
        if len(s) != n or any(ch not in "0123456789abcdefABCDEF" for ch in s):
            raise self.err("bad hex escape")
        self.i += n
        return int(s, 16)

    def escape(self, in_class: bool):
        """At a backslash; returns ("char"|"set", Ranges)."""
        p = self.p
        self.i += 1
        if self.i >= len(p):
            raise self.err("\\ at end of pattern")
        c = p[self.i]
        self.i += 1
        if c in _ECMA_CATS:
            rng, neg = _ECMA_CATS[c]
            return "set", complement(rng) if neg else rng
        if c in _ECMA_CHAR_ESCAPES:
            return "char", _one(_ECMA_CHAR_ESCAPES[c])
        if c == "b":
            if in_class:
                return "char", _one(8)
            raise self.unsupported("word boundary \\b")
        if c == "B":
            raise self.unsupported("word boundary \\B")
        if c == "0" and not (self.peek() or "").isdigit():
            return "char", _one(0)
        if c.isdigit():
            raise self.unsupported("backreference")
        if c == "k":
            raise self.unsupported("named backreference")
        if c in "pP":
            raise self.unsupported(f"unicode property escape \\{c}")
        if c == "c":
            ch = self.peek()
            if ch is not None and ch.isascii() and ch.isalpha():
                self.i += 1
                return "char", _one(ord(ch) % 32)
            raise self.err("bad \\c escape")
        if c == "x":
            return "char", _one(self.hex(2))
        if c == "u":
            if self.peek() == "{":
                end = p.find("}", self.i)
                if end < 0:
                    raise self.err("bad \\u{...} escape")
                try:
                    cp = int(p[self.i + 1:end], 16)
                except ValueError:
                    raise self.err("bad \\u{...} escape") from None
                if cp > MAX_CODE_POINT:
                    raise self.err("code point out of range")
                self.i = end + 1
                return "char", _one(cp)
            cp = self.hex(4)
            if 0xD800 <= cp <= 0xDBFF and p.startswith("\\u", self.i):
                save = self.i
                self.i += 2
                try:
                    lo = self.hex(4)
                except SchemaError:
                    lo = -1
                if 0xDC00 <= lo <= 0xDFFF:
                    return "char", _one(0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00))
                self.i = save
            if 0xD800 <= cp <= 0xDFFF:
                raise self.unsupported("lone surrogate escape")
            return "char", _one(cp)
        if c.isascii() and c.isalnum() and c != "_":
            raise self.err(f"bad escape \\{c}")
        return "char", _one(ord(c))

    def char_class(self) -> Ranges:
        p = self.p
        self.i += 1
        neg = self.peek() == "^"
        if neg:
            self.i += 1
        parts: list[tuple[int, int]] = []
        while True:
            c = self.peek()
            if c is None:
                raise self.err("unterminated character class")
            if c == "]":
                self.i += 1
                break
            kind, lo_set = self.class_atom()
            if self.peek() == "-" and self.i + 1 < len(p) and p[self.i + 1] != "]":
                self.i += 1
                kind2, hi_set = self.class_atom()
                if kind == "char" and kind2 == "char":
                    lo, hi = lo_set[0][0], hi_set[0][0]
                    if lo > hi:
                        raise self.err("range out of order in character class")
                    parts.append((lo, hi))
                    continue
                # Annex B: a class escape next to '-' makes the '-' literal
                parts.extend(lo_set)
                parts.append((0x2D, 0x2D))
                parts.extend(hi_set)
                continue
            parts.extend(lo_set)
        rng = normalize(parts)
        return complement(rng) if neg else intersect(rng, ALL)

    def class_atom(self):
        c = self.p[self.i]
        if c == "\\":
            kind, val = self.escape(in_class=True)
            return kind, val
        self.i += 1
        return "char", _one(ord(c))


def _one(cp: int) -> Ranges:
    return ((cp, cp),)


_PARSED_PATTERNS = BoundedCache(4096)


def parse_pattern(pattern: str, pointer: str = ""):
    """Parse an ECMA-262 pattern into the AST (``Cls``/``Seq``/``Alt``/``Rep``/``Anchor``).

    ASTs are immutable and kept in a process-wide table by pattern (the formats' patterns are
    parsed again for every string with a ``format``); a pattern that fails is parsed again each
    time, so its error names the caller's ``pointer``."""
    hit = _PARSED_PATTERNS.get(pattern)
    if hit is None:
        hit = _PARSED_PATTERNS.put(pattern, _PatternParser(pattern, pointer).parse())
    return hit


# ------------------------------------------------------------------------------ AST -> regex text
def _has_anchor(node) -> bool:
    if isinstance(node, Anchor):
        return True
    if isinstance(node, (Seq, Alt)):
        return any(_has_anchor(x) for x in node.items)
    if isinstance(node, Rep):
        return _has_anchor(node.item)
    return False


def ast_regex(node, pointer: str = "", pattern: str = "") -> str | None:
    """Regex over serialized text for an anchor-free AST, or ``None`` for the empty language."""
    if isinstance(node, Cls):
        return escaped_class(node.ranges)
    if isinstance(node, Seq):
        parts = []
        for x in node.items:
            r = ast_regex(x, pointer, pattern)
            if r is None:
                return None
            parts.append(r)
        return "".join(parts)
    if isinstance(node, Alt):
        alts = [r for r in (ast_regex(x, pointer, pattern) for x in node.items) if r is not None]
        if not alts:
            return None
        return group("|".join(alts))
    if isinstance(node, Rep):
        r = ast_regex(node.item, pointer, pattern)
        if r is None:
            return "" if node.lo == 0 else None
        if r == "":
            return ""
        return repeat(group(r), node.lo, node.hi)
    if isinstance(node, Anchor):
        raise UnsupportedFeatureError(f"anchor {node.kind!r} inside pattern {pattern!r}", pointer=pointer)
    raise AssertionError(node)


def search_branches(node, pointer: str = "", pattern: str = ""):
    """Split a pattern AST into ``[(anchored_start, anchored_end, body)]`` with anchor-free bodies.

    The strings the pattern finds a match in are the union over branches of
    ``(ANY* unless anchored_start) body (ANY* unless anchored_end)``.
    """
    if isinstance(node, Alt):
        out = []
        for x in node.items:
            out.extend(search_branches(x, pointer, pattern))
        return out
    items = list(node.items) if isinstance(node, Seq) else [node]
    start = end = False
    while items and isinstance(items[0], Anchor) and items[0].kind == "^":
        items.pop(0)
        start = True
    while items and isinstance(items[-1], Anchor) and items[-1].kind == "$":
        items.pop()
        end = True
    if len(items) == 1 and isinstance(items[0], (Alt, Seq)) and _has_anchor(items[0]):
        # ^(a|^b)$ ... distribute the outer anchors into the group's branches
        out = []
        for s, e, body in search_branches(items[0], pointer, pattern):
            out.append((s or start, e or end, body))
        return out
    body = Seq(tuple(items))
    if _has_anchor(body):
        raise UnsupportedFeatureError(f"anchor not at the start or end of pattern {pattern!r}", pointer=pointer)
    return [(start, end, body)]


def pattern_search_regex(pattern: str, pointer: str = "") -> str | None:
    """Regex over serialized string bodies whose decoded text contains a match of ``pattern``."""
    branches = search_branches(parse_pattern(pattern, pointer), pointer, pattern)
    return branches_regex(branches, pointer, pattern)


def branches_regex(branches, pointer: str = "", pattern: str = "") -> str | None:
    """The regex of a search language given as branches ``(anchored start, anchored end, body)``.

    Branches with the same anchoring share one leading and one trailing ``ANY*``
    (``ANY*(?:a|b)ANY*``, not ``ANY*aANY*|ANY*bANY*``): the same language, but a lexer NFA with
    one loop per side instead of one per branch, whose subsets would otherwise record which
    branches have matched (up to 2**n DFA states before minimization)."""
    anys = ANY_CHAR + "*"
    groups: dict[tuple[bool, bool], list[str]] = {}
    for start, end, body in branches:
        r = ast_regex(body, pointer, pattern)
        if r is None:
            continue
        if not start and not end and r == "":
            return anys
        bodies = groups.setdefault((bool(start), bool(end)), [])
        if r not in bodies:
            bodies.append(r)
    if not groups:
        return None
    alts = []
    for (start, end), bodies in groups.items():
        core = bodies[0] if len(bodies) == 1 else group("|".join(bodies))
        alts.append(("" if start else anys) + core + ("" if end else anys))
    return alts[0] if len(alts) == 1 else group("|".join(alts))


def ast_length(node) -> tuple[int, int | None]:
    """(min, max) decoded length of an anchor-free AST (max None: unbounded)."""
    if isinstance(node, Cls):
        return 1, 1
    if isinstance(node, Seq):
        lo, hi = 0, 0
        for x in node.items:
            a, b = ast_length(x)
            lo += a
            hi = None if hi is None or b is None else hi + b
        return lo, hi
    if isinstance(node, Alt):
        ls = [ast_length(x) for x in node.items]
        return min(a for a, _ in ls), (None if any(b is None for _, b in ls) else max(b for _, b in ls))
    if isinstance(node, Rep):
        a, b = ast_length(node.item)
        return a * node.lo, (None if node.hi is None or b is None else b * node.hi)
    return 0, 0


def restrict_length(branches, min_len: int, max_len: int | None):
    """Intersect a search language with decoded length ``[min_len, max_len]`` by rewriting the AST.

    Returns new branches, or raises ``ValueError`` when the intersection is not a rewrite of
    the AST (a sequence with several variable-length parts, a repeated variable-length group);
    the caller then intersects DFAs (:mod:`.cpdfa`). Unanchored edges become explicit ``ANY*``
    parts, so a pattern anchored on one side with one variable part still rewrites."""
    out = []
    for start, end, body in branches:
        items = [] if start else [Rep(Cls(ALL), 0, None)]
        items.append(body)
        if not end:
            items.append(Rep(Cls(ALL), 0, None))
        r = _restrict(Seq(tuple(items)), min_len, max_len)
        if r is not None:
            out.append((True, True, r))
    return out


def _flatten(items) -> list:
    out = []
    for x in items:
        if isinstance(x, Seq):
            out.extend(_flatten(x.items))
        elif isinstance(x, Alt) and len(x.items) == 1:
            out.extend(_flatten([x.items[0]]))
        else:
            out.append(x)
    return out


def _restrict(node, m: int, big_m: int | None):
    """``node`` restricted to ``m..big_m`` code points (None: empty); ValueError: no rewrite."""
    lo, hi = ast_length(node)
    if lo >= m and (big_m is None or (hi is not None and hi <= big_m)):
        return node
    if (big_m is not None and lo > big_m) or (hi is not None and hi < m):
        return None
    if isinstance(node, Alt):
        parts = [r for r in (_restrict(x, m, big_m) for x in node.items) if r is not None]
        return Alt(tuple(parts)) if parts else None
    if isinstance(node, Seq):
        items = _flatten(node.items)
        variable = [k for k, x in enumerate(items) if ast_length(x)[0] != ast_length(x)[1]]
        if len(variable) != 1:
            raise ValueError("length bounds with a pattern of several variable-length parts")
        k = variable[0]
        fixed = sum(ast_length(x)[0] for j, x in enumerate(items) if j != k)
        r = _restrict(items[k], max(0, m - fixed), None if big_m is None else big_m - fixed)
        if r is None:
            return None
        items[k] = r
        return Seq(tuple(items))
    if isinstance(node, Rep):
        il, ih = ast_length(node.item)
        if il == ih and il > 0:
            new_lo = max(node.lo, -(-m // il))
            new_hi = node.hi
            if big_m is not None:
                new_hi = big_m // il if new_hi is None else min(new_hi, big_m // il)
            if new_hi is not None and new_hi < new_lo:
                return None
            return Rep(node.item, new_lo, new_hi)
        if node.hi == 1:  # optional: empty or one item (greedy: lark's reference lexer tries the first match)
            if node.lo == 1 or m > 0:
                return _restrict(node.item, m, big_m)
            r = _restrict(node.item, 0, big_m)
            return EMPTY if r is None else Rep(r, 0, 1)
        raise ValueError("length bounds with a repeated variable-length group")
    raise ValueError(f"length bounds on {type(node).__name__}")


# --------------------------------------------------------------------- complement of a finite set
def except_strings_regex(excluded, min_len: int = 0) -> str | None:
    """Regex over serialized bodies of every string *not* in ``excluded`` (a finite set).

    Exact because spellings are unique (see module docstring). ``min_len`` 0 only.
    """
    assert min_len == 0
    trie: dict = {}
    for s in excluded:
        node = trie
        for ch in s:
            node = node.setdefault(ord(ch), {})
        node[None] = True
    anys = ANY_CHAR + "*"
    if not excluded:
        return anys

    def walk(node) -> str:
        kids = sorted(k for k in node if k is not None)
        alts = []
        other = escaped_class(subtract(ALL, normalize((k, k) for k in kids)))
        if other is not None:
            alts.append(other + anys)
        for k in kids:
            alts.append(lit_spelling(k) + walk(node[k]))
        body = group("|".join(alts))
        return body + "?" if None not in node else body

    try:
        return walk(trie)
    finally:
        walk = None  # recursive through its cell: unlinked so that refcounting frees it


def lit_spelling(cp: int) -> str:
    """Regex for the serialized spelling of one code point."""
    return lit(spell(cp))


def literal_body_regex(s: str) -> str:
    """Regex for the serialized body of exactly the string ``s``."""
    return lit(spell_string(s))
