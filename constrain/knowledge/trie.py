"""KnowledgeTrie: KID's knowledge store (docs algorithms.md §2b-2c) as flat numpy arrays.

Two indexes over the same knowledge, both saved to one ``.npz`` file:

1. **Entity keys** (what KID queries). Each fact becomes a key, the space-joined entity lemmas of
   its subject and object (``" ".join(ents(subj) + ents(obj))``, :mod:`constrain.knowledge.text`).
   The keys are a sorted string array; ``keys(prefix)`` is two binary searches, the same *prefix*
   semantics as ``marisa_trie.Trie.keys(e)`` in the reference code (entity ``"mari"`` matches
   ``"marijuana impair ..."``; only a key's *first* entity is reachable). Key → words is a CSR pair
   (``key_word_offsets``, ``key_word_ids``) into a sorted word array, and every word keeps its first
   sub-token, both as encoded bare (``"ability"``, what the reference code uses) and with a leading
   space (``" ability"``, what running text needs with GPT-2/Llama-3 style tokenizers).
2. **Token-id trie** of the surface phrases (and of every knowledge word with a leading space),
   over the model's token ids: ``node_offsets`` (CSR, one row per node, root = 0), ``edge_token``
   (sorted within a row), ``edge_child`` and ``edge_weight`` (how many phrases pass through the
   edge). It continues a phrase the context has started.

``lookup(context)`` is KID's "query the trie with the local memory of entities" step: the memory is
the entity set of the context's text, each entity is prefix-matched against the keys for
``max_hops`` hops, and the first sub-tokens of the collected words are the knowledge tokens; with
``continuations=True`` the children of the longest context suffix that is a path of the token trie
are added. Weights count how many knowledge words (or phrases) lead to each token.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from constrain.knowledge.text import entities, words

__all__ = ["KnowledgeTrie", "encode_text"]

_FORMAT = 1


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens (transformers or ``tokenizers`` tokenizers, or
    any object with ``encode(text)``)."""
    enc = getattr(tokenizer, "encode")
    try:
        out = enc(text, add_special_tokens=False)
    except TypeError:
        out = enc(text)
    ids = getattr(out, "ids", out)
    return [int(t) for t in ids]


def decode_ids(tokenizer: Any, ids: Sequence[int]) -> str:
    out = tokenizer.decode(list(ids))
    return out.decode("utf-8", "replace") if isinstance(out, bytes) else out


def _str_array(items: Iterable[str]) -> np.ndarray:
    items = list(items)
    return np.array(items, dtype=str) if items else np.zeros(0, dtype="<U1")


