"""Property tests: random regexes against Python's ``re.fullmatch``, UTF-8 validity, minimality."""

from __future__ import annotations

import os
import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from constrain.regex import regex_to_dfa, terminals_to_dfa

def examples(n: int) -> int:
    """Return ``n`` times ``$CONSTRAIN_HYPOTHESIS_SCALE`` (default 1), for longer local bug hunts."""
    return int(n * float(os.environ.get("CONSTRAIN_HYPOTHESIS_SCALE", "1")))


ALPHABET = ["a", "b", "c", "é", "日", "😀", "-", ".", "*", "\n", "]", "^", "\\", "{", "1", " ", "_"]
EXTRA = ["A", "x", "É", "本", "😁", "\t", "٣", "\u00a0", "\x00", "\U0010ffff"]
CATEGORIES = [r"\d", r"\w", r"\s", r"\D", r"\W", r"\S"]
QUANTIFIERS = ["*", "+", "?", "{2}", "{0,2}", "{1,}", "{1,3}", "{,2}", "*?", "+?", "??", "{1,2}?"]


def class_items(alphabet: list[str], categories: list[str]):
    char = st.sampled_from(alphabet).map(re.escape)
    rng = st.tuples(st.sampled_from(alphabet), st.sampled_from(alphabet)).map(
        lambda t: re.escape(min(t, key=ord)) + "-" + re.escape(max(t, key=ord))
    )
    options = [char, rng] + ([st.sampled_from(categories)] if categories else [])
    return st.one_of(*options)


def regexes(alphabet: list[str] = ALPHABET, categories: list[str] = CATEGORIES):
    """Pattern text generated from a small recursive regex AST strategy."""
    klass = st.tuples(st.booleans(), st.lists(class_items(alphabet, categories), min_size=1, max_size=4)).map(
        lambda t: "[" + ("^" if t[0] else "") + "".join(t[1]) + "]"
    )
    leaves = [st.sampled_from(alphabet).map(re.escape), st.just("."), klass]
    if categories:
        leaves.append(st.sampled_from(categories))
    leaf = st.one_of(*leaves)

    def extend(children):
        concat = st.lists(children, min_size=1, max_size=3).map(lambda ps: "".join(f"(?:{p})" for p in ps))
        alt = st.lists(children, min_size=2, max_size=3).map(lambda ps: "(?:" + "|".join(ps) + ")")
        quant = st.tuples(children, st.sampled_from(QUANTIFIERS)).map(lambda t: f"(?:{t[0]}){t[1]}")
        group = children.map(lambda p: f"({p})")
        return st.one_of(concat, alt, quant, group)

    return st.recursive(leaf, extend, max_leaves=8)


def matching(data, compiled: re.Pattern, n: int) -> list[str]:
    """Draw up to ``n`` strings that fully match ``compiled`` (none if hypothesis cannot build them).

    ``from_regex`` refuses patterns containing an empty class such as ``[^\\d\\D]``, even in an
    optional branch; the random strings still cover those patterns.
    """
    try:
        return data.draw(st.lists(st.from_regex(compiled, fullmatch=True), max_size=n), label="matching")
    except InvalidArgument:
        return []


def strings(alphabet: list[str]):
    return st.one_of(
        st.lists(st.sampled_from(alphabet + EXTRA), max_size=8).map("".join),
        st.text(max_size=6),
    )


@settings(max_examples=examples(300))
@given(pattern=regexes(), dotall=st.booleans(), data=st.data())
def test_matches_like_re_fullmatch(pattern, dotall, data):
    flags = re.ASCII | (re.DOTALL if dotall else 0)
    compiled = re.compile(pattern, flags)
    dfa = regex_to_dfa(pattern, dotall=dotall)
    samples = data.draw(st.lists(strings(ALPHABET), max_size=10), label="random strings")
    # strings that do match, to test acceptance and not just rejection
    samples += matching(data, compiled, 5)
    for s in samples:
        assert dfa.matches(s.encode()) == (compiled.fullmatch(s) is not None), (pattern, s)


CASED = ["a", "A", "k", "K", "\u212a", "s", "S", "ſ", "é", "É", "ß", "ẞ", "i", "I", "ı", "İ", "σ", "ς", "Σ", "-", "z"]


@settings(max_examples=examples(200))
@given(pattern=regexes(CASED, []), data=st.data())
def test_ignore_case_like_re(pattern, data):
    compiled = re.compile(pattern, re.IGNORECASE)
    dfa = regex_to_dfa(pattern, ignore_case=True)
    samples = data.draw(st.lists(st.lists(st.sampled_from(CASED), max_size=6).map("".join), max_size=10))
    samples += matching(data, compiled, 5)
    for s in samples:
        assert dfa.matches(s.encode()) == (compiled.fullmatch(s) is not None), (pattern, s)


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_DOT_STAR = regex_to_dfa(".*", dotall=True)
_NOT_A = regex_to_dfa("[^a]*")


