"""Grammar / JSON schema ∩ DFA constraints (keywords, regex): exact masks, never a dead end."""

from __future__ import annotations

import json
import random
import re

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from constrain import compile_grammar, compile_json_schema, compile_regex
from constrain.constraints.combine import (
    IntersectConstraint,
    LazyIntersectionWarning,
    LiveIntersectConstraint,
    intersect,
)
from constrain.constraints.keywords import compile_keywords
from constrain.constraints.length import LengthConstraint, max_length
from constrain.errors import InputError, LimitExceededError, UnsupportedFeatureError
from constrain.grammar.completion import INF, GrammarCompletion
from constrain.limits import Limits
from tests.constraints._util import accepts_ids, assert_same_masks, mask_bits, random_walk, toy_vocab
from tests.strategies import random_segmentation

VOCAB = toy_vocab(["waterproof", "water", "proof", " dog", "dogs"])

# grammars whose languages are regular, with the equivalent regex: the live product must have
# exactly the masks of the materialized regex product
REGULAR = [
    ('start: WORD (" " WORD)*\nWORD: /[a-z]+/\n', "[a-z]+( [a-z]+)*"),
    ('start: item ("," item)*\n?item: NUM | WORD\nNUM: /[0-9]{1,3}/\nWORD: /[a-d]+/\n',
     "([0-9]{1,3}|[a-d]+)(,([0-9]{1,3}|[a-d]+))*"),
    ('start: "<" inner ">"\ninner: WORD | WORD "," inner\nWORD: /[a-z]{1,4}/\n', "<[a-z]{1,4}(,[a-z]{1,4})*>"),
]
_GRAMMARS: dict[str, object] = {}


def grammar(text: str):
    g = _GRAMMARS.get(text)
    if g is None:
        g = _GRAMMARS[text] = compile_grammar(text, VOCAB)
    return g


bits = mask_bits


@given(st.sampled_from(REGULAR),
       st.lists(st.sampled_from(["dog", "ab", "c", "12", "x,y", "do"]), min_size=1, max_size=2, unique=True),
       st.lists(st.sampled_from(["cat", "b a", "9", "dd"]), max_size=1),
       st.randoms(use_true_random=False))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_live_masks_equal_materialized_regex_product(pair, inc, exc, rng):
    text, pattern = pair
    kw = compile_keywords(inc, exc, vocab=VOCAB)
    try:
        want = intersect(compile_regex(pattern, VOCAB), kw)
    except InputError:
        with pytest.raises(InputError):
            intersect(grammar(text), kw)
        return
    live = intersect(grammar(text), kw)
    assert isinstance(live, LiveIntersectConstraint)
    # walk the materialized product (it never strands), comparing masks and acceptance at every step
    prefer = {t for t in range(VOCAB.size) if VOCAB.token_bytes(t) and any(
        VOCAB.token_bytes(t) in p.encode() for p in inc)}
    _, ids, _ = random_walk(want, rng, max_steps=40, eos_bias=0.1, prefer=prefer)
    s_l, s_w = assert_same_masks(live, want, ids)
    # a token the regex product refuses is refused by the live product too, in advance_token as well
    for t in rng.sample(range(1, VOCAB.size), 40):
        assert (live.advance_token(s_l, t) is None) == (want.advance_token(s_w, t) is None)


def _bfs_cost(lazy, state, max_bytes: int) -> int:
    """Shortest byte completion by brute force over the lazy (unpruned) product."""
    frontier, seen = [state], {state}
    for d in range(max_bytes + 1):
        if any(lazy.is_accepting(s) for s in frontier):
            return d
        nxt = []
        for s in frontier:
            for b in range(256):
                s2 = lazy.advance_bytes(s, bytes((b,)))
                if s2 is not None and s2 not in seen:
                    seen.add(s2)
                    nxt.append(s2)
        frontier = nxt
    return INF


