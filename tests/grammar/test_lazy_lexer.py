"""Grammars whose lexer DFA is built lazily give the same masks and states as the eager lexer.

Lexers that would need more than ``_EAGER_LEXER_STATES`` DFA states (e.g. JSON strings with a
large ``maxLength``) get a :class:`~constrain.regex.LazyLexerDFA`: rows are built when a walk or a
step first needs them. Here the threshold is forced down so small grammars take the lazy path,
and every mask, acceptance and forced-byte answer is compared with the eager engine along random
masked walks.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import constrain.grammar.compile as grammar_compile
from constrain.errors import LimitExceededError
from constrain.grammar import compile_grammar
from constrain.limits import Limits
from constrain.vocab.vocabulary import Vocabulary
from constrain.schema import schema_to_lark
from tests.grammar.test_split_walk import SCHEMAS, _ids, vocab

SCHEMAS_LAZY = dict(SCHEMAS)
SCHEMAS_LAZY["long_string"] = {
    "type": "object",
    "properties": {"s": {"type": "string", "maxLength": 40}, "t": {"type": "string", "minLength": 3}},
}


def _eager_and_lazy(text: str, voc=None):
    """The grammar compiled with the eager lexer and with the lazy one (threshold forced down)."""
    voc = voc if voc is not None else vocab()
    eager = compile_grammar(text, voc)
    saved = grammar_compile._EAGER_LEXER_STATES
    grammar_compile._EAGER_LEXER_STATES = 1
    try:
        lazy = compile_grammar(text, voc)
    finally:
        grammar_compile._EAGER_LEXER_STATES = saved
    assert not eager._lazy and lazy._lazy
    return eager, lazy


@functools.lru_cache(maxsize=None)
def pair(name: str):
    return _eager_and_lazy(schema_to_lark(SCHEMAS_LAZY[name]))


def _walk_compare(name, eager, lazy, rnd, steps: int, reference: bool = True) -> None:
    """A random masked walk: at every step the lazy engine's mask, acceptance (and, with
    ``reference``, reference mask and forced bytes) equal the eager engine's."""
    se, sl = eager.initial_state(), lazy.initial_state()
    for _ in range(rnd.randint(1, steps)):
        we = eager.compute_token_bits(se)
        assert np.array_equal(lazy.compute_token_bits(sl), we), f"{name}: lazy mask differs"
        assert lazy.is_accepting(sl) == eager.is_accepting(se)
        if reference:
            assert np.array_equal(lazy.reference_token_bits(sl), we)
            assert lazy.forced_bytes(sl) == eager.forced_bytes(se)
        ids = _ids(we)
        if not ids:
            break
        data = vocab().token_bytes(rnd.choice(ids))
        se, sl = eager.advance_bytes(se, data), lazy.advance_bytes(sl, data)
        assert se is not None and sl is not None


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(SCHEMAS_LAZY)), rnd=st.randoms(use_true_random=False), split=st.booleans())
def test_lazy_lexer_masks_equal_eager(name, rnd, split):
    eager, lazy = pair(name)
    lazy.split_walks = split
    _walk_compare(name, eager, lazy, rnd, 40)
    # a byte string the eager engine rejects is rejected lazily too
    bad = b'{"zz' if name != "any" else b"}"
    assert (eager.advance_bytes(eager.initial_state(), bad) is None) == (lazy.advance_bytes(lazy.initial_state(), bad) is None)


IGNORE_GRAMMARS = {
    # ignored whitespace and comments ending in lazily built states (the CSR table of ignored
    # lexemes grows with the lexer), several expected sets (tables per set grow too)
    "list": """
start: "[" [item ("," item)*] "]"
item: WORD | NUMBER | start
WORD: /[a-z]{1,6}/
NUMBER: /-?[0-9]+(\\.[0-9]+)?/
COMMENT: /#[a-z]{3}[a-z ]*#/
%import common.WS
%ignore WS
%ignore COMMENT
""",
    "assign": """
start: stmt+
stmt: NAME "=" expr ";"
expr: NAME | STRING | expr "+" expr
NAME: /[a-z_][a-z0-9_]{0,7}/
STRING: /"[a-z ]{0,12}"/
%ignore /[ \\t\\n]+/
""",
}


