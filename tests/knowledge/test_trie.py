"""KnowledgeTrie: retrieval semantics of the KID spec (algorithms.md §2e test 3), persistence, constraint."""

from __future__ import annotations

import numpy as np
import pytest

from constrain.knowledge import KnowledgeTrie, entities
from constrain.knowledge.text import lemma
from tests.search.toy import TOKENS, ToyTokenizer, toy_vocab

TRIPLES = [
    ("marijuana", "impair", "driving ability"),
    ("Paris", "is the capital of", "France"),
    ("France", "borders", "Spain"),
]


@pytest.fixture(scope="module")
def gpt2ish(smollm2_tokenizer):
    return KnowledgeTrie.from_triples(TRIPLES, smollm2_tokenizer)


def test_entities_drop_stop_words_and_singularise():
    assert entities("The dogs caught two frisbees in the park, really quickly!") == ["dog", "caught", "frisbee", "park"]
    assert lemma("cities") == "city" and lemma("boxes") == "box" and lemma("glass") == "glass"


def test_memory_returns_the_key_words(gpt2ish):
    assert set(gpt2ish.knowledge_words({"marijuana"})) == {"marijuana", "driving", "ability"}
    assert gpt2ish.keys_with_prefix("marijuana") == ["marijuana driving ability"]


def test_prefix_match_and_first_entity_only(gpt2ish):
    # marisa-style prefix match: a partial entity matches longer keys
    assert set(gpt2ish.knowledge_words({"mari"})) == {"marijuana", "driving", "ability"}
    # only a key's first entity is reachable (keys are subject + object, queried by prefix)
    assert gpt2ish.knowledge_words({"driving"}) == {}
    assert gpt2ish.knowledge_words({"zebra"}) == {}


def test_hops(gpt2ish):
    assert set(gpt2ish.knowledge_words({"paris"}, max_hops=1)) == {"paris", "france"}
    assert set(gpt2ish.knowledge_words({"paris"}, max_hops=2)) == {"paris", "france", "spain"}
    assert gpt2ish.knowledge_words({"paris"}, max_hops=0) == {}


def test_first_sub_token_rule_with_leading_space_variants(gpt2ish, smollm2_tokenizer):
    tok = smollm2_tokenizer
    bare = {tok.encode(w, add_special_tokens=False)[0] for w in ("marijuana", "driving", "ability")}
    spaced = {tok.encode(" " + w, add_special_tokens=False)[0] for w in ("marijuana", "driving", "ability")}
    assert bare != spaced  # GPT-2 style: "Ġdriving" differs from "driving"
    assert set(gpt2ish.knowledge_tokens({"marijuana"}, space_variants=False)) == bare
    assert set(gpt2ish.knowledge_tokens({"marijuana"})) == bare | spaced
    ids, weights = gpt2ish.lookup(tok.encode("Is smoking marijuana safe?", add_special_tokens=False), continuations=False)
    assert set(ids.tolist()) == bare | spaced and np.all(weights == 1.0)


def test_lookup_continues_started_phrases(gpt2ish, smollm2_tokenizer):
    tok = smollm2_tokenizer
    ctx = tok.encode("It lowers your driving", add_special_tokens=False)
    ids, _ = gpt2ish.lookup(ctx)
    assert tok.encode(" ability", add_special_tokens=False)[0] in ids.tolist()
    assert gpt2ish.lookup(ctx, continuations=False)[0].size == 0  # "driving" is not a key's first entity


def test_save_load_roundtrip(gpt2ish, smollm2_tokenizer, tmp_path):
    path = tmp_path / "k.npz"
    gpt2ish.save(path)
    back = KnowledgeTrie.load(path, smollm2_tokenizer)
    ctx = smollm2_tokenizer.encode("Paris and marijuana driving", add_special_tokens=False)
    for a, b in zip(gpt2ish.lookup(ctx), back.lookup(ctx)):
        np.testing.assert_array_equal(a, b)
    assert list(back.keys) == list(gpt2ish.keys) and back.n_nodes == gpt2ish.n_nodes
    with pytest.raises(ValueError):
        KnowledgeTrie.load(path).lookup(ctx)  # no tokenizer to decode the context


def test_csr_token_trie_is_consistent():
    tok = ToyTokenizer()
    trie = KnowledgeTrie.from_phrases(["dog park", "dog river boat", "cat"], tok)
    assert trie.node_offsets[0] == 0 and trie.node_offsets[-1] == len(trie.edge_token)
    for n in range(trie.n_nodes):
        row = trie.edge_token[trie.node_offsets[n] : trie.node_offsets[n + 1]]
        assert np.all(np.diff(row) > 0)
    for p in ["dog park", "dog river boat", "cat"]:
        assert trie.walk(tok.encode(" " + p)) >= 0
    assert trie.walk(tok.encode(" dog cat")) == -1
    # " dog" starts two phrases and is itself a knowledge word: weight 3
    root = trie.edge_token[: trie.node_offsets[1]].tolist()
    w = dict(zip(root, trie.edge_weight[: trie.node_offsets[1]].tolist()))
    assert w[TOKENS.index(" dog")] == 3
    assert set(trie.continuations(tok.encode("The dog"))) == {TOKENS.index(" park"), TOKENS.index(" river")}


def test_as_constraint_accepts_exactly_the_phrases():
    tok = ToyTokenizer()
    vocab = toy_vocab()
    trie = KnowledgeTrie.from_triples([("dog", "likes", "park"), ("cat", "on", "chair")], tok)
    c = trie.as_constraint(vocab)
    for phrase in trie.phrases:
        m = c.matcher()
        assert m.accept_tokens(tok.encode(str(phrase))) == len(tok.encode(str(phrase))) and m.is_accepting()
    m = c.matcher()
    m.accept_tokens(tok.encode("dog"))
    assert not m.accept_token(TOKENS.index(" park"))  # "dog park" is not a phrase


def test_from_documents_links_cooccurring_entities():
    trie = KnowledgeTrie.from_documents(["The dog caught the frisbee in the park. Cats sleep on sofas."], ToyTokenizer())
    assert set(trie.knowledge_words({"frisbee"})) >= {"frisbee", "park", "dog"}
    assert "sofa" not in trie.knowledge_words({"dog"})  # other sentence
    assert KnowledgeTrie.from_documents([""], ToyTokenizer()).is_empty()
