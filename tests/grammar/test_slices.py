"""Sliced lexeme walks: text slices a lexer state provably allows are OR-ed in, the rest is walked.

``constrain.vocab.slices`` splits the trie into the tokens of safe JSON-string text (by length)
and the rest; ``safe_depth_kernel`` says how many characters of any safe text a lexer state reads
while staying live. These tests hold the forest to the trie (every token once, in the right
slice), the depth kernel to known answers and to random safe strings (soundness), and the masks
of sliced walks to the reference walk (every trie node visited) on a vocabulary full of text
tokens, with eager and lazy lexers.
"""

from __future__ import annotations

import functools
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import constrain.grammar.compile as grammar_compile
from constrain.grammar.compile import GrammarConstraint
from constrain.grammar import compile_grammar
from constrain.grammar._kernels import reach_depth_kernel, safe_depth_kernel, safe_reach_kernel
from constrain.kernels.bitmask import bitmask_words
from constrain.schema import schema_to_lark
from constrain.vocab.slices import UTF8_NEXT, SLICE_CHARS, build_slices, safe_byte_steps, safe_text_length
from constrain.vocab.vocabulary import Vocabulary

# words of every slice length, multi-byte text, text longer than 16 characters, and tokens that
# are not safe text: quotes, escapes, control bytes, partial UTF-8
_WORDS = [
    "a", "ab", "abc", "abcd", "hello", "héllo", "wörld", "日本", "日本語のテキ", "naïve café",
    "abcdefgh", "abcdefghi", "0123456789", "sixteen chars!!!", "seventeen chars!!", "x" * 30,
    " the", " and", "  ", "Name", "name", "red", "green", "true", "null", "12", "3.5", "-1",
    "a b c", "emoji 🙂", "🙂🙂", "\x7f", "tab\there", 'q"', '"', '",', '": "', "\\n", "\\", "\n",
    "back\\slash", "mixed\"quote",
]
_PARTIAL = [b"\xc3", b"\xe6\x97", b"\xf0\x9f", b"ab\xc3", b"\xa9", b"\xed\xa0\x80"]


@functools.lru_cache(maxsize=None)
def text_vocab() -> Vocabulary:
    tokens: list = [None] + [bytes([b]) for b in range(256)] + [w.encode() for w in _WORDS] + _PARTIAL
    return Vocabulary.from_tokens(tokens, eos_token_ids=[0])


def _tokens_of(trie, root: int) -> set[int]:
    lo, hi = int(trie.node_token_start[root]), int(trie.node_token_start[int(trie.subtree_end[root])])
    return set(trie.token_ids[lo:hi].tolist())


def test_forest_holds_every_token_once_in_its_slice():
    voc = text_vocab()
    sl = voc.slices
    groups = [_tokens_of(sl.forest, int(r)) for r in sl.roots[1:]]
    everything = set(voc.trie.token_ids.tolist())
    assert _tokens_of(sl.forest, int(sl.roots[0])) == everything  # root 0: the whole trie
    assert set().union(*groups) == everything
    assert sum(len(g) for g in groups) == len(everything)
    for tid in everything:
        n = safe_text_length(voc.token_bytes(tid))
        want = next((k + 1 for k, (lo, hi) in enumerate(SLICE_CHARS) if lo <= n <= hi), 0)
        assert tid in groups[want], (voc.token_bytes(tid), want)
    for k in range(len(SLICE_CHARS)):
        ids = [t for t in range(voc.size) if sl.slice_words[k, t >> 5] >> np.uint32(t & 31) & 1]
        assert set(ids) == groups[k + 1]
    # every sub-trie is a trie of its own: bytes along each node spell a prefix of its tokens
    for tid in list(groups[1])[:20]:
        assert safe_text_length(voc.token_bytes(tid)) <= SLICE_CHARS[0][1]