@pytest.mark.parametrize("text,prefix,inc", [
    (REGULAR[0][0], b"ab c", ["dog"]),
    (REGULAR[1][0], b"12,a", ["x,y", "9"]),
    (REGULAR[2][0], b"<ab,", ["dd"]),
])
def test_completion_cost_equals_brute_force(text, prefix, inc):
    g = grammar(text)
    kw = compile_keywords(inc, vocab=VOCAB)
    lazy = intersect(g, kw, materialize="never")
    comp = GrammarCompletion(g, "bytes", dfa=kw.dfa)
    state = lazy.initial_state()
    for i in range(len(prefix) + 1):
        s = lazy.advance_bytes(state, prefix[:i])
        assert s is not None
        want = _bfs_cost(lazy, s, 8)
        got = comp.cost(s[0], comp.flag(s[1]))
        assert got == want or (want == INF and got > 8), (prefix[:i], got, want)


PRODUCT = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "description": {"type": "string", "maxLength": 14},
        "price": {"type": "number"},
    },
    "required": ["name", "description"],
    "additionalProperties": False,
}


def test_schema_cannot_close_before_the_keyword():
    """The dead end of the lazy product (the object closes before "waterproof" was written) is masked."""
    g = compile_json_schema(PRODUCT, VOCAB)
    kw = compile_keywords(["waterproof"], vocab=VOCAB)
    c = intersect(g, kw)
    assert isinstance(c, LiveIntersectConstraint)
    s = c.advance_bytes(c.initial_state(), b'{"name":"Boot","description":"')
    assert s is not None
    # 14 characters fit "waterproof" only if at most 4 others come first
    s4 = c.advance_bytes(s, b"abcd")
    assert s4 is not None and c.advance_bytes(s4, b"e") is None
    assert c.advance_bytes(s4, b"waterproof") is not None
    # the lazy product allows the same bytes, and then strands
    lazy = intersect(g, kw, materialize="never")
    s_lazy = lazy.advance_bytes(lazy.initial_state(), b'{"name":"Boot","description":"abcde","price":1}')
    assert s_lazy is not None and not lazy.is_accepting(s_lazy)  # the document is closed: a dead end
    assert not bits(lazy, s_lazy)[[t for t in range(VOCAB.size) if (VOCAB.token_bytes(t) or b"").strip()]].any()
    assert c.advance_bytes(c.initial_state(), b'{"name":"Boot","description":"abcde"') is None
    # after the description closed without the word, the name is the only other string: it is closed too
    s_closed = c.advance_bytes(c.initial_state(), b'{"name":"Boot","description":"abc"')
    assert s_closed is None
    # the name can carry the word instead
    ok = c.advance_bytes(c.initial_state(), b'{"name":"waterproof","description":"abc"}')
    assert ok is not None and c.is_accepting(ok)
    assert c.shortest_completion(c.initial_state()) == len(b'{"name":"waterproof","description":""}')


@given(st.sampled_from([["waterproof"], ["dog", "ab"], ["12"]]), st.randoms(use_true_random=False))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_schema_walks_never_strand_and_validate(inc, rng):
    c = intersect(compile_json_schema(PRODUCT, VOCAB), compile_keywords(inc, vocab=VOCAB))
    prefer = {t for t in range(VOCAB.size) if VOCAB.token_bytes(t) and any(
        VOCAB.token_bytes(t) in p.encode() for p in inc)}
    for _ in range(3):
        text, _, ended = random_walk(c, rng, max_steps=200, eos_bias=0.5, prefer=prefer)  # asserts non-empty masks
        if ended:
            doc = json.loads(text)
            jsonschema.validate(doc, PRODUCT)
            assert all(p in text.decode() for p in inc)


def test_valid_documents_accepted_under_random_tokenizations():
    c = intersect(compile_json_schema(PRODUCT, VOCAB), compile_keywords(["waterproof"], vocab=VOCAB))
    rng = random.Random(3)
    good = json.dumps({"name": "Boot", "description": "waterproof!", "price": 9.5}).encode()
    bad = json.dumps({"name": "Boot", "description": "dry", "price": 9.5}).encode()
    for _ in range(5):
        assert accepts_ids(c, random_segmentation(good, VOCAB, rng))
        assert not accepts_ids(c, random_segmentation(bad, VOCAB, rng))