@functools.lru_cache(maxsize=None)
def ignore_pair(name: str):
    return _eager_and_lazy(IGNORE_GRAMMARS[name])


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(IGNORE_GRAMMARS)), rnd=st.randoms(use_true_random=False), split=st.booleans())
def test_lazy_lexer_with_ignored_terminals_masks_equal_eager(name, rnd, split):
    eager, lazy = ignore_pair(name)
    lazy.split_walks = split
    _walk_compare(name, eager, lazy, rnd, 60, reference=False)
    assert lazy.lexer.n_states > 1 and lazy._q_cap >= lazy.lexer.n_states


@functools.lru_cache(maxsize=None)
def _boundary_vocab():
    """Single bytes and tokens that cross the end of an ignored lexeme (comment or whitespace)."""
    multi = ["# ", "#  ", "#\t", "#1", "#,", "#]", "# [", "#x", "; ", ";  ", ";\n", "  ", "   ", " " * 8,
             "\n\n", "\n" * 4, " 1", " a", "a ", "e#", "c# ", "b# ", ", ", ",  ", "= ", " =", ' "']
    return Vocabulary.from_tokens([None] + [bytes([b]) for b in range(256)] + [m.encode() for m in multi],
                                  eos_token_ids=[0])


@pytest.mark.parametrize("name, text", [
    ("list", b"[ab, #note a#\n cd,  #xyz#" + b" " * 35 + b"12 #cde#\t, [x #abc#]]"),
    ("assign", b'x = "ab" + y;' + b"\n" * 34 + b'z=q ;\t\t a_1 = "c";'),
])
@pytest.mark.parametrize("split", [True, False])
def test_lazy_lexer_masks_equal_eager_through_comments_and_long_whitespace(name, text, split):
    """Byte by byte through lexemes the random walks rarely reach: comments (an ignored terminal
    ending in a state built late) and whitespace runs past max_consecutive_whitespace."""
    eager, lazy = _eager_and_lazy(IGNORE_GRAMMARS[name], _boundary_vocab())
    lazy.split_walks = split
    se, sl = eager.initial_state(), lazy.initial_state()
    for i in range(len(text) + 1):
        assert np.array_equal(lazy.compute_token_bits(sl), eager.compute_token_bits(se)), (name, text[:i])
        if i == len(text):
            break
        se, sl = eager.advance_bytes(se, text[i : i + 1]), lazy.advance_bytes(sl, text[i : i + 1])
        assert (se is None) == (sl is None), (name, text[: i + 1])
        if se is None:  # past the whitespace bound: both refuse the same byte
            break


def test_large_max_length_compiles_lazily():
    """A string with maxLength 3000 overflows the eager lexer bound; the lazy one builds few states."""
    schema = {"type": "object", "properties": {"d": {"type": "string", "maxLength": 3000}}, "required": ["d"]}
    text = schema_to_lark(schema)
    c = compile_grammar(text, vocab())
    assert c._lazy  # the eager lexer would need more than _EAGER_LEXER_STATES states
    s = c.advance_bytes(c.initial_state(), b'{"d": "' + b"ab" * 100)
    assert s is not None
    words = c.compute_token_bits(s)
    assert np.array_equal(words, c.reference_token_bits(s))
    assert words[ord('"') + 1 >> 5] >> np.uint32(ord('"') + 1 & 31) & 1  # token '"' (id = byte + 1) closes the string
    assert c.lexer.n_states < 5_000
    # The repetition is a counter, not 3000 copies: a small NFA bound is enough...
    small = compile_grammar(text, vocab(), limits=Limits(max_nfa_states=1_000))
    assert len(small.lexer._nfa.eps) < 1_000
    # ...and the bound on counters is what refuses a larger one.
    with pytest.raises(LimitExceededError, match="max_counted_repeat"):
        compile_grammar(text, vocab(), limits=Limits(max_repeat_count=1_000, max_counted_repeat=2_000))


