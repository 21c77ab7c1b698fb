"""Regex text -> interegular AST plus our own character sets, with exact error positions.

interegular's parser differs from Python's ``re`` in several places (``[]a]``, literal ``{``,
``\\u1234``, ``\\0``, ``(?<name>...)`` silently parsed as nothing, repeated global flags, ...), and
its errors carry no position. So a scanner written here walks the pattern the way ``sre_parse``
does, reports unsupported and malformed syntax with its character index, and hands interegular a
*sanitized* pattern that only contains literal characters, ``.``, groups, ``|`` and quantifiers:
every escape and every ``[...]`` class is replaced by a placeholder character from a private-use
plane that does not occur in the pattern, and its code-point set is kept here (``Parsed.specs``).
Only the structure is left (alternation, groups, quantifiers, scoped flags): :func:`_structure`
parses it into interegular's AST (interegular's own parser is the fallback for anything else).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass

from interegular import patterns as ip

from constrain.errors import LimitExceededError, RegexSyntaxError, UnsupportedFeatureError
from constrain.limits import Limits
from constrain.regex import _charset as cs
from constrain.regex._charset import Ranges

__all__ = ["CharSpec", "Parsed", "parse"]

_ASCII_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_OCT = frozenset("01234567")
_HEX = frozenset("0123456789abcdefABCDEF")
_CATEGORIES: dict[str, tuple[Ranges, bool]] = {
    "d": (cs.DIGIT, False),
    "D": (cs.DIGIT, True),
    "w": (cs.WORD, False),
    "W": (cs.WORD, True),
    "s": (cs.SPACE, False),
    "S": (cs.SPACE, True),
}
_SIMPLE_ESCAPES = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}
_QUANT_RE = re.compile(r"\{(\d*)(?:(,)(\d*))?\}")


@dataclass(frozen=True)
class CharSpec:
    """One escape or bracket class: ``literals`` fold under ignore-case, ``categories`` never do."""

    literals: Ranges
    categories: Ranges
    negated: bool

    def resolve(self, ignore_case: bool) -> Ranges:
        """Return the set of code points this spec matches under the given case mode."""
        lits = cs.case_closure(self.literals) if ignore_case else self.literals
        union = cs.normalize(lits + self.categories) if self.categories else lits
        return cs.complement(union) if self.negated else union


@dataclass(frozen=True)
class Parsed:
    """A parsed pattern: interegular's AST of the sanitized text, and the placeholder specs."""

    ast: ip.Pattern
    specs: dict[str, CharSpec]
    global_flags: ip.REFlags


