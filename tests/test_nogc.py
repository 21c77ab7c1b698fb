"""constrain._nogc.without_gc: the collector is off during the call and restored after it."""

from __future__ import annotations

import gc

import pytest

from constrain._nogc import without_gc


@without_gc
def _probe(fail: bool = False) -> bool:
    if fail:
        raise ValueError("boom")
    return gc.isenabled()


def test_collector_off_inside_and_restored_after():
    assert gc.isenabled()
    assert _probe() is False
    assert gc.isenabled()
    with pytest.raises(ValueError):
        _probe(fail=True)
    assert gc.isenabled()  # restored on the error path too


def test_a_callers_disable_is_kept():
    gc.disable()
    try:
        assert _probe() is False
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_compilers_run_without_the_collector(monkeypatch):
    import constrain
    from constrain.schema import compile as sc

    seen = []
    real = sc._schema_grammar

    def spy(*a, **k):
        seen.append(gc.isenabled())
        return real(*a, **k)

    monkeypatch.setattr(sc, "_schema_grammar", spy)
    vocab = constrain.Vocabulary.from_tokens([None] + [bytes([b]) for b in range(256)], eos_token_ids=[0])
    constrain.compile_json_schema({"type": "boolean"}, vocab)
    assert seen == [False] and gc.isenabled()
