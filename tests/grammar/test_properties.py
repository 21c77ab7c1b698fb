"""Property tests: generated sentences are accepted, masked walks stay valid, mask == slow reference.

Sentences come from the grammar IR itself (random bounded derivations, each terminal sampled as a
string of its own DFA, random ignored whitespace between terminals); lark's dynamic_complete Earley
parser is the reference for every complete text.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from constrain.grammar import compile_grammar
from constrain.grammar.lark_frontend import lark_to_ir
from constrain.regex import regex_to_dfa
from tests.grammar import test_table as table
from tests.grammar._util import EOS, allowed, feed, lark_accepts, random_segmentation, toy_vocab

GRAMMARS = Path(__file__).parents[2] / "grammars"
CORPUS = {name: (GRAMMARS / f"{name}.lark").read_text(encoding="utf-8") for name in ("json", "arithmetic", "lisp", "csv", "sql_select", "python_subset")}
SMALL = {
    "left_rec": table.LEFT_REC,
    "empty": table.EMPTY_RULES,
    "ambig": table.AMBIG,
    "overlap": table.OVERLAP,
    "jsonish": table.JSONISH,
    "icase": table.ICASE,
}
ALL = {**SMALL, **CORPUS}

_constraints: dict = {}


def constraint(name):
    if name not in _constraints:
        _constraints[name] = compile_grammar(ALL[name], toy_vocab())
    return _constraints[name]


class SentenceGenerator:
    """Random sentences of a GrammarIR (bounded derivation depth)."""

    def __init__(self, text: str):
        self.ir = lark_to_ir(text)
        self.dfas = [regex_to_dfa(t.regex, ignore_case=t.ignore_case, dotall=t.dotall) for t in self.ir.terminals]
        self.rules_of: dict[int, list] = {}
        for lhs, rhs in self.ir.rules:
            self.rules_of.setdefault(lhs, []).append(rhs)
        # height[nt]: least derivation height
        inf = 10**9
        height = {nt: inf for nt in self.rules_of}
        changed = True
        while changed:
            changed = False
            for lhs, rhs in self.ir.rules:
                h = 1 + max([0] + [height.get(-s - 1, inf) for s in rhs if s < 0])
                if h < height[lhs]:
                    height[lhs] = h
                    changed = True
        self.height = height
        self.dist = [self._dist_to_accept(d) for d in self.dfas]
        self.ws = [i for i in self.ir.ignore if self._sample_terminal_ok(i)]

    def _sample_terminal_ok(self, i):
        non_ws = [b for b in range(256) if b not in b" \t\n\r\f\v"]
        return not (self.dfas[i].transitions[:, non_ws] >= 0).any()

    @staticmethod
    def _dist_to_accept(dfa):
        n = dfa.n_states
        dist = np.full(n, 10**9)
        dist[dfa.accepting] = 0
        trans = dfa.transitions
        for _ in range(n):
            nxt = trans.copy()
            cand = np.where(nxt >= 0, dist[np.maximum(nxt, 0)] + 1, 10**9).min(axis=1)
            new = np.minimum(dist, cand)
            if (new == dist).all():
                break
            dist = new
        return dist

    def _shortest(self, i):
        dfa, dist = self.dfas[i], self.dist[i]
        s, out = 0, bytearray()
        while dist[s] > 0:
            row = dfa.transitions[s]
            b = next(b for b in range(256) if row[b] >= 0 and dist[row[b]] == dist[s] - 1)
            out.append(b)
            s = row[b]
        return bytes(out)

    def terminal(self, i, rnd) -> bytes:
        dfa, dist = self.dfas[i], self.dist[i]
        s, out = 0, bytearray()
        budget = rnd.randint(1, 8)
        while True:
            row = dfa.transitions[s]
            live = [b for b in range(256) if row[b] >= 0]
            if dfa.accepting[s] and out and (not live or len(out) >= budget or rnd.random() < 0.3):
                return bytes(out)
            if len(out) >= budget:  # head for acceptance
                live = [b for b in live if dist[row[b]] < dist[s]] or live
            ascii_ = [b for b in live if 32 <= b < 127 or b in (9, 10)]
            b = rnd.choice(ascii_ or live)
            out.append(b)
            s = row[b]

    def sentence(self, rnd, depth: int = 7) -> bytes:
        parts: list[bytes] = []

        def ws():
            if self.ws and rnd.random() < 0.3:
                parts.append(self.terminal(rnd.choice(self.ws), rnd))

        def expand(sym, d):
            if sym >= 0:
                parts.append(self.terminal(sym, rnd))
                ws()
                return
            nt = -sym - 1
            options = [rhs for rhs in self.rules_of[nt] if all(s >= 0 or self.height[-s - 1] <= d - 1 for s in rhs)]
            for s in rnd.choice(options):
                expand(s, d - 1)

        ws()
        expand(-(self.ir.start + 1), max(depth, self.height[self.ir.start]))
        return b"".join(parts)


_generators: dict = {}


def generator(name):
    if name not in _generators:
        _generators[name] = SentenceGenerator(ALL[name])
    return _generators[name]


@settings(max_examples=200)
@given(name=st.sampled_from(sorted(ALL)), rnd=st.randoms(use_true_random=False))
def test_generated_sentences_are_accepted(name, rnd):
    gen = generator(name)
    data = gen.sentence(rnd)
    text = data.decode("utf-8")
    assert lark_accepts(ALL[name], text), f"generator produced a non-sentence {text!r}"
    c = constraint(name)
    for _ in range(3):
        tokens = random_segmentation(data, rnd)
        m = feed(c, tokens)
        assert m is not None, f"rejected {text!r} split as {tokens}"
        assert m.is_accepting(), f"not accepting at the end of {text!r}"


@settings(max_examples=150)
@given(name=st.sampled_from(sorted(ALL)), rnd=st.randoms(use_true_random=False))
def test_masked_walks(name, rnd):
    c = constraint(name)
    vocab = c.vocab
    m = c.matcher()
    out = bytearray()
    for _ in range(40):
        ids = allowed(m).tolist()
        assert ids, f"stuck after {bytes(out)!r}"
        if EOS in ids and (rnd.random() < 0.3 or len(ids) == 1):
            assert m.accept_token(EOS)
            assert lark_accepts(ALL[name], out.decode("utf-8")), f"EOS allowed after {bytes(out)!r}"
            return
        non_eos = [t for t in ids if t != EOS]
        # prefer printable ASCII so lark can read the text at the end
        printable = [t for t in non_eos if all(32 <= b < 127 or b in (9, 10) for b in vocab.token_bytes(t))]
        t = rnd.choice(printable or non_eos)
        assert m.accept_token(t)
        out += vocab.token_bytes(t)


@settings(max_examples=100)
@given(name=st.sampled_from(sorted(ALL)), rnd=st.randoms(use_true_random=False))
def test_mask_equals_slow_reference(name, rnd):
    c = constraint(name)
    vocab = c.vocab
    state = c.initial_state()
    for _ in range(rnd.randint(0, 25)):
        words = np.zeros((vocab.size + 31) // 32, dtype=np.uint32)
        c.fill_token_bits(state, words)
        fast = {t for t in range(vocab.size) if words[t >> 5] >> np.uint32(t & 31) & 1}
        slow = {
            t for t in range(vocab.size)
            if vocab.token_bytes(t) and c.advance_bytes(state, vocab.token_bytes(t)) is not None
        }
        assert fast == slow
        if not fast:
            break
        state = c.advance_bytes(state, vocab.token_bytes(rnd.choice(sorted(fast))))


def test_generator_covers_every_grammar():
    """The generator reaches each grammar's terminals (guards against a vacuous generator)."""
    import random

    for name in ALL:
        gen = generator(name)
        rnd = random.Random(0)
        lengths = [len(gen.sentence(rnd)) for _ in range(20)]
        assert max(lengths) > 0, name
