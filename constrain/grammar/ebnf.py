"""Rules already split into alternatives -> :class:`GrammarIR`, without Lark.

The JSON Schema compiler holds its grammar as rules (a name and a list of alternatives, each an
EBNF expression over symbol names with ``( | ) ? * +``) and terminal regexes. Handing it to Lark
as text costs Lark's grammar parser, its EBNF transformer and a Python ``re`` parse of every
terminal: about a third of compiling a typical schema. :func:`rules_to_ir` builds the same BNF
directly, the way Lark expands EBNF:

* a group ``(a | b)`` inside an alternative distributes (``x (a | b)`` -> ``x a``, ``x b``);
* ``e?`` -> the alternative with and without ``e``;
* ``e*`` -> with a helper rule ``H: e | H e`` (left-recursive, one per distinct ``e`` and rule),
  and without it; ``e+`` -> ``H``;
* rules unreachable from ``start`` are dropped, then rules that derive no string (as in
  :func:`~constrain.grammar.lark_frontend.lark_to_ir`).

Anything outside this subset (an unknown symbol, a character other than the above) raises
:class:`EBNFSubsetError`; the caller then goes through Lark, which reports real errors.
"""

from __future__ import annotations

import re
from itertools import product

from constrain.errors import LimitExceededError
from constrain.grammar.lark_frontend import GrammarIR, TerminalIR, productive_rules
from constrain.regex.dfa import automaton_summary

_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*)|([()|?*+]))")
_PLAIN = re.compile(r"\s*[A-Za-z_][A-Za-z0-9_]*(?:\s+[A-Za-z_][A-Za-z0-9_]*)*\s*")


class EBNFSubsetError(ValueError):
    """The rules use syntax outside the subset :func:`rules_to_ir` reads (fall back to Lark)."""


def _tokens(expr: str) -> list[str]:
    out = []
    pos = 0
    n = len(expr)
    while pos < n:
        m = _TOKEN.match(expr, pos)
        if m is None:
            if expr[pos:].strip() == "":
                break
            raise EBNFSubsetError(f"unexpected {expr[pos:pos + 10]!r} in {expr[:60]!r}")
        out.append(m.group(1) or m.group(2))
        pos = m.end()
    return out


class _Expander:
    """Expands the alternatives of one grammar; adds helper rules to ``rules`` (mutates)."""

    def __init__(self, rules: dict[str, list[tuple[str, ...]]], max_expansions: int):
        self.rules = rules
        self.max_expansions = max_expansions
        self.helpers: dict[tuple, str] = {}

    def alternative(self, owner: str, expr: str) -> list[tuple[str, ...]]:
        """The BNF expansions of one alternative of ``owner``."""
        if _PLAIN.fullmatch(expr):  # symbols only (most alternatives): one expansion, as written
            return [tuple(expr.split())]
        toks = _tokens(expr)
        pos, alts = self._alts(owner, toks, 0)
        if pos != len(toks):
            raise EBNFSubsetError(f"unbalanced {expr[:60]!r}")
        return alts

    def _alts(self, owner: str, toks: list[str], pos: int) -> tuple[int, list[tuple[str, ...]]]:
        pos, out = self._seq(owner, toks, pos)
        while pos < len(toks) and toks[pos] == "|":
            pos, more = self._seq(owner, toks, pos + 1)
            out = out + more
        return pos, list(dict.fromkeys(out))

    def _seq(self, owner: str, toks: list[str], pos: int) -> tuple[int, list[tuple[str, ...]]]:
        items: list[list[tuple[str, ...]]] = []
        while pos < len(toks) and toks[pos] not in ("|", ")"):
            tok = toks[pos]
            if tok == "(":
                pos, inner = self._alts(owner, toks, pos + 1)
                if pos >= len(toks) or toks[pos] != ")":
                    raise EBNFSubsetError("unclosed group")
                pos += 1
            elif tok in "?*+":
                raise EBNFSubsetError(f"operator {tok!r} without an operand")
            else:
                inner = [(tok,)]
                pos += 1
            while pos < len(toks) and toks[pos] in ("?", "*", "+"):
                op = toks[pos]
                pos += 1
                if op == "?":
                    inner = list(dict.fromkeys(inner + [()]))
                else:
                    helper = self._helper(owner, op, inner)
                    # (the helper leaves "" out: e* and a nullable e+ keep it as an alternative)
                    inner = [(helper,), ()] if op == "*" or () in inner else [(helper,)]
            items.append(inner)
        total = 1
        for it in items:
            total *= len(it)
        if total > self.max_expansions:
            raise LimitExceededError("max_grammar_rules", self.max_expansions,
                                     f"rule {owner}: {total} alternatives after EBNF expansion")
        return pos, [tuple(s for part in combo for s in part) for combo in product(*items)]

    def _helper(self, owner: str, op: str, inner: list[tuple[str, ...]]) -> str:
        """The left-recursive rule ``H: e | H e`` for the expansions ``inner`` of ``e``."""
        key = (owner, tuple(inner))
        name = self.helpers.get(key)
        if name is None:
            name = f"__{owner}_{'star' if op == '*' else 'plus'}_{len(self.helpers)}"
            self.helpers[key] = name
            self.rules[name] = [e for e in inner if e] + [(name,) + e for e in inner if e]
        return name


