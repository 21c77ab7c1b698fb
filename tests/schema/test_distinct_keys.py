"""``property_order="any"`` with distinct keys enforced at run time (constrain.schema.distinct_keys).

The grammar counts members (linear in the number of properties, not 2**n subsets); the wrapper
refuses a token that closes a key its object already has, and one that leaves a key no fresh key
can complete. Checked against ``jsonschema``: every order of a valid document's keys is accepted
under random tokenizations (the mask agreeing with ``accept_token`` at every step), repeated keys
and missing required ones are refused, and masked random walks that favour repeating keys never
stall and end in valid documents.
"""

from __future__ import annotations

import functools
import json
import random

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constrain.errors import LimitExceededError
from constrain.kernels.bitmask import allocate_bitmask, allowed_token_ids
from constrain.limits import Limits
from constrain.schema import compile_json_schema, schema_to_lark
from constrain.schema.distinct_keys import DistinctKeysConstraint
from constrain.vocab.vocabulary import Vocabulary

from ._util import masked_walk, run_tokens, segment_tokens

EOS = 0
MULTI = ['{"', '":', '",', '": ', '"}', ', "', '"a"', '"a":', '"ab"', '"b": ', "name", '"name": ', "true", "false",
         "null", "  ", '", "', '1, "']

CLOSED = {"type": "object", "properties": {"a": {"type": "integer"}, "ab": {"type": "string"}, "b": {"type": "boolean"},
                                           "name": {"type": "string", "maxLength": 3}, "nab": {"type": "null"}},
          "required": ["b", "a"], "additionalProperties": False}
OPEN = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "boolean"}},
        "required": ["b"], "additionalProperties": {"type": "integer"}}
COUNTED = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
           "minProperties": 2, "maxProperties": 3, "additionalProperties": {"type": "null"}}
DEPENDENT = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"},
                                              "c": {"type": "integer"}, "d": {"type": "integer"}},
             "dependentRequired": {"d": ["a"]}, "additionalProperties": False}
NESTED = {"type": "object", "properties": {"x": {"type": "object", "properties": {"a": {"type": "integer"},
                                                                                  "b": {"type": "integer"}},
                                                 "required": ["a"], "additionalProperties": False},
                                           "a": {"type": "array", "items": {"$ref": "#/properties/x"}}},
          "required": ["x"], "additionalProperties": False}

# 'not' of objects without additional properties: at least one member outside the declared names
NOT_CLOSED = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
              "oneOf": [{"properties": {"a": {}}, "additionalProperties": False},
                        {"properties": {"b": {}}, "additionalProperties": False}]}

CASES = [
    (CLOSED, [{"a": 1, "b": True}, {"name": "ab", "b": False, "nab": None, "a": 2, "ab": ""}],
     ['{"a": 1, "a": 2, "b": true}', '{"b": true}', '{"a": 1, "b": true, "c": 1}', '{"b": true, "a": 1, "b": true}',
      '{"name": "", "a": 1, "b": true, "name"', '{"a": 1, "b": false, "ab": "", "name": "", "nab": null,']),
    (OPEN, [{"b": True}, {"z": 1, "b": False, "a": 3, "y": 2}],
     ['{"b": true, "z": 1, "z": 2}', '{"z": 1, "b": true, "b": false}', '{"a": 1}', '{"b": true, "\\u007a": 1, "z": 1}']),
    (COUNTED, [{"a": 1, "b": 2}, {"x": None, "a": 1}, {"x": None, "y": None, "b": 1}],
     ['{"a": 1}', '{"x": null, "x": null}', '{"a": 1, "b": 2, "x": null, "y": null}']),
    (DEPENDENT, [{}, {"d": 1, "a": 2}, {"a": 1, "c": 3, "d": 0}, {"b": 1}],
     ['{"d": 1}', '{"d": 1, "b": 2}', '{"a": 1, "a": 1}']),
    (NOT_CLOSED, [{"a": 1}, {"b": 2}], ['{}', '{"a": 1, "b": 1}', '{"b": 1, "a": 1}', '{"c": 1}']),
    (NESTED, [{"x": {"b": 1, "a": 2}, "a": [{"a": 1}, {"b": 2, "a": 3}]}, {"a": [], "x": {"a": 1}}],
     ['{"x": {"a": 1, "a": 2}}', '{"x": {"a": 1}, "a": [{"a": 1, "b": 1, "b": 2}]}', '{"x": {"b": 1}}']),
]


