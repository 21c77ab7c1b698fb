"""``productive_rules`` (the worklist) against the naive fixpoint it replaced."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from constrain.grammar.lark_frontend import productive_rules


def _fixpoint(raw_rules):
    """The reference: sweep the rules until no left side becomes productive."""
    productive: set[int] = set()
    changed = True
    while changed:
        changed = False
        for lhs, rhs in raw_rules:
            if lhs not in productive and all(s >= 0 or (-s - 1) in productive for s in rhs):
                productive.add(lhs)
                changed = True
    return tuple((lhs, rhs) for lhs, rhs in raw_rules if all(s >= 0 or (-s - 1) in productive for s in rhs))


# symbols: terminals 0..3, nonterminals -1..-6 (nonterminal k is -k - 1)
_rules = st.lists(
    st.tuples(st.integers(0, 5), st.lists(st.integers(-6, 3), max_size=4).map(tuple)), max_size=14)


@settings(max_examples=300)
@given(_rules)
def test_productive_rules_equal_the_fixpoint(raw_rules):
    assert productive_rules(raw_rules) == _fixpoint(raw_rules)


def test_a_chain_written_top_down_is_productive_whole():
    """The order a fixpoint sweep is slowest on (each rule needs the next): every rule kept; a
    rule using an unproductive symbol (twice) and that symbol's own rule dropped."""
    n = 300
    chain = [(k, (-(k + 1) - 1,)) for k in range(n - 1)] + [(n - 1, (0,))]
    loop = [(n, (-n - 1, -n - 1))]
    assert productive_rules(chain + loop) == tuple(chain)