def test_stepped_rows_are_int32_copies_of_the_lexer_rows():
    """The rows ``advance_bytes`` steps through are copied out as 4-byte-int arrays (not lists,
    which the cyclic collector would walk element by element), equal to the lexer's rows, and
    copied again once a lazy row that was not built when first stepped is built."""
    eager, lazy = pair("long_string")
    for c in (eager, lazy):
        state = c.advance_bytes(c.initial_state(), b'{"s": "' + "é".encode() * 30)
        assert state is not None
        stepped = [q for q, row in enumerate(c._rows) if row is not None]
        assert stepped
        for q in stepped:
            row = c._rows[q]
            assert not isinstance(row, list) and row.itemsize == 4
            assert list(row) == c._transitions[q].tolist(), q
            assert -2 not in row  # a lazy row that was unbuilt when first stepped was copied again


def test_lazy_lexer_enforces_max_length():
    eager, lazy = pair("long_string")
    full = lazy.advance_bytes(lazy.initial_state(), b'{"s": "' + "é".encode() * 40)
    assert full is not None and lazy.advance_bytes(full, b"a") is None
    assert lazy.is_accepting(lazy.advance_bytes(full, b'"}'))
    assert np.array_equal(lazy.compute_token_bits(full), eager.compute_token_bits(eager.advance_bytes(eager.initial_state(), b'{"s": "' + "é".encode() * 40)))


def test_long_repetitions_are_counted_lazily_not_minimized():
    """A repetition bound above _EAGER_LEXER_MAX_REPEAT goes straight to the lazy lexer, where it is
    a counter: the eager minimization would need one refinement round per position (~20 s for a
    maxLength of 1024); masks agree with the reference walk."""
    schema = {"type": "object", "properties": {"d": {"type": "string", "maxLength": 1024}}, "required": ["d"]}
    c = compile_grammar(schema_to_lark(schema), vocab())
    assert c._lazy and c.lexer._loops
    s = c.advance_bytes(c.initial_state(), b'{"d": "' + b"x" * 1023)
    assert np.array_equal(c.compute_token_bits(s), c.reference_token_bits(s))
    assert c.advance_bytes(s, b"yy") is None and c.advance_bytes(s, b'y"}') is not None
    assert c.lexer.n_states < 15_000  # about ten states per position written, built on demand


@pytest.mark.parametrize("text,prefix,unit,count,shared", [
    (schema_to_lark({"type": "array", "items": {"type": "string", "maxLength": 120}}), b'["', b"ab", 61, True),
    (schema_to_lark({"type": "array", "items": {"type": "string", "minLength": 45, "maxLength": 120}}),
     b'["', b"ab", 61, True),
    ('start: NUM ("," NUM)*\nNUM: /[0-9]{1,90}/\n', b"", b"7", 91, True),
    (schema_to_lark({"type": "object", "properties": {"k": {"type": "string", "pattern": "^[0-9a-f]{24}$"}}}),
     b'{"k": "', b"a", 25, False),
])
def test_a_counted_position_has_its_representatives_safe_depth(text, prefix, unit, count, shared):
    """The lazy engine keeps one safe-text depth per horizon representative: at every position of
    a counted repetition the depth searched from the state itself equals its representative's,
    and the masks (built through the kept depths) equal the eager engine's."""
    eager, lazy = _eager_and_lazy(text)
    se, sl = eager.advance_bytes(eager.initial_state(), prefix), lazy.advance_bytes(lazy.initial_state(), prefix)
    horizon = int(lazy._trie.max_depth)
    n_shared = 0
    for i in range(count):
        if sl is None:
            assert se is None
            break
        assert np.array_equal(lazy.compute_token_bits(sl), eager.compute_token_bits(se)), f"position {i}"
        for ps, q, _ws, b in sl:
            if q < 0:
                continue
            eid = int(lazy._p_eset[lazy._parser_id(ps)])
            blocked = lazy._no_block if b < 0 else lazy._blocked[b]
            q0 = lazy.lexer.horizon_representative(q, horizon)
            n_shared += q0 != q
            lazy._lazy_sync()
            assert lazy._safe_depth(eid, q, blocked) == lazy._safe_depth(eid, q0, blocked), f"position {i}"
        se, sl = eager.advance_bytes(se, unit), lazy.advance_bytes(sl, unit)
    assert lazy._lazy_depths, "no depth was kept"
    assert (n_shared > 0) == shared