@functools.lru_cache(maxsize=None)
def toy_vocab() -> Vocabulary:
    return Vocabulary.from_tokens([None] + [bytes([b]) for b in range(256)] + [t.encode() for t in MULTI],
                                  eos_token_ids=[EOS])


@functools.lru_cache(maxsize=None)
def compiled(case: int):
    return compile_json_schema(CASES[case][0], toy_vocab(), property_order="any")


def _shuffled(doc, rnd: random.Random):
    if isinstance(doc, dict):
        items = list(doc.items())
        rnd.shuffle(items)
        return {k: _shuffled(v, rnd) for k, v in items}
    if isinstance(doc, list):
        return [_shuffled(v, rnd) for v in doc]
    return doc


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("seed", range(3))
def test_any_order_accepted_repeats_and_missing_keys_refused(case, seed):
    schema, valid, invalid = CASES[case]
    c = compiled(case)
    assert isinstance(c, DistinctKeysConstraint)
    vocab = toy_vocab()
    rnd = random.Random(seed)
    for doc in valid:
        for _ in range(3):
            text = json.dumps(_shuffled(doc, rnd))
            jsonschema.validate(json.loads(text), schema)
            assert run_tokens(c, segment_tokens(vocab, text.encode(), rnd, max_len=10), EOS) == "accept", text
    for text in invalid:
        assert run_tokens(c, segment_tokens(vocab, text.encode(), rnd, max_len=10), EOS) != "accept", text


@settings(max_examples=60, deadline=None)
@given(case=st.integers(0, len(CASES) - 1), seed=st.integers(0, 2**32 - 1))
def test_masked_walks_never_stall_and_end_valid(case, seed):
    """Walks that favour tokens writing keys already there ('"a":', 'name', ...) are steered to
    fresh keys, never left with an empty mask, and end in documents jsonschema accepts."""
    schema = CASES[case][0]
    c = compiled(case)
    rnd = random.Random(seed)
    favoured = {b'"a"', b'"a":', b'"ab"', b'"b": ', b"name", b'"name": ', b'", "', b", ", b'{"', b'"', b"a", b"b",
                b"n", b":", b"1", b"true", b"null", b"}", b"]", b"[", b","}
    walk = masked_walk(c, rnd, favoured, EOS)
    if walk is None:
        return  # a long walk: it never stalled, which was checked at every step
    out, m = walk
    if m.is_accepting():
        doc = json.loads(out)
        jsonschema.validate(doc, schema)
        text = out.decode()
        # no key was written twice (json.loads would have kept only the last one)
        pairs = json.loads(text, object_pairs_hook=lambda kv: [k for k, _v in kv])

        def _dups(x):
            if isinstance(x, list) and x and all(isinstance(k, str) for k in x):
                assert len(set(x)) == len(x), text

        _dups(pairs)


def test_counting_grammar_is_linear_where_subsets_are_exponential():
    props = {f"p{i:02d}": {"type": "integer"} for i in range(40)}
    # 14 required: too many to track one by one (2**14 subsets), so they are counted as well
    schema = {"type": "object", "properties": props, "required": [f"p{i:02d}" for i in range(0, 40, 3)],
              "additionalProperties": False}
    with pytest.raises(LimitExceededError) as info:
        schema_to_lark(schema, property_order="any")  # Lark text alone: 2**n subsets, refused
    assert info.value.field == "max_schema_any_order_properties"
    c = compile_json_schema(schema, toy_vocab(), property_order="any")
    rnd = random.Random(3)
    doc = {k: i for i, k in enumerate(reversed(list(props)))}
    text = json.dumps(doc)
    assert run_tokens(c, segment_tokens(toy_vocab(), text.encode(), rnd), EOS) == "accept"
    missing = json.dumps({k: v for k, v in doc.items() if k != "p18"})
    assert run_tokens(c, segment_tokens(toy_vocab(), missing.encode(), rnd), EOS) != "accept"


