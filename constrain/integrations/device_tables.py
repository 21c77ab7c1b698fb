"""Device-resident token tables for regex constraints: the decode loop never leaves the device.

A DFA constraint's token-level automaton is finite, so two tables describe it completely:
``next_state[s, t]`` (the state after token ``t`` from ``s``) and ``bitmask[s]`` (the allowed
tokens of ``s``, EOS included where ``s`` accepts). Both are built on first use (one trie walk per
DFA state) and copied to the model's device; decoding then advances states and gathers masks with
tensor indexing, with no host round-trip per step. Row ``n`` is a sink: the state after EOS, where
only EOS stays allowed (so finished rows of a batch keep padding with EOS).
"""

from __future__ import annotations

import numpy as np
import torch

from constrain.dfa_constraint import DFAConstraint
from constrain.errors import LimitExceededError
from constrain.kernels.bitmask import bitmask_words
from constrain.kernels.walk import dfa_token_next_kernel
from constrain.integrations.torch import unpack_bitmask_torch


def device_table_bytes(constraint: DFAConstraint) -> int:
    """Bytes the tables of ``constraint`` take on the device."""
    n = constraint.dfa.n_states + 1
    return n * constraint.vocab.size * 4 + n * bitmask_words(constraint.vocab.size) * 4


class DeviceDFATables:
    """``next_state`` and ``bitmask`` tables of a :class:`DFAConstraint` on ``device`` (immutable).

    Raises
    ------
    LimitExceededError
        The tables would exceed ``limits.max_device_table_bytes`` (callers fall back to the CPU path).
    """

    def __init__(self, constraint: DFAConstraint, device: torch.device | str = "cpu"):
        if not isinstance(constraint, DFAConstraint):
            raise TypeError(f"device tables need a regex (DFA) constraint, got {type(constraint).__name__}")
        limit = constraint.limits.max_device_table_bytes
        size = device_table_bytes(constraint)
        if size > limit:
            raise LimitExceededError(
                "max_device_table_bytes",
                limit,
                f"device tables for {constraint.dfa.n_states} DFA states x {constraint.vocab.size} tokens "
                f"need {size} bytes",
            )
        self.constraint = constraint
        vocab = constraint.vocab
        n = constraint.dfa.n_states
        sink = n
        trie = vocab.trie
        next_state = np.full((n + 1, vocab.size), -1, dtype=np.int32)
        words = np.zeros((n + 1, bitmask_words(vocab.size)), dtype=np.uint32)
        for s in range(n):
            dfa_token_next_kernel(
                constraint._transitions, s, trie.node_byte, trie.node_depth, trie.subtree_end,
                trie.node_token_start, trie.token_ids, trie.max_depth, next_state[s],
            )
            words[s] = constraint.token_bits(s)
        eos = np.asarray(vocab.eos_token_ids, dtype=np.int64)
        accepting = np.flatnonzero(constraint.dfa.accepting)
        for e in eos:
            bit = np.uint32(1) << np.uint32(e & 31)
            words[accepting, e >> 5] |= bit
            words[sink, e >> 5] |= bit
            next_state[accepting, e] = sink
            next_state[sink, e] = sink
        # Disallowed tokens lead to the sink too; the mask guarantees they are never chosen.
        next_state[next_state < 0] = sink
        self.n_states = n
        self.sink = sink
        self.device = torch.device(device)
        self.next_state = torch.from_numpy(next_state).to(self.device)
        self.bitmask = torch.from_numpy(words.view(np.int32)).to(self.device)
        self.nbytes = size

    @classmethod
    def for_constraint(cls, constraint: DFAConstraint, device: torch.device | str) -> DeviceDFATables:
        """The tables of ``constraint`` on ``device``, built once and kept on the constraint."""
        cache = constraint.__dict__.setdefault("_device_tables", {})
        key = str(torch.device(device))
        if key not in cache:
            cache[key] = cls(constraint, device)
        return cache[key]

    def initial_states(self, batch: int) -> torch.Tensor:
        """``int64[batch]`` start states on the device."""
        return torch.full((batch,), self.constraint.initial_state(), dtype=torch.long, device=self.device)

    def masks(self, states: torch.Tensor) -> torch.Tensor:
        """``bool[batch, V]`` allowed tokens of ``states`` (a gather and an unpack on the device)."""
        return unpack_bitmask_torch(self.bitmask[states], self.constraint.vocab.size)

    def advance(self, states: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """States after ``tokens`` (a gather on the device; EOS leads to the sink)."""
        return self.next_state[states, tokens].long()

    def is_finished(self, states: torch.Tensor) -> torch.Tensor:
        """``bool[batch]``: EOS was accepted."""
        return states == self.sink
