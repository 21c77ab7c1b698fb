"""TokenTrie layout: DFS order, subtree ranges, tokens per node."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from constrain.vocab.trie import TokenTrie


def spelled(trie: TokenTrie) -> list[bytes]:
    """The byte string of every node, rebuilt from depths."""
    out: list[bytes] = []
    path: list[int] = []
    for i in range(trie.n_nodes):
        d = int(trie.node_depth[i])
        del path[max(d - 1, 0) :]
        if i:
            path.append(int(trie.node_byte[i]))
        out.append(bytes(path))
    return out


tokens_strategy = st.lists(st.one_of(st.none(), st.binary(max_size=6)), max_size=60)


@given(tokens_strategy)
def test_every_token_sits_at_its_bytes(tokens):
    trie = TokenTrie.build(tokens)
    names = spelled(trie)
    found: dict[int, bytes] = {}
    for node in range(trie.n_nodes):
        for t in trie.tokens_at(node):
            found[int(t)] = names[node]
    expected = {i: b for i, b in enumerate(tokens) if b}
    assert found == expected


@given(tokens_strategy)
def test_subtrees_are_contiguous_prefix_ranges(tokens):
    trie = TokenTrie.build(tokens)
    names = spelled(trie)
    assert names == sorted(names)  # DFS order of a byte trie is lexicographic order
    assert len(set(names)) == len(names)
    for i in range(trie.n_nodes):
        end = int(trie.subtree_end[i])
        inside = {j for j in range(trie.n_nodes) if names[j].startswith(names[i])}
        assert inside == set(range(i, end))


@given(tokens_strategy, st.binary(max_size=8))
def test_find_and_longest_prefix(tokens, data):
    trie = TokenTrie.build(tokens)
    present = {b for b in tokens if b}
    node = trie.find(data)
    assert (node >= 0) == (data == b"" or any(t.startswith(data) for t in present))
    tid, length = trie.longest_token_prefix(data)
    prefixes = [len(b) for b in present if data.startswith(b)]
    assert length == (max(prefixes) if prefixes else 0)
    if tid >= 0:
        assert tokens[tid] == data[:length]


@settings(max_examples=50, deadline=None)
@given(n=st.integers(0, 12), seed=st.integers(0, 2**31 - 1))
def test_self_loop_byte_sets_match_a_bit_by_bit_reference(n, seed):
    """Bit b of word b // 64 of row k is set iff byte b leads state ``states[k]`` back to itself."""
    from constrain.vocab.trie import self_loop_byte_sets, self_loop_byte_sets_of

    rng = np.random.default_rng(seed)
    table = rng.integers(-2, max(n, 1), size=(n, 256)).astype(np.int32)
    got = self_loop_byte_sets(table)
    assert got.shape == (n, 4) and got.dtype == np.uint64
    for k in range(n):
        for b in range(256):
            assert bool(int(got[k, b >> 6]) >> (b & 63) & 1) == (table[k, b] == k)
    if n:
        rows = rng.integers(0, n, size=3)
        assert np.array_equal(self_loop_byte_sets_of(table[rows], rows), got[rows])


@settings(max_examples=100, deadline=None)
@given(tokens=st.lists(st.binary(min_size=1, max_size=4), max_size=30), data=st.binary(max_size=8))
def test_tokens_along_are_the_tokens_spelling_a_prefix(tokens, data):
    trie = TokenTrie.build(tokens)
    want = sorted(t for t, b in enumerate(tokens) if data.startswith(b))
    assert sorted(trie.tokens_along(data)) == want