def test_dependencies_tracked_in_any_order_are_bounded():
    props = {f"p{i}": {} for i in range(20)}
    deps = {f"p{i}": [f"p{i + 1}"] for i in range(0, 18, 2)}  # 18 properties a dependency names
    schema = {"type": "object", "properties": props, "dependentRequired": deps}
    with pytest.raises(LimitExceededError):
        compile_json_schema(schema, toy_vocab(), property_order="any", limits=Limits(max_schema_any_order_properties=8))


def test_schema_order_is_unchanged_by_default():
    c = compile_json_schema(CLOSED, toy_vocab())
    assert not isinstance(c, DistinctKeysConstraint)
    rnd = random.Random(0)
    assert run_tokens(c, segment_tokens(toy_vocab(), b'{"a": 1, "b": true}', rnd), EOS) == "accept"
    assert run_tokens(c, segment_tokens(toy_vocab(), b'{"b": true, "a": 1}', rnd), EOS) != "accept"


def test_length_bounds_compose_with_distinct_keys():
    import constrain

    vocab = toy_vocab()
    c = constrain.max_length(compiled(0), max_tokens=30)
    assert isinstance(c, DistinctKeysConstraint)
    rnd = random.Random(2)
    text = json.dumps({"b": True, "a": 1})
    assert run_tokens(c, segment_tokens(vocab, text.encode(), rnd, max_len=10), EOS) == "accept"
    assert run_tokens(c, segment_tokens(vocab, b'{"a": 1, "a": 1, "b": true}', rnd), EOS) != "accept"
    # 30 one-byte tokens cannot hold this document: the bound is on the grammar under the check
    long = json.dumps({"b": True, "a": 1, "name": "abc", "ab": "xyzxyz", "nab": None})
    assert run_tokens(c, [ch + 1 for ch in long.encode()], EOS) != "accept"  # token b+1 is byte b


def test_few_required_properties_are_tracked_so_a_length_bound_plans_with_them():
    """product.json's shape: with the required ones only counted, the grammar's shortest completion
    after '{"p": 1, ' would repeat "p" (refused at run time), so a tight length bound would let the
    output spend its budget on "d" and then leave nothing that fits. Tracked one by one, the plan
    has "sku" in it: walks that favour "d" never meet an empty mask and end valid."""
    import constrain

    schema = {"type": "object", "properties": {"sku": {"type": "string", "pattern": "^[A-Z]{3}$"},
                                               "p": {"type": "integer"}, "d": {"type": "string"}},
              "required": ["sku", "p"], "additionalProperties": False}
    vocab = toy_vocab()
    prefix = b'{"p": 1, '
    budget = len(prefix) + len(b'"d":"",') + len(b'"p":1}')  # room for the repeat, not for "sku" after "d"
    c = constrain.max_length(compile_json_schema(schema, vocab, property_order="any"), max_tokens=budget)
    bm = allocate_bitmask(1, vocab.size)
    for seed in range(20):
        rnd = random.Random(seed)
        m = c.matcher()
        for ch in prefix:
            assert m.accept_token(ch + 1)
        out = prefix
        while True:
            m.fill_bitmask(bm, 0)
            allowed = allowed_token_ids(bm[0], vocab.size).tolist()
            assert allowed, f"stalled after {out!r}"
            if allowed == [EOS]:
                break
            pool = [t for t in allowed if t != EOS and vocab.token_bytes(t) in (b'"', b"d", b":", b",", b'":')]
            t = rnd.choice(pool if pool and rnd.random() < 0.8 else [t for t in allowed if t != EOS])
            assert m.accept_token(t)
            out += vocab.token_bytes(t)
        jsonschema.validate(json.loads(out), schema)


