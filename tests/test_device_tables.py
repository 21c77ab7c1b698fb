"""Device tables (on CPU tensors here; on CUDA when one is present) equal the matchers' masks and
transitions, fill lazily, stay within their memory bound and flush when it is reached."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import constrain
from constrain.compiled import CompiledConstraint
from tests import tokenizer_factory as tf
from tests.strategies import PATTERNS

torch = pytest.importorskip("torch")
from constrain.integrations.device_tables import (  # noqa: E402
    SINK,
    DeviceTables,
    device_row_bytes,
)

VOCAB = constrain.Vocabulary.from_tokenizer(tf.byte_level_bpe())
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

FLAT_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 6},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "tags": {"type": "array", "items": {"enum": ["a", "bc", "déf"]}, "maxItems": 3},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}
TREE_SCHEMA = {  # recursive: the tables are a cache of the transitions taken
    "$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"},
                                                         "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                       "required": ["v"], "additionalProperties": False}},
    "$ref": "#/$defs/node",
}
_COMPILED: dict = {}


def _constraint(kind: str, limits: constrain.Limits | None = None):
    key = (kind, limits)
    if key not in _COMPILED:
        kw = {} if limits is None else {"limits": limits}
        if kind.startswith("regex:"):
            _COMPILED[key] = constrain.compile_regex(kind[6:], VOCAB, **kw)
        elif kind == "flat":
            _COMPILED[key] = constrain.compile_json_schema(FLAT_SCHEMA, VOCAB, **kw)
        elif kind == "tree":
            _COMPILED[key] = constrain.compile_json_schema(TREE_SCHEMA, VOCAB, **kw)
        else:
            _COMPILED[key] = constrain.compile_grammar(kind, VOCAB, **kw)
    return _COMPILED[key]


def _walk_and_compare(constraints, tables, rnd, steps=25, eos_weight=0.1):
    """Random walks of a batch (row b under constraints[b % len]) against one matcher per row."""
    batch = 2 * len(constraints)
    which = [b % len(constraints) for b in range(batch)]
    matchers = [constraints[i].matcher() for i in which]
    rows = tables.initial_states(batch, which)
    for _ in range(steps):
        masks = tables.masks(rows).cpu().numpy()
        tokens = []
        for b, m in enumerate(matchers):
            allowed = m.allowed_token_ids()
            assert np.flatnonzero(masks[b]).tolist() == allowed.tolist()
            eos = [t for t in allowed if VOCAB.is_eos(int(t))]
            if eos and (m.is_terminated() or rnd.random() < eos_weight):
                t = int(eos[0])
            else:
                text = [int(t) for t in allowed if not VOCAB.is_eos(int(t))]
                t = int(rnd.choice(text)) if text else int(allowed[0])
            assert m.accept_token(t)
            tokens.append(t)
        rows = tables.advance(rows, torch.tensor(tokens, device=tables.device))
        finished = tables.is_finished(rows).cpu().tolist()
        for b, m in enumerate(matchers):
            assert finished[b] == m.is_terminated()
            if not finished[b]:
                ci, state = tables.state_of(int(rows[b]))
                assert ci == which[b] and state == m.state
        if all(finished):
            break


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_regex_tables_agree_with_matchers(pattern, device):
    c = _constraint("regex:" + pattern)
    tables = DeviceTables(c, device)
    for seed in range(6):
        _walk_and_compare([c], tables, random.Random(seed))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["flat", "tree", 'start: "(" start ")" | "x"'])
def test_schema_and_grammar_tables_agree_with_matchers(kind, device):
    c = _constraint(kind)
    tables = DeviceTables(c, device)
    for seed in range(6):
        _walk_and_compare([c], tables, random.Random(seed), steps=40, eos_weight=0.3)


def test_a_batch_may_mix_constraints():
    cs = [_constraint("flat"), _constraint(r"regex:\d{3}-\d{4}"), _constraint("tree")]
    tables = DeviceTables(cs, "cpu")
    for seed in range(4):
        _walk_and_compare(cs, tables, random.Random(seed), steps=40, eos_weight=0.3)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(5, 12), st.sampled_from(["flat", "tree", r"regex:[a-z]{1,3}( [a-z]{1,3})*"]))
def test_a_small_bound_flushes_and_stays_exact(seed, rows, kind):
    """Rows beyond the bound empty the tables (flush), keeping the batch's rows; masks stay exact."""
    limits = constrain.Limits(max_device_table_bytes=rows * device_row_bytes(VOCAB.size))
    c = _constraint(kind, limits)
    tables = DeviceTables(c, "cpu")
    assert tables.max_rows == rows
    _walk_and_compare([c], tables, random.Random(seed), steps=40, eos_weight=0.05)
    assert tables.n_rows <= rows and tables.next_row.shape[0] <= rows