class KnowledgeTrie:
    """Knowledge keys, words and a token-id trie; build with ``from_*``, query with :meth:`lookup`."""

    def __init__(
        self,
        *,
        keys: np.ndarray,
        key_weight: np.ndarray,
        key_word_offsets: np.ndarray,
        key_word_ids: np.ndarray,
        words: np.ndarray,
        word_first: np.ndarray,
        phrases: np.ndarray,
        node_offsets: np.ndarray,
        edge_token: np.ndarray,
        edge_child: np.ndarray,
        edge_weight: np.ndarray,
        tokenizer: Any = None,
    ):
        self.keys = keys
        self.key_weight = key_weight
        self.key_word_offsets = key_word_offsets
        self.key_word_ids = key_word_ids
        self.words = words
        self.word_first = word_first
        self.phrases = phrases
        self.node_offsets = node_offsets
        self.edge_token = edge_token
        self.edge_child = edge_child
        self.edge_weight = edge_weight
        self.tokenizer = tokenizer
        self.max_depth = self._max_depth()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_facts(
        cls, facts: Iterable[tuple[Sequence[str], Sequence[str]]], tokenizer: Any
    ) -> KnowledgeTrie:
        """Build from ``(key_entities, surface_phrases)`` pairs (the common back end)."""
        key_count: dict[str, int] = {}
        surfaces: set[str] = set()
        for ents, surf in facts:
            ents = [e for e in ents if e]
            if ents:
                key = " ".join(ents)
                key_count[key] = key_count.get(key, 0) + 1
            surfaces.update(s.strip() for s in surf if s and s.strip())
        keys = sorted(key_count)
        vocab_words = sorted({w for k in keys for w in k.split(" ")})
        word_index = {w: i for i, w in enumerate(vocab_words)}
        offsets = np.zeros(len(keys) + 1, dtype=np.int64)
        ids: list[int] = []
        for i, k in enumerate(keys):
            ids.extend(word_index[w] for w in k.split(" "))
            offsets[i + 1] = len(ids)
        first = np.full((len(vocab_words), 2), -1, dtype=np.int64)
        for i, w in enumerate(vocab_words):
            bare, spaced = encode_text(tokenizer, w), encode_text(tokenizer, " " + w)
            first[i, 0] = bare[0] if bare else -1
            first[i, 1] = spaced[0] if spaced else -1
        phrases = sorted(surfaces)
        seqs = [encode_text(tokenizer, " " + p) for p in phrases] + [encode_text(tokenizer, " " + w) for w in vocab_words]
        node_offsets, edge_token, edge_child, edge_weight = _build_token_trie(seqs)
        return cls(
            keys=_str_array(keys),
            key_weight=np.array([key_count[k] for k in keys], dtype=np.int64),
            key_word_offsets=offsets,
            key_word_ids=np.array(ids, dtype=np.int64),
            words=_str_array(vocab_words),
            word_first=first,
            phrases=_str_array(phrases),
            node_offsets=node_offsets,
            edge_token=edge_token,
            edge_child=edge_child,
            edge_weight=edge_weight,
            tokenizer=tokenizer,
        )

    @classmethod
    def from_triples(cls, triples: Iterable[tuple[str, str, str]], tokenizer: Any) -> KnowledgeTrie:
        """One key per ``(subject, relation, object)``: ``ents(subject) + ents(object)`` (spec §2b)."""
        facts = []
        for subj, _rel, obj in triples:
            facts.append((entities(subj) + entities(obj), [subj, obj]))
        return cls.from_facts(facts, tokenizer)

    @classmethod
    def from_phrases(cls, phrases: Iterable[str], tokenizer: Any) -> KnowledgeTrie:
        """One key per phrase (its entity lemmas, or its lowercased words if it has none)."""
        facts = []
        for p in phrases:
            ents = entities(p) or words(p)
            facts.append((ents, [p]))
        return cls.from_facts(facts, tokenizer)

    @classmethod
    def from_documents(cls, texts: Iterable[str], tokenizer: Any, *, window: int = 4) -> KnowledgeTrie:
        """Pseudo-triples from raw text (no OpenIE/coreference here): for every sentence and every
        entity ``e`` in it, one key ``e`` + the next ``window`` entities of the sentence (so each
        entity retrieves the entities it co-occurs with). Surface phrases are the entity words."""
        import re

        facts = []
        for text in texts:
            for sent in re.split(r"(?<=[.!?])\s+|\n+", text):
                raw = [w for w in words(sent)]
                ents = entities(sent)
                if not ents:
                    continue
                surface = [w for w in raw if w and w[0].isalpha()]
                uniq = list(dict.fromkeys(ents))
                for i, e in enumerate(uniq):
                    facts.append(([e] + uniq[i + 1 : i + 1 + window] + uniq[max(0, i - window) : i], surface if i == 0 else []))
        return cls.from_facts(facts, tokenizer)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write every array to one ``.npz`` (the tokenizer is not saved)."""
        np.savez(
            path,
            format=np.int64(_FORMAT),
            keys=self.keys,
            key_weight=self.key_weight,
            key_word_offsets=self.key_word_offsets,
            key_word_ids=self.key_word_ids,
            words=self.words,
            word_first=self.word_first,
            phrases=self.phrases,
            node_offsets=self.node_offsets,
            edge_token=self.edge_token,
            edge_child=self.edge_child,
            edge_weight=self.edge_weight,
        )

    @classmethod
    def load(cls, path: str | Path, tokenizer: Any = None) -> KnowledgeTrie:
        """Read a trie written by :meth:`save`; pass the tokenizer to query with token ids."""
        with np.load(path, allow_pickle=False) as z:
            if int(z["format"]) != _FORMAT:
                raise ValueError(f"{path}: unknown KnowledgeTrie format {int(z['format'])}")
            arrays = {k: z[k] for k in z.files if k != "format"}
        return cls(tokenizer=tokenizer, **arrays)

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self.keys)

    @property
    def n_nodes(self) -> int:
        return len(self.node_offsets) - 1

    def is_empty(self) -> bool:
        return len(self.keys) == 0 and len(self.edge_token) == 0

    def keys_with_prefix(self, prefix: str) -> list[str]:
        """Keys starting with ``prefix`` (``marisa_trie.Trie.keys(prefix)``)."""
        lo, hi = self._prefix_range(prefix)
        return [str(k) for k in self.keys[lo:hi]]

    def _prefix_range(self, prefix: str) -> tuple[int, int]:
        if len(self.keys) == 0:
            return 0, 0
        lo = int(np.searchsorted(self.keys, prefix, side="left"))
        hi = int(np.searchsorted(self.keys, prefix + "\U0010ffff", side="left"))
        return lo, hi

    def knowledge_words(self, memory: Iterable[str], max_hops: int = 1) -> dict[str, int]:
        """Words of the keys reachable from the ``memory`` entities in ``max_hops`` hops, with counts.

        As in the reference code, each hop queries with the words found by the previous hop and
        the words of every hop are collected.
        """
        counts: dict[str, int] = {}
        mem = set(memory)
        for _ in range(max_hops):
            found: set[str] = set()
            for e in mem:
                lo, hi = self._prefix_range(e)
                for k in range(lo, hi):
                    for wi in self.key_word_ids[self.key_word_offsets[k] : self.key_word_offsets[k + 1]]:
                        w = str(self.words[wi])
                        counts[w] = counts.get(w, 0) + int(self.key_weight[k])
                        found.add(w)
            mem = found
            if not mem:
                break
        return counts

    def knowledge_tokens(
        self, memory: Iterable[str], *, max_hops: int = 1, space_variants: bool = True
    ) -> dict[int, float]:
        """First sub-tokens of the knowledge words of ``memory``: {token id: weight}.

        The bare encoding (reference code) is always included; ``space_variants`` adds the
        leading-space encoding.
        """
        out: dict[int, float] = {}
        cols = (0, 1) if space_variants else (0,)
        index = {str(w): i for i, w in enumerate(self.words)} if len(self.words) < 64 else None
        for w, c in self.knowledge_words(memory, max_hops).items():
            i = index[w] if index is not None else int(np.searchsorted(self.words, w))
            for col in cols:
                t = int(self.word_first[i, col])
                if t >= 0:
                    out[t] = out.get(t, 0.0) + c
        return out

    def continuations(self, context_token_ids: Sequence[int]) -> dict[int, float]:
        """Children of the longest suffix of the context that is a token-trie path: {token: weight}."""
        ctx = [int(t) for t in context_token_ids][-self.max_depth :] if self.max_depth else []
        for start in range(len(ctx)):
            node = self.walk(ctx[start:])
            if node >= 0:
                lo, hi = self.node_offsets[node], self.node_offsets[node + 1]
                if hi > lo:
                    return {int(t): float(w) for t, w in zip(self.edge_token[lo:hi], self.edge_weight[lo:hi])}
        return {}

    def walk(self, token_ids: Sequence[int], node: int = 0) -> int:
        """The node reached from ``node`` by ``token_ids``, or -1."""
        for t in token_ids:
            lo, hi = int(self.node_offsets[node]), int(self.node_offsets[node + 1])
            j = lo + int(np.searchsorted(self.edge_token[lo:hi], t))
            if j >= hi or int(self.edge_token[j]) != t:
                return -1
            node = int(self.edge_child[j])
        return node

    def lookup(
        self,
        context_token_ids: Sequence[int] = (),
        *,
        text: str | None = None,
        max_hops: int = 1,
        space_variants: bool = True,
        continuations: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Candidate next tokens and weights for a context (KID's knowledge query).

        The local memory is ``set(ents(text))``; ``text`` defaults to the context decoded with the
        trie's tokenizer. Returns ``(token_ids, weights)``, ascending ids, int64 / float64.
        """
        if text is None:
            if context_token_ids is None or len(context_token_ids) == 0:
                text = ""
            elif self.tokenizer is None:
                raise ValueError("lookup needs text= or a trie built/loaded with a tokenizer")
            else:
                text = decode_ids(self.tokenizer, context_token_ids)
        out = self.knowledge_tokens(set(entities(text)), max_hops=max_hops, space_variants=space_variants)
        if continuations:
            for t, w in self.continuations(context_token_ids).items():
                out[t] = out.get(t, 0.0) + w
        ids = np.array(sorted(out), dtype=np.int64)
        return ids, np.array([out[int(t)] for t in ids], dtype=np.float64)

    def as_constraint(self, vocab: Any, **kwargs: Any):
        """Hard constraint: the output is exactly one of the surface phrases (``compile_choice``)."""
        from constrain.constraints import compile_choice

        return compile_choice([str(p) for p in self.phrases], vocab, **kwargs)

    def _max_depth(self) -> int:
        if len(self.edge_token) == 0:
            return 0
        depth = np.zeros(self.n_nodes, dtype=np.int64)
        for node in range(self.n_nodes):  # children are numbered after their parent (BFS order)
            lo, hi = self.node_offsets[node], self.node_offsets[node + 1]
            depth[self.edge_child[lo:hi]] = depth[node] + 1
        return int(depth.max())

    def __repr__(self) -> str:
        return f"KnowledgeTrie(keys={len(self.keys)}, words={len(self.words)}, phrases={len(self.phrases)}, nodes={self.n_nodes})"


def _build_token_trie(seqs: Iterable[Sequence[int]]):
    """CSR token trie (BFS numbering, root 0) with per-edge pass counts."""
    children: list[dict[int, list[int]]] = [{}]  # node -> {token: [child, weight]}
    for seq in seqs:
        node = 0
        for t in seq:
            nxt = children[node].get(int(t))
            if nxt is None:
                children.append({})
                nxt = [len(children) - 1, 0]
                children[node][int(t)] = nxt
            nxt[1] += 1
            node = nxt[0]
    # renumber in BFS order so a parent precedes its children
    order, new_id = [0], {0: 0}
    i = 0
    while i < len(order):
        for t in sorted(children[order[i]]):
            c = children[order[i]][t][0]
            new_id[c] = len(order)
            order.append(c)
        i += 1
    offsets = np.zeros(len(order) + 1, dtype=np.int64)
    tok, child, weight = [], [], []
    for n, old in enumerate(order):
        for t in sorted(children[old]):
            c, w = children[old][t]
            tok.append(t)
            child.append(new_id[c])
            weight.append(w)
        offsets[n + 1] = len(tok)
    return offsets, np.array(tok, dtype=np.int64), np.array(child, dtype=np.int64), np.array(weight, dtype=np.int64)