@pytest.mark.parametrize("prefix,repeat,fresh", [
    (b"", b'{"a":1,"a":2}', b'{"a":1,"b":2}'),  # one token writes a key twice
    # three quotes: the end of the first key, then the same key whole (the candidates used to be
    # the tokens with four quotes or more while no key was written yet)
    (b'{"', b'a":1,"a"', b'a":1,"b"'),
])
def test_a_token_that_writes_a_key_twice_by_itself_is_masked(prefix, repeat, fresh):
    vocab = Vocabulary.from_tokens([None] + [bytes([b]) for b in range(256)] + [repeat, fresh], eos_token_ids=[EOS])
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}
    c = compile_json_schema(schema, vocab, property_order="any")
    m = c.matcher()
    assert all(m.accept_token(b + 1) for b in prefix)  # single-byte token ids are byte + 1
    bm = allocate_bitmask(1, vocab.size)
    m.fill_bitmask(bm, 0)
    allowed = set(allowed_token_ids(bm[0], vocab.size).tolist())
    assert 257 not in allowed and 258 in allowed  # the repeat is masked, the other one is not
    assert not m.accept_token(257) and m.accept_token(258)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["a", "ab", "b", "name", "nab", "x"]), min_size=1, max_size=3, unique=True),
       st.sampled_from(["", "a", "n", "na"]), st.integers(0, 2))
def test_candidates_cover_every_refusal(keys, prefix, mode):
    """The indexed candidate set holds every token the full scan refuses, and every one that leaves
    a key which may be stranded, in objects with keys written, inside and outside a key."""
    from constrain.schema.distinct_keys import _Duplicate, _needs_search, _scan

    vocab = Vocabulary.from_tokens([None] + [bytes([b]) for b in range(256)] + [t.encode() for t in MULTI]
                                   + [b'a":1,"a"', b'b", "', b'"x":', b'", "na'], eos_token_ids=[EOS])
    c = compile_json_schema(OPEN, vocab, property_order="any")
    body = ", ".join(f'"{k}": 1' for k in keys)
    text = {0: "{" + body + ", ", 1: "{" + body + ', "' + prefix, 2: "{" + body + ', "zz": "v'}[mode]
    state = c._scan_start
    state = _scan(state, text.encode())
    cands = set(c._candidates(state).tolist())
    for t in range(1, vocab.size):
        data = vocab.token_bytes(t)
        try:
            after = _scan(state, data)
            search = _needs_search(after)
        except _Duplicate:
            assert t in cands, (text, data)
            continue
        except ValueError:  # not JSON (a raw control character in a key): the grammar refuses it
            continue
        # a key left open can be stranded only if its bytes so far start an earlier key's spelling
        # (or hold an escape); other searches find a fresh completion at the first byte
        if search and (b"\\" in after[2] or any(json.dumps(k).encode()[1:-1].startswith(after[2]) for k in keys)):
            assert t in cands, (text, data)