def test_safe_text_length():
    assert safe_text_length("héllo".encode()) == 5
    assert safe_text_length("🙂".encode()) == 1
    assert safe_text_length(b"\x7f") == 1  # JSON allows DEL unescaped
    for bad in (b'a"', b"a\\", b"\n", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf"):
        assert safe_text_length(bad) == -1


def test_covered_words_and_walk_roots_partition_by_depth():
    sl = build_slices([None, b"ab", b"abcdef", b"x" * 12, b'"', "é".encode()], bitmask_words(6))
    assert sl.max_chars == 12
    for depth in range(sl.max_chars + 1):
        covered = {t for t in range(6) if sl.covered_words[depth][t >> 5] >> np.uint32(t & 31) & 1}
        slice_max = {1: 2, 5: 2, 2: 6, 3: 12}  # a token is covered once its slice's longest one fits
        assert covered == {t for t, n in slice_max.items() if n <= depth}
        walked = set(sl.walk_roots[depth].tolist())
        uncovered = {int(sl.roots[k + 2]) for k in range(3) if sl.slice_max_chars[k] > depth}
        if covered:
            assert walked == {int(sl.roots[1])} | uncovered  # the rest and the slices not covered
        else:
            assert walked == {int(sl.roots[0])}  # nothing covered: the whole trie, one walk


def _lexer_state(c, text: bytes):
    """(expected-set id, lexer state) of the one thread inside a lexeme after ``text``."""
    state = c.advance_bytes(c.initial_state(), text)
    assert state is not None
    (ps, q, _ws, _b), = [th for th in state if th[1] >= 0]
    c.compute_token_bits(state)
    return int(c._p_eset[c._parser_id(ps)]), q


def _depth(c, eid: int, q: int) -> int:
    return c._safe_depth(eid, q, c._no_block)


@pytest.mark.parametrize("lazy", [False, True])
def test_safe_depth_known_answers(lazy):
    voc = text_vocab()
    saved = grammar_compile._EAGER_LEXER_STATES
    if lazy:
        grammar_compile._EAGER_LEXER_STATES = 1
    try:
        cases = [
            ({"type": "string"}, b'"ab', voc.slices.max_chars),  # a loop: every depth
            ({"type": "string", "maxLength": 5}, b'"', 5),  # five more characters, then only the quote
            ({"type": "string", "maxLength": 5}, b'"ab', 3),
            ({"type": "string", "maxLength": 40}, b'"ab', voc.slices.max_chars),
            ({"type": "string", "pattern": "^[a-z]*$"}, b'"ab', 0),  # a space is safe text, not allowed
            ({"type": "integer"}, b"1", 0),
        ]
        for schema, prefix, want in cases:
            c = compile_grammar(schema_to_lark(schema), voc)
            assert c._lazy == lazy
            eid, q = _lexer_state(c, prefix)
            assert _depth(c, eid, q) == want, (schema, prefix)
            c._safe_steps = safe_byte_steps(None)  # every byte read: the lexer's classes change nothing
            assert _depth(c, eid, q) == want, (schema, prefix)
    finally:
        grammar_compile._EAGER_LEXER_STATES = saved


_SAFE = st.characters(min_codepoint=0x20, blacklist_characters='"\\', blacklist_categories=("Cs",))


@settings(max_examples=150, deadline=None)
@given(max_len=st.integers(0, 20), prefix=st.text(_SAFE, max_size=6), text=st.text(_SAFE, min_size=1, max_size=18),
       cut=st.integers(0, 3))
def test_safe_depth_is_sound(max_len, prefix, text, cut):
    """Whatever depth the kernel claims, every byte prefix of a safe string of that many characters
    keeps the lexer live: walking its bytes never dies."""
    c = _string_constraint(max_len)
    state = c.advance_bytes(c.initial_state(), b'"' + prefix.encode())
    if state is None:
        return
    (ps, q, _ws, _b), = state
    c.compute_token_bits(state)
    eid = int(c._p_eset[c._parser_id(ps)])
    depth = _depth(c, eid, q)
    take = text[:depth]
    data = take.encode()
    if take:
        data = data[: len(data) - cut % len(take[-1].encode())]  # maybe stop inside the last character
    if not data:
        return
    after = c.advance_bytes(state, data)
    assert after is not None, (max_len, prefix, data, depth)
    assert len(prefix) + len(take) <= max_len


def _reach_out():
    """The kernel's ``reached`` / ``n_reached`` outputs (unread here)."""
    return np.empty(64, np.int32), np.zeros(2, np.int64)


@functools.lru_cache(maxsize=None)
def _string_constraint(max_len: int):
    return compile_grammar(schema_to_lark({"type": "string", "maxLength": max_len}), text_vocab())


@pytest.mark.parametrize("classes", [None, "ascii"])
def test_depth_kernel_reports_missing_lazy_rows(classes):
    """Run on a table whose rows are unknown (-2), the kernel asks for the state's row; with byte
    classes it reads one byte per class and answers the same."""
    byte_class = None
    if classes == "ascii":
        byte_class = np.zeros(256, np.int32)
        byte_class[0x80:] = 1
    steps = safe_byte_steps(byte_class)
    trans = np.full((3, 256), -2, dtype=np.int32)
    live = np.ones(3, dtype=bool)
    ws_only = np.zeros(3, dtype=bool)
    missing = np.empty(27, np.int32)
    scratch = (np.zeros(24, np.int64), np.zeros(1, np.int64), np.empty(3, np.int32), np.empty(3, np.int32),
               np.empty(24, np.int32), np.empty(24, np.int32), missing)

    def depth(start: int = 1, max_chars: int = 4, max_set: int = 256) -> int | list[int]:
        """The depth, or the sorted states whose rows the kernel asked for."""
        d = safe_depth_kernel(trans, live, ws_only, start, max_chars, max_set, *steps, UTF8_NEXT, *scratch, *_reach_out())
        return d if d >= 0 else sorted(set(missing[: -2 - d].tolist()))

    assert depth() == [1]
    trans[1] = 2  # every byte from 1 to 2; 2 unknown
    assert depth() == [2]
    trans[2] = 2
    assert depth() == 4
    live[2] = False
    assert depth() == 0
    live[2] = True
    trans[2, 0x80:] = 0  # multi-byte characters lead to state 0, which has two more characters
    trans[0] = -2
    assert depth() == [0]
    trans[1, 0x80:] = 0  # level 0 reaches 2 and (through multi-byte characters) 0: 0 is reported
    assert depth() == [0]
    trans[1, 0x80:] = 2
    trans[0] = 1
    assert depth() == 4  # 1 -> 2 -> (0 -> 1 ...) loops
    trans[2, :0x80] = -1  # one character leads to 2 (ASCII) or past it; a second ASCII one dies
    assert depth() == 1
    trans[0, 0x80:] = -1  # a three-byte character now dies in its last byte (2 -> 0 -> dead)
    assert depth() == 0


def test_depth_kernel_reports_every_missing_row_of_a_level_at_once():
    """Two states of one level without rows: both are asked for in one answer; a dead byte in
    the same level answers the level's depth instead (unknown rows cannot raise it)."""
    byte_class = np.zeros(256, np.int32)
    byte_class[ord("a")] = 1
    byte_class[0x80:] = 2
    steps = safe_byte_steps(byte_class)
    trans = np.full((4, 256), -2, dtype=np.int32)
    trans[0] = 1
    trans[0, ord("a")] = 2
    trans[0, 0x80:] = 3  # multi-byte characters stay in 3, whose row is built
    trans[3] = 3
    live = np.ones(4, dtype=bool)
    ws_only = np.zeros(4, dtype=bool)
    missing = np.empty(36, np.int32)
    scratch = (np.zeros(32, np.int64), np.zeros(1, np.int64), np.empty(4, np.int32), np.empty(4, np.int32),
               np.empty(32, np.int32), np.empty(32, np.int32), missing)
    d = safe_depth_kernel(trans, live, ws_only, 0, 4, 256, *steps, UTF8_NEXT, *scratch, *_reach_out())
    assert d < 0 and sorted(set(missing[: -2 - d].tolist())) == [1, 2]  # level 1 holds 1, 2 and 3
    trans[2] = 3
    trans[2, ord("a")] = -1  # 2 dies on "a" at level 1: depth 1, whatever 1's unknown row holds
    assert safe_depth_kernel(trans, live, ws_only, 0, 4, 256, *steps, UTF8_NEXT, *scratch, *_reach_out()) == 1


def test_blocked_first_byte_gives_depth_zero():
    c = compile_grammar(schema_to_lark({"type": "string"}), text_vocab())
    eid, q = _lexer_state(c, b'"ab')
    blocked = np.zeros(256, dtype=bool)
    blocked[ord("x")] = True
    assert _depth(c, eid, q) == text_vocab().slices.max_chars
    assert c._safe_depth(eid, q, blocked) == 0


SCHEMAS = {
    "strings": {
        "type": "object",
        "properties": {
            "s": {"type": "string"},
            "short": {"type": "string", "maxLength": 6},
            "long": {"type": "string", "maxLength": 30},
            "word": {"type": "string", "pattern": "^[a-z ]+$"},
            "kind": {"enum": ["red", "green", "naïve café"]},
        },
        "additionalProperties": {"type": "string", "minLength": 2},
    },
    "array": {"type": "array", "items": {"anyOf": [{"type": "string", "maxLength": 12}, {"type": "integer"}]}},
}


def _ids(c, words: np.ndarray) -> list[int]:
    return [t for t in range(1, c.vocab.size) if words[t >> 5] >> np.uint32(t & 31) & 1]


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(SCHEMAS)), lazy=st.booleans(), rnd=st.randoms(use_true_random=False))
def test_sliced_masks_equal_the_reference_walk(name, lazy, rnd):
    c = _constraint(name, lazy)
    state = c.initial_state()
    for _ in range(rnd.randint(1, 60)):
        words = c.compute_token_bits(state)
        assert np.array_equal(words, c.reference_token_bits(state)), (name, lazy, state)
        ids = _ids(c, words)
        if not ids:
            break
        # prefer text tokens so the walk spends its time inside strings
        texty = [t for t in ids if safe_text_length(c.vocab.token_bytes(t)) > 1]
        state = c.advance_bytes(state, c.vocab.token_bytes(rnd.choice(texty if texty and rnd.random() < 0.7 else ids)))
        assert state is not None


