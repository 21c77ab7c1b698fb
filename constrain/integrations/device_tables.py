"""Device-resident token tables: the decode loop advances states and gathers masks on the device.

A constraint whose token-level automaton is finite (a regex; a grammar or JSON schema without
recursion) is described completely by two tables over its states: ``next_row[r, t]`` (the row of
the state after token ``t``) and ``bitmask[r]`` (the allowed tokens of row ``r``'s state, EOS
included where it accepts). :class:`DeviceTables` materializes them **lazily** on the model's
device: a state gets a row (its bitmask, computed on the host by the constraint, copied once) when
decoding first reaches it, and a transition is filled in when it is first taken. Every later visit
runs on the device alone (a gather for the mask, a gather for the next row); the host is asked only
for a transition the tables have not seen yet (:attr:`DeviceTables.host_resolves` counts them).

For a regex (:class:`~constrain.dfa_constraint.DFAConstraint`) the first visit of a state fills its
whole ``next_row`` row at once (one trie walk), so after warm-up a regex never leaves the device.
Any constraint with hashable states works (grammars, schemas, recursive ones too): the tables are
then a cache of the transitions decoding actually takes, exact because every entry is computed by
the constraint itself.

Memory is bounded by ``limits.max_device_table_bytes``: rows grow by doubling up to that bound;
when it is reached, the tables are flushed (every row but the ones the batch is in is dropped) and
fill again. Row 0 is a sink, the state after EOS, where only EOS stays allowed (so finished rows of
a batch keep padding with EOS).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import torch

from constrain.compiled import CompiledConstraint
from constrain.dfa_constraint import DFAConstraint
from constrain.errors import LimitExceededError, VocabularyError
from constrain.integrations.torch import disallowed_torch, unpack_bitmask_torch
from constrain.kernels.bitmask import bitmask_words
from constrain.kernels.walk import dfa_token_next_kernel

UNKNOWN = -1  # a transition not taken yet
SINK = 0  # the row after EOS
_INITIAL_ROWS = 64


def device_row_bytes(vocab_size: int) -> int:
    """Bytes one state's row takes on the device (its ``next_row`` entries and bitmask words)."""
    return vocab_size * 4 + bitmask_words(vocab_size) * 4