def test_disjoint_languages_raise():
    g = compile_json_schema({"type": "string", "maxLength": 5}, VOCAB)
    with pytest.raises(InputError):
        intersect(g, compile_keywords(["waterproof"], vocab=VOCAB))
    with pytest.raises(InputError):
        intersect(grammar(REGULAR[0][0]), compile_regex("[0-9]+", VOCAB))


def test_regex_part_and_several_dfa_parts():
    """Several DFA parts are materialized into one DFA before the live product."""
    g = grammar(REGULAR[0][0])
    c = intersect(g, compile_keywords(["dog"], vocab=VOCAB), compile_regex("[a-z ]{0,9}", VOCAB))
    assert isinstance(c, LiveIntersectConstraint)
    rng = random.Random(4)
    for _ in range(20):
        text, _, ended = random_walk(c, rng, max_steps=30, eos_bias=0.2)
        assert ended  # at most 9 bytes: every walk ends, none strands
        s = text.decode()
        assert re.fullmatch("[a-z]+( [a-z]+)*", s) and "dog" in s and len(s) <= 9


def test_length_bounds_over_a_live_intersection():
    g = compile_json_schema(PRODUCT, VOCAB)
    kw = compile_keywords(["waterproof"], vocab=VOCAB)
    least = intersect(g, kw).shortest_completion(intersect(g, kw).initial_state())
    # the bound pulled out of the intersection: the budget accounts for the keyword as well
    c = intersect(max_length(g, max_chars=least + 3), kw)
    assert isinstance(c, LengthConstraint) and isinstance(c.inner, LiveIntersectConstraint)
    rng = random.Random(6)
    for _ in range(20):
        text, _, ended = random_walk(c, rng, max_steps=120, eos_bias=0.05)
        assert ended and len(text.decode()) <= least + 3 and "waterproof" in text.decode()
        jsonschema.validate(json.loads(text), PRODUCT)
    with pytest.raises(InputError):
        max_length(intersect(g, kw), max_chars=least - 1)
    t = max_length(intersect(g, kw), max_tokens=least + 2)
    for _ in range(10):
        text, ids, ended = random_walk(t, rng, max_steps=120, eos_bias=0.05)
        assert ended and len(ids) <= least + 2 and "waterproof" in text.decode()


def test_limits_materialize_and_warning():
    g = compile_json_schema(PRODUCT, VOCAB)
    kw = compile_keywords(["waterproof"], vocab=VOCAB)
    tiny = Limits(max_completion_table_entries=1000)
    with pytest.raises(LimitExceededError, match="max_completion_table_entries"):
        intersect(g, kw, materialize="always", limits=tiny)
    with pytest.warns(LazyIntersectionWarning):
        lazy = intersect(g, kw, limits=tiny)
    assert type(lazy) is IntersectConstraint
    # two grammars: no exact form exists in general
    with pytest.raises(UnsupportedFeatureError):
        intersect(g, grammar(REGULAR[0][0]), materialize="always")
    assert type(intersect(g, compile_json_schema({"type": "object"}, VOCAB))) is IntersectConstraint
    # the completion tables of a live product refuse witness(): it is defined without a DFA only
    with pytest.raises(ValueError):
        GrammarCompletion(g, "bytes", dfa=kw.dfa).witness(g.initial_state())