def test_tables_fill_lazily_and_later_visits_stay_on_the_device():
    c = _constraint("flat")
    tables = DeviceTables(c, "cpu")
    assert tables.n_rows == 1  # the sink
    tables.initial_states(1)
    assert tables.n_rows == 2  # and the start state
    doc = b'{"name":"ab","age":7,"tags":["bc"]}'
    ids, pos = [], 0  # greedy longest-token tokenization
    while pos < len(doc):
        t, n = VOCAB.trie.longest_token_prefix(doc[pos:])
        ids.append(t)
        pos += n
    ids = list(ids) + [VOCAB.eos_token_ids[0]]

    def run():
        rows = tables.initial_states(1)
        for t in ids:
            assert bool(tables.masks(rows)[0, t])
            rows = tables.advance(rows, torch.tensor([t]))
        assert bool(tables.is_finished(rows)[0])

    run()
    first = tables.host_resolves
    # Every text token was a new transition (distinct states); EOS -> sink is filled in with an
    # accepting state's row.
    assert first == len(ids) - 1 and tables.n_rows == len(ids) + 1
    run()
    assert tables.host_resolves == first  # the second pass never asked the host


def test_a_regex_state_fills_its_whole_row_on_first_visit():
    c = _constraint(r"regex:[a-z]{1,3}")
    tables = DeviceTables(c, "cpu")
    rows = tables.initial_states(1)
    t0 = VOCAB.trie.longest_token_prefix(b"a")[0]
    rows = tables.advance(rows, torch.tensor([t0]))
    assert tables.host_resolves == 1
    start = tables.initial_states(1)
    for letter in b"bcdxyz":
        t = VOCAB.trie.longest_token_prefix(bytes([letter]))[0]
        tables.advance(start, torch.tensor([t]))
    assert tables.host_resolves == 1  # every other token of the start state was filled with it


def test_the_bound_is_enforced():
    c = constrain.compile_regex(r"[a-z]{3}", VOCAB, limits=constrain.Limits(max_device_table_bytes=100))
    with pytest.raises(constrain.LimitExceededError, match="max_device_table_bytes"):
        DeviceTables(c, "cpu")
    c = constrain.compile_regex(
        r"[a-z]{3}", VOCAB, limits=constrain.Limits(max_device_table_bytes=6 * device_row_bytes(VOCAB.size))
    )
    tables = DeviceTables(c, "cpu")
    with pytest.raises(constrain.LimitExceededError, match="a batch of 3 needs 7 rows"):
        tables.initial_states(3)


def test_disallowed_tokens_are_refused():
    c = _constraint(r"regex:\d{3}-\d{4}")
    tables = DeviceTables(c, "cpu")
    rows = tables.initial_states(1)
    letter = VOCAB.trie.longest_token_prefix(b"x")[0]
    with pytest.raises(ValueError, match="not allowed"):
        tables.advance(rows, torch.tensor([letter]))
    with pytest.raises(ValueError, match="cannot end here"):
        tables.advance(rows, torch.tensor([VOCAB.eos_token_ids[0]]))
    # After EOS only EOS: the sink keeps padding.
    done = torch.tensor([SINK])
    assert np.flatnonzero(tables.masks(done)[0].numpy()).tolist() == list(VOCAB.eos_token_ids)
    assert int(tables.advance(done, torch.tensor([VOCAB.eos_token_ids[0]]))[0]) == SINK


class _ListStates(CompiledConstraint):
    """A constraint whose states are lists (not hashable)."""

    vocab = VOCAB

    def initial_state(self):
        return []

    def advance_bytes(self, state, data):
        return state + [data]

    def is_accepting(self, state):
        return True

    def fill_token_bits(self, state, words):
        words[:] = 0xFFFFFFFF


def test_unhashable_states_are_refused():
    with pytest.raises(TypeError, match="hashable"):
        DeviceTables(_ListStates(), "cpu")


def test_a_full_table_flushes():
    limits = constrain.Limits(max_device_table_bytes=5 * device_row_bytes(VOCAB.size))
    c = _constraint("flat", limits)
    tables = DeviceTables(c, "cpu")
    _walk_and_compare([c], tables, random.Random(0), steps=30, eos_weight=0.0)
    assert tables.flushes > 0 and tables.n_rows <= 5


@pytest.mark.parametrize("device", DEVICES)
def test_apply_masks_logits_in_place_like_the_bool_masks(device):
    c = _constraint("flat")
    tables = DeviceTables(c, device)
    rows = tables.initial_states(2)
    t = VOCAB.trie.longest_token_prefix(b"{")[0]
    rows = torch.stack([rows[0], tables.advance(rows[1:], torch.tensor([t], device=device))[0]])
    logits = torch.randn((2, VOCAB.size + 3), device=device)
    expected = logits.clone()
    expected[:, : VOCAB.size] = expected[:, : VOCAB.size].masked_fill(~tables.masks(rows), float("-inf"))
    expected[:, VOCAB.size :] = float("-inf")
    assert tables.apply(logits, rows) is logits
    assert torch.equal(logits, expected)
    assert tables.any_allowed(rows).tolist() == [True, True]


def test_tables_kept_per_constraint_are_bounded():
    first = _constraint("flat")
    first.__dict__.pop("_device_tables", None)
    others = [_constraint(r"regex:\d{%d}" % n) for n in range(1, 8)]
    made = [DeviceTables.for_constraints([first, o], "cpu") for o in others]
    assert DeviceTables.for_constraints([first, others[-1]], "cpu") is made[-1]  # kept
    assert len(first.__dict__["_device_tables"]) == DeviceTables._KEPT_PER_CONSTRAINT
    assert DeviceTables.for_constraints([first, others[0]], "cpu") is not made[0]  # dropped, rebuilt