class DeviceTables:
    """Lazily filled ``next_row`` / ``bitmask`` tables of one or more constraints on ``device``.

    ``constraints`` share one vocabulary; rows are keyed by ``(constraint index, state)``, so a
    batch may mix constraints. Mutated by :meth:`advance` (new rows and transitions, flushes).

    Raises
    ------
    LimitExceededError
        ``limits.max_device_table_bytes`` (of the first constraint) holds fewer than three rows.
    TypeError
        A constraint's initial state is not hashable.
    """

    def __init__(self, constraints: CompiledConstraint | Sequence[CompiledConstraint], device: Any = "cpu"):
        if isinstance(constraints, CompiledConstraint):
            constraints = [constraints]
        constraints = list(constraints)
        if not constraints:
            raise ValueError("device tables need at least one constraint")
        vocab = constraints[0].vocab
        for c in constraints[1:]:
            if c.vocab is not vocab and c.vocab.size != vocab.size:
                raise ValueError("the constraints of one set of device tables must share a vocabulary")
        for i, c in enumerate(constraints):
            if not isinstance(c.initial_state(), Hashable):
                raise TypeError(f"device tables need hashable constraint states; constraint {i} "
                                f"({type(c).__name__}) has {type(c.initial_state()).__name__} states")
        self.constraints = constraints
        self.vocab = vocab
        self.device = torch.device(device)
        self.limit_bytes = constraints[0].limits.max_device_table_bytes
        row_bytes = device_row_bytes(vocab.size)
        self.max_rows = self.limit_bytes // row_bytes
        if self.max_rows < 3:
            raise LimitExceededError(
                "max_device_table_bytes", self.limit_bytes,
                f"device tables need at least 3 rows of {row_bytes} bytes ({vocab.size} tokens)",
            )
        self._words = bitmask_words(vocab.size)
        self._eos = np.asarray(vocab.eos_token_ids, dtype=np.int64)
        self._eos_t = torch.as_tensor(self._eos, device=self.device)
        self.host_resolves = 0  # transitions computed on the host (first visits)
        self.flushes = 0  # times the tables were emptied for lack of room
        self._reset(min(_INITIAL_ROWS, self.max_rows))

    # ------------------------------------------------------------------ storage
    def _reset(self, capacity: int) -> None:
        """Empty tables of ``capacity`` rows holding only the sink."""
        self._keys: list[tuple[int, Any] | None] = [None]  # row -> (constraint index, state); sink: None
        self._rows: dict[tuple[int, Any], int] = {}
        self._dfa_filled = np.zeros(capacity, dtype=np.bool_)  # regex rows whose next_row is complete
        self.next_row = torch.full((capacity, self.vocab.size), UNKNOWN, dtype=torch.int32, device=self.device)
        self.bitmask = torch.zeros((capacity, self._words), dtype=torch.int32, device=self.device)
        sink_words = np.zeros(self._words, dtype=np.uint32)
        self._set_eos(sink_words)
        self.bitmask[SINK] = torch.from_numpy(sink_words.view(np.int32)).to(self.device)
        self.next_row[SINK, self._eos_t] = SINK

    @property
    def n_rows(self) -> int:
        """Rows in use (the sink included)."""
        return len(self._keys)

    @property
    def nbytes(self) -> int:
        """Bytes the tables take on the device now."""
        return self.next_row.numel() * 4 + self.bitmask.numel() * 4

    def _grow(self, needed: int) -> bool:
        """Make room for ``needed`` rows in total by doubling; False when the bound forbids it."""
        capacity = self.next_row.shape[0]
        if needed <= capacity:
            return True
        if needed > self.max_rows:
            return False
        new = min(self.max_rows, max(needed, 2 * capacity))
        next_row = torch.full((new, self.vocab.size), UNKNOWN, dtype=torch.int32, device=self.device)
        next_row[:capacity] = self.next_row
        bitmask = torch.zeros((new, self._words), dtype=torch.int32, device=self.device)
        bitmask[:capacity] = self.bitmask
        self.next_row, self.bitmask = next_row, bitmask
        self._dfa_filled = np.concatenate([self._dfa_filled, np.zeros(new - capacity, dtype=np.bool_)])
        return True

    def _flush(self, keep: list[int]) -> dict[int, int]:
        """Drop every row but ``keep`` (and the sink); return the old -> new row map."""
        self.flushes += 1
        keys = [self._keys[r] for r in keep]
        words = self.bitmask[torch.as_tensor(keep, dtype=torch.long, device=self.device)].clone()
        self._reset(self.next_row.shape[0])
        remap = {SINK: SINK}
        for old, key, w in zip(keep, keys, words):
            new = len(self._keys)
            self._keys.append(key)
            self._rows[key] = new
            self.bitmask[new] = w
            remap[old] = new
            ci, state = key
            if self.constraints[ci].is_accepting(state):
                self.next_row[new, self._eos_t] = SINK
        return remap

    def _set_eos(self, words: np.ndarray) -> None:
        for e in self._eos:
            words[e >> 5] |= np.uint32(1) << np.uint32(e & 31)

    def _intern(self, key: tuple[int, Any]) -> int:
        """The row of ``key``, adding it (bitmask computed on the host and copied) if new.

        The caller has made room (:meth:`_grow`)."""
        row = self._rows.get(key)
        if row is not None:
            return row
        ci, state = key
        constraint = self.constraints[ci]
        words = np.array(constraint.token_bits(state), dtype=np.uint32, copy=True)
        accepting = constraint.is_accepting(state)
        if accepting:
            self._set_eos(words)
        row = len(self._keys)
        self._keys.append(key)
        self._rows[key] = row
        self.bitmask[row] = torch.from_numpy(words.view(np.int32)).to(self.device)
        if accepting:
            self.next_row[row, self._eos_t] = SINK
        return row

    def _room(self, needed: int, keep: list[int]) -> dict[int, int] | None:
        """Ensure ``needed`` more rows fit; flush (keeping ``keep``) if the bound is reached.

        Returns the row map of a flush, or None when nothing moved."""
        if self._grow(self.n_rows + needed):
            return None
        remap = self._flush(sorted(set(keep) - {SINK}))
        if not self._grow(self.n_rows + needed):
            raise LimitExceededError(
                "max_device_table_bytes", self.limit_bytes,
                f"a step needs {self.n_rows + needed} rows; the bound holds {self.max_rows}",
            )
        return remap

    # ------------------------------------------------------------------ decoding API
    def initial_states(self, batch: int, constraint_of_row: Sequence[int] | None = None) -> torch.Tensor:
        """``int64[batch]`` rows of the start states (row ``b`` under constraint
        ``constraint_of_row[b]``, default 0) on the device; adds their rows if new.

        Raises LimitExceededError when the bound cannot hold two rows per batch row."""
        which = [0] * batch if constraint_of_row is None else [int(i) for i in constraint_of_row]
        if len(which) != batch:
            raise ValueError(f"constraint_of_row has {len(which)} entries for a batch of {batch}")
        if 2 * batch + 1 > self.max_rows:
            raise LimitExceededError(
                "max_device_table_bytes", self.limit_bytes,
                f"a batch of {batch} needs {2 * batch + 1} rows; the bound holds {self.max_rows}",
            )
        keys = [(i, self.constraints[i].initial_state()) for i in which]
        self._room(len(set(keys) - self._rows.keys()), [])
        return torch.as_tensor([self._intern(k) for k in keys], dtype=torch.long, device=self.device)

    def masks(self, rows: torch.Tensor) -> torch.Tensor:
        """``bool[batch, V]`` allowed tokens of ``rows`` (a gather and an unpack on the device)."""
        return unpack_bitmask_torch(self.bitmask[rows], self.vocab.size)

    def apply(self, logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Set to -inf, in place, the logits ``float[batch, >= V]`` of every token the state of
        each row of ``rows`` disallows, and of the columns past the vocabulary (a gather and two
        elementwise kernels on the device)."""
        size = self.vocab.size
        logits[:, :size].masked_fill_(disallowed_torch(self.bitmask[rows], size), float("-inf"))
        if logits.shape[1] > size:
            logits[:, size:] = float("-inf")
        return logits

    def any_allowed(self, rows: torch.Tensor) -> torch.Tensor:
        """``bool[batch]``: some token is allowed (false only where no continuation exists)."""
        return (self.bitmask[rows] != 0).any(-1)

    def advance(self, rows: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Rows after ``tokens``: a gather on the device; the host computes only transitions not
        taken before (one check per call). May add rows or flush the tables (``rows`` is then
        stale: use the returned rows only).

        Raises
        ------
        VocabularyError
            A row's state allows no token at all (no continuation exists in this vocabulary).
        ValueError
            A token is not allowed in its row's state.
        """
        nxt = self.next_row[rows, tokens]
        if bool((nxt == UNKNOWN).any()):
            nxt = self._resolve(rows, tokens, nxt)
        return nxt.long()

    def is_finished(self, rows: torch.Tensor) -> torch.Tensor:
        """``bool[batch]``: EOS was accepted."""
        return rows == SINK

    def state_of(self, row: int) -> tuple[int, Any] | None:
        """``(constraint index, state)`` of ``row``; None for the sink (after EOS)."""
        return self._keys[row]

    # ------------------------------------------------------------------ host side
    def _resolve(self, rows: torch.Tensor, tokens: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        """Fill the unknown transitions among ``(rows, tokens)`` on the host; the next rows."""
        rows_h = rows.tolist()
        tokens_h = tokens.tolist()
        nxt_h = nxt.tolist()
        todo = [b for b, n in enumerate(nxt_h) if n == UNKNOWN]
        self.host_resolves += len(todo)
        remap = self._room(len(todo), rows_h + [n for n in nxt_h if n != UNKNOWN])
        if remap is not None:
            rows_h = [remap[r] for r in rows_h]
            nxt_h = [n if n == UNKNOWN else remap[n] for n in nxt_h]
        done: dict[tuple[int, int], int] = {}
        for i, b in enumerate(todo):
            r, t = rows_h[b], int(tokens_h[b])
            if (r, t) not in done:
                done[(r, t)] = self._transition(r, t, reserve=len(todo) - i)
            nxt_h[b] = done[(r, t)]
        src = torch.as_tensor([k[0] for k in done], dtype=torch.long, device=self.device)
        tok = torch.as_tensor([k[1] for k in done], dtype=torch.long, device=self.device)
        self.next_row[src, tok] = torch.as_tensor(list(done.values()), dtype=torch.int32, device=self.device)
        return torch.as_tensor(nxt_h, dtype=torch.long, device=self.device)

    def _transition(self, row: int, token: int, reserve: int = 1) -> int:
        """The row after ``token`` from ``row``, computed by the constraint; ``reserve`` rows
        were made room for (this transition's and the ones still to resolve in the step)."""
        key = self._keys[row]
        if key is None:  # the sink: EOS keeps it, anything else was masked out
            raise ValueError(f"token {token} after EOS: only EOS is allowed")
        ci, state = key
        constraint = self.constraints[ci]
        if token in self._eos:
            if constraint.is_accepting(state):
                return SINK
            raise ValueError(f"EOS (token {token}) is not allowed: the output cannot end here")
        if isinstance(constraint, DFAConstraint) and not self._dfa_filled[row]:
            self._fill_dfa_row(row, ci, state, reserve)
            filled = int(self.next_row[row, token])
            if filled != UNKNOWN:
                return filled
        target = constraint.advance_token(state, token)
        if target is None:
            if not constraint.token_bits(state).any() and not constraint.is_accepting(state):
                raise VocabularyError("no token of the vocabulary can continue an output of the batch")
            raise ValueError(f"token {token} is not allowed in the state of row {row}")
        return self._intern((ci, target))

    def _fill_dfa_row(self, row: int, ci: int, state: int, reserve: int) -> None:
        """Fill a regex state's whole ``next_row`` row, interning every target, if they fit
        beside ``reserve`` rows kept free; otherwise leave it (transitions filled as taken)."""
        constraint = self.constraints[ci]
        trie = constraint.vocab.trie
        targets = np.full(constraint.vocab.size, -1, dtype=np.int32)
        dfa_token_next_kernel(
            constraint._transitions, state, trie.node_byte, trie.node_depth, trie.subtree_end,
            trie.node_token_start, trie.token_ids, trie.max_depth, targets,
        )
        distinct = np.unique(targets[targets >= 0])
        new = [int(s) for s in distinct if (ci, int(s)) not in self._rows]
        if new and not self._grow(self.n_rows + len(new) + reserve):
            return  # no room for every target: fill transitions one by one as they are taken
        lookup = np.full(constraint.dfa.n_states, UNKNOWN, dtype=np.int32)
        for s in distinct:
            lookup[s] = self._intern((ci, int(s)))
        row_values = np.where(targets >= 0, lookup[np.maximum(targets, 0)], UNKNOWN).astype(np.int32)
        keep_eos = self.next_row[row, self._eos_t].clone()
        self.next_row[row] = torch.from_numpy(row_values).to(self.device)
        self.next_row[row, self._eos_t] = keep_eos
        self._dfa_filled[row] = True

    _KEPT_PER_CONSTRAINT = 4
    """Tables kept on one first constraint (different devices or constraint sets); older ones go."""

    @classmethod
    def for_constraints(cls, constraints: Sequence[CompiledConstraint], device: Any) -> DeviceTables:
        """Tables of ``constraints`` on ``device``, built once and kept on the first constraint
        (keyed by the device and the identity of every constraint; the tables hold the
        constraints, so an id is not reused while its entry lives). At most
        ``_KEPT_PER_CONSTRAINT`` sets are kept per first constraint, so device memory stays
        bounded however many combinations are decoded."""
        cache = constraints[0].__dict__.setdefault("_device_tables", {})
        key = (str(torch.device(device)), tuple(id(c) for c in constraints))
        if key not in cache:
            while len(cache) >= cls._KEPT_PER_CONSTRAINT:
                cache.pop(next(iter(cache)))
            cache[key] = cls(constraints, device)
        return cache[key]