class _Scanner:
    """Walks a pattern once like ``sre_parse``; builds the sanitized text and the specs.

    ``run`` (and the ``emit*``, ``char_class`` and ``group_open`` helpers it calls) mutate the
    scanner's output buffers; a scanner is used for one pattern only.
    """

    def __init__(self, pattern: str, limits: Limits):
        self.p = pattern
        self.n = len(pattern)
        self.limits = limits
        self.out: list[str] = []
        self.pos: list[int] = []  # original index of each sanitized character
        self.specs: dict[str, CharSpec] = {}
        self._by_spec: dict[CharSpec, str] = {}
        used = set(pattern)
        self._free = (
            chr(cp)
            for cp in itertools.chain(range(0xF0000, 0xFFFFE), range(0x100000, 0x10FFFE))
            if chr(cp) not in used
        )
        self.global_flags = ip.REFlags(0)
        self.flagged_opens: set[int] = set()  # indices in ``out`` of scoped-flag group openings

    # -- errors -------------------------------------------------------------------------------
    def syntax(self, msg: str, i: int) -> RegexSyntaxError:
        """Return a syntax error located at character ``i``."""
        return RegexSyntaxError(msg, pattern=self.p, position=i)

    def unsupported(self, what: str, i: int) -> UnsupportedFeatureError:
        """Return an unsupported-feature error located at character ``i``."""
        return UnsupportedFeatureError(what, pattern=self.p, position=i)

    # -- output -------------------------------------------------------------------------------
    def emit(self, text: str, i: int) -> None:
        """Append sanitized ``text`` that stands for the pattern at ``i`` (mutates)."""
        self.out.append(text)
        self.pos.extend([i] * len(text))

    def emit_spec(self, spec: CharSpec, i: int) -> None:
        """Append the placeholder of ``spec``, allocating one if new (mutates)."""
        ph = self._by_spec.get(spec)
        if ph is None:
            try:
                ph = next(self._free)
            except StopIteration:  # pragma: no cover - needs >130k distinct classes
                raise self.unsupported("a pattern with this many distinct character classes", i)
            self._by_spec[spec] = ph
            self.specs[ph] = spec
        self.emit(ph, i)

    # -- escapes ------------------------------------------------------------------------------
    def hex_escape(self, i: int, j: int, count: int) -> tuple[int, int]:
        """Return (code point, next index) of ``count`` hex digits at ``j`` (escape starts at ``i``)."""
        digits = self.p[j : j + count]
        if len(digits) != count or not all(c in _HEX for c in digits):
            raise self.syntax(f"incomplete escape {self.p[i:j + count]}", i)
        cp = int(digits, 16)
        if cp > cs.MAX_CODE_POINT:
            raise self.syntax(f"bad escape {self.p[i:j + count]}", i)
        return cp, j + count

    def escape(self, i: int, in_class: bool) -> tuple[str, object, int]:
        """Parse the escape at ``p[i] == '\\\\'``; return (kind, value, next index).

        kind is ``"char"`` (value: code point), ``"cat"`` (value: (ranges, negated)) or ``"none"``
        (an anchor that is a no-op under full match).
        """
        p = self.p
        if i + 1 >= self.n:
            raise self.syntax("bad escape (end of pattern)", i)
        c = p[i + 1]
        j = i + 2
        if c in _CATEGORIES:
            return "cat", _CATEGORIES[c], j
        if c in _SIMPLE_ESCAPES:
            return "char", _SIMPLE_ESCAPES[c], j
        if c == "b":
            if in_class:
                return "char", 8, j
            raise self.unsupported("word boundary \\b", i)
        if c == "B":
            if in_class:
                raise self.syntax("bad escape \\B", i)
            raise self.unsupported("non-word boundary \\B", i)
        if c == "A":
            if in_class:
                raise self.syntax("bad escape \\A", i)
            if i == 0:
                return "none", None, j
            raise self.unsupported("anchor \\A not at the start", i)
        if c == "Z":
            if in_class:
                raise self.syntax("bad escape \\Z", i)
            if j == self.n:
                return "none", None, j
            raise self.unsupported("anchor \\Z not at the end", i)
        if c == "x":
            cp, j = self.hex_escape(i, j, 2)
            return "char", cp, j
        if c == "u":
            cp, j = self.hex_escape(i, j, 4)
            return "char", cp, j
        if c == "U":
            cp, j = self.hex_escape(i, j, 8)
            return "char", cp, j
        if c == "N":
            m = re.compile(r"\{([^}]*)\}").match(p, j)
            if not m:
                raise self.syntax("missing {name} after \\N", i)
            try:
                ch = unicodedata.lookup(m.group(1))
            except KeyError:
                raise self.syntax(f"undefined character name {m.group(1)!r}", i) from None
            if len(ch) != 1:
                raise self.syntax(f"character name {m.group(1)!r} names a sequence", i)
            return "char", ord(ch), m.end()
        if c == "0":
            k = j
            while k < self.n and k < j + 2 and p[k] in _OCT:
                k += 1
            return "char", int(p[i + 1 : k], 8), k
        if c.isdigit() and c.isascii():
            if in_class:
                if c in _OCT:
                    k = j
                    while k < self.n and k < j + 2 and p[k] in _OCT:
                        k += 1
                    return "char", self.octal(i, k), k
                raise self.syntax(f"bad escape \\{c}", i)
            if c in _OCT and j + 1 < self.n and p[j] in _OCT and p[j + 1] in _OCT:
                return "char", self.octal(i, j + 2), j + 2
            raise self.unsupported("backreference", i)
        if c in "pP":
            raise self.unsupported(f"unicode property escape \\{c}", i)
        if c in _ASCII_LETTERS:
            raise self.syntax(f"bad escape \\{c}", i)
        return "char", ord(c), j

    def octal(self, i: int, k: int) -> int:
        """Return the value of the octal escape ``p[i:k]``, at most 0o377."""
        v = int(self.p[i + 1 : k], 8)
        if v > 0o377:
            raise self.syntax(f"octal escape value {self.p[i:k]} outside of range 0-0o377", i)
        return v

    # -- classes ------------------------------------------------------------------------------
    def char_class(self, i: int) -> int:
        """Parse the ``[...]`` class at ``i``, emit its placeholder and return the next index (mutates)."""
        p, n = self.p, self.n
        j = i + 1
        negated = False
        if j < n and p[j] == "^":
            negated = True
            j += 1
        lits: list[tuple[int, int]] = []
        cats: list[tuple[int, int]] = []
        first = True
        while True:
            if j >= n:
                raise self.syntax("unterminated character set", i)
            c = p[j]
            if c == "]" and not first:
                j += 1
                break
            first = False
            start = j
            if c == "\\":
                kind, val, j = self.escape(j, in_class=True)
            else:
                kind, val, j = "char", ord(c), j + 1
            if j + 1 < n and p[j] == "-" and p[j + 1] != "]":
                if p[j + 1] == "\\":
                    kind2, val2, j2 = self.escape(j + 1, in_class=True)
                else:
                    kind2, val2, j2 = "char", ord(p[j + 1]), j + 2
                if kind != "char" or kind2 != "char":
                    raise self.syntax(f"bad character range {p[start:j2]}", start)
                if val2 < val:
                    raise self.syntax(f"bad character range {p[start:j2]}", start)
                lits.append((val, val2))
                j = j2
            elif kind == "char":
                lits.append((val, val))
            else:
                ranges, neg = val
                cats.extend(cs.complement(ranges) if neg else ranges)
        self.emit_spec(CharSpec(cs.normalize(lits), cs.normalize(cats), negated), i)
        return j

    # -- groups -------------------------------------------------------------------------------
    def group_open(self, i: int, at_top_start: bool) -> tuple[int, bool]:
        """Handle ``(`` at i; return (next index, whether it opened a group)."""
        p, n = self.p, self.n
        if i + 1 >= n or p[i + 1] != "?":
            self.emit("(", i)
            return i + 1, True
        j = i + 2
        c = p[j] if j < n else ""
        if c == ":":
            self.emit("(?:", i)
            return j + 1, True
        if c == "P":
            if p.startswith("P<", j):
                m = re.compile(r"[^\W\d]\w*>").match(p, j + 2)
                if not m:
                    raise self.syntax("bad character in group name", j + 2)
                self.emit("(?:", i)
                return m.end(), True
            if p.startswith("P=", j):
                raise self.unsupported("backreference", i)
            raise self.syntax(f"unknown extension ?P{p[j + 1:j + 2]}", i)
        if c == "=":
            raise self.unsupported("lookahead", i)
        if c == "!":
            raise self.unsupported("negative lookahead", i)
        if c == "<":
            if p.startswith("<=", j):
                raise self.unsupported("lookbehind", i)
            if p.startswith("<!", j):
                raise self.unsupported("negative lookbehind", i)
            raise self.syntax(f"unknown extension ?<{p[j + 1:j + 2]}", i)
        if c == "(":
            raise self.unsupported("conditional group", i)
        if c == ">":
            raise self.unsupported("atomic group", i)
        if c == "#":
            k = p.find(")", j)
            if k < 0:
                raise self.syntax("missing ), unterminated comment", i)
            return k + 1, False
        m = re.compile(r"([a-zA-Z]*)(?:-([a-zA-Z]*))?([:)])").match(p, j)
        if not m:
            raise self.syntax(f"unknown extension ?{c}", i)
        added, removed, end = m.group(1), m.group(2), m.group(3)
        for k, f in enumerate(added + (removed or "")):
            if f not in "aiLmsux":
                raise self.syntax(f"unknown flag {f!r}", j + k + (k >= len(added)))
            if f == "x":
                raise self.unsupported("verbose flag (?x)", i)
            if f == "a":
                raise self.unsupported("ASCII flag (?a) (\\d \\w \\s are always ASCII here)", i)
            if f == "L":
                raise self.syntax("bad inline flag: cannot use 'L' flag with a str pattern", i)
        if removed is not None and not removed:
            raise self.syntax("missing flag", m.end() - 1)
        if removed is not None and end == ")":
            raise self.syntax("missing :", m.end() - 1)
        keep_a = "".join(f for f in added if f in "ims")
        keep_r = "".join(f for f in (removed or "") if f in "ims")
        if end == ")":
            if not at_top_start:
                raise self.syntax("global flags not at the start of the expression", i)
            for f in keep_a:
                self.global_flags |= ip._flags[f]
            return m.end(), False
        # A scoped-flag group is emitted inside a plain group, next to an empty group, and starts
        # with an empty group: interegular merges a group that is the only item of its parent into
        # the parent, keeping the added flags of one of them and no removed flags ("(?-i:a)" alone
        # parsed as plain "a"; so was "(?-i:(a))" anywhere). _structure does not merge groups; the
        # wrapping keeps interegular's parser, the fallback, right as well.
        if keep_r:
            self.emit(f"(?:(?{keep_a}-{keep_r}:(?:)", i)
        elif keep_a:
            self.emit(f"(?:(?{keep_a}:(?:)", i)
        else:
            self.emit("(?:", i)
            return m.end(), True
        self.flagged_opens.add(len(self.out) - 1)
        return m.end(), True

    # -- main loop ----------------------------------------------------------------------------
    def run(self) -> str:
        """Scan the whole pattern and return the sanitized text for interegular (mutates)."""
        p, n = self.p, self.n
        i = 0
        stack: list[int] = []
        flagged: list[bool] = []  # per open group: a scoped-flag group (closed with ")(?:))")
        prev = "none"  # "none": nothing to repeat; "atom"; "quant": just after a quantifier
        lazy_ok = False  # a '?' or '+' right after a quantifier modifies it
        top_start = True  # nothing but global flags / comments so far
        if n and p[0] == "^":
            i = 1
        while i < n:
            c = p[i]
            if c == "\\":
                kind, val, j = self.escape(i, in_class=False)
                if kind == "char":
                    self.emit_spec(CharSpec(cs.normalize([(val, val)]), (), False), i)
                    prev = "atom"
                elif kind == "cat":
                    ranges, neg = val
                    self.emit_spec(CharSpec((), ranges, neg), i)
                    prev = "atom"
                else:
                    prev = "none"
                i = j
                top_start = False
                continue
            if c == "[":
                i = self.char_class(i)
                prev, top_start = "atom", False
                continue
            if c == "(":
                n_out = len(self.out)
                j, opened = self.group_open(i, top_start and not stack)
                if opened:
                    stack.append(i)
                    flagged.append(n_out in self.flagged_opens)
                    prev, top_start = "none", False
                i = j
                continue
            if c == ")":
                if not stack:
                    raise self.syntax("unbalanced parenthesis", i)
                stack.pop()
                self.emit(")(?:))" if flagged.pop() else ")", i)
                prev = "atom"
                i += 1
                continue
            if c == "|":
                self.emit("|", i)
                prev, top_start = "none", False
                i += 1
                continue
            if c == "^":
                raise self.unsupported("anchor '^' not at the start", i)
            if c == "$":
                if i == n - 1:
                    i += 1
                    continue
                raise self.unsupported("anchor '$' not at the end", i)
            quant = None
            if c in "*+?":
                quant = c
            elif c == "{":
                m = _QUANT_RE.match(p, i)
                if m and m.group(0) != "{}":
                    lo_s, comma, hi_s = m.group(1), m.group(2), m.group(3)
                    lo = int(lo_s) if lo_s else 0
                    hi = (int(hi_s) if hi_s else None) if comma else lo
                    for v in (lo, hi):
                        if v is not None and v > self.limits.max_repeat_count:
                            raise LimitExceededError(
                                "max_repeat_count",
                                self.limits.max_repeat_count,
                                f"regex at {i} (in {p!r}): repetition bound {v} is too large",
                            )
                    if hi is not None and hi < lo:
                        raise self.syntax("min repeat greater than max repeat", i)
                    quant = "{%d,%s}" % (lo, "" if hi is None else hi)
                    qlen = m.end() - i
            if quant is not None:
                if prev == "quant":
                    if lazy_ok and c == "?":
                        self.emit("?", i)
                        lazy_ok = False
                        i += 1
                        continue
                    if lazy_ok and c == "+":
                        raise self.unsupported("possessive quantifier", i)
                    raise self.syntax("multiple repeat", i)
                if prev == "none":
                    raise self.syntax("nothing to repeat", i)
                self.emit(quant, i)
                prev, lazy_ok = "quant", True
                i += qlen if c == "{" else 1
                continue
            if c == "{":
                self.emit_spec(CharSpec(((0x7B, 0x7B),), (), False), i)
            else:
                self.emit(c, i)
            prev, top_start = "atom", False
            i += 1
        if stack:
            raise self.syntax("missing ), unterminated subpattern", stack[-1])
        return "".join(self.out)