@pytest.mark.parametrize("max_set", [None, 3])
def test_remembered_safe_reach_gives_the_kernels_depth_for_every_expected_set(max_set):
    """An eager lexer state's safe-text search whose answer did not depend on the expected set
    (full depth, or cut short where a level held more than ``max_set`` states) is kept (the states
    it read, by level, and that answer) and answers later expected sets without a search: the
    same depth as a fresh search, for every (expected set, lexer state) the masks met, over every
    schema of ``SCHEMAS``; the masks stay the reference walk's."""
    checked = 0
    depths = set()
    caps = set()
    for name in sorted(SCHEMAS):
        c = compile_grammar(schema_to_lark(SCHEMAS[name]), text_vocab())
        assert not c._lazy
        if max_set is not None:
            c._SAFE_DEPTH_MAX_SET_EAGER = max_set
        rnd = random.Random(name)
        for _ in range(8):  # masks along random walks: expected sets and lexer states to ask about
            state = c.initial_state()
            for _step in range(25):
                words = c.token_bits(state)
                if max_set is not None:
                    assert np.array_equal(words, c.reference_token_bits(state)), (name, state)
                ids = _ids(c, words)
                if not ids:
                    break
                state = c.advance_bytes(state, c.vocab.token_bytes(rnd.choice(ids)))
        caps.update(reach[2] for reach in c._safe_reach.values())
        qs = sorted(set(c._safe_reach) | set(rnd.sample(range(c.lexer.n_states), 30)))
        for eid in range(len(c._eset_ids)):
            for q in qs:
                kept = c._safe_reach.pop(q, None)
                fresh = c._safe_depth(eid, q, c._no_block)
                c._safe_reach.pop(q, None)
                if kept is not None:
                    c._safe_reach[q] = kept
                    assert c._safe_depth(eid, q, c._no_block) == fresh, (name, eid, q)
                    checked += 1
                    depths.add(fresh)
    assert checked >= 10 and len(depths) >= 2, (checked, depths)  # full depth and less
    if max_set is not None:
        assert min(caps) < c._slices.max_chars, caps  # searches cut short were kept too


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 40), max_size=12), min_size=1, max_size=8),
       st.lists(st.booleans(), min_size=41, max_size=41), st.lists(st.booleans(), min_size=41, max_size=41))
