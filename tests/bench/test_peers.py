"""The peer-engine adapters in bench/peers.py agree on the bitmask layout and
on accept / reject / accepting semantics, checked with the real SmolLM2
tokenizer so byte-level BPE tokens and EOS are exercised."""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytestmark = pytest.mark.peers

ENGINES = {
    "llguidance": ("llguidance", "LLGuidanceEngine"),
    "xgrammar": ("xgrammar", "XGrammarEngine"),
    "outlines-core": ("outlines_core", "OutlinesCoreEngine"),
}

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


@pytest.fixture(scope="module")
def tok(smollm2_tokenizer):
    return smollm2_tokenizer


_engine_cache: dict = {}


@pytest.fixture(params=list(ENGINES), scope="module")
def engine(request, tok):
    module, cls_name = ENGINES[request.param]
    pytest.importorskip(module)
    import bench.peers as peers

    if request.param not in _engine_cache:
        _engine_cache[request.param] = getattr(peers, cls_name)(tok)
    return _engine_cache[request.param]


def bit(bitmask: np.ndarray, token_id: int, row: int = 0) -> bool:
    return bool((int(bitmask[row, token_id >> 5]) >> (token_id & 31)) & 1)


def encode(tok, s: str) -> list[int]:
    return tok.encode(s, add_special_tokens=False)


def walk(tok, constraint, text: str, bad_token: int, rows: int = 2, row: int = 1):
    """Drive one matcher through `text`: every token must be allowed before it
    is accepted, `bad_token` must be masked out and rejected at the start, and
    the matcher must be accepting at the end with EOS allowed."""
    eng = constraint.engine
    m = constraint.matcher()
    bm = eng.allocate_bitmask(rows)
    bm[:] = -1  # prove the fill clears disallowed bits and leaves other rows alone
    m.fill_bitmask(bm, row)
    assert not bit(bm, bad_token, row)
    assert not bit(bm, tok.eos_token_id, row), "EOS allowed before anything matched"
    assert (bm[0] == -1).all() or row == 0, "fill wrote outside its row"
    assert m.accept_token(bad_token) is False
    assert not m.is_accepting()

    ids = encode(tok, text)
    for i, t in enumerate(ids):
        m.fill_bitmask(bm, row)
        assert bit(bm, t, row), f"{eng.name}: token {i} {tok.convert_ids_to_tokens(t)!r} not allowed"
        assert m.accept_token(t) is True
    assert m.is_accepting()
    m.fill_bitmask(bm, row)
    assert bit(bm, tok.eos_token_id, row), f"{eng.name}: EOS not allowed at the end"
    assert m.accept_token(tok.eos_token_id) is True

    # reset returns to the start state and the same walk works again
    m.reset()
    assert not m.is_accepting()
    for t in ids:
        assert m.accept_token(t)
    assert m.is_accepting()
    return m


def test_layout(engine, tok):
    assert engine.vocab_size == len(tok) == 49152
    assert engine.allocate_bitmask(3).shape == (3, 49152 // 32)
    assert engine.allocate_bitmask().dtype == np.int32


def test_regex(engine, tok):
    c = engine.compile_regex(r"\d{3}-\d{4}")
    a = encode(tok, "a")
    assert len(a) == 1
    walk(tok, c, "555-1234", a[0])
    # a fresh matcher from the same constraint starts independent of the first
    m2 = c.matcher()
    assert not m2.is_accepting()
    bm = engine.allocate_bitmask()
    m2.fill_bitmask(bm)
    digits = {t for d in "0123456789" for t in encode(tok, d)}
    assert all(bit(bm, t) for t in digits)
    assert not bit(bm, encode(tok, "-")[0])


def test_json_schema(engine, tok):
    c = engine.compile_json_schema(SCHEMA)
    text = json.dumps({"a": 12})  # default separators: '{"a": 12}'
    assert text == '{"a": 12}'
    walk(tok, c, text, encode(tok, "a")[0])
    # a string value for the integer field is rejected
    m = c.matcher()
    prefix = encode(tok, '{"a": ')
    for t in prefix:
        assert m.accept_token(t)
    quote = encode(tok, '"')
    assert len(quote) == 1
    bm = engine.allocate_bitmask()
    m.fill_bitmask(bm)
    assert not bit(bm, quote[0])
    assert m.accept_token(quote[0]) is False


def test_rejection_leaves_state(engine, tok):
    c = engine.compile_regex(r"\d{3}-\d{4}")
    m = c.matcher()
    ids = encode(tok, "555-1234")
    bad = encode(tok, "a")[0]
    for t in ids:
        assert m.accept_token(bad) is False  # rejected tokens do not poison the matcher
        assert m.accept_token(t) is True
    assert m.is_accepting()


def test_compile_error(engine):
    import bench.peers as peers

    with pytest.raises(peers.PeerCompileError) as ei:
        engine.compile_regex("(abc")
    assert engine.name in str(ei.value)


def test_bad_bitmask_shape(engine):
    c = engine.compile_regex("a")
    m = c.matcher()
    with pytest.raises(Exception):
        m.fill_bitmask(np.zeros((1, 10), np.int32))
    with pytest.raises(Exception):
        m.fill_bitmask(engine.allocate_bitmask(1), 1)  # row out of range


def test_lark(engine, tok):
    import bench.peers as peers

    if engine.name == "outlines-core":
        with pytest.raises(peers.PeerUnsupported):
            engine.compile_lark('start: "a"+ "b"')
        with pytest.raises(peers.PeerUnsupported):
            engine.compile_ebnf('root ::= "a"+ "b"')
        return
    c = engine.compile_lark('start: "a"+ "b"')
    walk(tok, c, "aaab", encode(tok, "b")[0])
    c = engine.compile_ebnf('root ::= "a"+ "b"')
    walk(tok, c, "aaab", encode(tok, "b")[0])
    with pytest.raises(peers.PeerCompileError):
        engine.compile_lark("start: foo")


def test_vocab_padding(tok):
    """vocab_size wider than the tokenizer (padded lm_head): masks are wider
    and the padding ids are never allowed."""
    import bench.peers as peers

    V = len(tok) + 64
    for name, (module, cls_name) in ENGINES.items():
        try:
            __import__(module)
        except ImportError:
            continue
        eng = getattr(peers, cls_name)(tok, vocab_size=V)
        bm = eng.allocate_bitmask()
        assert bm.shape == (1, V // 32)
        bm[:] = -1
        m = eng.compile_regex(r"[0-9a-z]+").matcher()
        m.fill_bitmask(bm)
        assert not any(bit(bm, t) for t in range(len(tok), V)), name
        assert bit(bm, encode(tok, "a")[0]), name


def test_available_engines(tok):
    import bench.peers as peers

    names = [e.name for e in peers.available_engines(tok)]
    for name, (module, _) in ENGINES.items():
        try:
            __import__(module)
        except ImportError:
            assert name not in names
        else:
            assert name in names