@settings(max_examples=examples(100))
@given(st.binary(max_size=12))
def test_invalid_utf8_never_matches(data):
    if _is_utf8(data):
        text = data.decode("utf-8")
        assert _DOT_STAR.matches(data)
        assert _NOT_A.matches(data) == ("a" not in text)
    else:
        assert not _DOT_STAR.matches(data)
        assert not _NOT_A.matches(data)


BAD_PIECES = [b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf8\x88\x80\x80\x80",
              b"\xf4\x90\x80\x80", b"\xe2\x82", b"\xbf", b"\xff"]


@settings(max_examples=examples(100))
@given(st.lists(st.sampled_from(BAD_PIECES), min_size=1), st.text(max_size=4))
def test_surrogates_overlongs_and_truncations_never_match(bad, text):
    # each bad piece is followed by an ASCII byte so that two pieces cannot form a valid character
    data = text.encode() + b"".join(piece + b"z" for piece in bad)
    assert not _DOT_STAR.matches(data)
    assert not _NOT_A.matches(data)


def _moore_classes(table: np.ndarray, labels: list, sink_label) -> int:
    """Count Myhill-Nerode classes of a partial DFA by naive Moore refinement (independent check)."""
    n = table.shape[0]
    full = np.where(table < 0, n, table)  # n is the sink
    full = np.vstack([full, np.full((1, 256), n)])
    labs = list(labels) + [sink_label]
    ids = {lab: i for i, lab in enumerate(dict.fromkeys(labs))}
    block = np.array([ids[lab] for lab in labs])
    while True:
        sig = np.concatenate([block[:, None], block[full]], axis=1)
        _, new = np.unique(sig, axis=0, return_inverse=True)
        new = new.reshape(-1)
        if len(set(new.tolist())) == len(set(block.tolist())):
            return len(set(new.tolist()))
        block = new


@settings(max_examples=examples(150))
@given(pattern=regexes())
def test_minimal_and_invariants(pattern):
    dfa = regex_to_dfa(pattern)
    t = dfa.transitions
    assert t.dtype == np.int32 and t.flags.c_contiguous and dfa.start == 0
    labels = ["acc" if a else "rej" for a in dfa.accepting.tolist()]
    # every state is distinct from every other and from the (implicit) dead state
    expected = dfa.n_states + 1 if dfa.accepting.any() else 1
    assert _moore_classes(t, labels, "rej") == expected
    # every state reachable
    seen, stack = {0}, [0]
    while stack:
        s = stack.pop()
        for x in set(t[s].tolist()) - {-1} - seen:
            seen.add(x)
            stack.append(x)
    assert len(seen) == dfa.n_states


@settings(max_examples=examples(100))
@given(patterns=st.lists(regexes(), min_size=1, max_size=3), data=st.data())
def test_lexer_accepting_like_re(patterns, data):
    lex = terminals_to_dfa(patterns)
    compiled = [re.compile(p, re.ASCII) for p in patterns]
    labels = [tuple(a) + tuple(b) for a, b in zip(lex.accepting_terminals.tolist(), lex.live_terminals.tolist())]
    sink = (False,) * (2 * len(patterns))
    expected = lex.n_states + 1 if lex.live_terminals.any() else 1
    assert _moore_classes(lex.transitions, labels, sink) == expected
    samples = data.draw(st.lists(strings(ALPHABET), max_size=8))
    for c in compiled:
        samples += matching(data, c, 2)
    for s in samples:
        state = lex.advance(0, s.encode())
        expect = [c.fullmatch(s) is not None for c in compiled]
        if state < 0:
            assert not any(expect), (patterns, s)
            continue
        assert lex.accepting_terminals[state].tolist() == expect, (patterns, s)
        assert (lex.live_terminals[state] >= lex.accepting_terminals[state]).all()
        # every state is live, except the lone start state of a lexer whose terminals match nothing
        assert lex.live_terminals[state].any() or (state == 0 and not lex.live_terminals.any())
        # a prefix of a match of terminal i keeps terminal i live
        for i, c in enumerate(compiled):
            for k in range(len(s) + 1):
                prefix_state = lex.advance(0, s[:k].encode())
                if expect[i]:
                    assert prefix_state >= 0 and lex.live_terminals[prefix_state, i]


# --- the UTF-8 automaton of one character class (suffix-shared) -------------------------------

_SCALARS = st.one_of(st.integers(0, 0x7F), st.integers(0x80, 0x7FF), st.integers(0x800, 0xFFFF),
                     st.integers(0x10000, 0x10FFFF)).filter(lambda c: not 0xD800 <= c <= 0xDFFF)