class _NotSanitized(Exception):
    """The text is not of the shape the scanner emits (interegular's parser judges it instead)."""


_SIMPLE_QUANTS = {"*": (0, None), "+": (1, None), "?": (0, 1)}
_BRACES = re.compile(r"\{(\d*)(?:(,)(\d*))?\}")
_FLAG_GROUP = re.compile(r"\?([a-zA-Z]*)(?:-([a-zA-Z]+))?:")


def _structure(text: str) -> ip.Pattern:
    """The interegular AST of a sanitized pattern, as ``interegular``'s own parser builds it
    before ``simplify`` (so flags stay on their groups): the scanner's output only holds literal
    characters, ``.``, ``|``, groups ``(``/``(?:``/``(?flags-flags:``, and one quantifier per atom
    (``* + ? {m,n}``, maybe lazy). Several times faster than interegular's combinator parser.
    Raises :class:`_NotSanitized` on anything else."""
    n = len(text)
    pos = 0

    def pattern() -> ip.Pattern:
        nonlocal pos
        options = [conc()]
        while pos < n and text[pos] == "|":
            pos += 1
            options.append(conc())
        return ip.Pattern(tuple(options))

    def conc() -> ip._Concatenation:
        nonlocal pos
        parts = []
        while pos < n:
            c = text[pos]
            if c == "|" or c == ")":
                break
            if c == "(":
                pos += 1
                added = removed = ip.REFlags(0)
                if pos < n and text[pos] == "?":
                    m = _FLAG_GROUP.match(text, pos)
                    if m is None:
                        raise _NotSanitized
                    added, removed = ip._get_flags(m.group(1)), ip._get_flags(m.group(2) or "")
                    pos = m.end()
                inner = pattern()
                if pos >= n or text[pos] != ")":
                    raise _NotSanitized
                pos += 1
                atom = ip.Pattern(inner.options, added, removed) if added or removed else inner
            elif c == ".":
                pos += 1
                atom = ip._DOT
            elif c in "*+?{":
                raise _NotSanitized
            else:
                pos += 1
                atom = ip._CharGroup(frozenset((c,)), False)
            parts.append(quantified(atom))
        return ip._Concatenation(tuple(parts))

    def quantified(atom):
        nonlocal pos
        if pos >= n:
            return atom
        c = text[pos]
        if c in _SIMPLE_QUANTS:
            lo, hi = _SIMPLE_QUANTS[c]
            pos += 1
        elif c == "{":
            m = _BRACES.match(text, pos)
            if m is None:
                raise _NotSanitized
            lo = int(m.group(1) or 0)
            hi = (int(m.group(3)) if m.group(3) else None) if m.group(2) else lo
            pos = m.end()
        else:
            return atom
        if pos < n and text[pos] == "?":
            pos += 1  # lazy: the same language
        return ip._Repeated(atom, lo, hi)

    try:
        out = pattern()
    finally:  # the three call each other through their cells: unlinked so that refcounting frees them
        pattern = conc = quantified = None
    if pos != n:
        raise _NotSanitized
    return out


def parse(pattern: str, limits: Limits) -> Parsed:
    """Parse ``pattern`` (Python ``re`` syntax) into an interegular AST plus placeholder specs."""
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be str, not {type(pattern).__name__}")
    sc = _Scanner(pattern, limits)
    try:
        text = sc.run()
    except RecursionError:  # pragma: no cover - the scanner is iterative
        raise UnsupportedFeatureError("nesting this deep", pattern=pattern) from None
    try:
        try:
            ast = _structure(text)
        except _NotSanitized:
            ast = ip.parse_pattern(text)
    except ip.InvalidSyntax as e:
        idx = getattr(e.__context__, "index", None)
        pos = None if idx is None else (sc.pos[idx] if idx < len(sc.pos) else len(pattern))
        raise RegexSyntaxError(f"invalid syntax ({e})" if str(e) else "invalid syntax",
                               pattern=pattern, position=pos) from None
    except ip.Unsupported as e:
        raise UnsupportedFeatureError(str(e), pattern=pattern) from None
    except RecursionError:
        raise UnsupportedFeatureError("group nesting this deep", pattern=pattern) from None
    return Parsed(ast, sc.specs, sc.global_flags)