@pytest.mark.parametrize("ahead", [1, 6, 20])
def test_safe_depths_do_not_depend_on_the_lookahead_built(ahead, monkeypatch):
    """How far past a missing row the safe-text search builds rows only changes how often it
    stops: at every position of counted strings the depths and masks are those of the smallest
    lookahead, and the masks the eager engine's."""
    text = schema_to_lark({"type": "array", "items": {"anyOf": [
        {"type": "string", "minLength": 45, "maxLength": 120}, {"type": "string", "pattern": "^[a-z]{3,70}$"}]}})

    def depths_and_masks(c, e):
        s, se, out = c.advance_bytes(c.initial_state(), b'["'), e.advance_bytes(e.initial_state(), b'["'), []
        for _ in range(40):
            bits = c.compute_token_bits(s)
            assert np.array_equal(bits, e.compute_token_bits(se))
            out.append((sorted(c._lazy_depths.values()), bits.tobytes()))  # state ids differ
            s, se = c.advance_bytes(s, b"ab\xc3\xa9"), e.advance_bytes(se, b"ab\xc3\xa9")
        return out

    eager, base = _eager_and_lazy(text)
    monkeypatch.setattr(grammar_compile.GrammarConstraint, "_LAZY_DEPTH_AHEAD", 1)
    want = depths_and_masks(base, eager)
    monkeypatch.setattr(grammar_compile.GrammarConstraint, "_LAZY_DEPTH_AHEAD", ahead)
    _, lazy = _eager_and_lazy(text)
    assert depths_and_masks(lazy, eager) == want


_TWO_STRINGS = (
    'start: "a" ANY | "b" LOWER\n'
    'ANY: /"[^"\\\\]{0,100}"/\n'
    'LOWER: /"[a-z ]{0,100}"/\n'
)


@pytest.mark.parametrize("first", ["a", "b"])
def test_kept_safe_depths_are_per_expected_set(first):
    """One lexer state (inside a string, any of the two string terminals still live) under two
    expected sets (after "a" only ANY, after "b" only LOWER) has two safe-text depths: the lazy
    engine keeps each apart, so whichever comes first, both masks are the eager engine's."""
    eager, lazy = _eager_and_lazy(_TWO_STRINGS)
    order = [first, "b" if first == "a" else "a"]
    for head in order:
        se = eager.advance_bytes(eager.initial_state(), head.encode() + b'"')
        sl = lazy.advance_bytes(lazy.initial_state(), head.encode() + b'"')
        for i in range(12):
            assert np.array_equal(lazy.compute_token_bits(sl), eager.compute_token_bits(se)), f"{head} position {i}"
            se, sl = eager.advance_bytes(se, b"ab"), lazy.advance_bytes(sl, b"ab")


@pytest.mark.parametrize("text,prefix,unit,count", [
    # lexeme ends outside the counted loop (after the closing quote): positions share walks
    (schema_to_lark({"type": "array", "items": {"type": "string", "minLength": 45, "maxLength": 120}}),
     b'["', "é".encode(), 121),
    (schema_to_lark({"type": "array", "items": {"type": "string", "minLength": 45, "maxLength": 120}}),
     b'["', b"ab", 61),
    # a lexeme may end inside the loop (any digit): those walks are never shared
    ('start: NUM ("," NUM)*\nNUM: /[0-9]{1,90}/\n', b"", b"7", 91),
])
def test_counted_loop_positions_share_walks_exactly(text, prefix, unit, count):
    """Every position of a long counted repetition (below minLength, past it, near maxLength, past
    it): the lazy engine, which lets positions whose counts read the next token alike share one
    lexeme walk, gives the eager engine's mask, acceptance and forced bytes."""
    eager, lazy = _eager_and_lazy(text)
    assert lazy.lexer._loops  # the repetition is a counted loop
    se, sl = eager.advance_bytes(eager.initial_state(), prefix), lazy.advance_bytes(lazy.initial_state(), prefix)
    walks = []
    for i in range(count):
        if se is None:
            assert sl is None, f"position {i}: lazy accepts what eager rejects"
            break
        assert sl is not None, f"position {i}: lazy rejects what eager accepts"
        before = lazy.walk_stats["lexeme_walks"]
        assert np.array_equal(lazy.compute_token_bits(sl), eager.compute_token_bits(se)), f"position {i}"
        walks.append(lazy.walk_stats["lexeme_walks"] - before)
        assert lazy.is_accepting(sl) == eager.is_accepting(se)
        assert lazy.forced_bytes(sl) == eager.forced_bytes(se)
        se, sl = eager.advance_bytes(se, unit), lazy.advance_bytes(sl, unit)
    if prefix:  # JSON strings: most positions reuse a walk already made
        assert sum(1 for w in walks if w == 0) > len(walks) // 2, walks