class _SymbolCodes(dict):
    """A symbol's code in the IR: ``-(k + 1)`` for the ``k``-th rule met, ``t`` for the ``t``-th
    terminal; assigned on first lookup (``__missing__``), in the order symbols are met, so a
    known symbol costs one dict lookup. Appends to ``order`` and ``terminals`` (mutates)."""

    def __init__(self, bnf, term_rx, external):
        super().__init__(start=-1)
        self.bnf, self.term_rx, self.external = bnf, term_rx, external
        self.order: list[str] = ["start"]
        self.terminals: list[TerminalIR] = []

    def __missing__(self, sym: str) -> int:
        if sym in self.bnf:
            code = -(len(self.order) + 1)
            self.order.append(sym)
        else:
            code = len(self.terminals)
            if sym in self.external:
                dfa = self.external[sym]
                self.terminals.append(TerminalIR(sym, automaton_summary(dfa), False, False, dfa))
            elif sym in self.term_rx:
                self.terminals.append(TerminalIR(sym, self.term_rx[sym], False, False))
            else:
                raise EBNFSubsetError(f"undefined symbol {sym!r}")
        self[sym] = code
        return code


def rules_to_ir(
    start_expr: str,
    rules: dict[str, list[str]],
    terminals: list[tuple[str, str]],
    external: dict | None = None,
    *,
    max_expansions: int = 1_000_000,
    source: str = "grammar",
) -> GrammarIR:
    """The :class:`GrammarIR` of ``start: start_expr`` plus ``rules`` (name -> alternatives, ``""``
    for the empty one) over ``terminals`` (``(name, regex)``) and ``external`` (name -> byte DFA).

    Raises
    ------
    EBNFSubsetError
        Syntax outside the subset, or a symbol that is neither a rule nor a terminal.
    LimitExceededError
        One alternative expands to more than ``max_expansions`` BNF alternatives.
    """
    external = external or {}
    term_rx = dict(terminals)
    bnf: dict[str, list[tuple[str, ...]]] = {}
    ex = _Expander(bnf, max_expansions)
    bnf["start"] = ex.alternative("start", start_expr)
    for name, alts in rules.items():
        if name == "start" or name in term_rx or name in external:
            raise EBNFSubsetError(f"rule name {name!r} clashes")
        out: list[tuple[str, ...]] = []
        for a in alts:
            out.extend(ex.alternative(name, a) if a != "" else [()])
        bnf[name] = list(dict.fromkeys(out))

    # reachable rules, in first-reference order (Lark drops unused rules), numbered as they are
    # met; terminals numbered at first use; one pass over the reachable right-hand sides
    codes = _SymbolCodes(bnf, term_rx, external)
    order, term_list = codes.order, codes.terminals
    raw_rules: list[tuple[int, tuple[int, ...]]] = []
    code_of = codes.__getitem__
    i = 0
    while i < len(order):
        for rhs in bnf[order[i]]:
            raw_rules.append((i, tuple(map(code_of, rhs))))
        i += 1
    kept = productive_rules(raw_rules)
    if not any(lhs == 0 for lhs, _ in kept):
        raise EBNFSubsetError("start derives no finite string")  # Lark words the error
    return GrammarIR(
        terminals=tuple(term_list),
        nonterminals=tuple(order),
        rules=tuple(kept),
        start=0,
        ignore=(),
        source=source,
    )
