"""Packed token bitmasks: ``int32[batch, ceil(V/32)]``, bit ``t % 32`` of word ``t // 32`` = token allowed.

The layout is the one llguidance and XGrammar use, so bitmasks can be handed between engines.
``apply_bitmask`` works on numpy arrays here and on torch tensors of any device through
:mod:`constrain.integrations.torch` (torch is imported only when a tensor is passed).
"""

from __future__ import annotations

import numba
import numpy as np


def bitmask_words(vocab_size: int) -> int:
    """Number of int32 words that hold one bit per token."""
    return (vocab_size + 31) // 32


def allocate_bitmask(batch_size: int, vocab_size: int) -> np.ndarray:
    """A zeroed ``int32[batch_size, ceil(vocab_size/32)]`` bitmask (no token allowed)."""
    if batch_size <= 0 or vocab_size <= 0:
        raise ValueError(f"batch_size and vocab_size must be positive, got {batch_size}, {vocab_size}")
    return np.zeros((batch_size, bitmask_words(vocab_size)), dtype=np.int32)


def check_bitmask(bitmask: np.ndarray, row: int, vocab_size: int) -> np.ndarray:
    """Validate ``bitmask`` and return ``bitmask[row]`` viewed as uint32 (a view, not a copy)."""
    # Fast path for the per-step call: a C-contiguous int32 matrix of the right width.
    if (
        type(bitmask) is np.ndarray
        and bitmask.dtype == np.int32
        and bitmask.ndim == 2
        and bitmask.shape[1] == (vocab_size + 31) >> 5
        and bitmask.flags.c_contiguous
        and 0 <= row < bitmask.shape[0]
    ):
        return bitmask[row].view(np.uint32)
    if not isinstance(bitmask, np.ndarray):
        raise TypeError(f"bitmask must be a numpy int32 array, got {type(bitmask).__name__}")
    words = bitmask_words(vocab_size)
    if bitmask.dtype != np.int32 or bitmask.ndim != 2 or bitmask.shape[1] != words:
        raise ValueError(
            f"bitmask must be int32 (batch, {words}), got {bitmask.dtype} {tuple(bitmask.shape)}"
        )
    if not -bitmask.shape[0] <= row < bitmask.shape[0]:
        raise ValueError(f"row {row} out of range for a bitmask of batch {bitmask.shape[0]}")
    out = bitmask[row]
    if not out.flags.c_contiguous:
        raise ValueError("bitmask rows must be C-contiguous")
    return out.view(np.uint32)


def bitmask_to_bool(bitmask: np.ndarray, vocab_size: int) -> np.ndarray:
    """Unpack ``int32[..., W]`` into ``bool[..., vocab_size]``."""
    words = np.ascontiguousarray(bitmask).view(np.uint32)
    bits = (words[..., :, None] >> np.arange(32, dtype=np.uint32)) & 1
    return bits.reshape(*words.shape[:-1], -1)[..., :vocab_size].astype(bool)


def bool_to_bitmask(mask: np.ndarray) -> np.ndarray:
    """Pack ``bool[..., V]`` into ``int32[..., ceil(V/32)]``."""
    mask = np.asarray(mask, dtype=bool)
    v = mask.shape[-1]
    padded = np.zeros((*mask.shape[:-1], bitmask_words(v) * 32), dtype=np.uint32)
    padded[..., :v] = mask
    weights = (np.uint32(1) << np.arange(32, dtype=np.uint32)).astype(np.uint32)
    packed = (padded.reshape(*mask.shape[:-1], -1, 32) * weights).sum(axis=-1, dtype=np.uint64)
    return packed.astype(np.uint32).view(np.int32)


def allowed_token_ids(bitmask_row: np.ndarray, vocab_size: int) -> np.ndarray:
    """Ids allowed by one bitmask row, ascending."""
    return np.flatnonzero(bitmask_to_bool(bitmask_row, vocab_size))


@numba.njit(cache=True, nogil=True)
def _set_bits_kernel(words: np.ndarray, token_ids: np.ndarray) -> None:
    for t in token_ids:
        words[t >> 5] |= np.uint32(1) << np.uint32(t & 31)


def set_token_bits(words_u32: np.ndarray, token_ids: np.ndarray) -> None:
    """Set the bits of ``token_ids`` in a uint32 row (mutates ``words_u32``)."""
    if len(token_ids):
        _set_bits_kernel(words_u32, np.asarray(token_ids, dtype=np.int32))


@numba.njit(cache=True, nogil=True)
def _apply_bitmask_kernel(logits: np.ndarray, words: np.ndarray, vocab_size: int) -> None:
    """-inf into ``logits[b, t]`` where bit ``t`` of row ``b`` is clear or ``t >= vocab_size``.

    Word by word: an all-ones word is skipped, an all-zeros word fills 32 columns, any other is a
    branch-free select per bit (vectorizable; ~10x the per-bit branch on random masks)."""
    batch = logits.shape[0]
    width = logits.shape[1]
    full = min(vocab_size, width) >> 5
    ninf = -np.inf
    for b in range(batch):
        for w in range(full):
            word = words[b, w]
            if word == np.uint32(0xFFFFFFFF):
                continue
            base = w << 5
            if word == np.uint32(0):
                for j in range(32):
                    logits[b, base + j] = ninf
                continue
            for j in range(32):
                v = logits[b, base + j]
                logits[b, base + j] = v if (word >> np.uint32(j)) & np.uint32(1) else ninf
        for t in range(full << 5, width):
            if t >= vocab_size or not (words[b, t >> 5] >> np.uint32(t & 31)) & np.uint32(1):
                logits[b, t] = ninf


def apply_bitmask(logits, bitmask, *, vocab_size: int | None = None):
    """Set disallowed logits to ``-inf`` in place and return ``logits``.

    ``logits`` is a numpy float array or a torch tensor (any device) of shape ``(V,)`` or
    ``(batch, V)``; ``bitmask`` is the matching int32 bitmask (numpy, or a torch tensor on any device).
    Columns at or beyond ``vocab_size`` (default: ``V``) are always disallowed.
    """
    if type(logits).__module__.startswith("torch"):
        from constrain.integrations.torch import apply_bitmask_torch

        return apply_bitmask_torch(logits, bitmask, vocab_size=vocab_size)
    if not isinstance(logits, np.ndarray) or logits.dtype.kind != "f":
        raise TypeError(f"logits must be a float numpy array or torch tensor, got {type(logits).__name__}")
    bm = np.asarray(bitmask)
    squeeze = logits.ndim == 1
    logits2 = logits[None, :] if squeeze else logits
    bm2 = bm[None, :] if bm.ndim == 1 else bm
    if bm2.dtype != np.int32:
        raise ValueError(f"bitmask must be int32, got {bm2.dtype}")
    if logits2.ndim != 2 or bm2.shape[0] != logits2.shape[0]:
        raise ValueError(
            f"logits (batch, V) and bitmask (batch, W) disagree: {logits.shape} vs {bm.shape}"
        )
    width = logits2.shape[1]
    limit = width if vocab_size is None else min(vocab_size, width)
    if bm2.shape[1] * 32 < limit:
        raise ValueError(f"bitmask has {bm2.shape[1]} words, too few for {limit} logits")
    _apply_bitmask_kernel(logits2, np.ascontiguousarray(bm2).view(np.uint32), limit)
    return logits