def test_kept_reach_kernels_match_numpy(levels_states, live, ws):
    """``safe_reach_kernel`` keeps each state of a ``reached`` list once with its first level, and
    ``reach_depth_kernel`` answers the first level holding a dead or whitespace-only state: both as
    the numpy spelling (cumsum of the level marks, unique's first index, masked min)."""
    reached = []
    for level, states in enumerate(levels_states):
        reached += [-1 - level] + states
    reached = np.array(reached, np.int32)
    first = np.full(41, -1, np.int64)
    states, levels = safe_reach_kernel(reached, reached.shape[0], first)
    assert (first == -1).all()  # scratch restored
    marks = reached < 0
    level = np.cumsum(marks) - 1
    ref_states, idx = np.unique(reached[~marks], return_index=True)
    order = np.argsort(states)
    assert states[order].tolist() == ref_states.tolist()
    assert levels[order].tolist() == level[~marks][idx].tolist()
    live_ok, ws_only = np.array(live), np.array(ws)
    bad = ~live_ok[ref_states] | ws_only[ref_states]
    want = int(level[~marks][idx][bad].min()) if bad.any() else 99
    assert reach_depth_kernel(live_ok, ws_only, states, levels, 99) == want


@functools.lru_cache(maxsize=None)
def _constraint(name: str, lazy: bool):
    saved = grammar_compile._EAGER_LEXER_STATES
    if lazy:
        grammar_compile._EAGER_LEXER_STATES = 1
    try:
        c = compile_grammar(schema_to_lark(SCHEMAS[name]), text_vocab())
    finally:
        grammar_compile._EAGER_LEXER_STATES = saved
    assert c._lazy == lazy
    return c