def test_liveness_answers_depend_on_the_grammar_state_not_only_the_scanner():
    """Two array items reach the same scanner state (an object holding key "a", a key "a" being
    written) in different grammar states: in the first a fresh "ab" can follow, in the second only
    "a" or "b" can be a key, so the key "a..." is stranded there and must be refused. (The liveness
    search is memoized; keyed by the scanner state alone, the first answer leaked into the second.)"""
    first = {"type": "object", "properties": {"a": {"type": "integer"}, "ab": {"type": "integer"}},
             "additionalProperties": False}
    second = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
              "additionalProperties": False}
    schema = {"type": "array", "prefixItems": [first, second], "items": False}
    vocab = toy_vocab()
    c = compile_json_schema(schema, vocab, property_order="any")
    assert isinstance(c, DistinctKeysConstraint)
    a = [t for t in range(1, vocab.size) if vocab.token_bytes(t) == b"a"][0]
    state = c.advance_bytes(c.initial_state(), b'[{"a":1,"')
    assert state is not None
    assert c.token_bits(state)[a >> 5] >> (a & 31) & 1  # "ab" is still fresh in the first item
    state = c.advance_bytes(state, b'ab":2},{"a":1,"')
    assert state is not None
    assert not c.token_bits(state)[a >> 5] >> (a & 31) & 1  # only "a" starts with "a" here: stranded
    assert c.advance_bytes(state, b'a') is None
    assert c.advance_bytes(state, b'b":2}]') is not None
    for text in ('[{"a":1,"ab":2},{"a":1,"b":2}]', '[{"ab":1},{"b":2,"a":1}]'):
        assert jsonschema.Draft202012Validator(schema).is_valid(json.loads(text))
        assert c.advance_bytes(c.initial_state(), text.encode()) is not None


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"Z", b" ", b"\xc3\xa9", b"\xc3", b"\xe6\x97", b"\xf0\x9f\x99\x82", b"\\",
                                 b"\\u00", b"\\ud83d", b"\\n", b"\x01", b"\xed\xa0\x80", b"\x80", b"0"]),
                max_size=6).map(b"".join))
def test_plain_key_text_is_what_json_decoding_gives(raw):
    """The plain-text shortcut decodes a key (whole or a prefix) exactly as the JSON decoders do,
    and raises where they raise."""
    from constrain.schema.distinct_keys import _key_text, _prefix_text
    from constrain.schema.unique import _split_partial

    def outcome(f, *args):
        try:
            return ("ok", f(*args))
        except ValueError:
            return ("error", None)

    assert outcome(_key_text, raw) == outcome(lambda r: json.loads(b'"' + r + b'"'), raw)
    assert outcome(_prefix_text, raw) == outcome(lambda r: _split_partial(r)[0], raw)


@pytest.mark.parametrize("schema", [CLOSED, OPEN, COUNTED], ids=["closed", "open", "counted"])
@pytest.mark.parametrize("seed", range(3))
def test_mask_is_every_allowed_token_scanned(schema, seed):
    """Along random masked walks, the mask is the inner one minus exactly the tokens whose full
    scan repeats a key, or leaves a key prefix of an earlier one that no fresh key completes:
    every token the inner mask allows is checked here, while the constraint scans only its
    indexed candidates, and only when an inner mask allows them (verdicts kept per scanner state)."""
    from constrain.schema.distinct_keys import _Duplicate, _needs_search, _scan

    vocab = toy_vocab()
    c = compile_json_schema({"type": "array", "items": schema}, vocab, property_order="any")
    assert isinstance(c, DistinctKeysConstraint)
    rnd = random.Random(seed)
    state = c.initial_state()
    for _ in range(60):
        words = c.token_bits(state)
        inner = c.inner.token_bits(state[0])
        allowed = []
        for t in range(1, vocab.size):
            if not (inner[t >> 5] >> (t & 31)) & 1:
                continue
            try:
                after = _scan(state[1], vocab.token_bytes(t))
                want = (not _needs_search(after, c.check_commas)
                        or ((g := c.inner.advance_token(state[0], t)) is not None and c._fresh_completion(g, after)))
            except _Duplicate:
                want = False
            except ValueError:  # not JSON: left to the grammar
                want = True
            assert bool((words[t >> 5] >> (t & 31)) & 1) == want, (vocab.token_bytes(t), state[1])
            if want:
                allowed.append(t)
        if not allowed:
            break
        state = c.advance_token(state, rnd.choice(allowed))
        assert state is not None


@settings(max_examples=300, deadline=None)
@given(st.frozensets(st.text(alphabet="ab\u00e9\U0001f642", max_size=4), max_size=9), st.text(alphabet="ab\u00e9\U0001f642", max_size=3))
def test_extends_a_key_by_bisection_is_any_startswith(keys, text):
    """The bisection over the sorted keys answers "some key starts with this text" as the plain
    scan of every key does, for small and large sets."""
    from constrain.schema.distinct_keys import _extends_a_key

    assert _extends_a_key(keys, text) == any(k.startswith(text) for k in keys)
