"""Lark front end: read a Lark grammar into a small frozen IR for the Earley engine.

Lark itself parses the grammar text and expands EBNF (``?``, ``*``, ``+``, ``[]``, ``~n..m``),
templates and ``%import``; we read its ``rules`` (BNF over ``Terminal`` / ``NonTerminal``),
``terminals`` (regex or string patterns with flags) and ``ignore_tokens``.

Symbols in the IR are ints: terminal ``i`` is ``i >= 0``; nonterminal ``j`` is ``-(j + 1)``.
Rules and nonterminals that derive no string at all are removed (so every item the parser can
reach can still be completed: this is what makes "live lexeme" mean "valid prefix").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from constrain.errors import GrammarSyntaxError, UnsupportedFeatureError
from constrain.regex import literal_to_regex
from constrain.regex.dfa import automaton_summary

_SUPPORTED_FLAGS = {"i", "s", "u"}  # u: Python 3 str patterns are always unicode
_LOCATION = re.compile(r"line (\d+),? col(?:umn)? (\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class TerminalIR:
    name: str
    regex: str  # for a terminal given as an automaton: a description ("<automaton: ...>")
    ignore_case: bool
    dotall: bool
    dfa: object = None  # a byte DFA (ByteDFA / SparseDFA) for a %declare'd terminal given as an automaton
    literal: str | None = None  # the string of a literal terminal ("select"), None for a regex

    @property
    def pattern(self):
        """What the lexer compiles: the regex, or the automaton."""
        return self.dfa if self.dfa is not None else self.regex


@dataclass(frozen=True)
class GrammarIR:
    """A BNF grammar over terminal ids (see module docstring for the symbol encoding)."""

    terminals: tuple[TerminalIR, ...]
    nonterminals: tuple[str, ...]
    rules: tuple[tuple[int, tuple[int, ...]], ...]  # (lhs nonterminal index, rhs symbols)
    start: int  # nonterminal index
    ignore: tuple[int, ...]  # terminal ids skipped between terminals
    source: str = "grammar"

    def symbol_name(self, sym: int) -> str:
        return self.terminals[sym].name if sym >= 0 else self.nonterminals[-sym - 1]


def _locate(text, needle: str) -> tuple[int | None, int | None]:
    """1-based line/column of the first definition or use of ``needle`` in ``text`` (a string, or
    a function that makes it: a caller whose text is only needed to locate an error)."""
    if callable(text):
        text = text()
    m = re.search(r"(?m)^\s*[?!]?" + re.escape(needle) + r"\b", text) or re.search(
        r"\b" + re.escape(needle) + r"\b", text
    )
    if not m:
        return None, None
    pos = m.start() + (len(m.group(0)) - len(m.group(0).lstrip()))
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, col


def _lark_error(exc: Exception, text: str, source: str) -> GrammarSyntaxError:
    line = getattr(exc, "line", None)
    column = getattr(exc, "column", None)
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if not isinstance(line, int) or line < 1:
        line, column = None, None
        m = _LOCATION.search(str(exc))
        if m:
            line, column = int(m.group(1)), int(m.group(2))
        else:
            quoted = re.findall(r"'([A-Za-z_][A-Za-z_0-9]*)'", str(exc))
            if quoted:
                line, column = _locate(text, quoted[0].lstrip("_?!"))
            if line is None:
                line, column = 1, 1
    return GrammarSyntaxError(message, source=source, line=line, column=column)


def read_grammar_text(text_or_path) -> tuple[str, str]:
    """``(text, source name)``: a ``Path`` or an existing ``*.lark`` path is read from disk."""
    if isinstance(text_or_path, Path):
        return text_or_path.read_text(encoding="utf-8"), str(text_or_path)
    if isinstance(text_or_path, str) and "\n" not in text_or_path and text_or_path.endswith(".lark"):
        path = Path(text_or_path)
        if path.is_file():
            return path.read_text(encoding="utf-8"), str(path)
    if not isinstance(text_or_path, str):
        raise TypeError(f"grammar must be Lark text or a path, got {type(text_or_path).__name__}")
    return text_or_path, "grammar"


def _lark_rules_class():
    """``lark.Lark`` that stops after compiling the grammar to BNF (built once, on first use).

    ``Lark(parser="earley", lexer="dynamic_complete")`` would also build its parser, whose regexp
    matcher ``re.compile``s every terminal: on grammars with large character classes (JSON
    schemas) that is most of the compile time, and we never use lark's parser. The checks that
    matcher makes (a terminal lark cannot parse, a zero-width terminal) are kept, with lark's
    messages.
    """
    global _LARK_RULES
    if _LARK_RULES is None:
        import lark
        from lark.exceptions import GrammarError
        from lark.utils import get_regexp_width

        class LarkRules(lark.Lark):
            def _build_parser(self):
                for t in self.lexer_conf.terminals:
                    regexp = t.pattern.to_regexp()
                    try:
                        width = get_regexp_width(regexp)[0]
                    except ValueError:
                        raise GrammarError("Bad regexp in token %s: %s" % (t.name, regexp)) from None
                    if width == 0:
                        raise GrammarError("Dynamic Earley doesn't allow zero-width regexps", t)
                return None

        _LARK_RULES = LarkRules
    return _LARK_RULES


_LARK_RULES = None


def _LarkRules(text: str, **options):
    return _lark_rules_class()(text, **options)


def productive_rules(raw_rules: list[tuple[int, tuple[int, ...]]]) -> tuple[tuple[int, tuple[int, ...]], ...]:
    """The rules whose every symbol derives some string (IR symbol encoding), in their order.

    A worklist over the nonterminal occurrences (linear in the rules' total length): a rule
    becomes productive when its last unproductive occurrence does, its left side with it."""
    pending = [0] * len(raw_rules)
    uses: dict[int, list[int]] = {}
    productive: set[int] = set()
    queue: list[int] = []
    for i, (lhs, rhs) in enumerate(raw_rules):
        n = 0
        for s in rhs:
            if s < 0:
                uses.setdefault(-s - 1, []).append(i)
                n += 1
        pending[i] = n
        if n == 0 and lhs not in productive:
            productive.add(lhs)
            queue.append(lhs)
    while queue:
        for i in uses.get(queue.pop(), ()):
            pending[i] -= 1
            if pending[i] == 0:
                lhs = raw_rules[i][0]
                if lhs not in productive:
                    productive.add(lhs)
                    queue.append(lhs)
    return tuple(rule for rule, n in zip(raw_rules, pending) if n == 0)


def lark_to_ir(text: str, *, start: str = "start", source: str = "grammar", external: dict | None = None) -> GrammarIR:
    """Parse Lark grammar ``text`` with Lark and convert it to a :class:`GrammarIR`.

    ``external`` maps the names of ``%declare``d terminals to byte DFAs (their exact languages).

    Raises
    ------
    GrammarSyntaxError
        Lark rejected the grammar (line and column in the message), or ``start`` derives nothing.
    UnsupportedFeatureError
        A ``%declare``d terminal without an ``external`` automaton, or regex flags other than ``i``/``s``.
    """
    from lark.exceptions import LarkError

    try:
        parser = _LarkRules(
            text, parser="earley", lexer="dynamic_complete", start=start, keep_all_tokens=True
        )
    except LarkError as exc:
        raise _lark_error(exc, text, source) from None
    except (ValueError, KeyError, TypeError, AssertionError) as exc:  # lark raises a few builtins
        raise _lark_error(exc, text, source) from None

    term_defs = {t.name: t for t in parser.terminals}
    term_index: dict[str, int] = {}
    terminals: list[TerminalIR] = []

    def terminal_id(name: str) -> int:
        if name in term_index:
            return term_index[name]
        tdef = term_defs.get(name)
        if tdef is None and external and name in external:
            dfa = external[name]
            term_index[name] = len(terminals)
            terminals.append(TerminalIR(name, automaton_summary(dfa), False, False, dfa))
            return term_index[name]
        if tdef is None:
            line, col = _locate(text, name)
            raise UnsupportedFeatureError(
                f"terminal {name} without a definition (%declare; pass its strings or automaton as "
                f"compile_grammar(..., terminals={{{name!r}: ...}}))", source=source, line=line or 1, column=col
            )
        pattern = tdef.pattern
        flags = set(pattern.flags)
        bad = flags - _SUPPORTED_FLAGS
        if bad:
            line, col = _locate(text, name)
            raise UnsupportedFeatureError(
                f"regex flag(s) {''.join(sorted(bad))} on terminal {name}", source=source, line=line or 1, column=col
            )
        literal = None
        if type(pattern).__name__ == "PatternStr":
            regex = literal_to_regex(pattern.value)
            literal = pattern.value
        else:
            regex = pattern.value
        term_index[name] = len(terminals)
        terminals.append(TerminalIR(name, regex, "i" in flags, "s" in flags, literal=literal))
        return term_index[name]

    nt_index: dict[str, int] = {}
    nonterminals: list[str] = []

    def nonterminal_id(name: str) -> int:
        if name not in nt_index:
            nt_index[name] = len(nonterminals)
            nonterminals.append(name)
        return nt_index[name]

    raw_rules: list[tuple[int, tuple[int, ...]]] = []
    for rule in parser.rules:
        lhs = nonterminal_id(str(rule.origin.name))
        rhs = []
        for sym in rule.expansion:
            if sym.is_term:
                rhs.append(terminal_id(str(sym.name)))
            else:
                rhs.append(-(nonterminal_id(str(sym.name)) + 1))
        raw_rules.append((lhs, tuple(rhs)))
    ignore = tuple(sorted({terminal_id(str(n)) for n in parser.ignore_tokens}))
    if start not in nt_index:
        raise GrammarSyntaxError(f"start rule {start!r} is not defined", source=source, line=1, column=1)

    rules = productive_rules(raw_rules)
    start_id = nt_index[start]
    if not any(lhs == start_id for lhs, _rhs in rules):
        line, col = _locate(text, start)
        raise GrammarSyntaxError(
            f"start rule {start!r} derives no finite string", source=source, line=line or 1, column=col or 1
        )
    return GrammarIR(
        terminals=tuple(terminals),
        nonterminals=tuple(nonterminals),
        rules=rules,
        start=start_id,
        ignore=ignore,
        source=source,
    )