def _shape_accepts(shape, data: bytes) -> bool:
    n, edges = shape
    cur = {0}
    for b in data:
        cur = {d for s, lo, hi, d in edges if s in cur and lo <= b <= hi}
    return 1 in cur


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_SCALARS, _SCALARS), min_size=1, max_size=4), st.lists(_SCALARS, max_size=20),
       st.lists(st.binary(min_size=1, max_size=4), max_size=10))
def test_charset_shape_accepts_exactly_the_utf8_encodings(pairs, probes, junk):
    from constrain.regex import _charset as cs
    from constrain.regex.dfa import _charset_shape

    ranges = cs.normalize((min(a, b), max(a, b)) for a, b in pairs)
    shape = _charset_shape(tuple(ranges))
    inside = lambda c: any(lo <= c <= hi for lo, hi in ranges)  # noqa: E731
    for lo, hi in ranges:
        probes += [lo, hi]
    for c in probes:
        if 0xD800 <= c <= 0xDFFF:
            continue
        assert _shape_accepts(shape, chr(c).encode("utf-8")) == inside(c), hex(c)
    for data in junk:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            assert not _shape_accepts(shape, data)
            continue
        assert _shape_accepts(shape, data) == (len(text) == 1 and inside(ord(text)))


def test_charset_shape_shares_continuation_states():
    # the JSON string body class: one state per "k continuation bytes left" plus the four lead
    # bytes with narrowed second bytes (E0, ED, F0, F4), not a copy per lead-byte range
    from constrain.regex.dfa import _charset_shape

    n, _edges = _charset_shape(((0x20, 0x21), (0x23, 0x5B), (0x5D, 0xD7FF), (0xE000, 0x10FFFF)))
    # start, end; 1/2/3 continuation bytes left; the narrowed second bytes after E0, ED, F0, F4
    # (the prefix trie has 20: a state per byte position of every lead-byte range)
    assert n == 2 + 3 + 4


SCOPED = ["i", "-i", "s", "-s", "i-s", "s-i"]


def scoped_regexes():
    """``regexes(CASED)`` with scoped-flag groups ``(?F:...)`` anywhere, nested too, and a dot."""
    base = regexes(CASED + ["\n"], [])

    def extend(children):
        flagged = st.tuples(st.sampled_from(SCOPED), children).map(lambda t: f"(?{t[0]}:{t[1]})")
        concat = st.lists(children, min_size=1, max_size=3).map("".join)
        return st.one_of(flagged, concat, children.map(lambda p: p + "."))

    return st.recursive(base, extend, max_leaves=4)


@settings(max_examples=examples(200))
@given(pattern=scoped_regexes(), icase=st.booleans(), dotall=st.booleans(), data=st.data())
def test_scoped_flags_like_re(pattern, icase, dotall, data):
    """Found by this test's author: interegular merges a group that is its parent's only item
    and keeps only its *added* flags, so ``(?-i:a)`` under ignore-case matched ``A`` (and so did ``(?-i:((?:a)))``, a case it then found)."""
    compiled = re.compile(pattern, (re.IGNORECASE if icase else 0) | (re.DOTALL if dotall else 0))
    dfa = regex_to_dfa(pattern, ignore_case=icase, dotall=dotall)
    samples = data.draw(st.lists(st.lists(st.sampled_from(CASED + ["\n"]), max_size=6).map("".join), max_size=10))
    samples += matching(data, compiled, 5)
    for s in samples:
        assert dfa.matches(s.encode()) == (compiled.fullmatch(s) is not None), (pattern, s)


def test_removed_flag_on_a_lone_group():
    assert not regex_to_dfa("(?-i:a)", ignore_case=True).matches(b"A")
    assert regex_to_dfa("(?-i:a)", ignore_case=True).matches(b"a")
    assert not regex_to_dfa("x(?-i:(?-s:a.))", ignore_case=True, dotall=True).matches(b"XA\n")
    assert regex_to_dfa("x(?-i:(?-s:a.))", ignore_case=True, dotall=True).matches(b"Xab")
    assert not regex_to_dfa(".(?-i:((?:a)(?:a)))", ignore_case=True).matches(b"aaA")
    assert regex_to_dfa("(?-i:(?i:(a)))b").matches(b"Ab")


@settings(max_examples=examples(300))
@given(pattern=st.one_of(regexes(), scoped_regexes(), st.lists(regexes(), min_size=1, max_size=3).map("|".join)))
def test_structure_parser_equals_interegular_before_simplify(pattern):
    """``_structure`` (our parser of the scanner's sanitized text) builds exactly the tree
    interegular's parser builds, before its ``simplify`` (which loses removed flags)."""
    from interegular import patterns as ip

    from constrain.limits import DEFAULT_LIMITS
    from constrain.regex._parse import _Scanner, _structure

    text = _Scanner(pattern, DEFAULT_LIMITS).run()
    assert _structure(text) == ip._ParsePattern(text).parse()