@pytest.mark.slow
def test_generate_schema_with_keyword_within_budget(default_model):
    """SmolLM2: a product record whose text must mention "waterproof", closed inside the budget."""
    from constrain.generate import generate_ids
    from constrain.integrations.transformers import model_vocab_size, vocabulary_for

    model, tok = default_model
    vocab = vocabulary_for(tok, model_vocab_size(model, tok))
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 30},
                                               "description": {"type": "string", "maxLength": 60}},
              "required": ["name", "description"], "additionalProperties": False}
    c = intersect(compile_json_schema(schema, vocab), compile_keywords(["waterproof"], vocab=vocab))
    assert isinstance(c, LiveIntersectConstraint)
    r = generate_ids(model, tok, "Describe a pair of hiking boots as a product record.", constraint=c,
                     max_new_tokens=40, fit_budget=True)
    doc = json.loads(r.text)
    jsonschema.validate(doc, schema)
    assert "waterproof" in r.text and len(r.token_ids) <= 40


SCHEMAS = [
    PRODUCT,
    {"type": "array", "items": {"type": "string", "maxLength": 8}, "minItems": 1, "maxItems": 3},
    {"type": "object", "properties": {"tags": {"type": "array", "items": {"enum": ["dog", "cat", "ab"]}},
                                      "note": {"type": "string"}}, "required": ["tags"]},
]
_SCHEMA_GRAMMARS: dict[int, object] = {}


@given(st.integers(0, len(SCHEMAS) - 1),
       st.lists(st.sampled_from(["dog", "ab", "proof", "12", "é"]), min_size=1, max_size=2, unique=True),
       st.lists(st.sampled_from(["cat", "zz"]), max_size=1),
       st.sampled_from(["max_chars", "max_tokens", None]), st.integers(0, 12),
       st.randoms(use_true_random=False))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_output_satisfies_schema_keywords_and_length(si, inc, exc, unit, extra, rng):
    """Random schema x keyword set x length bound: every masked walk ends, and its output satisfies all three."""
    g = _SCHEMA_GRAMMARS.get(si)
    if g is None:
        g = _SCHEMA_GRAMMARS[si] = compile_json_schema(SCHEMAS[si], VOCAB)
    try:
        live = intersect(g, compile_keywords(inc, exc, vocab=VOCAB))
    except InputError:  # e.g. an enum-only array cannot mention "proof"
        return
    bound = None
    c = live
    if unit is not None:
        bound = live.shortest_completion(live.initial_state()) + extra  # bytes: chars and tokens fit too
        c = max_length(live, **{unit: bound})
    prefer = {t for t in range(VOCAB.size) if VOCAB.token_bytes(t) and any(
        VOCAB.token_bytes(t) in p.encode() for p in inc)}
    for _ in range(2):
        text, ids, ended = random_walk(c, rng, max_steps=150, eos_bias=0.3, prefer=prefer)
        if not ended:
            assert unit is None  # unbounded strings may grow for 150 steps; never stranded
            continue
        s = text.decode()
        jsonschema.validate(json.loads(s), SCHEMAS[si])
        assert all(p in s for p in inc) and not any(e in s for e in exc)
        if unit == "max_chars":
            assert len(s) <= bound
        elif unit == "max_tokens":
            assert len(ids) <= bound


def test_big_catalog_part_is_refused_before_any_table_is_built():
    """A choice automaton of many states makes k^2 too big: the limit is checked up front, then lazy."""
    from constrain.constraints.choice import compile_choice

    g = grammar(REGULAR[0][0])
    rng = random.Random(0)
    words = sorted({"".join(rng.choice("abcdefgh") for _ in range(rng.randint(3, 9))) for _ in range(500)})
    ch = compile_choice(words, VOCAB)
    assert ch.dfa.n_states ** 2 > 10_000
    small = Limits(max_completion_table_entries=10_000)
    with pytest.raises(LimitExceededError, match="max_completion_table_entries"):
        intersect(g, ch, materialize="always", limits=small)
    with pytest.warns(LazyIntersectionWarning):
        assert type(intersect(g, ch, limits=small)) is IntersectConstraint
    live = intersect(g, compile_choice(["dog", "cat"], VOCAB))  # a small sparse / dense choice: exact
    assert isinstance(live, LiveIntersectConstraint) and live.advance_bytes(live.initial_state(), b"do") is not None