# MaskBench Github_trivial o35155 (abridged to 8 of its 14 branches): unanchored patterns in every
# branch make the value string's lazy lexer track partial matches of all of them at once, and the
# safe-text search over *every* 16-character text created states without end (the session-11
# whole-folder run timed out on it). The search now stops at 256 states per level and 512 new
# lazy states per call; the masks stay exact.
_IDS = {
    "INSPIRE BAI": r"(\w+\.)+\d+", "ORCID": r"\d{4}-\d{4}-\d{4}-\d{3}[0-9Xx]", "ARXIV": r"\w+_(\w_)?\d+",
    "CERN": r"CERN-\d+", "GOOGLESCHOLAR": r"(\w|-){12}", "VIAF": r"\d{7,9}", "SCOPUS": r"\d{10,11}",
    "WIKIPEDIA": r"\w+",
}
UNANCHORED_IDS = {
    "anyOf": [{"properties": {"type": {"enum": [k]}, "value": {"type": "string", "pattern": p}}, "type": "object"}
              for k, p in _IDS.items()],
    "required": ["type", "value"],
}


def test_safe_text_search_is_bounded_on_a_lexer_that_blows_up():
    from constrain.limits import Limits
    from constrain.schema import compile_json_schema

    c = compile_json_schema(UNANCHORED_IDS, text_vocab(), limits=Limits(max_lazy_lexer_states=4000))
    gc = c
    while not hasattr(gc, "_safe_depth"):
        gc = gc.inner
    assert gc._lazy
    state = c.initial_state()
    for ch in '{"type": "ORCID", "value": "1234-5678-9012-345X"}':
        words = c.compute_token_bits(state)
        assert np.array_equal(words, gc.reference_token_bits(state)) if c is gc else True
        state = c.advance_bytes(state, ch.encode())
        assert state is not None
    assert c.is_accepting(state)
    assert gc.lexer.n_states <= 4000  # without the bounds: LimitExceededError long before the end


def test_searches_past_their_bound_shrink_the_next_ones_bound(monkeypatch):
    """A lazy safe-text search that creates more states than the constraint's bound answers 0 and
    divides the bound for the next searches (down to a floor): the masks stay the reference
    walk's. A counting string lexer creates a state per character, so a bound of 8 is passed."""
    monkeypatch.setattr(GrammarConstraint, "_SAFE_DEPTH_MAX_NEW_STATES", 8)
    monkeypatch.setattr(GrammarConstraint, "_SAFE_DEPTH_MIN_NEW_STATES", 1)
    c = compile_grammar(schema_to_lark({"type": "string", "maxLength": 300}), text_vocab())
    assert c._lazy
    rnd = random.Random(4)
    state = c.initial_state()
    for _ in range(12):
        words = c.compute_token_bits(state)
        assert np.array_equal(words, c.reference_token_bits(state))
        ids = [t for t in _ids(c, words) if t != 0]
        state = c.advance_bytes(state, c.vocab.token_bytes(rnd.choice(ids)))
    assert c._search_budget < 8, c._search_budget
