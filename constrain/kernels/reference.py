"""Slow pure-Python reference implementations of the kernels, used by the tests only."""

from __future__ import annotations

import numpy as np

from constrain.kernels.bitmask import bool_to_bitmask


def reference_dfa_token_mask(transitions: np.ndarray, state: int, token_bytes, eos_ids, accepting: bool) -> np.ndarray:
    """Bitmask row (int32) of tokens allowed from ``state``: token by token, byte by byte."""
    allowed = np.zeros(len(token_bytes), dtype=bool)
    for tid, data in enumerate(token_bytes):
        if not data:
            continue
        s = state
        for b in data:
            s = int(transitions[s, b])
            if s < 0:
                break
        allowed[tid] = s >= 0
    if accepting:
        for e in eos_ids:
            allowed[e] = True
    return bool_to_bitmask(allowed)
