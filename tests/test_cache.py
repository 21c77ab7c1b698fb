"""BoundedCache: bounds by entries and weight, oldest out first, identity-keyed entries, threads."""

from __future__ import annotations

import threading

import pytest

from constrain._cache import BoundedCache


def test_entries_bound_drops_the_oldest():
    c = BoundedCache(3)
    for k in range(5):
        c.put(k, str(k))
    assert len(c) == 3 and c.get(0) is None and c.get(1) is None and c.get(4) == "4"


def test_weight_bound_keeps_the_new_entry_even_when_it_alone_is_over():
    c = BoundedCache(100, max_weight=10, weight=len)
    c.put("a", "xxxx")
    c.put("b", "yyyy")
    assert c.total_weight == 8
    c.put("c", "zzzz")  # 12 > 10: "a" goes
    assert c.get("a") is None and c.total_weight == 8
    c.put("big", "w" * 50)  # over the bound alone: everything else goes, it stays
    assert len(c) == 1 and c.get("big") and c.total_weight == 50


def test_replacing_a_key_updates_the_weight():
    c = BoundedCache(10, max_weight=100, weight=len)
    c.put("k", "aaaa")
    c.put("k", "bb")
    assert c.total_weight == 2 and len(c) == 1


def test_identity_entries_do_not_answer_for_another_object():
    c = BoundedCache(10)
    a = object()
    c.put_for(a, 1, "x")
    assert c.get_for(a, "x") == 1 and c.get_for(a, "y") is None
    c.put((id(a), "z"), (object(), 2))  # what a reused id would look like: another object stored
    assert c.get_for(a, "z") is None


def test_bad_bound():
    with pytest.raises(ValueError):
        BoundedCache(0)


def test_concurrent_puts_keep_the_bounds():
    c = BoundedCache(50, max_weight=500, weight=lambda v: v)
    errors = []

    def work(base):
        try:
            for i in range(3000):
                c.put((base, i), 1 + i % 20)
                c.get((base, i - 7))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(b,)) for b in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(c) <= 50 and c.total_weight <= 500
    assert c.total_weight == sum(c.get(k) for k in list(c._data))


def test_clear_compile_caches_empties_the_compiler_memos():
    """After a compile the regex memos hold entries; clearing empties them (the tokenizer
    loaders are left alone) and the next compile gives the same automaton."""
    import numpy as np

    import constrain.regex.dfa as dfa
    from constrain._cache import clear_compile_caches
    from constrain.regex import regex_to_dfa

    first = regex_to_dfa('"(a|b)"c[0-9]{2}')
    assert dfa._parse_cached.cache_info().currsize > 0 and len(dfa._FRAGMENTS) > 0
    assert clear_compile_caches() > 0
    assert dfa._parse_cached.cache_info().currsize == 0 and dfa._parse_piece.cache_info().currsize == 0
    assert len(dfa._FRAGMENTS) == 0 and len(dfa._FRAGMENT_SIZES) == 0
    again = regex_to_dfa('"(a|b)"c[0-9]{2}')
    assert np.array_equal(first.transitions, again.transitions)