def test_walks_inside_a_lexeme_go_from_the_expected_terminals_state():
    """Inside a string value the lazy lexer's state tracks every string terminal that still matches
    (here "s" with maxLength 40 and "t" with minLength 3); a mask's lexeme walk goes from the state
    of the expected terminals only, and every mask still equals the eager engine's and the
    reference's (which walks the full states)."""
    eager, lazy = pair("long_string")
    se, sl = eager.initial_state(), lazy.initial_state()
    for piece in [b'{"s"', b": ", b'"ab', b"cd", b'e", ', b'"t": "', b"xyz", b'w"', b"}"]:
        we = eager.compute_token_bits(se)
        assert np.array_equal(lazy.compute_token_bits(sl), we)
        assert np.array_equal(lazy.reference_token_bits(sl), we)
        se, sl = eager.advance_bytes(se, piece), lazy.advance_bytes(sl, piece)
        assert se is not None and sl is not None
    assert lazy.is_accepting(sl) and eager.is_accepting(se)
    lexer = lazy.lexer
    narrowed = [(q, r) for (_eid, q), r in lazy._restrict_memo.items() if r != q]
    assert narrowed, "no walk went from a restricted state"
    for q, r in narrowed:
        assert q >= 0 and len(lexer._keys(r)) < len(lexer._keys(q))
        assert not (lexer.live_terminals[r] & ~lexer.live_terminals[q]).any()


def _terminals_of(lexer, q: int) -> set[int]:
    """The terminals of lazy lexer state ``q``'s configurations."""
    keys = lexer._keys(q)
    return set(lexer._term_of_a[keys % lexer._n_nfa].tolist())


@pytest.mark.parametrize("restrict", [True, False])
def test_threads_inside_a_lexeme_keep_their_expected_terminals_only(restrict):
    """A thread reading a string value goes on in the state of the terminals its parser state
    expects (and the ignored ones): the lexer state of one terminal here, although every string
    terminal still matches the bytes (``restrict_steps`` off: the whole state, all of them).
    Long ``maxLength``s: the lexer counts, and keys and values are terminals apart."""
    from constrain import compile_json_schema

    schema = {"type": "object", "properties": {"s": {"type": "string", "maxLength": 300},
                                               "t": {"type": "string", "minLength": 3, "maxLength": 200}}}
    lazy = compile_json_schema(schema, vocab())
    lazy.restrict_steps = restrict
    state = lazy.advance_bytes(lazy.initial_state(), b'{"s": "abc')
    inside = [(ps, q) for ps, q, _ws, _b in state if q >= 0]
    assert inside
    wider = False
    for ps, q in inside:
        allowed = {i for i in range(len(lazy.ir.terminals)) if (lazy._expected(ps) >> i) & 1}
        terms = _terminals_of(lazy.lexer, q)
        assert terms & allowed
        wider |= bool(terms - allowed)
    assert wider != restrict
    end = lazy.advance_bytes(state, b'de", "t": "xyzw"}')
    assert end is not None and lazy.is_accepting(end)
    assert lazy.advance_bytes(state, b'de", "t": "xy"}') is None  # minLength 3


def test_stepping_reaches_more_parser_states_than_the_tables_hold():
    """Bytes stepped without a mask in between create parser ids (restricting a thread reads its
    expected set), past the first size of the per-id tables: they grow under the step."""
    props = {f"p{i}": {"type": "string", "maxLength": 300} for i in range(40)}
    schema = {"type": "object", "properties": props, "required": sorted(props)}
    from constrain import compile_json_schema

    g = compile_json_schema(schema, vocab())
    assert g._lazy
    doc = json.dumps({k: "v" * (i % 7) for i, k in enumerate(props)}).encode()
    s = g.advance_bytes(g.initial_state(), doc)
    assert s is not None and g.is_accepting(s)
    assert g._pcounts[0] > 64  # parser ids
